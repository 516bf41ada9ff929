import Foundation

/// The fixed 40-byte header of a frame. See FORMAT.md, "Frames".
struct FrameHeader: Equatable {
    /// Bytes of payload stored after the header.
    var storedLength: UInt32
    /// Bytes of payload after decompressing (equal to `storedLength` when not compressed).
    var rawLength: UInt32
    var isCompressed: Bool
    /// Compressed as one LZ4 block (version 5 on) instead of with its segment's codec.
    var isLZ4Block = false
    /// Compressed with the dictionary in effect in its segment.
    var usesDictionary: Bool
    /// With `usesDictionary`: the low 16 bits of the dictionary's masked CRC-32C, so that a frame
    /// is never decompressed with another dictionary (which neither codec would notice).
    var dictionaryCheck: UInt16
    /// The position of the frame's first event, or the next position when it has none.
    var firstPosition: UInt64
    var eventCount: UInt32
    var recordCount: UInt32
    /// The batch (the frames one `fdatasync` made durable) the frame was written in.
    var batch: UInt64
    /// The last frame of its batch.
    var endsBatch: Bool
    /// Written without a sync (the durability mode that risks recent appends).
    var unsynced = false
    /// The frame's checksum field as stored (the index keeps it: a frame read later through the
    /// index must be the very frame the index was built from).
    var checksum: UInt32 = 0

    /// The frame's total length in the file.
    var totalLength: Int { Layout.frameHeaderSize + Int(storedLength) }

    /// The masked checksum of a frame: CRC-32C of the segment's salt and the frame's offset
    /// (8 bytes each, little-endian), then of the frame's bytes from offset 4 to its end. The
    /// salt and offset make a frame valid only where it was written: a copy elsewhere (a
    /// misdirected write, a frame inside an event's data, another segment's frame) fails.
    static func checksum(salt: UInt64, offset: Int, covering bytes: UnsafeRawBufferPointer) -> UInt32 {
        var seed = (salt.littleEndian, UInt64(offset).littleEndian)
        let crc = withUnsafeBytes(of: &seed) { Checksum.crc32c($0) }
        return Checksum.mask(Checksum.crc32c(bytes, continuing: crc))
    }
}

/// Builds one frame's payload from records. See FORMAT.md, "Frames" and "Records".
struct FrameBuilder {
    private(set) var payload: PayloadBuffer
    private(set) var firstPosition: UInt64
    private(set) var eventCount: UInt32 = 0
    private(set) var recordCount: UInt32 = 0
    /// The records, as the index applies them once the frame is written.
    private(set) var records: [IndexRecord] = []
    private var previousPosition: UInt64
    /// The frame's last record, when it is an event: what a continuation record continues.
    private var lastEvent: LastEvent?

    /// What a continuation record takes from the event record before it (FORMAT.md §6.1a).
    private struct LastEvent {
        var stream: String
        var version: Int
        var position: UInt64
        var type: String
        var timestampMilliseconds: Int64

        /// Whether an event of `stream` at `version` and `position` may be stored as a
        /// continuation of this one.
        func isContinued(byStream stream: String, version: Int, position: UInt64) -> Bool {
            position == self.position &+ 1 && version == self.version + 1 && stream.hasSameBytes(as: self.stream)
        }
    }

    /// A builder whose first event will be at `nextPosition` (or which has none and says so),
    /// with room for `capacity` bytes of payload before its buffer grows.
    init(nextPosition: UInt64, capacity: Int = 4096) {
        payload = PayloadBuffer(capacity: capacity)
        firstPosition = nextPosition
        previousPosition = nextPosition &- 1
    }

    var isEmpty: Bool { recordCount == 0 }
    var payloadSize: Int { payload.count }

