import Foundation
import Glibc

/// The index saved at a clean close (`dugong.index`), so that the next open loads it and scans
/// only what was appended after it instead of every segment. See FORMAT.md, "The index file".
///
/// It is a cache: it is trusted only when its checksum holds, the segments it names are the first
/// segments of the store with the same salts, and the head file still holds the clean-close
/// record written with it (a writable open removes the file, and any write changes the head);
/// anything else and the index is rebuilt by scanning. Frames it covers are not re-checked at
/// open (reads and `verify` still check every frame's checksum).
enum IndexFile {
    static let name = Layout.indexName
    static let magic = Array("DUGONGIX".utf8)
    /// The file's own layout version (3: each frame's checksum; a file of another version is
    /// ignored and the index rebuilt by scanning).
    static let version: UInt16 = 3

    /// The layout version a `dugong.index` in `directory` gives after its magic, if it begins
    /// with the magic (only to say what it is: nothing else of the file is read).
    static func layoutVersion(in directory: String) -> UInt16? {
        do {
            let file = try File(path: directory + "/" + name, flags: O_RDONLY)
            var bytes = [UInt8](repeating: 0, count: 10)
            let read = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            guard read == 10, Array(bytes[0..<8]) == magic else { return nil }
            return UInt16(bytes[8]) | UInt16(bytes[9]) << 8
        } catch {
            return nil
        }
    }

    /// Writes the index of `segments` (scanned up to `scannedEnd` in the last one) crash-safely:
    /// temporary file, sync, rename, directory sync.
    static func write(_ index: StreamIndex, segments: [Segment], scannedEnd: Int, headSequence: UInt64, to directory: String) throws {
        guard index.damage.isEmpty, !segments.isEmpty else { return }
        var writer = ByteWriter(capacity: 64 + index.eventCount * 2)
        writer.raw(magic)
        writer.u16(version)
        writer.u16(0)
        writer.u32(0)
        writer.u64(headSequence)
        writer.u64(index.lastBatch.map { $0 + 1 } ?? 0)
        writer.varint(UInt64(segments.count))
        for (number, segment) in segments.enumerated() {
            writer.lengthPrefixed(segment.name.utf8)
            writer.u64(segment.salt)
            // The segment's last frame: checked at load, so that a segment replaced by an older
            // version of itself (or cut short) is not taken for the one the index describes.
            // (The checksum the index holds for it, which a read checks: not the segment's bytes,
            // read unchecked through the map, which a file cut short under the store would
            // have made a fault.)
            let last = index.eventFrames.last { $0.location.segment == number }
            writer.varint(UInt64(last?.location.offset ?? 0))
            writer.u32(last?.checksum ?? 0)
            let dictionaries = segment.dictionaries
            writer.varint(UInt64(dictionaries.count))
            for (offset, bytes) in dictionaries {
                writer.varint(UInt64(offset))
                writer.lengthPrefixed(bytes)
            }
        }
        writer.varint(UInt64(scannedEnd))
        writer.u64(index.nextPosition)
        writer.varint(UInt64(index.eventCount))
        writer.varint(UInt64(index.frameBytes))
        writer.varint(UInt64(index.rawPayloadBytes))
        writer.varint(UInt64(index.eventFrames.count))
        var previous: UInt64 = 0
        for frame in index.eventFrames {
            writer.varint(UInt64(frame.location.segment))
            writer.varint(UInt64(frame.location.offset))
            writer.varint(frame.firstPosition - previous)
            writer.varint(frame.lastPosition - frame.firstPosition)
            writer.u32(frame.checksum)
            previous = frame.firstPosition
        }
        writer.varint(UInt64(index.streamOrder.count))
        for (number, name) in index.streamOrder.enumerated() {
            let stream = index.stream(number: number)
            writer.lengthPrefixed(name.utf8)
            writer.varint(UInt64(stream.truncateBefore))
            writer.varint(UInt64(stream.snapshotsHiddenThrough))
            writer.u8((stream.isTombstoned ? 1 : 0) | (stream.snapshot != nil ? 2 : 0) | (stream.lastEventID != nil ? 4 : 0))
            if let snapshot = stream.snapshot {
                writer.varint(UInt64(snapshot.location.segment))
                writer.varint(UInt64(snapshot.location.offset))
                writer.varint(UInt64(snapshot.recordIndex))
                writer.varint(UInt64(snapshot.version))
            }
            if let id = stream.lastEventID { withUnsafeBytes(of: id.uuid) { writer.raw(UnsafeRawBufferPointer($0)) } }
            // Versions not in the log (removed by compaction) come first, as a count; every
            // position is real and increasing (the file is saved only without damage).
            writer.varint(UInt64(stream.removedThrough))
            let positions = index.table.positions(of: number)
            writer.varint(UInt64(positions.count))
            var last: UInt64 = 0
            for position in positions {
                guard position < StreamIndex.damagedMarker, position >= last else { throw Unwritable() }
                writer.varint(position - last)
                last = position
            }
        }
        writer.varint(UInt64(index.categories.count))
        for (category, streams) in index.categories.sorted(by: { Array($0.key.name.utf8).lexicographicallyPrecedes(Array($1.key.name.utf8)) }) {
            writer.lengthPrefixed(category.name.utf8)
            writer.varint(UInt64(streams.count))
            for stream in streams { writer.varint(UInt64(stream)) }
        }
        let crc = writer.bytes.withUnsafeBytes { Checksum.crc32c($0) }
        writer.u32(Checksum.mask(crc))

        try Directory.replaceAtomically(directory + "/" + name, with: writer.bytes, in: directory)
    }

