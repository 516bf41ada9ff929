import Foundation

/// Where a frame is: which segment (index into the store's segment list) and at which offset.
struct FrameLocation: Hashable, Sendable {
    var segment: Int
    var offset: Int
}

/// A frame holding events, in the order of the log: the table that maps positions to frames.
struct EventFrame: Sendable {
    var location: FrameLocation
    var firstPosition: UInt64
    var lastPosition: UInt64
    /// The frame's checksum field: a read checks that the frame it finds at `location` is this
    /// one (an index file that outlived a change to its segments must not lend other events).
    var checksum: UInt32
}

/// A region of the log that failed its checksum or did not decode.
struct Damage: Sendable, Equatable {
    var segmentName: String
    var offset: Int
    var reason: String
    /// The positions the damaged bytes held, as far as the frames around them tell.
    var positions: Range<UInt64>
    /// Bytes of the damaged region (0 when unknown, e.g. a missing file).
    var length: Int = 0
    /// Damage of the store's files as a whole (a missing or stale manifest, segment files that
    /// do not form one log), not at a point of the log: with no positions, it stops no read in
    /// log order (what it may have lost is recorded after the log's end).
    var concernsTheWholeStore = false

    var error: StoreError { .corruption(segment: segmentName, offset: offset, reason: reason) }

    /// Whether a read in log order from `next` meets it before the frame that starts at
    /// `gapEnd` (or the log's end). Damage that held no positions (a frame of lifecycle records
    /// or snapshots, a broken chain, bytes after a sealed segment's frames) lies at one point of
    /// the log, the log's next position when recovery met it: the events before it came first,
    /// those from there on after it (its empty range overlaps nothing: reads went past it).
    /// Damage of the store as a whole has no place in the log.
    func stopsARead(from next: UInt64, before gapEnd: UInt64) -> Bool {
        guard next <= gapEnd else { return false }
        if positions.isEmpty { return !concernsTheWholeStore && positions.lowerBound >= next && positions.lowerBound <= gapEnd }
        return positions.overlaps(next..<gapEnd)
    }

    /// Whether a read in log order from `position` on reaches it.
    func liesAtOrAfter(_ position: UInt64) -> Bool {
        positions.isEmpty ? !concernsTheWholeStore && positions.lowerBound >= position : positions.upperBound > position
    }
}

/// A stream name as the index keys it: compared and hashed by its UTF-8 bytes. Swift's `String`
/// compares by canonical equivalence, which would merge `José` spelled NFC and NFD; the format
/// says names are bytes.
struct StreamKey: Hashable, Sendable {
    let name: String

    init(_ name: String) { self.name = name }

    static func == (a: Self, b: Self) -> Bool { a.name.hasSameBytes(as: b.name) }