    /// Appends a commit's events at the next positions, at versions from `firstVersion` (the
    /// writer's path: encoded straight from the caller's events).
    mutating func append(_ events: [NewEvent], stream: String, firstVersion: Int) {
        precondition(!events.isEmpty && firstVersion >= 1)
        let firstPosition = previousPosition &+ 1
        precondition(firstPosition <= Layout.maximumPosition - UInt64(events.count), "positions stay below 2^62")
        if eventCount == 0 { self.firstPosition = firstPosition }
        let continuesLastEvent = lastEvent?.isContinued(byStream: stream, version: firstVersion, position: firstPosition) ?? false
        var previousTimestamp = lastEvent?.timestampMilliseconds ?? 0
        // Fields read in place through the buffer, not a copy of each event (copying and
        // destroying the events cost more instructions than encoding them). Every event after
        // the commit's first continues the one before it: same stream, next version and position.
        events.withUnsafeBufferPointer { events in
            for offset in events.indices {
                let timestamp = events[offset].timestamp.millisecondsSince1970
                let endsCommit = offset == events.count - 1
                if offset > 0 || continuesLastEvent {
                    // (Compared in place, byte for byte: a copy of the previous type in a variable
                    // cost a retain and a release per event.)
                    let sameType = events[offset].type.hasSameBytes(as: offset > 0 ? events[offset - 1].type : lastEvent!.type)
                    payload.appendContinuation(
                        endsCommit: endsCommit, id: events[offset].id, type: sameType ? nil : events[offset].type,
                        timestampDelta: timestamp &- previousTimestamp, data: events[offset].data, metadata: events[offset].metadata)
                } else {
                    payload.appendEvent(
                        endsCommit: endsCommit, positionDelta: 0, stream: stream, version: firstVersion + offset,
                        id: events[offset].id, type: events[offset].type, timestampMilliseconds: timestamp,
                        data: events[offset].data, metadata: events[offset].metadata)
                }
                previousTimestamp = timestamp
            }
        }
        lastEvent = LastEvent(
            stream: stream, version: firstVersion + events.count - 1, position: firstPosition + UInt64(events.count) - 1,
            type: events[events.count - 1].type, timestampMilliseconds: previousTimestamp)
        records.append(.events(EventRun(
            stream: stream, firstVersion: firstVersion, firstPosition: firstPosition, count: events.count, lastID: events.last!.id)))
        previousPosition = firstPosition + UInt64(events.count) - 1
        eventCount += UInt32(events.count)
        recordCount += UInt32(events.count)
    }

    /// Appends a stored event at the next position.
    mutating func append(_ event: StoredEvent) {
        precondition(event.position == previousPosition &+ 1, "frames hold gapless positions when written")
        appendKeepingPosition(event)
    }

    /// Appends a stored event at its position, which may leave a gap after the previous one
    /// (compaction writes the survivors of removed events). An event that continues the frame's
    /// previous event record is stored as a continuation record.
    mutating func appendKeepingPosition(_ event: StoredEvent) {
        precondition(eventCount == 0 || event.position > previousPosition, "positions increase within a frame")
        if eventCount == 0 {
            precondition(event.position >= firstPosition, "a frame's events start at or after its first position")
            firstPosition = event.position
            previousPosition = event.position &- 1
        }
        if let last = lastEvent, last.isContinued(byStream: event.stream, version: event.version, position: event.position) {
            payload.appendContinuation(
                endsCommit: event.endsCommit, id: event.id, type: event.type.hasSameBytes(as: last.type) ? nil : event.type,
                timestampDelta: event.timestampMilliseconds &- last.timestampMilliseconds, data: event.data, metadata: event.metadata)
        } else {
            payload.appendEvent(
                endsCommit: event.endsCommit, positionDelta: event.position &- previousPosition &- 1, stream: event.stream,
                version: event.version, id: event.id, type: event.type, timestampMilliseconds: event.timestampMilliseconds,
                data: event.data, metadata: event.metadata)
        }
        lastEvent = LastEvent(
            stream: event.stream, version: event.version, position: event.position, type: event.type,
            timestampMilliseconds: event.timestampMilliseconds)
        if case .events(var run) = records.last, run.isContinued(by: event) {
            run.count += 1
            run.lastID = event.id
            records[records.count - 1] = .events(run)
        } else {
            records.append(.events(EventRun(
                stream: event.stream, firstVersion: event.version, firstPosition: event.position, count: 1, lastID: event.id)))
        }
        previousPosition = event.position
        eventCount += 1
        recordCount += 1
    }

