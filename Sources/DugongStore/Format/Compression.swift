import CDugongShims

/// How a frame's compressed payload is encoded: fixed by its segment's format version, and from
/// version 5 on by the frame's LZ4 flag too (FORMAT.md, "Compression").
enum Codec: Equatable, Sendable {
    /// Raw DEFLATE (RFC 1951, no zlib or gzip wrapper) through zlib at level 1: format
    /// versions 1 to 3.
    case deflate
    /// One Zstandard frame (RFC 8878) through libzstd at level −1: format version 4 on.
    case zstandard
    /// One LZ4 block (LZ4's block format) through liblz4: small frames, format version 5 on.
    case lz4

    /// The codec of the compressed frames of segments of `formatVersion` without the LZ4 flag.
    init(formatVersion: UInt16) {
        self = formatVersion >= Layout.firstVersionWithZstandard ? .zstandard : .deflate
    }

    /// The codec of a compressed frame whose LZ4 flag is `lz4Flag`, in a segment of
    /// `formatVersion`; nil when that version has no LZ4 frames (the flag is then damage).
    init?(formatVersion: UInt16, lz4Flag: Bool) {
        guard lz4Flag else {
            self.init(formatVersion: formatVersion)
            return
        }
        guard formatVersion >= Layout.firstVersionWithLZ4 else { return nil }
        self = .lz4
    }

    /// The codec a writer tries first for a payload of `payloadSize` bytes in a segment of
    /// `formatVersion`: from version 5 on, LZ4 below ``Layout/lz4PayloadLimit`` bytes (see
    /// ``Compression/compressForWriting(_:dictionary:formatVersion:)``). A small frame (a commit
    /// of one or two events) packs as small with LZ4 and the segment's dictionary as with
    /// Zstandard (one ~190-byte event: 69 bytes against 76; two: 139 against 136; three: 4 %
    /// larger), and decompresses with a third of the instructions (~630 per event against
    /// ~1,900): Zstandard's cost per frame (its header, its tables) dominates such frames. From
    /// about three events on Zstandard packs smaller, and the gap grows with the frame (25 % at
    /// 32 events). Measured with `tools/codec/codec_compare.c` on the Benchmarks package's events.
    static func forWriting(payloadSize: Int, formatVersion: UInt16) -> Codec {
        formatVersion >= Layout.firstVersionWithLZ4 && payloadSize < Layout.lz4PayloadLimit ? .lz4 : Codec(formatVersion: formatVersion)
    }

    /// The codec of the compressed frames without the LZ4 flag that this build writes.
    static let current = Codec(formatVersion: Layout.formatVersion)
}

/// Compresses and decompresses frame payloads, optionally with a preset dictionary (for
/// Zstandard a raw-content dictionary: bytes taken as if they came just before the payload).
/// See FORMAT.md, "Compression".
enum Compression {
    /// zlib level 1: the speed the append path could afford with DEFLATE (measured against
    /// levels 6 and 9 and libdeflate when the format was designed).
    static let deflateLevel: Int32 = 1
    /// Zstandard level −1 (measured on the Benchmarks package's events, 100-event frames:
    /// ~60 bytes per event packed, decompression ~7× zlib's speed; level 1 packs ~50 bytes and
    /// decompresses at less than half the speed of −1, which the stream replay cannot afford).
    static let zstandardLevel: Int32 = -1

    /// Compresses `bytes` (with `dictionary` when it is not empty); `nil` when the payload is
    /// under 64 bytes or compression does not save at least 1/8 of its size.
    static func compress(_ bytes: UnsafeRawBufferPointer, dictionary: [UInt8] = [], codec: Codec) -> [UInt8]? {
        compress(bytes) { out in
            dictionary.withUnsafeBytes { dictionary in
                switch codec {
                case .deflate:
                    dugong_deflate_raw(
                        bytes.baseAddress, bytes.count, out.baseAddress, out.count, deflateLevel,
                        dictionary.baseAddress, dictionary.count)
                case .zstandard:
                    dugong_zstd_compress(
                        bytes.baseAddress, bytes.count, out.baseAddress, out.count, zstandardLevel,
                        dictionary.baseAddress, dictionary.count)
                case .lz4:
                    PresetDictionary.withLZ4Digest(of: dictionary) { digest in
                        dugong_lz4_compress(bytes.baseAddress, bytes.count, out.baseAddress, out.count, digest)
                    }
                }
            }
        }
    }

