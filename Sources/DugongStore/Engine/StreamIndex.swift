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
}

/// A region of the log that failed its checksum or did not decode.
struct Damage: Sendable, Equatable {
    var segmentName: String
    var offset: Int
    var reason: String
    /// The positions the damaged bytes held, as far as the frames around them tell.
    var positions: Range<UInt64>

    var error: StoreError { .corruption(segment: segmentName, offset: offset, reason: reason) }
}

/// The in-memory index: stream → positions of its versions, categories, the frame table,
/// snapshots, stream metadata. Built by scanning the segments at open and kept current by the
/// writer, through the same ``apply(_:in:)`` in both cases.
///
/// Memory: 8 bytes per event (its position in its stream's array) plus about 40 bytes per
/// frame, and per stream its name and about 80 bytes.
struct StreamIndex {
    struct Stream {
        /// `positions[v - 1]` is the position of version `v`; a value ≥ ``damagedMarker`` marks a
        /// version lost to damage (``damagedMarker`` + index into ``StreamIndex/damage``).
        var positions: [UInt64] = []
        /// Versions below this are hidden (truncated or deleted).
        var truncateBefore = 1
        /// Snapshots up to this version are hidden (the stream was deleted after them).
        var snapshotsHiddenThrough = 0
        var isTombstoned = false
        var snapshot: SnapshotReference?
        /// The id of the last event: recognizes a retried commit without reading the log.
        var lastEventID: UUID?

        var version: Int { positions.count }
    }

    struct SnapshotReference {
        var location: FrameLocation
        var recordIndex: Int
        var version: Int
    }

    static let damagedMarker = UInt64.max - (1 << 32)

    private(set) var streams: [String: Stream] = [:]
    /// Stream names per category, in order of their first event.
    private(set) var categories: [String: [String]] = [:]
    /// Frames holding events, ascending by position.
    private(set) var eventFrames: [EventFrame] = []
    /// The position the next event gets.
    private(set) var nextPosition: UInt64 = 0
    private(set) var damage: [Damage] = []
    private(set) var eventCount = 0
    /// Bytes of valid frames in the segments (headers and preallocated space excluded).
    private(set) var frameBytes = 0
    /// Bytes of the frames' payloads before compression.
    private(set) var rawPayloadBytes = 0
    /// Every stream name, in the order of its first record.
    private(set) var streamOrder: [String] = []

    init() {}

    /// An index loaded from the index file.
    init(
        restoring streams: [String: Stream], order: [String], categories: [String: [String]], frames: [EventFrame],
        nextPosition: UInt64, eventCount: Int, frameBytes: Int, rawPayloadBytes: Int
    ) {
        self.streams = streams
        streamOrder = order
        self.categories = categories
        eventFrames = frames
        self.nextPosition = nextPosition
        self.eventCount = eventCount
        self.frameBytes = frameBytes
        self.rawPayloadBytes = rawPayloadBytes
    }

    /// The category of a stream: its name up to the first `/`; `nil` when it has none.
    static func category(of stream: String) -> String? {
        guard let slash = stream.firstIndex(of: "/") else { return nil }
        return String(stream[..<slash])
    }

    func stream(_ name: String) -> Stream? { streams[name] }

    /// Adds a frame's records, in order. `length` is the frame's size in the file.
    mutating func apply(_ records: [Record], in location: FrameLocation, length: Int, rawLength: Int) {
        frameBytes += length
        rawPayloadBytes += rawLength
        var first: UInt64?
        var last: UInt64 = 0
        var lastName: String?
        var lastSlot: Dictionary<String, Stream>.Index?
        for (recordIndex, record) in records.enumerated() {
            switch record {
            case .event(let event):
                precondition(event.position >= nextPosition, "positions increase")
                first = first ?? event.position
                last = event.position
                nextPosition = event.position + 1
                eventCount += 1
                // One hash lookup per run of events of the same stream (a commit), and the entry
                // mutated in place: a copy would copy its positions (O(n) per event).
                if lastSlot == nil || lastName != event.stream {
                    if let slot = streams.index(forKey: event.stream) {
                        lastSlot = slot
                    } else {
                        noteNewStream(event.stream)
                        streams[event.stream] = Stream()
                        lastSlot = streams.index(forKey: event.stream)
                    }
                    lastName = event.stream
                }
                let slot = lastSlot!
                if streams.values[slot].positions.isEmpty, let category = Self.category(of: event.stream) {
                    categories[category, default: []].append(event.stream)
                }
                Self.add(event, damageMarker: Self.damagedMarker + UInt64(max(damage.count - 1, 0)), to: &streams.values[slot])
            case .streamMetadata(let name, let operation, let version):
                lastSlot = nil
                if streams[name] == nil { noteNewStream(name) }
                switch operation {
                case .truncateBefore:
                    streams[name, default: Stream()].truncateBefore = max(streams[name]?.truncateBefore ?? 1, version)
                case .delete:
                    streams[name, default: Stream()].truncateBefore = max(streams[name]?.truncateBefore ?? 1, version)
                    streams[name]!.snapshotsHiddenThrough = max(streams[name]!.snapshotsHiddenThrough, version - 1)
                case .tombstone:
                    streams[name, default: Stream()].isTombstoned = true
                }
            case .snapshot(let snapshot):
                lastSlot = nil
                if streams[snapshot.stream] == nil { noteNewStream(snapshot.stream) }
                if (streams[snapshot.stream]?.snapshot?.version ?? -1) <= snapshot.version {
                    streams[snapshot.stream, default: Stream()].snapshot = SnapshotReference(
                        location: location, recordIndex: recordIndex, version: snapshot.version)
                }
            case .dictionary:
                break  // kept by the segment, not the index
            }
        }
        if let first {
            eventFrames.append(EventFrame(location: location, firstPosition: first, lastPosition: last))
        }
    }

    private mutating func noteNewStream(_ name: String) {
        streamOrder.append(name)
    }

    private static func add(_ event: StoredEvent, damageMarker: UInt64, to stream: inout Stream) {
        // Versions missing before this one were in damaged frames.
        while stream.positions.count < event.version - 1 { stream.positions.append(damageMarker) }
        if stream.positions.count == event.version - 1 {
            stream.positions.append(event.position)
            stream.lastEventID = event.id
        }  // else: a version seen twice, possible only in a forged log (its CRC holds); keep the first.
    }

    /// Records damage found at open; events of later frames that skip versions point at it.
    mutating func record(_ damaged: Damage) {
        damage.append(damaged)
        nextPosition = max(nextPosition, damaged.positions.upperBound)
    }

    /// Raises the next position (a segment that starts later than the last event seen).
    mutating func advance(to position: UInt64) {
        nextPosition = max(nextPosition, position)
    }

    /// The index into ``eventFrames`` of the frame holding `position`, or of the first frame
    /// after it; `eventFrames.count` when there is none.
    func frameIndex(atOrAfter position: UInt64) -> Int {
        var low = 0
        var high = eventFrames.count
        while low < high {
            let middle = (low + high) / 2
            if eventFrames[middle].lastPosition < position { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The damage that covers `position`, if any.
    func damage(covering position: UInt64) -> Damage? {
        damage.first { $0.positions.contains(position) }
    }
}