    /// Appends a record other than an event (rare: encoded through a ``ByteWriter``).
    private mutating func append(_ record: Record, _ encode: (inout ByteWriter) -> Void) {
        var writer = ByteWriter(capacity: 64)
        encode(&writer)
        writer.bytes.withUnsafeBytes { payload.append($0) }
        records.append(.record(record, index: Int(recordCount)))
        recordCount += 1
        lastEvent = nil
    }

    mutating func appendStreamMetadata(stream: String, operation: Layout.StreamOperation, version: Int) {
        append(.streamMetadata(stream: stream, operation: operation, version: version)) {
            $0.streamMetadata(stream: stream, operation: operation, version: version)
        }
    }

    mutating func appendDictionary(_ bytes: [UInt8]) {
        append(.dictionary(bytes)) { $0.dictionary(bytes) }
    }

    /// The record that marks a clean close.
    mutating func appendCloseMarker() {
        append(.close) { $0.closeMarker() }
    }

    mutating func append(_ snapshot: StoredSnapshot) {
        append(.snapshot(snapshot)) { $0.snapshot(snapshot) }
    }

    /// The dictionary check of ``FrameHeader/dictionaryCheck``.
    static func check(of dictionary: [UInt8]) -> UInt16 {
        dictionary.withUnsafeBytes { check(of: $0) }
    }

    /// ``check(of:)-([UInt8])`` of bytes lent.
    static func check(of dictionary: UnsafeRawBufferPointer) -> UInt16 {
        UInt16(truncatingIfNeeded: Checksum.mask(Checksum.crc32c(dictionary)))
    }

    /// The frame with its payload in its stored form: compressed as a writer of a segment of
    /// `formatVersion` compresses it (``Compression/compressForWriting(_:dictionary:formatVersion:)``;
    /// with `dictionary`, the segment's current dictionary, when there is one), when that saves
    /// at least 1/8.
    func sealed(dictionary: PresetDictionary? = nil, formatVersion: UInt16) -> SealedFrame {
        precondition(!isEmpty && payloadSize <= Layout.maximumFramePayload)
        // Large frames gain nothing from a preset dictionary (measured: 1 % at 100 events) and
        // would pay for loading it into the codec's tables.
        let dictionary = payloadSize < Layout.dictionaryUseLimit ? dictionary : nil
        let compressed = payload.withUnsafeBytes { Compression.compressForWriting($0, dictionary: dictionary, formatVersion: formatVersion) }
        let usesDictionary = compressed != nil && dictionary != nil
        return SealedFrame(
            stored: compressed?.stored ?? payload.bytes, rawLength: payloadSize, isCompressed: compressed != nil,
            isLZ4Block: compressed?.codec == .lz4, usesDictionary: usesDictionary, dictionaryCheck: usesDictionary ? dictionary!.check : 0,
            firstPosition: firstPosition, eventCount: eventCount, recordCount: recordCount, records: records)
    }
}

/// A frame whose payload is final; its header is completed where it is written, since its
/// checksum covers the segment's salt, the frame's offset and its batch.
struct SealedFrame {
    var stored: [UInt8]
    var rawLength: Int
    var isCompressed: Bool
    var isLZ4Block: Bool
    var usesDictionary: Bool
    var dictionaryCheck: UInt16
    var firstPosition: UInt64
    var eventCount: UInt32
    var recordCount: UInt32
    var records: [IndexRecord]

    var totalLength: Int { Layout.frameHeaderSize + stored.count }

