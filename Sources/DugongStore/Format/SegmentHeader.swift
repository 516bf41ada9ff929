import Foundation

/// The 128 bytes at the start of every segment file. See FORMAT.md, "Segment header".
struct SegmentHeader: Equatable {
    /// The format version the segment was written in (this build writes
    /// ``Layout/formatVersion``; it reads from ``Layout/oldestReadableFormatVersion``).
    var formatVersion = Layout.formatVersion
    /// The global position of the first event the segment holds (or would hold).
    var firstPosition: UInt64
    /// The file's preallocated size when it was created.
    var capacity: UInt64
    /// When the segment was created, in milliseconds since 1970.
    var createdMilliseconds: Int64
    /// Written by compaction: the positions between the previous segment's last event and
    /// this segment's first position were removed on purpose, not lost.
    var followsCompactedPositions = false
    /// A random, nonzero number drawn when the segment is created. It is mixed into every
    /// frame's checksum, so that a frame is valid only in its own segment.
    var salt: UInt64
    /// The segment's number in its chain: the previous segment's + 1 (0 for a store's first).
    var sequence: UInt64
    /// The previous segment's salt; 0 for the first segment of a set.
    var previousSalt: UInt64
    /// Where the previous segment's frames end (0 for the first segment of a set): every byte
    /// of it from there to its capacity is zero.
    var previousEnd: UInt64

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Layout.segmentHeaderSize)
        writer.raw(Layout.segmentMagic)
        writer.u16(formatVersion)
        writer.u16(UInt16(Layout.segmentHeaderSize))
        writer.u32(followsCompactedPositions ? Layout.segmentFollowsCompactedPositions : 0)
        writer.u64(firstPosition)
        writer.u64(capacity)
        writer.i64(createdMilliseconds)
        writer.u64(salt)
        writer.u64(sequence)
        writer.u64(previousSalt)
        writer.u64(previousEnd)
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
            case .unsupportedVersion(let version) where version == Layout.legacyFormatVersion:
                "segment of format version 1, which this build does not open: convert the store with `dugong upgrade <store>`"
            case .unsupportedVersion(let version):
                "segment format version \(version) is not supported (this build reads versions \(Layout.oldestReadableFormatVersion) to \(Layout.formatVersion)); unless a newer build wrote it, the header is damaged"
            case .malformed(let reason): "malformed segment header: \(reason)"
            }
        }
    }

    /// The format version a segment's first bytes declare, if they start like a segment.
    static func version(of bytes: UnsafeRawBufferPointer) -> UInt16? {
        guard bytes.count >= 10, Array(bytes[0..<8]) == Layout.segmentMagic else { return nil }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    /// Decodes and checks a header of a version this build reads (2 to 4: their headers are
    /// laid out alike): magic, version, checksum, sizes, reserved fields.
    init(decoding bytes: UnsafeRawBufferPointer) throws(Problem) {
        guard bytes.count >= 10 else { throw .tooShort(bytes.count) }
        guard Array(bytes[0..<8]) == Layout.segmentMagic else { throw .badMagic }
        // The version is checked before the checksum so that another format is named as such.
        let version = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        guard (Layout.oldestReadableFormatVersion...Layout.formatVersion).contains(version) else {
            throw .unsupportedVersion(version)
        }
        formatVersion = version
        guard bytes.count >= Layout.segmentHeaderSize else { throw .tooShort(bytes.count) }
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<Layout.segmentHeaderSize])
        let covered = UnsafeRawBufferPointer(rebasing: header[0..<Layout.segmentHeaderChecksumOffset])
        let stored = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: Layout.segmentHeaderChecksumOffset, as: UInt32.self))
        guard Checksum.mask(Checksum.crc32c(covered)) == stored else { throw .checksumMismatch }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: header[10...]))
        do {
            let size = try reader.u16("header size")
            guard Int(size) == Layout.segmentHeaderSize else { throw Problem.malformed("header size \(size)") }
            let flags = try reader.u32("flags")
            guard flags & ~Layout.segmentFollowsCompactedPositions == 0 else { throw Problem.malformed("unknown segment flags \(flags)") }
            followsCompactedPositions = flags & Layout.segmentFollowsCompactedPositions != 0
            firstPosition = try reader.u64("first position")
            capacity = try reader.u64("capacity")
            createdMilliseconds = try reader.i64("created")
            salt = try reader.u64("salt")
            sequence = try reader.u64("sequence")
            previousSalt = try reader.u64("previous salt")
            previousEnd = try reader.u64("previous end")
            let reserved = try reader.bytes(Layout.segmentHeaderChecksumOffset - 80, "reserved")
            guard reserved.allSatisfy({ $0 == 0 }) else { throw Problem.malformed("reserved bytes 80..<124 are not zero") }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw .malformed("\(error)")
        }
        guard salt != 0 else { throw .malformed("salt 0") }
        guard firstPosition < Layout.maximumPosition else { throw .malformed("first position \(firstPosition) is implausible") }
        guard capacity >= UInt64(Layout.segmentHeaderSize), capacity <= UInt64(Int32.max) else {
            throw .malformed("capacity \(capacity) is implausible")
        }
        guard previousEnd <= UInt64(Int32.max), (previousSalt == 0) == (previousEnd == 0) else {
            throw .malformed("previous segment's end \(previousEnd) is implausible")
        }
    }

    init(
        firstPosition: UInt64, capacity: UInt64, createdMilliseconds: Int64, followsCompactedPositions: Bool = false,
        salt: UInt64, sequence: UInt64, previousSalt: UInt64 = 0, previousEnd: UInt64 = 0
    ) {
        precondition(salt != 0 && (previousSalt == 0) == (previousEnd == 0))
        self.firstPosition = firstPosition
        self.capacity = capacity
        self.createdMilliseconds = createdMilliseconds
        self.followsCompactedPositions = followsCompactedPositions
        self.salt = salt
        self.sequence = sequence
        self.previousSalt = previousSalt
        self.previousEnd = previousEnd
    }

    /// A new random salt (never 0).
    static func newSalt() -> UInt64 {
        var salt: UInt64 = 0
        while salt == 0 { salt = UInt64.random(in: 1...UInt64.max) }
        return salt
    }
}
