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
@usableFromInline
struct EventFields {
    @usableFromInline var streamName: Int32
    @usableFromInline var version: Int
    @usableFromInline var position: UInt64
    /// The id's 16 bytes (a `UUID` is made only when asked for).
    @usableFromInline var idBytes: UnsafeRawBufferPointer
    @usableFromInline var typeName: Int32
    @usableFromInline var timestampMilliseconds: Int64
    @usableFromInline var data: UnsafeRawBufferPointer
    @usableFromInline var metadata: UnsafeRawBufferPointer
    @usableFromInline var endsCommit: Bool

    @usableFromInline var id: UUID { UUID(uuid: idBytes.loadUnaligned(as: uuid_t.self)) }

    /// Fields of no event: what the decoder overwrites.
    static var none: EventFields {
        EventFields(
            streamName: 0, version: 0, position: 0, idBytes: UnsafeRawBufferPointer(start: nil, count: 0), typeName: 0,
            timestampMilliseconds: 0, data: UnsafeRawBufferPointer(start: nil, count: 0),
            metadata: UnsafeRawBufferPointer(start: nil, count: 0), endsCommit: false)
    }

    /// A copy that owns its bytes; `names` are the frame's the fields were decoded with.
    @usableFromInline func stored(names: UnsafeBufferPointer<String>) -> StoredEvent {
        StoredEvent(
            stream: names[Int(streamName)], version: version, position: position, id: id, type: names[Int(typeName)],
            timestampMilliseconds: timestampMilliseconds, data: Data(data), metadata: Data(metadata), endsCommit: endsCommit)
    }
}

/// The names the events of a frame refer to (``EventFields/streamName``, ``EventFields/typeName``):
/// an entry per name the frame's records name, so a commit's events share their entries. A
/// name is looked for among the frame's last few entries first (a frame names a stream and a few
/// types), then in the read's ``NameTable``; an entry found in neither is a new name.
struct FrameNames {
    /// An entry's key, and its bytes in the payload being decoded (only valid while it is).
    private struct Found {
        var key: NameKey
        var bytes: UnsafeRawBufferPointer
    }

    // Reused from frame to frame: the first `count` entries are this frame's, the rest stale
    // (emptying an array of strings per frame cost ~300 instructions, most of a small frame's
    // names' cost).
    private var storage: [String] = []
    private var found: [Found] = []
    private(set) var count = 0

    /// How many of the last entries a name is looked for among (a frame of many streams' commits
    /// has many; a longer scan per record would cost more than the read's name table).
    static let searched = 8

    /// The entry of the name whose UTF-8 is `raw` (its key `key`), if among the last ones.
    @inline(__always)
    func entry(_ key: NameKey, _ raw: UnsafeRawBufferPointer) -> Int32? {
        found.withUnsafeBufferPointer { found in
            var index = count
            let end = max(0, index - Self.searched)
            while index > end {
                index -= 1
                if found[index].key == key && key.names(found[index].bytes, sameAs: raw) { return Int32(truncatingIfNeeded: index) }
            }
            return nil
        }
    }

    /// The next entry, taken again from the frame decoded before when it names the same name
    /// as `raw` (its key `key`): a stream's frames name its stream, and often the same types,
    /// in the same order. Spares the read's name table and a string's release and retain.
    @inline(__always)
    mutating func reuse(_ key: NameKey, _ raw: UnsafeRawBufferPointer) -> Int32? {
        guard count < storage.count, found[count].key == key else { return nil }
        // (The entry's bytes lay in the payload before: its string is what is compared.)
        if key.count > 16 {
            let same = storage[count].utf8.withContiguousStorageIfAvailable { utf8 in
                utf8.count == raw.count && memcmp(utf8.baseAddress!, raw.baseAddress!, raw.count) == 0
            }
            guard same == true else { return nil }
        }
        found[count].bytes = raw
        count += 1
        return Int32(truncatingIfNeeded: count - 1)
    }

    /// Adds an entry for `name`, whose UTF-8 is `raw` in the payload being decoded.
    mutating func add(_ name: String, _ key: NameKey, _ raw: UnsafeRawBufferPointer) -> Int32 {
        assert(storage.count == found.count && count <= storage.count)
        if count < storage.count {
            storage[count] = name
            found[count] = Found(key: key, bytes: raw)
        } else {
            storage.append(name)
            found.append(Found(key: key, bytes: raw))
        }
        count += 1
        return Int32(truncatingIfNeeded: count - 1)
    }