    /// An index that this format cannot hold (it is then not saved; the next open scans).
    struct Unwritable: Error {}

    /// A saved position at or past the store's next position: the index file is not used.
    private struct PositionBeyondEnd: Error {}

    /// Removes the index file (before anything rewrites the segments it describes).
    static func remove(from directory: String) throws {
        let path = directory + "/" + name
        if Directory.fileExists(path) {
            try Directory.remove(path)
            try Directory.synchronize(directory)
        }
    }

    /// A reader of the file's bytes after its magic and version, when its checksum, magic and
    /// version hold.
    private static func afterMagicAndVersion(_ raw: UnsafeRawBufferPointer) -> ByteReader? {
        guard raw.count > 20 else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
        guard Checksum.mask(Checksum.crc32c(body)) == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
        else { return nil }
        var reader = ByteReader(body)
        guard (try? reader.bytes(8, "magic")).map(Array.init) == magic, (try? reader.u16("version")) == version else { return nil }
        return reader
    }

    /// What an intact index file (its checksum, magic and version hold) says of the store it
    /// was saved for, read without the segments: the salts of the segments it listed, the
    /// position after its last event and the sequence of the head record of the clean close
    /// that saved it (written before it). A clean close saved it and a writable open removes
    /// it, so it is a hint that only ever trails the log, as the head is. Nil when there is none
    /// or it is not intact; throws when it cannot be read.
    static func summary(in directory: String) throws -> Summary? {
        guard let data = try File.contents(of: directory + "/" + name, limit: Int(Int32.max)) else { return nil }
        return data.withUnsafeBytes { raw -> Summary? in
            guard var reader = afterMagicAndVersion(raw) else { return nil }
            do {
                _ = try reader.bytes(6, "reserved")
                let headSequence = try reader.u64("head sequence")
                _ = try reader.u64("next batch")
                var salts: [UInt64] = []
                var lastFrames: [(offset: Int, checksum: UInt32)] = []
                for _ in 0..<(try reader.count("segments", limit: reader.remaining)) {
                    _ = try reader.string("segment name")
                    salts.append(try reader.u64("salt"))
                    let offset = try reader.count("last frame", limit: Int(Int32.max))
                    lastFrames.append((offset, try reader.u32("last frame checksum")))
                    for _ in 0..<(try reader.count("dictionaries", limit: reader.remaining)) {
                        _ = try reader.varint("dictionary offset")
                        _ = try reader.lengthPrefixed("dictionary")
                    }
                }
                _ = try reader.varint("scanned end")
                let nextPosition = try reader.u64("next position")
                guard nextPosition <= Layout.maximumPosition else { return nil }
                return Summary(salts: salts, lastFrames: lastFrames, nextPosition: nextPosition, headSequence: headSequence)
            } catch {
                return nil
            }
        }
    }

