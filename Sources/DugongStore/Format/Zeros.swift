/// Fast checks for runs of zero bytes (preallocated, never written space), eight bytes at a time.
enum Zeros {
    /// The offset of the first nonzero byte of `bytes` at or after `start`, or `bytes.count`.
    static func firstNonzero(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var offset = max(start, 0)
        let count = bytes.count
        while offset < count && (offset & 7) != 0 {
            if bytes[offset] != 0 { return offset }
            offset += 1
        }
        while offset + 8 <= count {
            if bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != 0 { break }
            offset += 8
        }
        while offset < count {
            if bytes[offset] != 0 { return offset }
            offset += 1
        }
        return count
    }

    /// Whether `bytes[range]` are all zero.
    static func areAllZero(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Bool {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[range])
        return firstNonzero(in: slice, from: 0) == slice.count
    }
}
