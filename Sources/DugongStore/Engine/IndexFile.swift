import Foundation
import Glibc

/// The index saved at a clean close (`dugong.index`), so that the next open loads it and scans
/// only what was appended after it instead of every segment. See FORMAT.md, "The index file".
///
/// It is a cache: it is trusted only when its checksum holds and the segments it names are the
/// first segments of the store, unchanged in name; anything else and the index is rebuilt by
/// scanning. Frames it covers are not re-checked at open (reads and `verify` still check every
/// frame's checksum).
enum IndexFile {
    static let name = "dugong.index"
    static let magic = Array("DUGONGIX".utf8)
    static let version: UInt16 = 1

    /// Writes the index of `segments` (scanned up to `scannedEnd` in the last one) crash-safely:
    /// temporary file, sync, rename, directory sync.
    static func write(_ index: StreamIndex, segments: [Segment], scannedEnd: Int, to directory: String) throws {
        guard index.damage.isEmpty, !segments.isEmpty else { return }
        var writer = ByteWriter(capacity: 64 + index.eventCount * 2)
        writer.raw(magic)
        writer.u16(version)
        writer.u16(0)
        writer.u32(0)
        writer.varint(UInt64(segments.count))
        for segment in segments {
            writer.lengthPrefixed(segment.name.utf8)
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
            previous = frame.firstPosition
        }
        writer.varint(UInt64(index.streamOrder.count))
        var number: [String: Int] = [:]
        for (position, name) in index.streamOrder.enumerated() {
            number[name] = position
            let stream = index.stream(name)!
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
            // Versions that compaction removed (below the truncation point) lead the list as
            // markers; every other entry is a real, increasing position.
            let reclaimed = stream.positions.prefix { $0 >= StreamIndex.damagedMarker }.count
            writer.varint(UInt64(reclaimed))
            writer.varint(UInt64(stream.positions.count - reclaimed))
            var last: UInt64 = 0
            for position in stream.positions.dropFirst(reclaimed) {
                guard position < StreamIndex.damagedMarker, position >= last else { throw Unwritable() }
                writer.varint(position - last)
                last = position
            }
        }
        writer.varint(UInt64(index.categories.count))
        for (category, streams) in index.categories.sorted(by: { $0.key < $1.key }) {
            writer.lengthPrefixed(category.utf8)
            writer.varint(UInt64(streams.count))
            for stream in streams { writer.varint(UInt64(number[stream]!)) }
        }
        let crc = writer.bytes.withUnsafeBytes { Checksum.crc32c($0) }
        writer.u32(Checksum.mask(crc))

        let path = directory + "/" + name
        let temporary = path + Layout.temporarySuffix
        let file = try File(path: temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        try writer.bytes.withUnsafeBytes { try file.write($0, at: 0) }
        try file.synchronize()
        try Directory.rename(temporary, to: path)
        try Directory.synchronize(directory)
    }

    /// An index that this format cannot hold (it is then not saved; the next open scans).
    struct Unwritable: Error {}

    /// Removes the index file (before anything rewrites the segments it describes).
    static func remove(from directory: String) throws {
        let path = directory + "/" + name
        if FileManager.default.fileExists(atPath: path) {
            try Directory.remove(path)
            try Directory.synchronize(directory)
        }
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
    static func load(from directory: String, segments: [Segment]) -> Loaded? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + name), data.count > 20 else { return nil }
        return data.withUnsafeBytes { raw -> Loaded? in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
            let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
            guard Checksum.mask(Checksum.crc32c(body)) == stored else { return nil }
            var reader = ByteReader(body)
            do {
                guard Array(try reader.bytes(8, "magic")) == magic, try reader.u16("version") == version else { return nil }
                _ = try reader.u16("reserved")
                _ = try reader.u32("reserved")
                let segmentCount = try reader.count("segments", limit: segments.count)
                var dictionaries: [[(Int, [UInt8])]] = []
                for index in 0..<segmentCount {
                    guard try reader.string("segment name") == segments[index].name else { return nil }
                    var list: [(Int, [UInt8])] = []
                    for _ in 0..<(try reader.count("dictionaries", limit: 1 << 20)) {
                        let offset = try reader.count("dictionary offset", limit: Int.max)
                        list.append((offset, Array(try reader.lengthPrefixed("dictionary"))))
                    }
                    dictionaries.append(list)
                }
                guard segmentCount >= 1 else { return nil }
                let scannedEnd = try reader.count("scanned end", limit: segments[segmentCount - 1].capacity)
                let nextPosition = try reader.u64("next position")
                let eventCount = try reader.count("events", limit: Int.max)
                let frameBytes = try reader.count("frame bytes", limit: Int.max)
                let rawPayloadBytes = try reader.count("raw bytes", limit: Int.max)
                let frameCount = try reader.count("frames", limit: reader.remaining)
                var frames: [EventFrame] = []
                frames.reserveCapacity(frameCount)
                var previous: UInt64 = 0
                for _ in 0..<frameCount {
                    let segment = try reader.count("frame segment", limit: segmentCount - 1)
                    let offset = try reader.count("frame offset", limit: Int.max)
                    let first = previous + (try reader.varint("frame position"))
                    let last = first + (try reader.varint("frame span"))
                    frames.append(EventFrame(location: FrameLocation(segment: segment, offset: offset), firstPosition: first, lastPosition: last))
                    previous = first
                }
                let streamCount = try reader.count("streams", limit: reader.remaining)
                var order: [String] = []
                var streams: [String: StreamIndex.Stream] = [:]
                order.reserveCapacity(streamCount)
                for _ in 0..<streamCount {
                    let name = try reader.string("stream name")
                    var stream = StreamIndex.Stream()
                    stream.truncateBefore = try reader.count("truncate before", limit: Int.max)
                    stream.snapshotsHiddenThrough = try reader.count("snapshots hidden", limit: Int.max)
                    let flags = try reader.u8("stream flags")
                    stream.isTombstoned = flags & 1 != 0
                    if flags & 2 != 0 {
                        let segment = try reader.count("snapshot segment", limit: segmentCount - 1)
                        let offset = try reader.count("snapshot offset", limit: Int.max)
                        let record = try reader.count("snapshot record", limit: Int.max)
                        let version = try reader.count("snapshot version", limit: Int.max)
                        stream.snapshot = StreamIndex.SnapshotReference(
                            location: FrameLocation(segment: segment, offset: offset), recordIndex: record, version: version)
                    }
                    if flags & 4 != 0 { stream.lastEventID = UUID(uuid: try reader.bytes(16, "last id").loadUnaligned(as: uuid_t.self)) }
                    let reclaimed = try reader.count("reclaimed versions", limit: Int(UInt32.max))
                    let count = try reader.count("positions", limit: reader.remaining)
                    stream.positions.reserveCapacity(reclaimed + count)
                    stream.positions += repeatElement(StreamIndex.damagedMarker, count: reclaimed)
                    var last: UInt64 = 0
                    for _ in 0..<count {
                        last += try reader.varint("position")
                        stream.positions.append(last)
                    }
                    order.append(name)
                    streams[name] = stream
                }
                var categories: [String: [String]] = [:]
                for _ in 0..<(try reader.count("categories", limit: reader.remaining)) {
                    let category = try reader.string("category")
                    var members: [String] = []
                    for _ in 0..<(try reader.count("members", limit: reader.remaining)) {
                        members.append(order[try reader.count("member", limit: order.count - 1)])
                    }
                    categories[category] = members
                }
                guard reader.remaining == 0 else { return nil }
                for (segment, list) in zip(segments, dictionaries) {
                    for (offset, bytes) in list { segment.register(dictionary: bytes, at: offset) }
                }
                let index = StreamIndex(
                    restoring: streams, order: order, categories: categories, frames: frames, nextPosition: nextPosition,
                    eventCount: eventCount, frameBytes: frameBytes, rawPayloadBytes: rawPayloadBytes)
                return Loaded(index: index, segmentCount: segmentCount, scannedEnd: scannedEnd)
            } catch {
                return nil
            }
        }
    }
}
