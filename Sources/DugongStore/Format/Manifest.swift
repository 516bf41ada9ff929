import Foundation

/// The store manifest (`dugong.manifest`): the segment files that make up the log, in order,
/// each with its salt. Replaced atomically (temporary file, sync, rename, directory sync) when a
/// store is created, when a segment is added and when a compaction commits, so that a missing
/// segment file is detected and a compaction switches sets at one rename. See FORMAT.md, §1.
struct Manifest: Equatable {
    struct Entry: Equatable {
        var name: String
        var salt: UInt64
    }

    /// Manifest generations are below this (FORMAT.md §3a): a bound on a value read from disk,
    /// far above what rolls and compactions reach, so that adding 1 never overflows and never
    /// makes a manifest the next open refuses.
    static let maximumGeneration: UInt64 = 1 << 62
    /// Incremented at every rewrite.
    var generation: UInt64
    var segments: [Entry]

    static let version: UInt16 = 2
    /// Segment names are at most this long (`NNNNNNNNNNNNNNNNNNNN-G.dseg` with a 10-digit G).
    static let maximumNameLength = 64
    /// More segments than this is not a store this engine wrote (64 TiB at the default size).
    static let maximumSegmentCount = 1 << 20

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 32 + segments.count * 40)
        writer.raw(Layout.manifestMagic)
        writer.u16(Self.version)
        writer.u16(0)
        writer.u32(0)
        writer.u64(generation)
        writer.varint(UInt64(segments.count))
        for entry in segments {
            writer.lengthPrefixed(entry.name.utf8)
            writer.u64(entry.salt)
        }
        let crc = writer.bytes.withUnsafeBytes { Checksum.crc32c($0) }
        writer.u32(Checksum.mask(crc))
        return writer.bytes
    }

    /// Decodes a manifest; `nil` with the reason when it is not intact.
    static func decode(_ bytes: [UInt8]) -> Result<Manifest, ManifestProblem> {
        guard bytes.count >= 29 else { return .failure(ManifestProblem("\(bytes.count) bytes is too short for a manifest")) }
        return bytes.withUnsafeBytes { raw in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 4)])
            let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
            guard Array(body[0..<8]) == Layout.manifestMagic else { return .failure(ManifestProblem("bad magic")) }
            guard Checksum.mask(Checksum.crc32c(body)) == stored else { return .failure(ManifestProblem("checksum mismatch")) }
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: body[8...]))
            do {
                let version = try reader.u16("version")
                guard version == Self.version else { return .failure(ManifestProblem("version \(version) is not supported")) }
                guard try reader.u16("reserved") == 0, try reader.u32("reserved") == 0 else {
                    return .failure(ManifestProblem("reserved bytes are not zero"))
                }
                let generation = try reader.u64("generation")
                // Each roll and compaction adds 1: a store never gets near this bound.
                guard generation < Self.maximumGeneration else {
                    return .failure(ManifestProblem("generation \(generation) is not below \(Self.maximumGeneration)"))
                }
                let count = try reader.count("segments", limit: min(Self.maximumSegmentCount, reader.remaining / 9))
                var segments: [Entry] = []
                segments.reserveCapacity(count)
                for _ in 0..<count {
                    let name = try reader.string("segment name")
                    guard name.utf8.count <= Self.maximumNameLength, Layout.SegmentName(fileName: name)?.fileName == name else {
                        return .failure(ManifestProblem("'\(name)' is not a segment name"))
                    }
                    segments.append(Entry(name: name, salt: try reader.u64("salt")))
                }
                guard reader.remaining == 0 else { return .failure(ManifestProblem("\(reader.remaining) bytes after the last entry")) }
                guard Set(segments.map(\.name)).count == segments.count else { return .failure(ManifestProblem("a segment is listed twice")) }
                return .success(Manifest(generation: generation, segments: segments))
            } catch {
                return .failure(ManifestProblem("\(error)"))
            }
        }
    }
}

/// Why a manifest could not be used.
struct ManifestProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One slot of the head file (`dugong.head`): how far the log was durable when it was written.
/// The writer fills the two slots in turn after each sync (without syncing the head: it only
/// ever trails the data), at every new segment, and at a clean close (synced). Recovery takes
/// the valid slot with the highest sequence: frames before its durable end were acknowledged,
/// so damage there is damage, never a torn write. See FORMAT.md, "The head file".
struct HeadRecord: Equatable {
    /// Incremented at every write; slot `sequence % 2` holds it.
    var sequence: UInt64
    /// The salt of the segment the durable end is in.
    var segmentSalt: UInt64
    /// Where the durable frames of that segment end.
    var durableEnd: UInt64
    /// The position after the last durable event.
    var nextPosition: UInt64
    /// The batch number the next batch gets.
    var nextBatch: UInt64
    /// Written by a clean close: nothing was written after the durable end.
    var cleanClose: Bool

    static let version: UInt16 = 2
    static let encodedSize = 64

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.encodedSize)
        writer.raw(Layout.headMagic)
        writer.u16(Self.version)
        writer.u16(0)
        writer.u32(cleanClose ? Layout.headCleanClose : 0)
        writer.u64(sequence)
        writer.u64(segmentSalt)
        writer.u64(durableEnd)
        writer.u64(nextPosition)
        writer.u64(nextBatch)
        writer.u32(0)
        let crc = writer.bytes.withUnsafeBytes { Checksum.crc32c($0) }
        writer.u32(Checksum.mask(crc))
        assert(writer.bytes.count == Self.encodedSize)
        return writer.bytes
    }

    /// A slot's record, or `nil` when the slot is empty or not intact.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> HeadRecord? {
        guard bytes.count >= encodedSize, Array(bytes[0..<8]) == Layout.headMagic else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<60])
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 60, as: UInt32.self))
        guard Checksum.mask(Checksum.crc32c(body)) == stored else { return nil }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: body[8...]))
        guard let version = try? reader.u16("version"), version == Self.version,
            let reserved = try? reader.u16("reserved"), reserved == 0,
            let flags = try? reader.u32("flags"), flags & ~Layout.headCleanClose == 0,
            let sequence = try? reader.u64("sequence"), let salt = try? reader.u64("salt"),
            let end = try? reader.u64("durable end"), let next = try? reader.u64("next position"),
            let batch = try? reader.u64("next batch"), let spare = try? reader.u32("reserved"), spare == 0,
            end <= UInt64(Int32.max), next <= Layout.maximumPosition, batch <= Layout.maximumPosition
        else { return nil }
        return HeadRecord(
            sequence: sequence, segmentSalt: salt, durableEnd: end, nextPosition: next, nextBatch: batch,
            cleanClose: flags & Layout.headCleanClose != 0)
    }
}