    /// Appends the whole frame (header and payload) to `output`, which starts at `base` in the
    /// segment whose salt is `salt`; returns its checksum.
    @discardableResult
    func write(into output: inout [UInt8], base: Int, salt: UInt64, batch: UInt64, endsBatch: Bool, unsynced: Bool = false) -> UInt32 {
        precondition(stored.count >= 1 && stored.count <= Layout.maximumFramePayload && batch < Layout.maximumPosition)
        precondition(isCompressed || !(isLZ4Block || usesDictionary), "codec flags on a frame stored as is")
        let start = output.count
        var header = ByteWriter(capacity: Layout.frameHeaderSize)
        header.u32(0)  // checksum, set below
        header.u32(UInt32(stored.count))
        header.u32(UInt32(rawLength))
        header.u8(
            (isCompressed ? Layout.frameCompressed : 0) | (usesDictionary ? Layout.frameUsesDictionary : 0)
                | (isLZ4Block ? Layout.frameLZ4Block : 0) | (endsBatch ? Layout.frameEndsBatch : 0) | (unsynced ? Layout.frameUnsynced : 0))
        header.u8(0)
        header.u16(dictionaryCheck)
        header.u64(firstPosition)
        header.u32(eventCount)
        header.u32(recordCount)
        header.u64(batch)
        assert(header.bytes.count == Layout.frameHeaderSize)
        output.append(contentsOf: header.bytes)
        output.append(contentsOf: stored)
        let checksum = output.withUnsafeBytes { all in
            FrameHeader.checksum(
                salt: salt, offset: base + start, covering: UnsafeRawBufferPointer(rebasing: all[(start + 4)..<all.count]))
        }
        withUnsafeBytes(of: checksum.littleEndian) { output.replaceSubrange(start..<start + 4, with: $0) }
        return checksum
    }

    /// The frame alone at offset `offset` (tests and tools).
    func encoded(salt: UInt64, offset: Int, batch: UInt64 = 0, endsBatch: Bool = true) -> [UInt8] {
        var output: [UInt8] = []
        write(into: &output, base: offset, salt: salt, batch: batch, endsBatch: endsBatch)
        return output
    }
}

/// What is at an offset of a segment where a frame may start.
enum FrameProbe: Equatable {
    /// A frame whose header and checksum are valid.
    case frame(FrameHeader)
    /// Zeros: the end of the data written to a preallocated segment.
    case endOfData
    /// Not a valid frame: a torn write at the tail, or damage.
    case invalid(String)
}

