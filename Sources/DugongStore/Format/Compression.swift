import CDugongShims

/// Raw DEFLATE (RFC 1951, no zlib or gzip wrapper) through zlib. See FORMAT.md, "Compression".
enum Compression {
    /// zlib level 1: the speed the append path can afford (BRIEF.md's measurements).
    static let level: Int32 = 1

    /// Compresses `bytes`; `nil` when compression does not save at least 1/8 of the size.
    static func deflate(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        let worthIt = bytes.count - bytes.count / 8
        guard bytes.count >= 64 else { return nil }
        var output = [UInt8](repeating: 0, count: worthIt)
        let produced = output.withUnsafeMutableBytes { out in
            dugong_deflate_raw(bytes.baseAddress, bytes.count, out.baseAddress, out.count, level)
        }
        guard produced > 0 else { return nil }
        output.removeLast(output.count - produced)
        return output
    }

    /// Inflates `bytes` into exactly `count` bytes; `nil` when the stream is damaged or has
    /// another length.
    static func inflate(_ bytes: UnsafeRawBufferPointer, count: Int) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: count)
        let status = output.withUnsafeMutableBytes { out in
            dugong_inflate_raw(bytes.baseAddress, bytes.count, out.baseAddress, count)
        }
        return status == 0 ? output : nil
    }
}
