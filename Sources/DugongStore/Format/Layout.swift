import Foundation

/// Every constant of the on-disk format, in one place. FORMAT.md is the specification; this
/// file must agree with it byte for byte.
enum Layout {
    /// The format version this code writes. It reads versions ``oldestReadableFormatVersion``
    /// through this one; version 1 stores are refused by the engine and converted by
    /// ``Upgrade`` (`dugong upgrade`).
    static let formatVersion: UInt16 = 5
    /// The oldest segment format read as it is: version 4 differs from 5 only in having no LZ4
    /// frames, version 3 from 4 only in its codec (raw DEFLATE), version 2 from 3 only in lacking
    /// continuation records (FORMAT.md §11).
    static let oldestReadableFormatVersion: UInt16 = 2
    /// The first version whose segments may hold continuation records.
    static let firstVersionWithContinuations: UInt16 = 3
    /// The first version whose compressed payloads are Zstandard frames (raw DEFLATE before).
    static let firstVersionWithZstandard: UInt16 = 4
    /// The first version whose small frames may be LZ4 blocks (frame flag ``frameLZ4Block``).
    static let firstVersionWithLZ4: UInt16 = 5
    /// The previous version, which ``Upgrade`` reads.
    static let legacyFormatVersion: UInt16 = 1

    // MARK: Directory

    /// The lock file a writer holds with `flock(LOCK_EX)`.
    static let lockFileName = "dugong.lock"
    /// Segment files: 20 decimal digits (the first global position), then this suffix; a
    /// segment that starts at the same position as its predecessor (which then held no events)
    /// has `-N` before the suffix, N its generation (1, 2, …).
    static let segmentSuffix = ".dseg"
    /// Files being created; removed at open.
    static let temporarySuffix = ".tmp"
    /// The store manifest: which segment files make up the log (§1 of FORMAT.md).
    static let manifestName = "dugong.manifest"
    /// The head file: how far the log is known to be durable (two slots).
    static let headName = "dugong.head"
    /// The index saved at a clean close.
    static let indexName = "dugong.index"
    /// The v1 compaction manifest; a v2 store never has one.
    static let legacyCompactionManifestName = "compaction.pending"

    /// A segment's place in the order of segments: by first position, then generation.
    struct SegmentName: Comparable, Hashable {
        var firstPosition: UInt64
        var generation: Int

        /// The highest generation a segment file name may carry (10 digits, FORMAT.md §1: a
        /// name stays within the manifest's ``Manifest/maximumNameLength``).
        static let maximumGeneration = 9_999_999_999

        static func < (a: Self, b: Self) -> Bool {
            (a.firstPosition, a.generation) < (b.firstPosition, b.generation)
        }

        var fileName: String {
            let digits = String(firstPosition)
            let padded = String(repeating: "0", count: 20 - digits.count) + digits
            return padded + (generation == 0 ? "" : "-\(generation)") + Layout.segmentSuffix
        }

        /// Parses a segment file name; `nil` if `name` is not one.
        init?(fileName name: String) {
            guard name.hasSuffix(Layout.segmentSuffix) else { return nil }
            let stem = name.dropLast(Layout.segmentSuffix.count)
            let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts[0].count == 20,
                parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
                let position = UInt64(parts[0])
            else { return nil }
            let generation = parts.count == 2 ? Int(parts[1]) : 0
            guard let generation, generation <= Self.maximumGeneration, parts.count == 1 || (generation > 0 && String(generation) == parts[1])
            else { return nil }
            self.init(firstPosition: position, generation: generation)
        }

        init(firstPosition: UInt64, generation: Int) {
            self.firstPosition = firstPosition
            self.generation = generation
        }
    }

    // MARK: Segment header

    static let segmentMagic: [UInt8] = Array("DUGONGSG".utf8)
    static let segmentHeaderSize = 128
    /// Segment header flag (offset 12): the positions before this segment's first position and
    /// after the previous segment's last event were removed by compaction.
    static let segmentFollowsCompactedPositions: UInt32 = 0x01
    /// The header's CRC covers bytes 0 ..< 124 and is stored at 124.
    static let segmentHeaderChecksumOffset = 124
    /// v1 segment headers: 64 bytes, CRC at 60.
    static let legacySegmentHeaderSize = 64

    // MARK: Limits on what is read from disk and what an append may hold

