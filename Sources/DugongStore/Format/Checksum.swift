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

/// CRC-32C of ranges of one buffer, for the search for the next valid frame after damage
/// (``Recovery/resynchronize(_:after:salt:limit:in:)``): a candidate's checksum covers as many
/// bytes as its header claims, and event data can hold many plausible headers claiming
/// megabytes each, so checking each one directly cost time quadratic in the segment. Here the
/// CRC of a range comes from prefix values every ``blockSize`` bytes (made once, as far as they
/// are needed) and at most two partial blocks: the register update is linear over GF(2), so a
/// range's value is a prefix's value shifted by the range's length and added (zlib's
/// `crc32_combine` rests on the same algebra).
struct RangeChecksums {
    /// Where the prefixes start.
    let origin: Int
    static let blockSize = 256
    /// `prefixes[k]`: the register after `bytes[origin ..< origin + k × blockSize]` from a
    /// register of 0 (no initial value, no final xor).
    private var prefixes: [UInt32] = [0]
    /// Bytes hashed directly (blocks and partial blocks): what the search costs.
    private(set) var bytesHashed = 0

    init(origin: Int) { self.origin = origin }

    /// ``Checksum/crc32c(_:continuing:)`` of `bytes[range]` continuing from `crc`, the same
    /// value, for `range` at or after ``origin``.
    mutating func crc32c(of range: Range<Int>, in bytes: UnsafeRawBufferPointer, continuing crc: UInt32) -> UInt32 {
        precondition(range.lowerBound >= origin && range.upperBound <= bytes.count)
        let size = Self.blockSize
        let first = (range.lowerBound - origin + size - 1) / size  // the first whole block's number
        let last = (range.upperBound - origin) / size  // one past the last whole block's
        let register: UInt32
        if first >= last {
            register = direct(range, bytes)
        } else {
            extend(to: last, in: bytes)
            let (start, end) = (origin + first * size, origin + last * size)
            let whole = prefixes[last] ^ Self.shift(prefixes[first], by: end - start)
            register = Self.shift(direct(range.lowerBound..<start, bytes), by: range.upperBound - start)
                ^ Self.shift(whole, by: range.upperBound - end) ^ direct(end..<range.upperBound, bytes)
        }
        // From a register of ~crc (the initial value folded in), then the final xor.
        return ~(Self.shift(~crc, by: range.count) ^ register)
    }

    /// The register after `bytes[range]` from 0.
    private mutating func direct(_ range: Range<Int>, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        bytesHashed += range.count
        return ~Checksum.crc32c(UnsafeRawBufferPointer(rebasing: bytes[range]), continuing: 0xFFFF_FFFF)
    }

    private mutating func extend(to block: Int, in bytes: UnsafeRawBufferPointer) {
        while prefixes.count <= block {
            let start = origin + (prefixes.count - 1) * Self.blockSize
            let next = Self.shift(prefixes[prefixes.count - 1], by: Self.blockSize) ^ direct(start..<(start + Self.blockSize), bytes)
            prefixes.append(next)
        }
    }

    // MARK: GF(2) arithmetic modulo the Castagnoli polynomial, bit-reflected (bit 31 is x^0)

    static let polynomial: UInt32 = 0x82F6_3B78

    /// a × b modulo the polynomial.
    static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var (a, b, product) = (a, b, UInt32(0))
        var bit: UInt32 = 1 << 31
        while bit != 0 && a != 0 {
            if a & bit != 0 {
                product ^= b
                a ^= bit
            }
            bit >>= 1
            b = b & 1 != 0 ? (b >> 1) ^ polynomial : b >> 1
        }
        return product
    }

    /// x^(2^k) for k = 0 ..< 64: squares of x.
    static let powersOfX: [UInt32] = {
        var powers: [UInt32] = [1 << 30]  // x
        for _ in 1..<64 { powers.append(multiply(powers[powers.count - 1], powers[powers.count - 1])) }
        return powers
    }()

    /// The register `register` carried through `count` zero bytes: × x^(8 × count).
    static func shift(_ register: UInt32, by count: Int) -> UInt32 {
        precondition(count >= 0)
        var power: UInt32 = 1 << 31  // x^0
        var bits = UInt64(count) << 3
        var k = 0
        while bits != 0 {
            if bits & 1 != 0 { power = multiply(powersOfX[k], power) }
            bits >>= 1
            k += 1
        }
        return multiply(power, register)
    }
}
