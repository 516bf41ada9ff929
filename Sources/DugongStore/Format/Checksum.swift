import CDugongShims

/// CRC-32C as the format uses it. See FORMAT.md, "Checksums".
enum Checksum {
    /// CRC-32C (Castagnoli) of `bytes`, continuing from `crc` (0 to start).
    static func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        dugong_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    /// The stored form of a CRC. A CRC computed over bytes that themselves contain CRCs is weak
    /// (LevelDB's reasoning), so the value is rotated right by 15 bits and offset by a constant.
    static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// The inverse of ``mask(_:)``.
    static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- 0xA282_EAD8
        return (rotated >> 17) | (rotated << 15)
    }
}