    /// Empties it for the next frame.
    mutating func removeAll() { count = 0 }

    /// Calls `body` with the entries' names. (Mutating: called on a reader's stored names, in
    /// place, without a copy that retains and releases the storage per frame.)
    @inline(__always)
    mutating func withNames<R>(_ body: (UnsafeBufferPointer<String>) throws -> R) rethrows -> R {
        // Through the mutable view: the read-only one on a class's stored array retained and
        // released the array's buffer per call (two atomic operations per frame read).
        try storage.withUnsafeMutableBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[..<count])) }
    }

    /// The entries' names, copied.
    var names: [String] { Array(storage[..<count]) }
}

/// A frame's decoded events, in storage reused from frame to frame (a read decodes many).
struct FrameEvents {
    /// The smallest event record: a continuation with its previous event's type and empty data
    /// and metadata (type, flags, id, three 1-byte varints; FORMAT.md §6.1a). A payload of n
    /// bytes holds at most n / 21 events.
    static let smallestRecord = 21

    /// Room for the first frames' events; it grows (4× at a time) as frames hold more.
    static let initialRoom = 64

    /// Thrown by a decoder given room for fewer events than the frame holds.
    struct RoomFull: Error {}

    /// The events at the front; the rest is room, holding stale fields.
    private var storage: [EventFields] = []
    private(set) var count = 0

    /// Decodes a frame's events: `decode` gets room for events, returns how many it put at its
    /// front, and throws ``RoomFull`` for an event beyond the room; it is then called again with
    /// 4× the room, up to `limit` events (the most the frame can hold). The room grows with the
    /// events decoded, never ahead of them: a damaged header claiming millions of events in a
    /// large payload costs no memory before its records prove to be events. `decode` must start
    /// over each time (it is given the same frame).
    mutating func fill(limit: Int, _ decode: (UnsafeMutableBufferPointer<EventFields>) throws -> Int) throws {
        count = 0
        (firstPosition, lastPosition) = (nil, nil)
        var room = min(limit, max(storage.count, Self.initialRoom))
        while true {
            if storage.count < room { storage.append(contentsOf: repeatElement(.none, count: room - storage.count)) }
            do {
                let decoded = try storage.withUnsafeMutableBufferPointer { try decode(UnsafeMutableBufferPointer(rebasing: $0[..<room])) }
                precondition(decoded <= room, "a frame's events fit the room made for them")
                count = decoded
                (firstPosition, lastPosition) = decoded > 0 ? (storage[0].position, storage[decoded - 1].position) : (nil, nil)
                return
            } catch is RoomFull where room < limit {
                room = min(limit, room * 4)
            } catch is RoomFull {
                throw FrameDamage("more events than the header's count or its payload can hold (\(limit))")
            }
        }
    }

    /// The decoded events. (Mutating: called on a reader's stored events, in place, without a
    /// copy that retains and releases the storage per frame.)
    @inline(__always)
    mutating func withEvents<R>(_ body: (UnsafeBufferPointer<EventFields>) throws -> R) rethrows -> R {
        // (The mutable view, as in `FrameNames.withNames`: no retain of the buffer.)
        try storage.withUnsafeMutableBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[..<count])) }
    }

    /// The first and last decoded event's positions.
    private(set) var firstPosition: UInt64?
    private(set) var lastPosition: UInt64?
}

/// What a continuation record (FORMAT.md §6.1a) takes from the event before it: its stream and
/// type (indices into the frame's ``FrameNames``), and the version and timestamp it counts from.
struct ContinuationBase {
    var stream: Int32
    var type: Int32
    var version: Int
    var timestampMilliseconds: Int64
}

extension ByteReader {
    /// Reads the next record if it is an event: its fields into `event`, returning true. Returns
    /// false, having read nothing, before any other record (rare and small: ``otherRecord()``
    /// reads it whole). `previousPosition` is the position of the frame's previous event (the frame's first position - 1 before its first) and is advanced past an
    /// event record. `previous` is what a continuation record takes from the record before it,
    /// when that is an event (nil otherwise; set here); `continuations` says whether the
    /// segment's format version has them. Names are decoded through `names` (the read's recent
    /// ones) and listed in `frameNames`, which the fields refer to.
    @inline(__always)
    mutating func record(
        previousPosition: inout UInt64, previous: inout ContinuationBase?, continuations: Bool, names: inout NameTable,
        frameNames: inout FrameNames, event: inout EventFields
    ) throws(Malformed) -> Bool {
        let type = try u8("record type")
        // Inlined into the frame's loop: a continuation, most of a replay's records, goes
        // straight to its decoder; everything else (and a misplaced continuation) to the switch.
        if type == Layout.RecordType.continuation.rawValue, continuations, var base = previous {
            try continuation(of: &base, previousPosition: &previousPosition, names: &names, frameNames: &frameNames, into: &event)
            previous = base
            return true
        }
        return try record(
            type: type, previousPosition: &previousPosition, previous: &previous, continuations: continuations, names: &names,
            frameNames: &frameNames, event: &event)
    }