enum FrameReader {
    /// Looks at `bytes[offset...]` for a frame of the segment whose salt is `salt`: header
    /// sanity, every field bounded, length within the bytes, checksum.
    static func probe(_ bytes: UnsafeRawBufferPointer, at offset: Int, salt: UInt64) -> FrameProbe {
        precondition(offset >= 0)
        let available = bytes.count - offset
        if available <= 0 { return .endOfData }
        let headerBytes = min(available, Layout.frameHeaderSize)
        let head = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + headerBytes])
        if head.allSatisfy({ $0 == 0 }) {
            return headerBytes == Layout.frameHeaderSize || available == headerBytes ? .endOfData : .invalid("zeros")
        }
        guard available >= Layout.frameHeaderSize else { return .invalid("truncated frame header") }
        // The fields at their fixed offsets (FORMAT.md §4), all within the 40 bytes just checked
        // (a reader with a bounds check and a throw per field was ~140 instructions of a small
        // frame's read).
        func field<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(littleEndian: head.loadUnaligned(fromByteOffset: at, as: T.self)) }
        let checksum = field(0, UInt32.self)
        let storedLength = field(4, UInt32.self)
        let rawLength = field(8, UInt32.self)
        let flags = head[12]
        let encoding = head[13], dictionaryCheck = field(14, UInt16.self)
        let firstPosition = field(16, UInt64.self)
        let eventCount = field(24, UInt32.self)
        let recordCount = field(28, UInt32.self)
        let batch = field(32, UInt64.self)
        // The LZ4 flag is known to versions 5 on; in an older segment the frame's payload is
        // refused where it is decoded (``Codec/init(formatVersion:lz4Flag:)``).
        guard flags & ~Layout.frameKnownFlags == 0, encoding == 0 else {
            return .invalid("unknown flags or payload encoding")
        }
        let compressed = flags & Layout.frameCompressed != 0
        let usesDictionary = flags & Layout.frameUsesDictionary != 0
        let lz4 = flags & Layout.frameLZ4Block != 0
        guard compressed || !(usesDictionary || lz4) else { return .invalid("dictionary or LZ4 flag without compression") }
        guard usesDictionary || dictionaryCheck == 0 else { return .invalid("dictionary check without a dictionary") }
        guard storedLength > 0, Int(storedLength) <= Layout.maximumFramePayload,
            Int(rawLength) <= Layout.maximumFramePayload, compressed || rawLength == storedLength,
            recordCount > 0, eventCount <= recordCount, UInt64(recordCount) <= UInt64(rawLength),
            firstPosition < Layout.maximumPosition, firstPosition + UInt64(eventCount) <= Layout.maximumPosition,
            batch < Layout.maximumPosition
        else { return .invalid("implausible lengths, counts or positions") }
        let total = Layout.frameHeaderSize + Int(storedLength)
        guard total <= available else { return .invalid("frame of \(total) bytes runs past the end of the segment") }
        let covered = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + total)])
        guard FrameHeader.checksum(salt: salt, offset: offset, covering: covered) == checksum else {
            return .invalid("checksum mismatch")
        }
        return .frame(FrameHeader(
            storedLength: storedLength, rawLength: rawLength, isCompressed: compressed, isLZ4Block: lz4,
            usesDictionary: usesDictionary, dictionaryCheck: dictionaryCheck, firstPosition: firstPosition,
            eventCount: eventCount, recordCount: recordCount, batch: batch, endsBatch: flags & Layout.frameEndsBatch != 0,
            unsynced: flags & Layout.frameUnsynced != 0, checksum: checksum))
    }

    /// Decodes the records of a frame whose checksum was verified by ``probe(_:at:)``.
    /// `dictionary` is the dictionary in effect at the frame (the segment's last dictionary
    /// record before it), empty when there is none; `dictionaryCheck` its check when known;
    /// `formatVersion` the segment's (version 2 segments hold no continuation records).
    /// - Throws: ``FrameDamage`` when the payload does not decode as its header says.
    static func records(
        of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int, dictionary: [UInt8],
        dictionaryCheck: UInt16? = nil, headerSize: Int = Layout.frameHeaderSize, formatVersion: UInt16
    ) throws -> [Record] {
        try payload(
            of: header, in: bytes, at: offset + headerSize - Layout.frameHeaderSize, dictionary: dictionary,
            dictionaryCheck: dictionaryCheck, formatVersion: formatVersion
        ) { payload in
            try decode(payload, header, formatVersion: formatVersion)
        }
    }

    private static func decode(_ payload: UnsafeRawBufferPointer, _ header: FrameHeader, formatVersion: UInt16) throws -> [Record] {
        var records: [Record] = []
        records.reserveCapacity(Int(header.recordCount))
        var names = NameTable()
        var frameNames = FrameNames()
        try withUnsafeTemporaryAllocation(of: EventFields.self, capacity: 1) { room in
            room.initialize(repeating: .none)
            _ = try walk(payload, header, formatVersion: formatVersion, names: &names, frameNames: &frameNames, into: room, keepingEach: false) {
                fields, frameNames in
                var frameNames = frameNames
                records.append(.event(frameNames.withNames { fields.stored(names: $0) }))
            } other: { record in
                records.append(record)
            }
        }
        return records
    }

    /// Decodes a verified frame's events only (the read path), skipping its other records.
    static func events(
        of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int, dictionary: [UInt8], dictionaryCheck: UInt16? = nil,
        formatVersion: UInt16
    ) throws -> [StoredEvent] {
        try payload(
            of: header, in: bytes, at: offset, dictionary: dictionary, dictionaryCheck: dictionaryCheck,
            formatVersion: formatVersion
        ) { payload in
            var events: [StoredEvent] = []
            events.reserveCapacity(Int(header.eventCount))
            var names = NameTable()
            var frameNames = FrameNames()
            try withUnsafeTemporaryAllocation(of: EventFields.self, capacity: 1) { room in
                room.initialize(repeating: .none)
                _ = try walk(payload, header, formatVersion: formatVersion, names: &names, frameNames: &frameNames, into: room, keepingEach: false) {
                    fields, frameNames in
                    var frameNames = frameNames
                    events.append(frameNames.withNames { fields.stored(names: $0) })
                }
            }
            return events
        }
    }

    /// Decodes a verified frame's events into `events` and their names into `frameNames` (both
    /// emptied first), lent from `scratch` (the payload decompressed, or copied from the mapped
    /// bytes): valid until `scratch` is used again. `names` may come from earlier frames (names
    /// repeat across frames too).
    static func eventFields(
        of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int,
        dictionary: (bytes: UnsafeRawBufferPointer, check: UInt16), scratch: inout ScratchBuffer, formatVersion: UInt16,
        names: inout NameTable, into events: inout FrameEvents, frameNames: inout FrameNames
    ) throws {
        frameNames.removeAll()
        let limit = min(Int(header.eventCount), Int(header.rawLength) / FrameEvents.smallestRecord)
        try payload(
            of: header, in: bytes, at: offset, dictionary: dictionary.bytes, dictionaryCheck: dictionary.check, into: &scratch,
            formatVersion: formatVersion
        ) { payload in
            try events.fill(limit: limit) { room in
                frameNames.removeAll()
                return try walk(
                    payload, header, formatVersion: formatVersion, names: &names, frameNames: &frameNames, into: room, keepingEach: true)
            }
        }
    }

    /// Calls `body` with the frame's raw payload: its decompressed form, or the stored bytes of
    /// an uncompressed frame in place (else in an array of its own).
    static func payload<R>(
        of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int, dictionary: [UInt8],
        dictionaryCheck: UInt16? = nil, formatVersion: UInt16, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let stored = storedPayload(of: header, in: bytes, at: offset)
        guard header.isCompressed else { return try body(stored) }
        let raw = try dictionary.withUnsafeBytes { dictionary in
            let (codec, preset) = try decompression(of: header, formatVersion: formatVersion, dictionary: dictionary, check: dictionaryCheck)
            return Compression.decompress(stored, count: Int(header.rawLength), dictionary: preset, codec: codec)
        }
        guard let raw else { throw FrameDamage("payload does not decompress to \(header.rawLength) bytes") }
        return try raw.withUnsafeBytes { try body($0) }
    }

    /// ``payload(of:in:at:dictionary:dictionaryCheck:formatVersion:_:)`` into `scratch`, the
    /// stored bytes of an uncompressed frame copied there too: the events lent from it must not
    /// read the mapped segment after the frame's checks, when a page the disk fails there would
    /// show them zeros. `dictionary` is lent by the caller for the call.
    @inline(__always)
    static func payload<R>(
        of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int, dictionary: UnsafeRawBufferPointer,
        dictionaryCheck: UInt16, into scratch: inout ScratchBuffer, formatVersion: UInt16, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let stored = storedPayload(of: header, in: bytes, at: offset)
        guard header.isCompressed else {
            let copy = scratch.bytes(count: stored.count)
            copy.copyMemory(from: stored)
            return try body(UnsafeRawBufferPointer(copy))
        }
        let (codec, preset) = try decompression(of: header, formatVersion: formatVersion, dictionary: dictionary, check: dictionaryCheck)
        let count = Int(header.rawLength)
        let output = scratch.bytes(count: count + Compression.outputSlack)
        guard Compression.decompress(stored, into: output, count: count, dictionary: preset, codec: codec) else {
            throw FrameDamage("payload does not decompress to \(header.rawLength) bytes")
        }
        return try body(UnsafeRawBufferPointer(rebasing: output[..<count]))
    }

    /// The stored bytes of a frame whose header ``probe(_:at:salt:)`` checked against `bytes`.
    @inline(__always)
    private static func storedPayload(of header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int) -> UnsafeRawBufferPointer {
        let start = offset + Layout.frameHeaderSize
        return UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(header.storedLength)])
    }

    /// A compressed frame's codec and the dictionary it was compressed with (empty for none),
    /// checked: `dictionary` is the one in effect at the frame, `check` its check when known.
    @inline(__always)
    private static func decompression(
        of header: FrameHeader, formatVersion: UInt16, dictionary: UnsafeRawBufferPointer, check: UInt16?
    ) throws -> (Codec, UnsafeRawBufferPointer) {
        guard let codec = Codec(formatVersion: formatVersion, lz4Flag: header.isLZ4Block) else {
            throw FrameDamage("an LZ4 frame in a segment of format version \(formatVersion), which has none")
        }
        guard header.usesDictionary else { return (codec, UnsafeRawBufferPointer(start: nil, count: 0)) }
        if dictionary.isEmpty {
            throw FrameDamage("compressed with a dictionary, but no dictionary precedes it in its segment")
        }
        if (check ?? FrameBuilder.check(of: dictionary)) != header.dictionaryCheck {
            throw FrameDamage("compressed with another dictionary than the one in effect")
        }
        return (codec, dictionary)
    }

    /// Decodes every record of a payload, in order, checking it against its header: `event`
    /// gets each event's fields (lent from the payload, names in the frame's ``FrameNames``),
    /// `other` every other record. Decoding failures throw ``FrameDamage``; what the visitors
    /// throw passes through.
    @inline(__always)
    private static func walk(
        _ payload: UnsafeRawBufferPointer, _ header: FrameHeader, formatVersion: UInt16, names: inout NameTable,
        frameNames: inout FrameNames, into room: UnsafeMutableBufferPointer<EventFields>, keepingEach: Bool,
        event visitEvent: (EventFields, borrowing FrameNames) throws -> Void = { _, _ in },
        other visitOther: (Record) throws -> Void = { _ in }
    ) throws -> Int {
        var reader = ByteReader(payload)
        var previous = header.firstPosition &- 1
        var base: ContinuationBase?
        let continuations = formatVersion >= Layout.firstVersionWithContinuations
        var events = 0
        for _ in 0..<header.recordCount {
            // Decoded in place: into its slot of `room` when kept, else into its first.
            let slot = keepingEach ? events : 0
            let isEvent: Bool
            do {
                if slot < room.count {
                    isEvent = try reader.record(
                        previousPosition: &previous, previous: &base, continuations: continuations, names: &names,
                        frameNames: &frameNames, event: &room[slot])
                } else if reader.isEventNext {
                    throw FrameEvents.RoomFull()
                } else {
                    isEvent = false
                }
            } catch let full as FrameEvents.RoomFull {
                throw full
            } catch {
                throw FrameDamage("\(error)")
            }
            if !isEvent {
                base = nil
                let other: Record
                do { other = try reader.otherRecord() } catch { throw FrameDamage("\(error)") }
                try visitOther(other)
                continue
            }
            if events == 0 && room[slot].position != header.firstPosition {
                throw FrameDamage("first event at position \(room[slot].position), header says \(header.firstPosition)")
            }
            events += 1
            if !keepingEach { try visitEvent(room[slot], frameNames) }
        }
        guard reader.remaining == 0 else { throw FrameDamage("\(reader.remaining) bytes after the last record") }
        guard events == header.eventCount else {
            throw FrameDamage("\(events) events, header says \(header.eventCount)")
        }
        return events
    }
}

