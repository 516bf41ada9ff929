import Foundation

/// One record of a frame's payload, decoded. See FORMAT.md, "Records".
enum Record: Sendable, Equatable {
    case event(StoredEvent)
    case streamMetadata(stream: String, operation: Layout.StreamOperation, version: Int)
    case snapshot(StoredSnapshot)
    /// A preset dictionary for the frames after this one in its segment (FORMAT.md §6.4, §7).
    case dictionary([UInt8])
    /// The writer closed the store cleanly here.
    case close
}

extension PayloadBuffer {
    /// Appends an event record. `positionDelta` is the event's position minus the frame's
    /// previous event's, minus 1 (for the first event: its position minus the frame's first).
    mutating func appendEvent(
        endsCommit: Bool, positionDelta: UInt64, stream: String, version: Int, id: UUID, type: String,
        timestampMilliseconds: Int64, data: Data, metadata: Data
    ) {
        precondition(version >= 1 && positionDelta < Layout.maximumPosition)
        let most = 2 + Cursor.maximumVarintSize * 6 + 16 + 8 + stream.utf8.count + type.utf8.count + data.count + metadata.count
        var cursor = reserve(most)
        cursor.u8(Layout.RecordType.event.rawValue)
        cursor.u8(endsCommit ? Layout.eventEndsCommit : 0)
        cursor.varint(positionDelta)
        cursor.lengthPrefixed(stream)
        cursor.varint(UInt64(version))
        cursor.uuid(id)
        cursor.lengthPrefixed(type)
        cursor.u64(UInt64(bitPattern: timestampMilliseconds))
        cursor.lengthPrefixed(data)
        cursor.lengthPrefixed(metadata)
        keep(upTo: cursor)
    }
}

extension PayloadBuffer {
    /// Appends a continuation record: an event that continues the frame's previous event record
    /// (same stream, next version, next position). `type` is nil when it is the previous event's.
    mutating func appendContinuation(endsCommit: Bool, id: UUID, type: String?, timestampDelta: Int64, data: Data, metadata: Data) {
        let most = 2 + Cursor.maximumVarintSize * 4 + 16 + (type?.utf8.count ?? 0) + data.count + metadata.count
        var cursor = reserve(most)
        cursor.u8(Layout.RecordType.continuation.rawValue)
        cursor.u8((endsCommit ? Layout.eventEndsCommit : 0) | (type == nil ? Layout.continuationSameType : 0))
        cursor.uuid(id)
        if let type { cursor.lengthPrefixed(type) }
        cursor.varint(ZigZag.encode(timestampDelta))
        cursor.lengthPrefixed(data)
        cursor.lengthPrefixed(metadata)
        keep(upTo: cursor)
    }
}

/// Signed integers as unsigned ones with small magnitudes small (0, -1, 1, -2, … become
/// 0, 1, 2, 3, …), so that a varint stores a small difference of either sign in one byte.
enum ZigZag {
    static func encode(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    static func decode(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }
}

extension ByteWriter {
    mutating func streamMetadata(stream: String, operation: Layout.StreamOperation, version: Int) {
        u8(Layout.RecordType.streamMetadata.rawValue)
        lengthPrefixed(stream)
        u8(operation.rawValue)
        varint(UInt64(version))
    }

    mutating func dictionary(_ bytes: [UInt8]) {
        precondition(!bytes.isEmpty && bytes.count <= Layout.maximumDictionarySize)
        u8(Layout.RecordType.dictionary.rawValue)
        lengthPrefixed(bytes)
    }

    mutating func closeMarker() {
        u8(Layout.RecordType.close.rawValue)
    }