    /// A payload's stored form as a writer of `formatVersion` makes it, and its codec; nil when
    /// it is stored as is. A small payload (``Codec/forWriting(payloadSize:formatVersion:)``)
    /// is tried as an LZ4 block and as a Zstandard frame, and kept as the block unless the frame
    /// is smaller by more than 1/9 of its size: Zstandard codes each match in fewer bytes (its
    /// sequences entropy-coded, recent offsets repeated), so a payload of many short matches
    /// (text that only pieces of the dictionary match) packs much smaller with it.
    static func compressForWriting(
        _ bytes: UnsafeRawBufferPointer, dictionary: PresetDictionary?, formatVersion: UInt16
    ) -> (stored: [UInt8], codec: Codec)? {
        let codec = Codec.forWriting(payloadSize: bytes.count, formatVersion: formatVersion)
        let first = compress(bytes, dictionary: dictionary, codec: codec)
        guard codec == .lz4 else { return first.map { ($0, codec) } }
        guard let zstandard = compress(bytes, dictionary: dictionary, codec: .zstandard) else { return first.map { ($0, .lz4) } }
        if let block = first, block.count - block.count / 9 <= zstandard.count { return (block, .lz4) }
        return (zstandard, .zstandard)
    }

    /// ``compress(_:dictionary:codec:)`` with a dictionary prepared for `codec` (its digest
    /// when it has one): the same stored form.
    static func compress(_ bytes: UnsafeRawBufferPointer, dictionary: PresetDictionary?, codec: Codec) -> [UInt8]? {
        guard let dictionary else { return compress(bytes, codec: codec) }
        if codec == .lz4, let digest = dictionary.lz4Digest {
            return compress(bytes) { out in dugong_lz4_compress(bytes.baseAddress, bytes.count, out.baseAddress, out.count, digest) }
        }
        guard let digest = dictionary.digest, codec == dictionary.codec, bytes.count < PresetDictionary.digestUseLimit else {
            return compress(bytes, dictionary: dictionary.bytes, codec: codec)
        }
        return compress(bytes) { out in
            dugong_zstd_compress_digested(bytes.baseAddress, bytes.count, out.baseAddress, out.count, digest)
        }
    }

    /// `bytes` compressed by `codec` into room of 7/8 of their size: `codec` returns the bytes
    /// it wrote, or a negative number when they do not fit or it failed.
    private static func compress(_ bytes: UnsafeRawBufferPointer, with codec: (UnsafeMutableBufferPointer<UInt8>) -> Int) -> [UInt8]? {
        guard bytes.count >= 64 else { return nil }
        var produced = 0
        let output = [UInt8](unsafeUninitializedCapacity: bytes.count - bytes.count / 8) { out, initialized in
            produced = codec(out)
            // The codec wrote exactly `produced` bytes when it succeeded; nothing is read otherwise.
            precondition(produced <= out.count, "a codec wrote past its room")
            initialized = max(produced, 0)
        }
        return produced > 0 ? output : nil
    }

    /// Bytes of room past a payload's end that let zlib decode its last symbols on its fast path
    /// (which needs 258 bytes of output room: DEFLATE's longest match). Zstandard needs none.
    static let outputSlack = 258

    /// Decompresses `bytes` into exactly `count` bytes; `nil` when the stored form is damaged,
    /// has another length, or needs another dictionary.
    static func decompress(
        _ bytes: UnsafeRawBufferPointer, count: Int, dictionary: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        codec: Codec
    ) -> [UInt8]? {
        var done = false
        let output = [UInt8](unsafeUninitializedCapacity: count + outputSlack) { out, initialized in
            done = decompress(bytes, into: UnsafeMutableRawBufferPointer(out), count: count, dictionary: dictionary, codec: codec)
            // On success the codec wrote exactly `count` bytes; on failure the array is left empty.
            initialized = done ? count : 0
        }
        return done ? output : nil
    }

    /// ``decompress(_:count:dictionary:codec:)-(_,_,UnsafeRawBufferPointer,_)`` with a dictionary in an array.
    static func decompress(_ bytes: UnsafeRawBufferPointer, count: Int, dictionary: [UInt8], codec: Codec) -> [UInt8]? {
        dictionary.withUnsafeBytes { decompress(bytes, count: count, dictionary: $0, codec: codec) }
    }

