import Foundation

/// The index's streams, stored for a million of them: each stream has a number (the order of its
/// first record), its name once in ``names``, its positions and last event id in ``entries``,
/// and its rarely set fields (lifecycle, snapshot, removed versions) in a side table. Names are
/// found through an open-addressing table of numbers, not a `Dictionary` of names to structs
/// (whose power-of-two buckets, each a name and a 100-byte struct, took 250 bytes per stream).
struct StreamTable {
    /// What most streams have.
    struct Entry {
        /// `positions[i]` is the position of version `removedThrough + i + 1` (see
        /// ``StreamIndex/Stream/positions``).
        var positions: [UInt64] = []
        var lastEventID: UUID?
        /// Whether ``StreamTable/rare`` holds fields for this stream.
        var hasRare = false
    }

    /// What few streams have: everything of ``StreamIndex/Stream`` but the positions and the
    /// last event id, at their defaults for most streams.
    struct Rare: Equatable {
        var removedThrough = 0
        var truncateBefore = 1
        var snapshotsHiddenThrough = 0
        var isTombstoned = false
        var snapshot: StreamIndex.SnapshotReference?

        static let defaults = Rare()
    }

    /// Every stream name, by number.
    private(set) var names: [String] = []
    private(set) var entries: [Entry] = []
    private var rare: [Int: Rare] = [:]
    /// Open addressing, linear probing: a slot is 0 (empty) or the stream's number + 1 in the
    /// low 32 bits and the high 32 bits of its name's hash in the high ones (most probes that do
    /// not match are told apart without comparing names). Its count is a power of two, at most
    /// 3/4 full.
    private var slots: [UInt64] = []

    var count: Int { names.count }

    /// Room for `count` streams without growing.
    mutating func reserveCapacity(_ count: Int) {
        names.reserveCapacity(count)
        entries.reserveCapacity(count)
        if Self.slotCount(for: count) > slots.count { rehash(into: Self.slotCount(for: count)) }
    }

    /// The stream's number, if it is known.
    func number(of name: String) -> Int? {
        let key = StreamKey(name)
        return find(key, hash: key.hashValue).number
    }

    /// The stream's number, a new one (with an empty entry) if it was not known.
    mutating func number(creating name: String) -> (number: Int, isNew: Bool) {
        let key = StreamKey(name)
        let hash = key.hashValue
        let found = find(key, hash: hash)
        if let number = found.number { return (number, false) }
        let number = names.count
        precondition(number < Int(UInt32.max) - 1, "at most 2^32 - 2 streams")
        names.append(name)
        entries.append(Entry())
        if Self.slotCount(for: number + 1) > slots.count {
            rehash(into: Self.slotCount(for: number + 1))  // places the new name too
        } else {
            slots[found.slot] = Self.slot(number, hash: hash)
        }
        return (number, true)
    }

    /// The rarely set fields of stream `number`.
    func rareFields(of number: Int) -> Rare { entries[number].hasRare ? rare[number]! : .defaults }

    /// Changes the rarely set fields of stream `number`.
    mutating func updateRare<R>(of number: Int, _ change: (inout Rare) -> R) -> R {
        var fields = rareFields(of: number)
        let result = change(&fields)
        if fields == .defaults {
            if entries[number].hasRare { rare[number] = nil }
            entries[number].hasRare = false
        } else {
            rare[number] = fields
            entries[number].hasRare = true
        }
        return result
    }

    /// Changes the entry of stream `number` in place (its positions are not copied).
    mutating func updateEntry<R>(of number: Int, _ change: (inout Entry) -> R) -> R {
        change(&entries[number])
    }

    /// The version of stream `number`: its removed versions and its positions.
    func version(of number: Int) -> Int {
        (entries[number].hasRare ? rare[number]!.removedThrough : 0) + entries[number].positions.count
    }

    /// Adds a stream as the index file holds it; false when its name is already there.
    mutating func restore(_ name: String, _ stream: StreamIndex.Stream) -> Bool {
        let (number, isNew) = number(creating: name)
        guard isNew else { return false }
        entries[number] = Entry(positions: stream.positions, lastEventID: stream.lastEventID)
        updateRare(of: number) { rare in
            rare = Rare(
                removedThrough: stream.removedThrough, truncateBefore: stream.truncateBefore,
                snapshotsHiddenThrough: stream.snapshotsHiddenThrough, isTombstoned: stream.isTombstoned,
                snapshot: stream.snapshot)
        }
        return true
    }

    // MARK: The slots

    private static func slotCount(for streams: Int) -> Int {
        var count = 16
        while count / 4 * 3 < streams { count *= 2 }
        return count
    }

    private static func slot(_ number: Int, hash: Int) -> UInt64 {
        UInt64(UInt32(number + 1)) | UInt64(UInt32(truncatingIfNeeded: hash >> 32)) << 32
    }

    /// The number of the stream named `key`, or the empty slot where it would go.
    private func find(_ key: StreamKey, hash: Int) -> (number: Int?, slot: Int) {
        guard !slots.isEmpty else { return (nil, 0) }
        let mask = slots.count - 1
        let tag = UInt64(UInt32(truncatingIfNeeded: hash >> 32))
        var index = hash & mask
        while true {
            let slot = slots[index]
            if slot == 0 { return (nil, index) }
            let number = Int(UInt32(truncatingIfNeeded: slot)) - 1
            if slot >> 32 == tag, StreamKey(names[number]) == key { return (number, index) }
            index = (index + 1) & mask
        }
    }

    private mutating func place(_ number: Int, hash: Int) {
        let mask = slots.count - 1
        var index = hash & mask
        while slots[index] != 0 { index = (index + 1) & mask }
        slots[index] = Self.slot(number, hash: hash)
    }

    private mutating func rehash(into count: Int) {
        slots = [UInt64](repeating: 0, count: count)
        for (number, name) in names.enumerated() { place(number, hash: StreamKey(name).hashValue) }
    }
}