    mutating func snapshot(_ snapshot: StoredSnapshot) {
        u8(Layout.RecordType.snapshot.rawValue)
        lengthPrefixed(snapshot.stream)
        varint(UInt64(snapshot.version))
        lengthPrefixed(snapshot.data)
        lengthPrefixed(snapshot.metadata)
    }
}

/// An event record's fields where they lie in a frame's payload: its stream and type as
/// indices into the frame's ``FrameNames`` (no `String` per event: retaining and releasing two
/// names per event was ~90 instructions of a replay's ~630 of its own), data and metadata lent
/// from the payload's bytes.
struct EventFields {
    var streamName: Int32
    var version: Int
    var position: UInt64
    /// The id's 16 bytes (a `UUID` is made only when asked for).
    var idBytes: UnsafeRawBufferPointer
    var typeName: Int32
    var timestampMilliseconds: Int64
    var data: UnsafeRawBufferPointer
    var metadata: UnsafeRawBufferPointer
    var endsCommit: Bool

    var id: UUID { UUID(uuid: idBytes.loadUnaligned(as: uuid_t.self)) }

    /// A copy that owns its bytes; `names` are the frame's the fields were decoded with.
    func stored(names: UnsafeBufferPointer<String>) -> StoredEvent {
        StoredEvent(
            stream: names[Int(streamName)], version: version, position: position, id: id, type: names[Int(typeName)],
            timestampMilliseconds: timestampMilliseconds, data: Data(data), metadata: Data(metadata), endsCommit: endsCommit)
    }
}

/// The names the events of a frame refer to (``EventFields/streamName``, ``EventFields/typeName``):
/// one entry per event record's stream and type and per continuation record's new type, so a
/// commit's events share their entries.
struct FrameNames {
    private(set) var strings: [String] = []

    @inline(__always)
    mutating func add(_ name: String) -> Int32 {
        strings.append(name)
        return Int32(truncatingIfNeeded: strings.count - 1)
    }

    mutating func removeAll() { strings.removeAll(keepingCapacity: true) }
}

/// What a continuation record (FORMAT.md §6.1a) takes from the event before it: its stream and
/// type (indices into the frame's ``FrameNames``), and the version and timestamp it counts from.
struct ContinuationBase {
    var stream: Int32
    var type: Int32
    var version: Int
    var timestampMilliseconds: Int64
}

/// A record as decoded from a payload: an event's fields lent, any other record whole (they are
/// rare and small).
enum RecordView {
    case event(EventFields)
    case other(Record)