/// A reusable buffer a read decompresses frames into: one allocation, grown as needed, for a whole
/// scan (an array per frame was a malloc, a free and a page fault or two per frame). Not a class:
/// a read's decoder was retaining and releasing one per frame.
struct ScratchBuffer: ~Copyable {
    private var start: UnsafeMutableRawPointer?
    private var capacity = 0

    init() {}

    deinit { start?.deallocate() }

    /// Hands the buffer (with what was last written to it) to the caller, who deallocates it.
    /// An empty buffer when there is none.
    consuming func handOver() -> UnsafeMutableRawBufferPointer {
        let (start, capacity) = (self.start, self.capacity)
        discard self
        guard let start else { return UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16) }
        return UnsafeMutableRawBufferPointer(start: start, count: capacity)
    }

    /// `count` bytes, valid until the next call (their contents are not kept).
    @inline(__always)
    mutating func bytes(count: Int) -> UnsafeMutableRawBufferPointer {
        precondition(count >= 0)
        if count > capacity { grow(to: count) }
        return UnsafeMutableRawBufferPointer(start: start, count: count)
    }

    private mutating func grow(to count: Int) {
        start?.deallocate()
        capacity = max(count, capacity * 2, 4 << 10)
        start = .allocate(byteCount: capacity, alignment: 16)
    }
}

/// A frame whose checksum holds but whose content does not decode: a bug or a forged frame.
struct FrameDamage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
