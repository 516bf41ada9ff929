import Foundation

/// The index's streams, stored for a million of them: each stream has a number (the order of its
/// first record), its name once in ``names``, its positions in one run of the shared
/// ``positions`` store, its last event id in ``entries``, and its rarely set fields (lifecycle,
/// snapshot, removed versions) in a side table. Names are found through an open-addressing table
/// of numbers, not a `Dictionary` of names to structs (whose power-of-two buckets, each a name
/// and a 100-byte struct, took 250 bytes per stream), and positions are not an array per stream
/// (a heap block and its header each: 80 bytes for 5 positions).
struct StreamTable {
    /// What most streams have.
    struct Entry {
        /// The stream's run in ``StreamTable/positions``: `count` positions from `start`, room
        /// for `capacity`. Position `i` is that of version `removedThrough + i + 1`; a value ≥
        /// ``StreamIndex/damagedMarker`` marks a version lost to damage.
        var start = 0
        var count: UInt32 = 0
        var capacity: UInt32 = 0
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

        /// Whether every field has its default (checked field by field: cheaper than `==`).
        var isDefault: Bool {
            removedThrough == 0 && truncateBefore == 1 && snapshotsHiddenThrough == 0 && !isTombstoned && snapshot == nil
        }
    }

    /// Every stream name, by number.
    private(set) var names: [String] = []
    private(set) var entries: [Entry] = []
    /// Every stream's positions, each stream's in one run (``Entry``).
    private(set) var positions: [UInt64] = []
    /// Slots of runs that streams outgrew (moved to the end): reclaimed when they are a quarter
    /// of the store, so that it stays below 8/3 of the positions it holds (runs at most double
    /// their positions).
    private var abandoned = 0
    private var rare: [Int: Rare] = [:]
    /// Open addressing, linear probing: a slot is 0 (empty) or the stream's number + 1 in the
    /// low 32 bits and the low 32 bits of its name's hash in the high ones (most probes that do
    /// not match are told apart without comparing names). A name's home slot comes from the
    /// hash's high bits scaled to the slot count (``home(_:)``), so the count need not be a power
    /// of two: at most 3/4 full, 4/3 slots per stream (a power of two wasted up to half more:
    /// 16 MB instead of 10.7 for a million streams).
    private var slots: [UInt64] = []

    var count: Int { names.count }

    /// The stream's number, if it is known.
    func number(of name: String) -> Int? {
        let key = StreamKey(name)
        return find(key, hash: key.hashValue).number
    }