    /// The record as a value of its own; `names` are its frame's.
    func record(names: UnsafeBufferPointer<String>) -> Record {
        switch self {
        case .event(let fields): .event(fields.stored(names: names))
        case .other(let record): record
        }
    }
}

extension ByteReader {
    /// Reads the next record. `previousPosition` is the position of the frame's previous event
    /// (the frame's first position - 1 before its first) and is advanced past an event record.
    /// `previous` is what a continuation record takes from the record before it, when that is an
    /// event (nil otherwise; set here); `continuations` says whether the segment's format
    /// version has them. Names are decoded through `names` (the read's recent ones) and listed
    /// in `frameNames`, which the returned fields refer to.
    mutating func record(
        previousPosition: inout UInt64, previous: inout ContinuationBase?, continuations: Bool, names: inout NameTable,
        frameNames: inout FrameNames
    ) throws(Malformed) -> RecordView {
        let start = offset
        let type = try u8("record type")
        if type != Layout.RecordType.event.rawValue && type != Layout.RecordType.continuation.rawValue { previous = nil }
        // On the raw byte: `RecordType(rawValue:)` was a call per record (~10 instructions per event).
        switch type {
        case Layout.RecordType.event.rawValue:
            let flags = try u8("event flags")
            guard flags & ~Layout.eventEndsCommit == 0 else {
                throw Malformed(offset: start + 1, reason: "unknown event flags \(flags)")
            }
            let delta = try varint("position delta")
            // previousPosition is UInt64.max ("-1") before an event at position 0.
            let position = previousPosition &+ delta &+ 1
            guard delta < Layout.maximumPosition, previousPosition == .max || position > previousPosition,
                position < Layout.maximumPosition
            else {
                throw Malformed(offset: start, reason: "position beyond 2^62")
            }
            let stream = frameNames.add(try name("stream name", names: &names))
            let version = try count("version", limit: Layout.maximumVersion)
            guard version >= 1 else { throw Malformed(offset: start, reason: "version 0") }
            let id = try bytes(16, "event id")
            let type = frameNames.add(try name("event type", names: &names))
            let timestamp = try i64("timestamp")
            let data = try lengthPrefixed("data")
            let metadata = try lengthPrefixed("metadata")
            previousPosition = position
            previous = ContinuationBase(stream: stream, type: type, version: version, timestampMilliseconds: timestamp)
            return .event(EventFields(
                streamName: stream, version: version, position: position, idBytes: id, typeName: type, timestampMilliseconds: timestamp,
                data: data, metadata: metadata, endsCommit: flags & Layout.eventEndsCommit != 0))
        case Layout.RecordType.continuation.rawValue:
            guard continuations else {
                throw Malformed(offset: start, reason: "continuation record in a segment of format version 2")
            }
            guard previous != nil else {
                throw Malformed(offset: start, reason: "continuation record that does not follow an event record")
            }
            let flags = try u8("continuation flags")
            guard flags & ~(Layout.eventEndsCommit | Layout.continuationSameType) == 0 else {
                throw Malformed(offset: start + 1, reason: "unknown continuation flags \(flags)")
            }
            // The previous event's position and version are below 2^62 (checked when it was read).
            let position = previousPosition + 1
            let version = previous!.version + 1
            guard position < Layout.maximumPosition, version <= Layout.maximumVersion else {
                throw Malformed(offset: start, reason: "position beyond 2^62 or version beyond 2^62 - 1")
            }
            let id = try bytes(16, "event id")
            if flags & Layout.continuationSameType == 0 { previous!.type = frameNames.add(try name("event type", names: &names)) }
            // Modulo 2^64, as the writer subtracted: every pair of timestamps has a delta.
            previous!.timestampMilliseconds &+= ZigZag.decode(try varint("timestamp delta"))
            previous!.version = version
            let data = try lengthPrefixed("data")
            let metadata = try lengthPrefixed("metadata")
            previousPosition = position
            return .event(EventFields(
                streamName: previous!.stream, version: version, position: position, idBytes: id, typeName: previous!.type,
                timestampMilliseconds: previous!.timestampMilliseconds, data: data, metadata: metadata,
                endsCommit: flags & Layout.eventEndsCommit != 0))
        case Layout.RecordType.streamMetadata.rawValue:
            let stream = try name("stream name")
            let code = try u8("stream operation")
            guard let operation = Layout.StreamOperation(rawValue: code) else {
                throw Malformed(offset: offset - 1, reason: "unknown stream operation \(code)")
            }
            let version = try count("stream operation version", limit: Int(Layout.maximumPosition))
            return .other(.streamMetadata(stream: stream, operation: operation, version: version))
        case Layout.RecordType.snapshot.rawValue:
            let stream = try name("stream name")
            let version = try count("snapshot version", limit: Int(Layout.maximumPosition))
            let data = Data(try lengthPrefixed("snapshot data"))
            let metadata = Data(try lengthPrefixed("snapshot metadata"))
            return .other(.snapshot(StoredSnapshot(stream: stream, version: version, data: data, metadata: metadata)))
        case Layout.RecordType.dictionary.rawValue:
            let bytes = try lengthPrefixed("dictionary")
            guard !bytes.isEmpty, bytes.count <= Layout.maximumDictionarySize else {
                throw Malformed(offset: start, reason: "dictionary of \(bytes.count) bytes")
            }
            return .other(.dictionary(Array(bytes)))
        case Layout.RecordType.close.rawValue:
            return .other(.close)
        default:
            throw Malformed(offset: start, reason: "unknown record type \(type)")
        }
    }
}
