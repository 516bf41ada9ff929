import CDugongShims

/// How a segment's compressed payloads are encoded: fixed by the segment's format version
/// (FORMAT.md, "Compression").
enum Codec: Equatable, Sendable {
    /// Raw DEFLATE (RFC 1951, no zlib or gzip wrapper) through zlib at level 1: format
    /// versions 1 to 3.
    case deflate
    /// One Zstandard frame (RFC 8878) through libzstd at level −1: format version 4 on.
    case zstandard

    /// The codec of segments of `formatVersion`.
    init(formatVersion: UInt16) {
        self = formatVersion >= Layout.firstVersionWithZstandard ? .zstandard : .deflate
    }

    /// The codec of the segments this build writes.
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
        guard bytes.count >= 64 else { return nil }
        var produced = 0
        let output = [UInt8](unsafeUninitializedCapacity: bytes.count - bytes.count / 8) { out, initialized in
            produced = dictionary.withUnsafeBytes { dictionary in
                switch codec {
                case .deflate:
                    dugong_deflate_raw(
                        bytes.baseAddress, bytes.count, out.baseAddress, out.count, deflateLevel,
                        dictionary.baseAddress, dictionary.count)
                case .zstandard:
                    dugong_zstd_compress(
                        bytes.baseAddress, bytes.count, out.baseAddress, out.count, zstandardLevel,
                        dictionary.baseAddress, dictionary.count)
                }
            }
            // The codec wrote exactly `produced` bytes when it succeeded; nothing is read otherwise.
            initialized = max(produced, 0)
        }
        return produced > 0 ? output : nil
    }

    /// Bytes of room past a payload's end that let zlib decode its last symbols on its fast path
    /// (which needs 258 bytes of output room: DEFLATE's longest match). Zstandard needs none.
    static let outputSlack = 258

    /// Decompresses `bytes` into exactly `count` bytes; `nil` when the stored form is damaged,
    /// has another length, or needs another dictionary.
    static func decompress(_ bytes: UnsafeRawBufferPointer, count: Int, dictionary: [UInt8] = [], codec: Codec) -> [UInt8]? {
        var done = false
        let output = [UInt8](unsafeUninitializedCapacity: count + outputSlack) { out, initialized in
            done = decompress(bytes, into: UnsafeMutableRawBufferPointer(out), count: count, dictionary: dictionary, codec: codec)
            // On success the codec wrote exactly `count` bytes; on failure the array is left empty.
            initialized = done ? count : 0
        }
        return done ? output : nil
    }

    /// Decompresses `bytes` into exactly the first `count` bytes of `output` (the rest is room
    /// zlib may scribble on; ``outputSlack`` of it makes inflating faster); false when the
    /// stored form is damaged, has another length, or needs another dictionary (`output` then
    /// holds anything). Neither codec notices a wrong dictionary by itself: the frame's
    /// dictionary check guards that (FORMAT.md §7).
    static func decompress(
        _ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dictionary: [UInt8] = [],
        codec: Codec
    ) -> Bool {
        precondition(count <= output.count)
        return dictionary.withUnsafeBytes { dictionary in
            switch codec {
            case .deflate:
                dugong_inflate_raw(
                    bytes.baseAddress, bytes.count, output.baseAddress, count, output.count,
                    dictionary.baseAddress, dictionary.count)
            case .zstandard:
                dugong_zstd_decompress(
                    bytes.baseAddress, bytes.count, output.baseAddress, count, dictionary.baseAddress, dictionary.count)
            }
        } == 0
    }
}