    /// ``summary(in:)``'s answer.
    struct Summary {
        /// The salts of the segments the file lists, in order.
        var salts: [UInt64]
        /// Each listed segment's last frame when the file was saved: its offset (0: none) and
        /// its checksum field.
        var lastFrames: [(offset: Int, checksum: UInt32)]
        /// The position after the last event.
        var nextPosition: UInt64
        /// The sequence of the head record the clean close that saved it wrote before it.
        var headSequence: UInt64
    }

    /// What a usable index file holds.
    struct Loaded {
        var index: StreamIndex
        /// How many of the store's segments it covers (the first ones).
        var segmentCount: Int
        /// Where its scan of the last covered segment ended.
        var scannedEnd: Int
    }

    /// Loads the index file if it is intact and describes the first segments of `segments`;
    /// registers the segments' dictionaries. `nil` otherwise (the caller scans everything).
    static func load(from directory: String, segments: [Segment], head: HeadRecord?, registering: Bool = true) -> Loaded? {
        guard let head, head.cleanClose, let data = try? File.contents(of: directory + "/" + name, limit: Int(Int32.max))
        else { return nil }
        return data.withUnsafeBytes { raw -> Loaded? in
            guard var reader = afterMagicAndVersion(raw) else { return nil }
            do {
                _ = try reader.u16("reserved")
                _ = try reader.u32("reserved")
                guard try reader.u64("head sequence") == head.sequence else { return nil }
                let nextBatch = try reader.u64("next batch")
                let segmentCount = try reader.count("segments", limit: segments.count)
                var dictionaries: [[(Int, [UInt8])]] = []
                for index in 0..<segmentCount {
                    guard try reader.string("segment name") == segments[index].name,
                        try reader.u64("salt") == segments[index].salt
                    else { return nil }
                    let lastFrame = try reader.count("last frame", limit: segments[index].capacity)
                    let lastChecksum = try reader.u32("last frame checksum")
                    /// The checksum field of the valid frame at `offset` of this segment, if one is there.
                    func frameChecksum(at offset: Int) -> UInt32? {
                        segments[index].withBytes { bytes in
                            if case .frame(let header) = FrameReader.probe(bytes, at: offset, salt: segments[index].salt) { return header.checksum }
                            return nil
                        }
                    }
                    if lastFrame > 0, frameChecksum(at: lastFrame) != lastChecksum { return nil }
                    var list: [(Int, [UInt8])] = []
                    for _ in 0..<(try reader.count("dictionaries", limit: reader.remaining)) {
                        let offset = try reader.count("dictionary offset", limit: segments[index].capacity)
                        let bytes = Array(try reader.lengthPrefixed("dictionary"))
                        guard offset > (list.last?.0 ?? 0), !bytes.isEmpty, bytes.count <= Layout.maximumDictionarySize else { return nil }
                        // The copy stands for the dictionary frame only while that frame is
                        // intact: a damaged one is damage to the frames after it (FORMAT.md §8),
                        // which the scan this falls back to finds and reports.
                        guard frameChecksum(at: offset) != nil else { return nil }
                        list.append((offset, bytes))
                    }
                    dictionaries.append(list)
                }
                guard segmentCount >= 1, segments[segmentCount - 1].salt == head.segmentSalt else { return nil }
                let scannedEnd = try reader.count("scanned end", limit: segments[segmentCount - 1].capacity)
                guard scannedEnd == Int(head.durableEnd) else { return nil }
                let nextPosition = try reader.u64("next position")
                guard nextPosition <= Layout.maximumPosition else { return nil }
                let eventCount = try reader.count("events", limit: Int.max)
                let frameBytes = try reader.count("frame bytes", limit: Int.max)
                let rawPayloadBytes = try reader.count("raw bytes", limit: Int.max)
                let frameCount = try reader.count("frames", limit: reader.remaining)
                var frames: [EventFrame] = []
                frames.reserveCapacity(frameCount)
                var previous: UInt64 = 0
                for _ in 0..<frameCount {
                    let segment = try reader.count("frame segment", limit: segmentCount - 1)
                    let offset = try reader.count("frame offset", limit: segments[segment].capacity)
                    // Untrusted deltas: their sums are checked for overflow before anything else.
                    let (first, firstOverflows) = previous.addingReportingOverflow(try reader.varint("frame position"))
                    let (last, lastOverflows) = first.addingReportingOverflow(try reader.varint("frame span"))
                    let checksum = try reader.u32("frame checksum")
                    guard !firstOverflows, !lastOverflows, last < nextPosition else { return nil }
                    frames.append(EventFrame(
                        location: FrameLocation(segment: segment, offset: offset), firstPosition: first, lastPosition: last, checksum: checksum))
                    previous = first
                }
                let streamCount = try reader.count("streams", limit: reader.remaining)
                // Room for every stream at once; the counts are untrusted, but each stream takes
                // at least 7 bytes and each position one.
                var table = StreamTable.Restoring(streams: min(streamCount, reader.remaining / 7), positions: min(eventCount, reader.remaining))
                for _ in 0..<streamCount {
                    let name = try reader.name("stream name")
                    var rare = StreamTable.Rare()
                    rare.truncateBefore = try reader.count("truncate before", limit: Int(Layout.maximumPosition))
                    rare.snapshotsHiddenThrough = try reader.count("snapshots hidden", limit: Int(Layout.maximumPosition))
                    let flags = try reader.u8("stream flags")
                    rare.isTombstoned = flags & 1 != 0
                    if flags & 2 != 0 {
                        let segment = try reader.count("snapshot segment", limit: segmentCount - 1)
                        let offset = try reader.count("snapshot offset", limit: segments[segment].capacity)
                        let record = try reader.count("snapshot record", limit: Int(UInt32.max))
                        let version = try reader.count("snapshot version", limit: Int(Layout.maximumPosition))
                        rare.snapshot = StreamIndex.SnapshotReference(
                            location: FrameLocation(segment: segment, offset: offset), recordIndex: record, version: version)
                    }
                    var lastEventID: UUID?
                    if flags & 4 != 0 { lastEventID = UUID(uuid: try reader.bytes(16, "last id").loadUnaligned(as: uuid_t.self)) }
                    rare.removedThrough = try reader.count("removed versions", limit: Int(Layout.maximumPosition))
                    let count = try reader.count("positions", limit: reader.remaining)
                    // Decoded straight into the table's shared position store (no array per stream).
                    var last: UInt64 = 0
                    do {
                        try table.add(name, rare: rare, lastEventID: lastEventID, count: count) {
                            // Bounded before it is added: an untrusted delta must not overflow.
                            let delta = try reader.varint("position")
                            guard delta < nextPosition - last else { throw PositionBeyondEnd() }
                            last += delta
                            return last
                        }
                    } catch is PositionBeyondEnd {
                        return nil
                    }
                }
                guard let table = table.finish() else { return nil }
                var categories: [StreamKey: [Int32]] = [:]
                for _ in 0..<(try reader.count("categories", limit: reader.remaining)) {
                    let category = try reader.string("category")
                    var members: [Int32] = []
                    let memberCount = try reader.count("members", limit: reader.remaining)
                    members.reserveCapacity(memberCount)
                    for _ in 0..<memberCount {
                        members.append(Int32(try reader.count("member", limit: table.count - 1)))
                    }
                    categories[StreamKey(category)] = members
                }
                guard reader.remaining == 0 else { return nil }
                for (segment, list) in zip(segments, dictionaries) where registering {
                    for (offset, bytes) in list { segment.register(dictionary: bytes, at: offset) }
                }
                let index = StreamIndex(
                    restoring: table, categories: categories, frames: frames, nextPosition: nextPosition,
                    eventCount: eventCount, frameBytes: frameBytes, rawPayloadBytes: rawPayloadBytes,
                    lastBatch: nextBatch == 0 ? nil : nextBatch - 1)
                return Loaded(index: index, segmentCount: segmentCount, scannedEnd: scannedEnd)
            } catch {
                return nil
            }
        }
    }
}
