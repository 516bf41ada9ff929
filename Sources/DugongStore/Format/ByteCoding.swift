import Foundation

/// Appends little-endian integers, LEB128 varints and length-prefixed bytes to a buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    /// Unsigned LEB128: 7 bits a byte, low bits first, high bit set on all but the last byte.
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// A varint length, then the bytes.
    mutating func lengthPrefixed<C: Collection<UInt8>>(_ value: C) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func raw<C: Collection<UInt8>>(_ value: C) { bytes.append(contentsOf: value) }

    /// A varint length, then the string's UTF-8 (one copy: the generic path over `String.UTF8View`
    /// appends byte by byte).
    mutating func lengthPrefixed(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// A varint length, then the bytes (one copy: the generic path walks `Data` byte by byte).
    mutating func lengthPrefixed(_ value: Data) {
        varint(UInt64(value.count))
        value.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// Overwrites 4 bytes at `offset` with `value`, little-endian.
    mutating func patchU32(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
    }
}

/// Reads what ``ByteWriter`` writes, with every length checked against the bytes left.
/// Failures throw ``ByteReader/Malformed`` naming the offset.
struct ByteReader {
    struct Malformed: Error, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "\(reason) at byte \(offset)" }
    }

    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int, _ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw Malformed(offset: offset, reason: "\(what) needs \(count) bytes, \(remaining) left")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func u8(_ what: StaticString) throws(Malformed) -> UInt8 { try take(1, what)[0] }

    mutating func u16(_ what: StaticString) throws(Malformed) -> UInt16 {
        UInt16(littleEndian: try take(2, what).loadUnaligned(as: UInt16.self))
    }

    mutating func u32(_ what: StaticString) throws(Malformed) -> UInt32 {
        UInt32(littleEndian: try take(4, what).loadUnaligned(as: UInt32.self))
    }

    mutating func u64(_ what: StaticString) throws(Malformed) -> UInt64 {
        UInt64(littleEndian: try take(8, what).loadUnaligned(as: UInt64.self))
    }

    mutating func i64(_ what: StaticString) throws(Malformed) -> Int64 { Int64(bitPattern: try u64(what)) }

    mutating func varint(_ what: StaticString) throws(Malformed) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<10 {
            let byte = try u8(what)
            let bits = UInt64(byte & 0x7F)
            guard index < 9 || bits <= 1 else { throw Malformed(offset: offset - 1, reason: "\(what) overflows 64 bits") }
            value |= bits << (7 * UInt64(index))
            if byte & 0x80 == 0 { return value }
        }
        throw Malformed(offset: offset, reason: "\(what) is longer than 10 bytes")
    }

    /// A varint that must fit an `Int` no larger than `limit`.
    mutating func count(_ what: StaticString, limit: Int) throws(Malformed) -> Int {
        let start = offset
        let value = try varint(what)
        guard value <= UInt64(limit) else { throw Malformed(offset: start, reason: "\(what) \(value) exceeds \(limit)") }
        return Int(value)
    }

    mutating func bytes(_ count: Int, _ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        try take(count, what)
    }

    mutating func lengthPrefixed(_ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        let start = offset
        let length = try varint(what)
        guard length <= UInt64(remaining) else {
            throw Malformed(offset: start, reason: "\(what) of \(length) bytes runs past the end (\(remaining) left)")
        }
        return try take(Int(length), what)
    }

    /// A string through `names`: a repeated name (a stream's events, event types) is decoded once.
    mutating func string(_ what: StaticString, names: inout NameTable) throws(Malformed) -> String {
        let start = offset
        let raw = try lengthPrefixed(what)
        if let known = names.lookup(raw) { return known }
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Malformed(offset: start, reason: "\(what) is not valid UTF-8")
        }
        names.remember(text)
        return text
    }

    mutating func string(_ what: StaticString) throws(Malformed) -> String {
        let start = offset
        let raw = try lengthPrefixed(what)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Malformed(offset: start, reason: "\(what) is not valid UTF-8")
        }
        return text
    }
}

/// The last few names decoded from a frame, so that repeated ones are not decoded and allocated
/// again. Bounded: it keeps 8.
struct NameTable {
    private var names: [(bytes: [UInt8], name: String)] = []
    private var next = 0

    func lookup(_ raw: UnsafeRawBufferPointer) -> String? {
        for entry in names where entry.bytes.count == raw.count {
            let equal = entry.bytes.withUnsafeBytes { memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }
            if equal { return entry.name }
        }
        return nil
    }

    mutating func remember(_ name: String) {
        let entry = (Array(name.utf8), name)
        guard !entry.0.isEmpty else { return }
        if names.count < 8 {
            names.append(entry)
        } else {
            names[next] = entry
            next = (next + 1) % 8
        }
    }
}