    /// The stream's number, if it is known (its name hashed already).
    func number(of key: HashedStreamKey) -> Int? { find(key.key, hash: key.hash).number }

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
            rehash(into: max(Self.slotCount(for: number + 1), slots.count * 2))  // places the new name too
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
        if fields.isDefault {
            if entries[number].hasRare { rare[number] = nil }
            entries[number].hasRare = false
        } else {
            rare[number] = fields
            entries[number].hasRare = true
        }
        return result
    }

    /// Sets the last event id of stream `number`.
    mutating func setLastEventID(_ id: UUID?, of number: Int) { entries[number].lastEventID = id }

    /// The version of stream `number`: its removed versions and its positions.
    func version(of number: Int) -> Int {
        (entries[number].hasRare ? rare[number]!.removedThrough : 0) + Int(entries[number].count)
    }

    // MARK: Positions

    /// The positions of stream `number`, from its first stored version (to be read, not kept: a
    /// slice keeps the whole store alive, and a change to the store would copy it).
    func positions(of number: Int) -> ArraySlice<UInt64> {
        let entry = entries[number]
        return positions[entry.start..<(entry.start + Int(entry.count))]
    }

    /// Appends `values` to the positions of stream `number`: in its run when there is room, else
    /// the run moves to the end of the store with room for twice as many (a stream's first run
    /// is exactly as long as its first events).
    mutating func append<C: Collection<UInt64>>(_ values: C, to number: Int) {
        var entry = entries[number]
        let needed = Int(entry.count) + values.count
        precondition(needed < Int(UInt32.max), "at most 2^32 - 1 positions per stream in memory")
        if needed > Int(entry.capacity) {
            let capacity = entry.count == 0 ? needed : min(max(needed, Int(entry.capacity) * 2), Int(UInt32.max) - 1)
            if entry.start + Int(entry.capacity) == positions.count && entry.capacity > 0 {
                // The last run: it grows in place.
                positions.append(contentsOf: repeatElement(0, count: capacity - Int(entry.capacity)))
            } else {
                let kept = Array(positions[entry.start..<(entry.start + Int(entry.count))])
                abandoned += Int(entry.capacity)
                entry.start = positions.count
                positions.append(contentsOf: kept)
                positions.append(contentsOf: repeatElement(0, count: capacity - kept.count))
            }
            entry.capacity = UInt32(capacity)
        }
        var at = entry.start + Int(entry.count)
        for value in values {
            positions[at] = value
            at += 1
        }
        entry.count = UInt32(needed)
        entries[number] = entry
        if abandoned > 4096 && abandoned > positions.count / 4 { reclaimAbandoned() }
    }

    /// Rewrites the store without the abandoned runs (each stream keeps its run's room).
    private mutating func reclaimAbandoned() {
        var compacted: [UInt64] = []
        compacted.reserveCapacity(positions.count - abandoned)
        for number in entries.indices {
            let entry = entries[number]
            entries[number].start = compacted.count
            compacted.append(contentsOf: positions[entry.start..<(entry.start + Int(entry.capacity))])
        }
        positions = compacted
        abandoned = 0
    }

    /// A table rebuilt from the index file: streams are added in number order without a lookup
    /// each, then placed in the slots at once, in the order of their home slots (placing a
    /// million streams one by one, each a cache miss on a 16 MB table, was a third of opening
    /// them).
    struct Restoring {
        private var table = StreamTable()
        private var hashes: [Int] = []

        /// Room for `streams` streams and `positions` positions.
        init(streams: Int, positions: Int) {
            table.names.reserveCapacity(streams)
            table.entries.reserveCapacity(streams)
            table.positions.reserveCapacity(positions)
            hashes.reserveCapacity(streams)
        }

        /// Adds the next stream (number = the streams added before it), its positions given by
        /// `read` (called `count` times, in order), stored straight into the shared store.
        mutating func add(
            _ name: String, rare fields: Rare, lastEventID: UUID?, count: Int, positions read: () throws -> UInt64
        ) rethrows {
            let number = table.names.count
            precondition(number < Int(UInt32.max) - 1, "at most 2^32 - 2 streams")
            precondition(count < Int(UInt32.max), "at most 2^32 - 1 positions per stream in memory")
            let start = table.positions.count
            for _ in 0..<count { table.positions.append(try read()) }
            table.names.append(name)
            hashes.append(StreamKey(name).hashValue)
            table.entries.append(Entry(start: start, count: UInt32(count), capacity: UInt32(count), lastEventID: lastEventID))
            if !fields.isDefault { table.updateRare(of: number) { $0 = fields } }
        }

        /// The table, with every stream findable; `nil` when two streams have the same name.
        consuming func finish() -> StreamTable? {
            let count = table.names.count
            table.slots = [UInt64](repeating: 0, count: StreamTable.slotCount(for: count))
            // Numbers in the order of their home slots (a counting sort on the hashes' top 12
            // bits, which order the home slots): the placing below then writes the slots nearly
            // in order.
            var starts = [Int](repeating: 0, count: 4097)
            for hash in hashes { starts[Int(UInt64(bitPattern: Int64(hash)) >> 52) + 1] += 1 }
            for bucket in 1..<starts.count { starts[bucket] += starts[bucket - 1] }
            var order = [(hash: Int, number: Int)](repeating: (0, 0), count: count)
            for (number, hash) in hashes.enumerated() {
                let bucket = Int(UInt64(bitPattern: Int64(hash)) >> 52)
                order[starts[bucket]] = (hash, number)
                starts[bucket] += 1
            }
            hashes = []
            for (hash, number) in order {
                // Names are compared only when a tag matches: reading them all would be a cache
                // miss each again.
                var index = table.home(hash)
                while table.slots[index] != 0 {
                    let other = Int(UInt32(truncatingIfNeeded: table.slots[index])) - 1
                    if table.slots[index] >> 32 == StreamTable.tag(hash), table.names[other].hasSameBytes(as: table.names[number]) {
                        return nil
                    }
                    index = table.next(index)
                }
                table.slots[index] = StreamTable.slot(number, hash: hash)
            }
            return table
        }
    }

    // MARK: The slots

    private static func slotCount(for streams: Int) -> Int {
        max(16, (streams * 4 + 2) / 3)
    }

    private static func tag(_ hash: Int) -> UInt64 { UInt64(UInt32(truncatingIfNeeded: hash)) }

    private static func slot(_ number: Int, hash: Int) -> UInt64 {
        UInt64(UInt32(number + 1)) | tag(hash) << 32
    }

    /// The slot a hash's probe starts at: its value as a fraction of 2^64 times the slot count.
    private func home(_ hash: Int) -> Int {
        Int(UInt64(bitPattern: Int64(hash)).multipliedFullWidth(by: UInt64(slots.count)).high)
    }

    private func next(_ index: Int) -> Int { index + 1 == slots.count ? 0 : index + 1 }

    /// The number of the stream named `key`, or the empty slot where it would go.
    private func find(_ key: StreamKey, hash: Int) -> (number: Int?, slot: Int) {
        guard !slots.isEmpty else { return (nil, 0) }
        let tag = Self.tag(hash)
        var index = home(hash)
        while true {
            let slot = slots[index]
            if slot == 0 { return (nil, index) }
            let number = Int(UInt32(truncatingIfNeeded: slot)) - 1
            if slot >> 32 == tag, StreamKey(names[number]) == key { return (number, index) }
            index = next(index)
        }
    }

    private mutating func place(_ number: Int, hash: Int) {
        var index = home(hash)
        while slots[index] != 0 { index = next(index) }
        slots[index] = Self.slot(number, hash: hash)
    }

    private mutating func rehash(into count: Int) {
        slots = [UInt64](repeating: 0, count: count)
        for (number, name) in names.enumerated() { place(number, hash: StreamKey(name).hashValue) }
    }
}