    /// Decompresses `bytes` into exactly the first `count` bytes of `output` (the rest is room
    /// zlib and the LZ4 reader may scribble on; ``outputSlack`` of it makes both faster); false when the
    /// stored form is damaged, has another length, or needs another dictionary (`output` then
    /// holds anything). Neither codec notices a wrong dictionary by itself: the frame's
    /// dictionary check guards that (FORMAT.md §7).
    static func decompress(
        _ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int,
        dictionary: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0), codec: Codec
    ) -> Bool {
        precondition(count <= output.count)
        return switch codec {
        case .deflate:
            dugong_inflate_raw(
                bytes.baseAddress, bytes.count, output.baseAddress, count, output.count, dictionary.baseAddress, dictionary.count) == 0
        case .zstandard:
            dugong_zstd_decompress(bytes.baseAddress, bytes.count, output.baseAddress, count, dictionary.baseAddress, dictionary.count) == 0
        case .lz4:
            dugong_lz4_decompress(
                bytes.baseAddress, bytes.count, output.baseAddress, count, output.count, dictionary.baseAddress, dictionary.count) == 0
        }
    }
}

/// A segment's current dictionary (FORMAT.md §6.4, §7) as the writer compresses with it: its
/// bytes, its check (the frame header's, §4) and, for Zstandard and LZ4, the bytes digested once
/// into each compressor's tables. Loading 4 KiB of raw content into those tables for every frame was
/// most of a small frame's compression (callgrind, the Benchmarks package's events, one
/// 2-event frame: ~52,000 instructions with the bytes as a prefix, ~22,000 with the digest).
/// The stored forms are those the bytes alone would give: a reader needs only the bytes.
final class PresetDictionary: @unchecked Sendable {
    /// Payloads this long or longer are compressed with the bytes as a prefix: from about
    /// there libzstd copies a digest's tables into the compressor instead of consulting them
    /// in place, and the digest stopped paying (measured with `tools/codec/codec_compare.c`,
    /// the Benchmarks package's events: frames of 2, 10 and 20 events 57 %, 34 % and 23 % fewer
    /// instructions; of 40 events 16 % fewer; of 60 and 80 events 6–7 % more).
    static let digestUseLimit = 8 << 10

    // Unchecked: every property is set once, in `init`; libzstd's digest (a `ZSTD_CDict`) is
    // only read after it is made, and may be used by any number of threads at once.
    let bytes: [UInt8]
    let codec: Codec
    let check: UInt16
    /// libzstd's `ZSTD_CDict`, owned; nil for DEFLATE, and for bytes that begin with
    /// Zstandard's dictionary magic (compressed with the bytes as a prefix per frame instead).
    fileprivate let digest: UnsafeMutableRawPointer?
    /// The bytes loaded into LZ4's table (`dugong_lz4_digest`), owned; nil for DEFLATE, and
    /// when it could not be made (frames then load the bytes themselves).
    fileprivate let lz4Digest: UnsafeMutableRawPointer?

    init(_ bytes: [UInt8], codec: Codec) {
        precondition(!bytes.isEmpty && bytes.count <= Layout.maximumDictionarySize, "a dictionary takes 1 to \(Layout.maximumDictionarySize) bytes")
        self.bytes = bytes
        self.codec = codec
        check = FrameBuilder.check(of: bytes)
        digest = codec == .zstandard
            ? bytes.withUnsafeBytes { dugong_zstd_digest($0.baseAddress, $0.count, Int32(Compression.zstandardLevel)) } : nil
        lz4Digest = codec != .deflate ? bytes.withUnsafeBytes { dugong_lz4_digest($0.baseAddress, $0.count) } : nil
    }

    deinit {
        dugong_zstd_digest_free(digest)
        dugong_lz4_digest_free(lz4Digest)
    }

    /// Calls `body` with a digest of `dictionary` for LZ4 (nil when it is empty), made for this
    /// call only: for frames compressed without a kept ``PresetDictionary``.
    fileprivate static func withLZ4Digest(of dictionary: UnsafeRawBufferPointer, _ body: (UnsafeRawPointer?) -> Int) -> Int {
        guard dictionary.count > 0 else { return body(nil) }
        guard let digest = dugong_lz4_digest(dictionary.baseAddress, dictionary.count) else { return -2 }
        defer { dugong_lz4_digest_free(digest) }
        return body(digest)
    }
}