    /// ``record(previousPosition:previous:continuations:names:frameNames:event:)`` after the type byte.
    @inline(never)
    private mutating func record(
        type: UInt8, previousPosition: inout UInt64, previous: inout ContinuationBase?, continuations: Bool, names: inout NameTable,
        frameNames: inout FrameNames, event: inout EventFields
    ) throws(Malformed) -> Bool {
        let start = offset &- 1
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
            let stream = try name("stream name", names: &names, frameNames: &frameNames)
            let version = try count("version", limit: Layout.maximumVersion)
            guard version >= 1 else { throw Malformed(offset: start, reason: "version 0") }
            let id = try bytes(16, "event id")
            let type = try name("event type", names: &names, frameNames: &frameNames)
            let timestamp = try i64("timestamp")
            let data = try lengthPrefixed("data")
            let metadata = try lengthPrefixed("metadata")
            previousPosition = position
            previous = ContinuationBase(stream: stream, type: type, version: version, timestampMilliseconds: timestamp)
            event = EventFields(
                streamName: stream, version: version, position: position, idBytes: id, typeName: type, timestampMilliseconds: timestamp,
                data: data, metadata: metadata, endsCommit: flags & Layout.eventEndsCommit != 0)
            return true
        case Layout.RecordType.continuation.rawValue:
            guard continuations else {
                throw Malformed(offset: start, reason: "continuation record in a segment of format version 2")
            }
            guard var base = previous else {
                throw Malformed(offset: start, reason: "continuation record that does not follow an event record")
            }
            try continuation(of: &base, previousPosition: &previousPosition, names: &names, frameNames: &frameNames, into: &event)
            previous = base
            return true
        case Layout.RecordType.streamMetadata.rawValue, Layout.RecordType.snapshot.rawValue, Layout.RecordType.dictionary.rawValue,
            Layout.RecordType.close.rawValue:
            // Not an event: a continuation cannot follow it.
            previous = nil
            seek(to: start)
            return false
        default:
            throw Malformed(offset: start, reason: "unknown record type \(type)")
        }
    }

    /// A record other than an event (``record(previousPosition:previous:continuations:names:frameNames:event:)``
    /// returned false before it).
    mutating func otherRecord() throws(Malformed) -> Record {
        let start = offset
        let type = try u8("record type")
        switch type {
        case Layout.RecordType.streamMetadata.rawValue:
            let stream = try name("stream name")
            let code = try u8("stream operation")
            guard let operation = Layout.StreamOperation(rawValue: code) else {
                throw Malformed(offset: offset - 1, reason: "unknown stream operation \(code)")
            }
            let version = try count("stream operation version", limit: Int(Layout.maximumPosition))
            return .streamMetadata(stream: stream, operation: operation, version: version)
        case Layout.RecordType.snapshot.rawValue:
            let stream = try name("stream name")
            let version = try count("snapshot version", limit: Int(Layout.maximumPosition))
            let data = Data(try lengthPrefixed("snapshot data"))
            let metadata = Data(try lengthPrefixed("snapshot metadata"))
            return .snapshot(StoredSnapshot(stream: stream, version: version, data: data, metadata: metadata))
        case Layout.RecordType.dictionary.rawValue:
            let bytes = try lengthPrefixed("dictionary")
            guard !bytes.isEmpty, bytes.count <= Layout.maximumDictionarySize else {
                throw Malformed(offset: start, reason: "dictionary of \(bytes.count) bytes")
            }
            return .dictionary(Array(bytes))
        case Layout.RecordType.close.rawValue:
            return .close
        default:
            // An event's type (0x01, 0x06) only when no room is left for an event: the frame
            // holds more than its header says.
            throw Malformed(offset: start, reason: "unknown record type \(type)")
        }
    }

    /// A continuation record after its type byte: the next event of `base`'s stream, which is
    /// updated to it. Most events of a replay are these (a commit's second event on), hence a
    /// cursor of its own: one bound check per field, no overflow traps (every sum below is of
    /// an offset within the payload and a length checked against what is left of it). Anything
    /// unusual (a varint longer than 2 bytes, a new name, a field past the end) goes through the
    /// checked reads, which say what is wrong.
    @inline(__always)
    private mutating func continuation(
        of base: inout ContinuationBase, previousPosition: inout UInt64, names: inout NameTable, frameNames: inout FrameNames,
        into event: inout EventFields
    ) throws(Malformed) {
        let start = offset &- 1
        let end = bytes.count
        // Not empty: its type byte was read.
        let payload = bytes.baseAddress.unsafelyUnwrapped
        var at = offset
        guard end &- at >= 17 else {
            _ = try u8("continuation flags")
            _ = try bytes(16, "event id")
            preconditionFailure("17 bytes were not left")
        }
        let flags = payload.load(fromByteOffset: at, as: UInt8.self)
        guard flags & ~(Layout.eventEndsCommit | Layout.continuationSameType) == 0 else {
            throw Malformed(offset: start &+ 1, reason: "unknown continuation flags \(flags)")
        }
        // The previous event's position and version are below 2^62 (checked when it was read).
        let position = previousPosition &+ 1
        let version = base.version &+ 1
        guard position < Layout.maximumPosition, version <= Layout.maximumVersion else {
            throw Malformed(offset: start, reason: "position beyond 2^62 or version beyond 2^62 - 1")
        }
        let id = UnsafeRawBufferPointer(start: payload + (at &+ 1), count: 16)
        at &+= 17
        if flags & Layout.continuationSameType == 0 {
            // Most often one of the frame's names, of 1 to 127 bytes (a 1-byte length).
            var known: Int32?
            if at < end {
                let length = Int(payload.load(fromByteOffset: at, as: UInt8.self))
                if length >= 1, length < 0x80, length < end &- at {
                    let raw = UnsafeRawBufferPointer(start: payload + (at &+ 1), count: length)
                    known = frameNames.entry(NameKey(raw), raw)
                    if known != nil { at &+= 1 &+ length }
                }
            }
            if let known {
                base.type = known
            } else {
                seek(to: at)
                base.type = try name("event type", names: &names, frameNames: &frameNames)
                at = offset
            }
        }
        /// A varint of 1 or 2 bytes at `at`, advanced past it; nil for anything else.
        @inline(__always)
        func short(_ at: inout Int) -> UInt64? {
            guard at < end else { return nil }
            let first = payload.load(fromByteOffset: at, as: UInt8.self)
            if first < 0x80 {
                at &+= 1
                return UInt64(first)
            }
            guard at &+ 1 < end else { return nil }
            let second = payload.load(fromByteOffset: at &+ 1, as: UInt8.self)
            guard second < 0x80 else { return nil }
            at &+= 2
            return UInt64(first & 0x7F) | UInt64(second) << 7
        }
        let delta: UInt64
        if let value = short(&at) {
            delta = value
        } else {
            seek(to: at)
            delta = try varint("timestamp delta")
            at = offset
        }
        // A length that does not fit goes back to where it starts for the checked read.
        let dataStart = at
        let data: UnsafeRawBufferPointer
        if let length = short(&at), length <= UInt64(end &- at) {
            data = UnsafeRawBufferPointer(start: payload + at, count: Int(length))
            at &+= Int(length)
        } else {
            seek(to: dataStart)
            data = try lengthPrefixed("data")
            at = offset
        }
        let metadataStart = at
        let metadata: UnsafeRawBufferPointer
        if let length = short(&at), length <= UInt64(end &- at) {
            metadata = UnsafeRawBufferPointer(start: payload + at, count: Int(length))
            at &+= Int(length)
        } else {
            seek(to: metadataStart)
            metadata = try lengthPrefixed("metadata")
            at = offset
        }
        assert(at <= end)
        seek(to: at)
        // Modulo 2^64, as the writer subtracted: every pair of timestamps has a delta.
        base.timestampMilliseconds &+= ZigZag.decode(delta)
        base.version = version
        previousPosition = position
        event = EventFields(
            streamName: base.stream, version: version, position: position, idBytes: id, typeName: base.type,
            timestampMilliseconds: base.timestampMilliseconds, data: data, metadata: metadata,
            endsCommit: flags & Layout.eventEndsCommit != 0)
    }
}
