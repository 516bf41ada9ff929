import CDugongShims

/// Raw DEFLATE (RFC 1951, no zlib or gzip wrapper) through zlib, optionally with a preset
/// dictionary. See FORMAT.md, "Compression".
enum Compression {
    /// zlib level 1: the speed the append path can afford (measured against levels 6 and 9 and
    /// libdeflate when the format was designed).
    static let level: Int32 = 1

    /// Compresses `bytes` (with `dictionary` when it is not empty); `nil` when the payload is
    /// under 64 bytes or compression does not save at least 1/8 of its size.
    static func deflate(_ bytes: UnsafeRawBufferPointer, dictionary: [UInt8] = []) -> [UInt8]? {
        guard bytes.count >= 64 else { return nil }
        var produced = 0
        let output = [UInt8](unsafeUninitializedCapacity: bytes.count - bytes.count / 8) { out, initialized in
            produced = dictionary.withUnsafeBytes { dictionary in
                dugong_deflate_raw(
                    bytes.baseAddress, bytes.count, out.baseAddress, out.count, level,
                    dictionary.baseAddress, dictionary.count)
            }
            // zlib wrote exactly `produced` bytes when it succeeded; nothing is read otherwise.
            initialized = max(produced, 0)
        }
        return produced > 0 ? output : nil
    }

    /// Bytes of room past a payload's end that let zlib decode its last symbols on its fast path
    /// (which needs 258 bytes of output room: DEFLATE's longest match).
    static let inflateSlack = 258

    /// Inflates `bytes` into exactly `count` bytes; `nil` when the stream is damaged, has
    /// another length, or needs another dictionary.
    static func inflate(_ bytes: UnsafeRawBufferPointer, count: Int, dictionary: [UInt8] = []) -> [UInt8]? {
        var inflated = false
        let output = [UInt8](unsafeUninitializedCapacity: count + inflateSlack) { out, initialized in
            inflated = inflate(bytes, into: UnsafeMutableRawBufferPointer(out), count: count, dictionary: dictionary)
            // On success zlib wrote exactly `count` bytes; on failure the array is left empty.
            initialized = inflated ? count : 0
        }
        return inflated ? output : nil
    }

    /// Inflates `bytes` into exactly the first `count` bytes of `output` (the rest is room zlib
    /// may scribble on; ``inflateSlack`` of it makes inflating faster); false when the stream is
    /// damaged, has another length, or needs another dictionary (`output` then holds anything).
    static func inflate(
        _ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dictionary: [UInt8] = []
    ) -> Bool {
        precondition(count <= output.count)
        return dictionary.withUnsafeBytes { dictionary in
            dugong_inflate_raw(
                bytes.baseAddress, bytes.count, output.baseAddress, count, output.count, dictionary.baseAddress, dictionary.count)
        } == 0
    }
}