    func hash(into hasher: inout Hasher) {
        var name = name
        name.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// A ``StreamKey`` with its hash worked out once: the writer looks each append's stream up in
/// three tables (its batch's, the batch in flight's and the index's), and hashing the name's
/// bytes cost more than a lookup.
struct HashedStreamKey: Hashable, Sendable {
    let key: StreamKey
    /// `key.hashValue`.
    let hash: Int

    init(_ name: String) {
        key = StreamKey(name)
        hash = key.hashValue
    }

    var name: String { key.name }

    static func == (a: Self, b: Self) -> Bool { a.hash == b.hash && a.key == b.key }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

extension String {
    /// Whether both hold the same UTF-8 bytes: how names (streams, event types) are compared.
    /// `==` is canonical equivalence, which takes `José` spelled NFC and NFD for one name.
    @inline(__always)
    func hasSameBytes(as other: String) -> Bool {
        // The writer compares each event's type with the one before it, most often the very
        // same string.
        hasSameRepresentation(as: other) || hasSameBytesSlowly(as: other)
    }

    /// Whether both are one representation: one string's storage, or equal small strings held
    /// inline. The same representation is the same bytes (not the converse: equal strings may
    /// be stored apart).
    @inline(__always)
    func hasSameRepresentation(as other: String) -> Bool {
        withUnsafeBytes(of: self) { mine in
            withUnsafeBytes(of: other) { theirs in
                mine.loadUnaligned(as: UInt64.self) == theirs.loadUnaligned(as: UInt64.self)
                    && mine.loadUnaligned(fromByteOffset: mine.count - 8, as: UInt64.self)
                        == theirs.loadUnaligned(fromByteOffset: theirs.count - 8, as: UInt64.self)
            }
        }
    }

    @inline(never)
    private func hasSameBytesSlowly(as other: String) -> Bool {
        let left = utf8, right = other.utf8
        guard left.count == right.count else { return false }
        // Native strings hold contiguous UTF-8: one memcmp (the generic element-by-element
        // comparison cost the writer 5 % of an import's cycles).
        let same = left.withContiguousStorageIfAvailable { l in
            right.withContiguousStorageIfAvailable { r in l.count == 0 || memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0 }
        }
        if let same, let same { return same }
        return left.elementsEqual(right)
    }
}

/// The in-memory index: stream → positions of its versions, categories, the frame table,
/// snapshots, stream metadata. Built by scanning the segments at open and kept current by the
/// writer, through the same ``apply(_:in:length:rawLength:)`` in both cases.
///
/// Memory: 8 bytes per event (its position in its stream's array) plus about 48 bytes per
/// frame, and per stream its name, its positions array's header and about 60 bytes
/// (``StreamTable``).
struct StreamIndex {
    /// What the index knows about a stream, assembled from where it keeps it (its positions stay
    /// there: ``position(of:in:)``, ``positions(of:in:)``).
    struct Stream {
        /// Versions 1 ... `removedThrough` are not in the log (compaction removed them, or the
        /// stream was declared to begin later); they are never read.
        var removedThrough = 0
        /// The stream's last version: `removedThrough` and one per stored position.
        var version = 0
        /// Versions below this are hidden (truncated or deleted).
        var truncateBefore = 1
        /// Snapshots up to this version are hidden (the stream was deleted after them).
        var snapshotsHiddenThrough = 0
        var isTombstoned = false
        var snapshot: SnapshotReference?
        /// The id of the last event: recognizes a retried commit without reading the log.
        var lastEventID: UUID?
    }

    struct SnapshotReference: Equatable {
        var location: FrameLocation
        var recordIndex: Int
        var version: Int
    }

    static let damagedMarker = UInt64.max - (1 << 32)

    /// Every stream: names, numbers, positions, lifecycle.
    private(set) var table = StreamTable()
    /// Stream numbers per category, in order of their first event.
    private(set) var categories: [StreamKey: [Int32]] = [:]
    /// Frames holding events, ascending by position.
    private(set) var eventFrames: [EventFrame] = []
    /// The position the next event gets.
    private(set) var nextPosition: UInt64 = 0
    private(set) var damage: [Damage] = []
    /// How many events damage may have held, which bounds the versions a later frame may skip:
    /// a lost event took at least one byte of the damaged region (DEFLATE expands at most
    /// ~1032 times, an event record is at least 34 bytes raw).
    private(set) var lostEventBound = 0
    /// Versions marked as lost in damage so far (an index entry each), at most
    /// ``maximumLostVersionMarks``: a first event after damage may skip any number of versions,
    /// and a forged one must not make the index take all memory.
    private(set) var lostVersionMarks = 0
    static let maximumLostVersionMarks = 1 << 24
    private(set) var eventCount = 0
    /// Bytes of valid frames in the segments (headers and preallocated space excluded).
    private(set) var frameBytes = 0
    /// Bytes of the frames' payloads before compression.
    private(set) var rawPayloadBytes = 0
    /// Every stream name, in the order of its first record (a stream's number is its place here).
    var streamOrder: [String] { table.names }
    /// The highest batch number seen in a frame.
    private(set) var lastBatch: UInt64?

    init() {}

    /// An index loaded from the index file.
    init(
        restoring table: StreamTable, categories: [StreamKey: [Int32]], frames: [EventFrame],
        nextPosition: UInt64, eventCount: Int, frameBytes: Int, rawPayloadBytes: Int, lastBatch: UInt64?
    ) {
        self.table = table
        self.categories = categories
        eventFrames = frames
        self.nextPosition = nextPosition
        self.eventCount = eventCount
        self.frameBytes = frameBytes
        self.rawPayloadBytes = rawPayloadBytes
        self.lastBatch = lastBatch
    }

    /// The category of a stream: its name up to the first `/`; `nil` when it has none.
    static func category(of stream: String) -> String? {
        guard let slash = stream.utf8.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        return String(stream[..<slash])
    }

    func stream(_ name: String) -> Stream? { table.number(of: name).map { stream(number: $0) } }

    func stream(_ key: HashedStreamKey) -> Stream? { table.number(of: key).map { stream(number: $0) } }

    /// Stream `number` (below ``StreamTable/count``), assembled from where its fields are kept.
    func stream(number: Int) -> Stream {
        let rare = table.rareFields(of: number)
        return Stream(
            removedThrough: rare.removedThrough, version: table.version(of: number), truncateBefore: rare.truncateBefore,
            snapshotsHiddenThrough: rare.snapshotsHiddenThrough, isTombstoned: rare.isTombstoned, snapshot: rare.snapshot,
            lastEventID: table.entries[number].lastEventID)
    }

    /// The position of `version` of stream `name`: `nil` when it is removed or beyond the last
    /// version; a damage marker (≥ ``damagedMarker``) when it was lost to damage.
    func position(of version: Int, in name: String) -> UInt64? {
        guard let number = table.number(of: name) else { return nil }
        let removed = table.rareFields(of: number).removedThrough
        guard version > removed, version <= table.version(of: number) else { return nil }
        return table.positions[table.entries[number].start + version - removed - 1]
    }

    /// The positions of versions `range` of stream `name`, which must lie within its stored ones.
    func positions(of range: ClosedRange<Int>, in name: String) -> [UInt64] {
        let number = table.number(of: name)!
        let removed = table.rareFields(of: number).removedThrough
        precondition(range.lowerBound > removed && range.upperBound <= table.version(of: number))
        let start = table.entries[number].start
        return Array(table.positions[(start + range.lowerBound - removed - 1)...(start + range.upperBound - removed - 1)])
    }

    /// Every stored position of stream `name` (empty when it is unknown).
    func positions(ofStream name: String) -> [UInt64] {
        table.number(of: name).map { Array(table.positions(of: $0)) } ?? []
    }

    /// A stream's version, if the stream is known (cheaper than ``stream(_:)``).
    func version(of name: String) -> Int? { table.number(of: name).map { table.version(of: $0) } }

    func streams(inCategory category: String) -> [String] {
        (categories[StreamKey(category)] ?? []).map { table.names[Int($0)] }
    }

    /// Why a decoded frame cannot be applied: its events must continue each stream's versions
    /// (a skip only as far as damage could have lost events), its positions must follow the
    /// log's, and a stream's start may only be declared before its first event. `nil` if it can.
    func problem(applying records: [IndexRecord]) -> String? {
        var versions: [StreamKey: Int] = [:]
        var budget = lostEventBound
        var marks = lostVersionMarks
        var next = nextPosition
        var withEvents: Set<StreamKey> = []
        for record in records {
            switch record {
            case .events(let run):
                guard run.firstPosition >= next else { return "position \(run.firstPosition) is not after \(next - 1)" }
                next = run.lastPosition + 1
                let key = StreamKey(run.stream)
                withEvents.insert(key)
                let current = versions[key] ?? version(of: run.stream) ?? 0
                let skipped = run.firstVersion - current - 1
                guard skipped >= 0 else {
                    return "version \(run.firstVersion) of '\(run.stream)' repeats (the stream is at version \(current))"
                }
                // A stream first seen after damage may have been declared to begin later in a
                // record the damage held (it is not an event: it takes nothing of the budget).
                let mayHaveBegunInDamage = current == 0 && !damage.isEmpty
                guard skipped <= budget || mayHaveBegunInDamage else {
                    return "version \(run.firstVersion) of '\(run.stream)' skips \(skipped) versions after \(current)"
                }
                guard skipped <= Self.maximumLostVersionMarks - marks else {
                    return "version \(run.firstVersion) of '\(run.stream)' skips \(skipped) versions, more than the index marks as lost (\(Self.maximumLostVersionMarks - marks) more)"
                }
                if !mayHaveBegunInDamage { budget -= skipped }
                marks += skipped
                versions[key] = run.lastVersion
            case .record(.streamMetadata(let name, .versionsStartAt, let version), _):
                let key = StreamKey(name)
                let current = versions[key] ?? self.version(of: name) ?? 0
                guard version >= 1, current == 0 || version - 1 <= current else {
                    return "stream '\(name)' declared to start at version \(version) after version \(current)"
                }
                // Only before the stream's first event (FORMAT.md §6.2): after its events it
                // would hide them, and a compaction would remove them.
                guard !withEvents.contains(key), table.number(of: name).map({ table.entries[$0].count == 0 }) ?? true else {
                    return "stream '\(name)' declared to start at version \(version) after its events"
                }
                versions[key] = max(current, version - 1)
            case .record(.streamMetadata(let name, .tombstone, let version), _) where version != 0:
                return "the tombstone of stream '\(name)' holds version \(version), not 0"
            case .record:
                break
            }
        }
        return nil
    }

    /// Adds a frame's records, in order (which ``problem(applying:)`` accepts). `length` is the
    /// frame's size in the file.
    mutating func apply(
        _ records: [IndexRecord], in location: FrameLocation, length: Int, rawLength: Int, batch: UInt64, checksum: UInt32
    ) {
        frameBytes += length
        rawPayloadBytes += rawLength
        lastBatch = max(lastBatch ?? 0, batch)
        var first: UInt64?
        var last: UInt64 = 0
        for record in records {
            switch record {
            case .events(let run):
                precondition(
                    run.count >= 1 && run.firstPosition >= nextPosition && run.lastPosition < Layout.maximumPosition,
                    "positions increase")
                first = first ?? run.firstPosition
                last = run.lastPosition
                nextPosition = run.lastPosition + 1
                eventCount += run.count
                // One lookup per run, and the positions appended in place.
                let number = table.number(creating: run.stream).number
                let current = table.version(of: number)
                let firstEvent = current == 0
                if firstEvent, let category = Self.category(of: run.stream) {
                    categories[StreamKey(category), default: []].append(Int32(number))
                }
                let skipped = run.firstVersion - current - 1
                precondition(skipped >= 0, "versions increase (checked by problem(applying:))")
                let marker = Self.damagedMarker + UInt64(max(damage.count - 1, 0))
                if skipped > 0 {
                    lostVersionMarks += skipped
                    table.append(repeatElement(marker, count: skipped), to: number)
                }
                table.append(run.firstPosition...run.lastPosition, to: number)
                table.setLastEventID(run.lastID, of: number)
                // As problem(applying:) counts: a first event after damage may follow a beginning
                // the damage held.
                if !(firstEvent && !damage.isEmpty) { lostEventBound = max(0, lostEventBound - skipped) }
            case .record(.streamMetadata(let name, let operation, let version), _):
                let number = table.number(creating: name).number
                switch operation {
                case .truncateBefore:
                    table.updateRare(of: number) { $0.truncateBefore = max($0.truncateBefore, version) }
                case .delete:
                    table.updateRare(of: number) { rare in
                        rare.truncateBefore = max(rare.truncateBefore, version)
                        rare.snapshotsHiddenThrough = max(rare.snapshotsHiddenThrough, version - 1)
                    }
                case .tombstone:
                    table.updateRare(of: number) { $0.isTombstoned = true }
                case .versionsStartAt:
                    if table.entries[number].count == 0 {
                        let wasEmpty = table.version(of: number) == 0
                        table.updateRare(of: number) { $0.removedThrough = max($0.removedThrough, version - 1) }
                        if wasEmpty, table.version(of: number) > 0, let category = Self.category(of: name) {
                            categories[StreamKey(category), default: []].append(Int32(number))
                        }
                    }
                    table.updateRare(of: number) { $0.truncateBefore = max($0.truncateBefore, version) }
                }
            case .record(.snapshot(let snapshot), let recordIndex):
                let number = table.number(creating: snapshot.stream).number
                table.updateRare(of: number) { rare in
                    if (rare.snapshot?.version ?? -1) <= snapshot.version {
                        rare.snapshot = SnapshotReference(location: location, recordIndex: recordIndex, version: snapshot.version)
                    }
                }
            case .record(.dictionary, _), .record(.close, _):
                break  // dictionaries are kept by the segment; a close marker changes nothing
            case .record(.event, _):
                preconditionFailure("events are applied as runs")
            }
        }
        if let first {
            eventFrames.append(EventFrame(location: location, firstPosition: first, lastPosition: last, checksum: checksum))
        }
    }

    /// Records damage found at open; events of later frames that skip versions point at it.
    mutating func record(_ damaged: Damage) {
        // Positions are below 2^62, whatever the frames around the damage say.
        var damaged = damaged
        damaged.positions = damaged.positions.clamped(to: 0..<Layout.maximumPosition)
        damage.append(damaged)
        nextPosition = max(nextPosition, damaged.positions.upperBound)
        let byBytes = damaged.length == 0 ? damaged.positions.count : damaged.length.multipliedReportingOverflow(by: 32).partialValue
        lostEventBound += min(damaged.positions.count, max(byBytes, 0))
    }

    /// Raises the next position (a segment that starts later than the last event seen).
    mutating func advance(to position: UInt64) {
        precondition(position <= Layout.maximumPosition)
        nextPosition = max(nextPosition, position)
    }

    /// Continues batch numbering after `batch` (a batch the index did not see, e.g. a torn one).
    mutating func noteBatch(_ batch: UInt64) {
        lastBatch = max(lastBatch ?? 0, batch)
    }

    /// The index into ``eventFrames`` of the frame holding `position`, or of the first frame
    /// after it; `eventFrames.count` when there is none.
    ///
    /// `bounds` narrows the search for a caller that knows where the answer lies (a stream read
    /// going up or down the log from the frame it found last): every frame before
    /// `bounds.lowerBound` ends before `position`, and the frame at `bounds.upperBound`, unless
    /// that is `eventFrames.count`, ends at or after it.
    func frameIndex(atOrAfter position: UInt64, within bounds: Range<Int>? = nil) -> Int {
        eventFrames.withUnsafeBufferPointer { frames in
            let bounds = bounds ?? 0..<frames.count
            precondition(bounds.upperBound <= frames.count, "a search's bounds lie within the frames")
            precondition(bounds.lowerBound == 0 || frames[bounds.lowerBound - 1].lastPosition < position, "frames before the bounds end before the position")
            precondition(bounds.upperBound == frames.count || frames[bounds.upperBound].lastPosition >= position, "the frame at the upper bound ends at or after the position")
            // Invariant: frames[..<low] end before `position`; frames[high...] end at or after it.
            var low = bounds.lowerBound
            var high = bounds.upperBound
            guard low < high else { return low }
            // Guesses first, from the last positions known on either side: frames mostly hold
            // similar numbers of events, so a guess lands near the frame in a step or two, where
            // bisection takes log2(n) steps, and in a large index most of them are cache misses
            // (a stream read from small frames spent ~15 % of its time here). Then bisection, so
            // frames of very different sizes cost at most a few steps more.
            var lowValue = low > 0 ? frames[low - 1].lastPosition : frames[0].firstPosition &- 1
            if low == 0, frames[0].firstPosition == 0 { lowValue = 0 }
            var highValue = frames[high - 1].lastPosition
            guard highValue >= position else { return high }
            high -= 1  // frames[high] ends at or after `position` now
            for _ in 0..<3 where low < high {
                let span = Double(highValue) - Double(lowValue)
                // (Within 0...1: an index file with overlapping frames must not make a guess
                // that overflows `Int`.)
                let share = span > 0 ? min(max((Double(position) - Double(lowValue)) / span, 0), 1) : 0
                let guess = low + Int((share * Double(high - low)).rounded(.down))
                let middle = min(max(guess, low), high - 1)
                // A guess that lands on the frame (or on the one before it) is checked against
                // its neighbour and returned: narrowing on from there cost a few more misses.
                if frames[middle].lastPosition < position {
                    if middle + 1 == high || frames[middle + 1].lastPosition >= position { return middle + 1 }
                    (low, lowValue) = (middle + 1, frames[middle].lastPosition)
                } else {
                    if middle == low || frames[middle - 1].lastPosition < position { return middle }
                    (high, highValue) = (middle, frames[middle].lastPosition)
                }
            }
            while low < high {
                let middle = (low + high) / 2
                if frames[middle].lastPosition < position { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    /// Whether a read of the log from `position` on finds something: an event at `position` or
    /// later, or damage there (which the read reports). Not `nextPosition > position`: positions
    /// at the end may hold no event (a compaction removed the last events; they stay taken).
    func hasEvents(atOrAfter position: UInt64) -> Bool {
        if let last = eventFrames.last, last.lastPosition >= position { return true }
        // (Damage that held no positions too: a follower waited for ever at one, while a read
        // from there throws it.)
        return damage.contains { $0.liesAtOrAfter(position) }
    }

    /// The damage that covers `position`, if any.
    func damage(covering position: UInt64) -> Damage? {
        damage.first { $0.positions.contains(position) }
    }
}