    /// Global positions are below this (2^62): room for arithmetic that never overflows.
    static let maximumPosition: UInt64 = 1 << 62
    /// The largest version a stream may reach (versions are below 2^62, as positions).
    static let maximumVersion = Int(maximumPosition) - 1
    /// Stream names and event types: 1 to this many bytes of UTF-8 without NUL (FORMAT.md §2, §6.1).
    static let maximumNameLength = 1024
    /// The most bytes one commit (or one atomic append to several streams) may take in its
    /// frame's payload: event data, metadata, names and record overhead together.
    static let maximumCommitSize = 512 << 20

    // MARK: Frames

    static let frameHeaderSize = 40
    /// v1 frame headers: 32 bytes, no batch, checksum without salt or offset.
    static let legacyFrameHeaderSize = 32
    /// Flag bit: the payload is compressed with its segment's codec (FORMAT.md §7).
    static let frameCompressed: UInt8 = 0x01
    /// Flag bit (with `frameCompressed`): compressed with the segment's current dictionary.
    static let frameUsesDictionary: UInt8 = 0x02
    /// Flag bit: the last frame of its batch (the frames one `fdatasync` made durable).
    static let frameEndsBatch: UInt8 = 0x04
    /// Flag bit: written in the durability mode without syncs (its batch was not synced before
    /// the next one began).
    static let frameUnsynced: UInt8 = 0x08
    /// Flag bit (with `frameCompressed`, version 5 on): the payload is one LZ4 block instead of
    /// a Zstandard frame.
    static let frameLZ4Block: UInt8 = 0x10
    /// Every flag bit a frame may have (FORMAT.md §4); the others are 0 in a valid frame. The
    /// probe and the search for the next valid frame after damage both take this one list.
    static let frameKnownFlags = frameCompressed | frameUsesDictionary | frameEndsBatch | frameUnsynced | frameLZ4Block
    /// Payloads shorter than this are compressed as LZ4 blocks (version 5 on), longer ones as
    /// Zstandard frames: see ``Codec/forWriting(payloadSize:formatVersion:)``.
    static let lz4PayloadLimit = 512
    /// The bytes of recent payload a writer puts in a segment's dictionary (at most 1/8 of the
    /// segment size).
    static let dictionarySize = 4096
    /// Frames with at least this many payload bytes are compressed without the dictionary.
    static let dictionaryUseLimit = 16 << 10
    /// The largest dictionary a reader accepts (DEFLATE's window, the limit since version 1).
    static let maximumDictionarySize = 32768
    /// A frame's payload (stored or decompressed) is at most this long.
    static let maximumFramePayload = 1 << 30

    // MARK: Records

    enum RecordType: UInt8 {
        case event = 0x01
        case streamMetadata = 0x02
        case snapshot = 0x03
        case dictionary = 0x04
        /// A clean close: written (and synced) as the last frame before a writer closes the
        /// store, so that every frame before it is known to have been acknowledged.
        case close = 0x05
        /// An event that continues the frame's previous event record: same stream, next
        /// version, next position (format version 3).
        case continuation = 0x06
    }

    /// Event record flag bit: the event is the last of its commit.
    static let eventEndsCommit: UInt8 = 0x01
    /// Continuation record flag bit: the event's type is the previous event's (not stored).
    static let continuationSameType: UInt8 = 0x02

    enum StreamOperation: UInt8 {
        /// Versions below the value are hidden (and reclaimed by compaction).
        case truncateBefore = 1
        /// Soft delete: truncate before the value, which is the stream's version + 1 at the time.
        case delete = 2
        /// Hard delete: the stream can never be appended to again.
        case tombstone = 3
        /// The stream's versions below the value are not in the log (compaction removed them,
        /// or an import declared that the stream begins there); its next version is at least
        /// the value. Written before the stream's first event of the segment set.
        case versionsStartAt = 4
    }

    // MARK: Manifest and head

    static let manifestMagic: [UInt8] = Array("DUGONGMF".utf8)
    static let headMagic: [UInt8] = Array("DUGONGHD".utf8)
    /// The head file holds two slots of this size, at 0 and at `headSlotSize`.
    static let headSlotSize = 512
    /// Head slot flag: written by a clean close; nothing follows the durable end.
    static let headCleanClose: UInt32 = 0x01
}
