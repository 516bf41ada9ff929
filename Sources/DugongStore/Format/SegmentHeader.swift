import Foundation

/// The 64 bytes at the start of every segment file. See FORMAT.md, "Segment header".
struct SegmentHeader: Equatable {
    /// The global position of the first event the segment holds (or would hold).
    var firstPosition: UInt64
    /// The file's preallocated size when it was created.
    var capacity: UInt64
    /// When the segment was created, in milliseconds since 1970.
    var createdMilliseconds: Int64
    /// Written by compaction: the positions between the previous segment's last event and
    /// this segment's first position were removed on purpose, not lost.
    var followsCompactedPositions = false

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Layout.segmentHeaderSize)
        writer.raw(Layout.segmentMagic)
        writer.u16(Layout.formatVersion)
        writer.u16(UInt16(Layout.segmentHeaderSize))
        writer.u32(followsCompactedPositions ? Layout.segmentFollowsCompactedPositions : 0)
        writer.u64(firstPosition)
        writer.u64(capacity)
        writer.i64(createdMilliseconds)
        writer.raw(repeatElement(0, count: Layout.segmentHeaderChecksumOffset - writer.bytes.count))
        let crc = writer.bytes.withUnsafeBytes { Checksum.crc32c($0) }
        writer.u32(Checksum.mask(crc))
        assert(writer.bytes.count == Layout.segmentHeaderSize)
        return writer.bytes
    }

    /// Why a segment header was refused.
    enum Problem: Error, Equatable, CustomStringConvertible {
        case tooShort(Int)
        case badMagic
        case checksumMismatch
        case unsupportedVersion(UInt16)
        case malformed(String)

        var description: String {
            switch self {
            case .tooShort(let size): "file of \(size) bytes is shorter than a segment header"
            case .badMagic: "not a Dugong segment (bad magic)"
            case .checksumMismatch: "segment header checksum mismatch"
            case .unsupportedVersion(let version):
                "segment format version \(version) is not supported (this build reads version \(Layout.formatVersion))"
            case .malformed(let reason): "malformed segment header: \(reason)"
            }
        }
    }

    /// Decodes and checks a header: magic, checksum, version, reserved fields.
    init(decoding bytes: UnsafeRawBufferPointer) throws(Problem) {
        guard bytes.count >= Layout.segmentHeaderSize else { throw .tooShort(bytes.count) }
        guard Array(bytes[0..<8]) == Layout.segmentMagic else { throw .badMagic }
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<Layout.segmentHeaderSize])
        let covered = UnsafeRawBufferPointer(rebasing: header[0..<Layout.segmentHeaderChecksumOffset])
        let stored = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: Layout.segmentHeaderChecksumOffset, as: UInt32.self))
        var reader = ByteReader(header)
        do {
            _ = try reader.bytes(8, "magic")
            let version = try reader.u16("format version")
            // The version is checked before the checksum so that a newer format is named as such.
            guard version == Layout.formatVersion else { throw Problem.unsupportedVersion(version) }
            guard Checksum.mask(Checksum.crc32c(covered)) == stored else { throw Problem.checksumMismatch }
            let size = try reader.u16("header size")
            guard Int(size) == Layout.segmentHeaderSize else { throw Problem.malformed("header size \(size)") }
            let flags = try reader.u32("flags")
            guard flags & ~Layout.segmentFollowsCompactedPositions == 0 else { throw Problem.malformed("unknown segment flags \(flags)") }
            followsCompactedPositions = flags & Layout.segmentFollowsCompactedPositions != 0
            firstPosition = try reader.u64("first position")
            capacity = try reader.u64("capacity")
            createdMilliseconds = try reader.i64("created")
            let reserved = try reader.bytes(20, "reserved")
            guard reserved.allSatisfy({ $0 == 0 }) else { throw Problem.malformed("reserved bytes 40..<60 are not zero") }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw .malformed("\(error)")
        }
    }

    init(firstPosition: UInt64, capacity: UInt64, createdMilliseconds: Int64, followsCompactedPositions: Bool = false) {
        self.firstPosition = firstPosition
        self.capacity = capacity
        self.createdMilliseconds = createdMilliseconds
        self.followsCompactedPositions = followsCompactedPositions
    }
}
