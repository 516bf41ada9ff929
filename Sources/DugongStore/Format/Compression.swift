import CDugongShims

/// Raw DEFLATE (RFC 1951, no zlib or gzip wrapper) through zlib, optionally with a preset
/// dictionary. See FORMAT.md, "Compression".
enum Compression {
    /// zlib level 1: the speed the append path can afford (BRIEF.md's measurements).
    static let level: Int32 = 1

    /// Compresses `bytes` (with `dictionary` when it is not empty); `nil` when the payload is
    /// under 64 bytes or compression does not save at least 1/8 of its size.
    static func deflate(_ bytes: UnsafeRawBufferPointer, dictionary: [UInt8] = []) -> [UInt8]? {
        guard bytes.count >= 64 else { return nil }
        var output = [UInt8](repeating: 0, count: bytes.count - bytes.count / 8)
        let produced = output.withUnsafeMutableBytes { out in
            dictionary.withUnsafeBytes { dictionary in
                dugong_deflate_raw(
                    bytes.baseAddress, bytes.count, out.baseAddress, out.count, level,
                    dictionary.baseAddress, dictionary.count)
            }
        }
        guard produced > 0 else { return nil }
        output.removeLast(output.count - produced)
        return output
    }

    /// Inflates `bytes` into exactly `count` bytes; `nil` when the stream is damaged, has
    /// another length, or needs another dictionary.
    static func inflate(_ bytes: UnsafeRawBufferPointer, count: Int, dictionary: [UInt8] = []) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: count)
        let status = output.withUnsafeMutableBytes { out in
            dictionary.withUnsafeBytes { dictionary in
                dugong_inflate_raw(
                    bytes.baseAddress, bytes.count, out.baseAddress, count, dictionary.baseAddress, dictionary.count)
            }
        }
        return status == 0 ? output : nil
    }
}
