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

    /// Whether the next byte is an event record's type (FORMAT.md §6.1, §6.1a).
    var isEventNext: Bool {
        offset < bytes.count
            && (bytes[offset] == Layout.RecordType.event.rawValue || bytes[offset] == Layout.RecordType.continuation.rawValue)
    }

    /// Moves to `newOffset`, within the bytes: for a decoder with a cursor of its own.
    @inline(__always)
    mutating func seek(to newOffset: Int) {
        assert(newOffset >= 0 && newOffset <= bytes.count)
        offset = newOffset
    }

    // The reads below are inlined into the record decoder (a call per field was a third of a
    // replay's decoding); their failures are built out of line.
    @inline(__always)
    private mutating func take(_ count: Int, _ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw shortOf(count, what) }
        defer { offset += count }
        return UnsafeRawBufferPointer(start: bytes.baseAddress! + offset, count: count)
    }

    @inline(never)
    private func shortOf(_ count: Int, _ what: StaticString) -> Malformed {
        Malformed(offset: offset, reason: "\(what) needs \(count) bytes, \(remaining) left")
    }

    @inline(__always)
    mutating func u8(_ what: StaticString) throws(Malformed) -> UInt8 {
        guard offset < bytes.count else { throw shortOf(1, what) }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    mutating func u16(_ what: StaticString) throws(Malformed) -> UInt16 {
        UInt16(littleEndian: try take(2, what).loadUnaligned(as: UInt16.self))
    }

    @inline(__always)
    mutating func u32(_ what: StaticString) throws(Malformed) -> UInt32 {
        UInt32(littleEndian: try take(4, what).loadUnaligned(as: UInt32.self))
    }

    @inline(__always)
    mutating func u64(_ what: StaticString) throws(Malformed) -> UInt64 {
        UInt64(littleEndian: try take(8, what).loadUnaligned(as: UInt64.self))
    }

    @inline(__always)
    mutating func i64(_ what: StaticString) throws(Malformed) -> Int64 { Int64(bitPattern: try u64(what)) }

    @inline(__always)
    mutating func varint(_ what: StaticString) throws(Malformed) -> UInt64 {
        // One byte: most versions, deltas and short lengths; two: most data lengths.
        if offset < bytes.count {
            let first = bytes[offset]
            if first < 0x80 {
                offset += 1
                return UInt64(first)
            }
            if offset + 1 < bytes.count, bytes[offset + 1] < 0x80 {
                defer { offset += 2 }
                return UInt64(first & 0x7F) | UInt64(bytes[offset + 1]) << 7
            }
        }
        return try longVarint(what)
    }

    private mutating func longVarint(_ what: StaticString) throws(Malformed) -> UInt64 {
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

    /// A varint that must fit an `Int` no larger than `limit` (none fits a negative limit: a
    /// member of an empty table).
    @inline(__always)
    mutating func count(_ what: StaticString, limit: Int) throws(Malformed) -> Int {
        let start = offset
        let value = try varint(what)
        guard limit >= 0, value <= UInt64(limit) else { throw Malformed(offset: start, reason: "\(what) \(value) exceeds \(limit)") }
        return Int(value)
    }

    @inline(__always)
    mutating func bytes(_ count: Int, _ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        try take(count, what)
    }

    @inline(__always)
    mutating func lengthPrefixed(_ what: StaticString) throws(Malformed) -> UnsafeRawBufferPointer {
        let start = offset
        let length = try varint(what)
        guard length <= UInt64(remaining) else {
            throw Malformed(offset: start, reason: "\(what) of \(length) bytes runs past the end (\(remaining) left)")
        }
        return try take(Int(length), what)
    }

    /// A stream name or event type (1 to 1024 bytes of UTF-8 without NUL) through `names`: a
    /// repeated name (a stream's events, event types) is validated and decoded once. Returns its
    /// entry in `frameNames`.
    @inline(__always)
    mutating func name(_ what: StaticString, names: inout NameTable, frameNames: inout FrameNames) throws(Malformed) -> Int32 {
        let start = offset
        let raw = try lengthPrefixed(what)
        guard raw.count >= 1, raw.count <= Layout.maximumNameLength else { throw badLength(of: what, raw.count, at: start) }
        let key = NameKey(raw)
        if let entry = frameNames.entry(key, raw) { return entry }
        if let entry = frameNames.reuse(key, raw) { return entry }
        if let known = names.name(key, raw) { return frameNames.add(known, key, raw) }
        let text = try Self.validName(raw, what, at: start)
        names.remember(text)
        return frameNames.add(text, key, raw)
    }

    /// A stream name or event type read without a name table (rare records).
    mutating func name(_ what: StaticString) throws(Malformed) -> String {
        let start = offset
        let raw = try lengthPrefixed(what)
        guard raw.count >= 1, raw.count <= Layout.maximumNameLength else { throw badLength(of: what, raw.count, at: start) }
        return try Self.validName(raw, what, at: start)
    }

    /// Any text (segment names, categories): valid UTF-8.
    mutating func string(_ what: StaticString) throws(Malformed) -> String {
        let start = offset
        let raw = try lengthPrefixed(what)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Malformed(offset: start, reason: "\(what) is not valid UTF-8")
        }
        return text
    }

    @inline(never)
    private func badLength(of what: StaticString, _ count: Int, at start: Int) -> Malformed {
        Malformed(offset: start, reason: "\(what) of \(count) bytes (names take 1 to \(Layout.maximumNameLength))")
    }

    private static func validName(_ raw: UnsafeRawBufferPointer, _ what: StaticString, at start: Int) throws(Malformed) -> String {
        guard memchr(raw.baseAddress!, 0, raw.count) == nil else { throw Malformed(offset: start, reason: "\(what) contains a NUL byte") }
        // ASCII (most names) is valid UTF-8 as it is: `String(validating:)` is generic, and its
        // metadata lookups were a sixth of loading a million stream names.
        if raw.allSatisfy({ $0 < 0x80 }) { return String(decoding: raw, as: UTF8.self) }
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Malformed(offset: start, reason: "\(what) is not valid UTF-8")
        }
        return text
    }
}

/// A name's first and last 8 bytes (zero-padded when shorter) and its length: equal keys mean
/// equal names up to 16 bytes; longer ones are compared byte for byte too.
struct NameKey: Equatable {
    var count: Int
    var head: UInt64
    var tail: UInt64

    @inline(__always)
    init(_ raw: UnsafeRawBufferPointer) {
        count = raw.count
        if count >= 8 {
            head = raw.loadUnaligned(as: UInt64.self)
            tail = raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        } else {
            var word: UInt64 = 0
            for index in 0..<count { word |= UInt64(raw[index]) << (8 * UInt64(index)) }
            head = word
            tail = word
        }
    }

    /// Whether a name with this key, whose bytes are `bytes`, is `raw` (whose key is this one).
    @inline(__always)
    func names(_ bytes: UnsafeRawBufferPointer, sameAs raw: UnsafeRawBufferPointer) -> Bool {
        count <= 16 || memcmp(bytes.baseAddress!, raw.baseAddress!, count) == 0
    }
}

/// The last few names decoded (a read's frames'), so that repeated ones are not validated and
/// allocated again. Bounded: it keeps 8, each in a slot (0 to 7) that a newer name may take over.
struct NameTable {
    static let slots = 8

    // Parallel arrays: the keys (plain words) are compared without retaining anything.
    private var keys: [NameKey] = []
    private var bytes: [[UInt8]] = []
    private var names: [String] = []
    private var next = 0

    /// The two slots found last, tried first: names come in runs of pairs (each event record
    /// has its stream's name and its type, one after the other).
    private var lastFound = 0
    private var foundBefore = 0

    /// The name whose UTF-8 is `raw` (its key `key`), if kept.
    mutating func name(_ key: NameKey, _ raw: UnsafeRawBufferPointer) -> String? {
        // The slot found before the last one first: the other name of the pair came last.
        if foundBefore < keys.count, keys[foundBefore] == key, bytes[foundBefore].withUnsafeBytes({ key.names($0, sameAs: raw) }) {
            (foundBefore, lastFound) = (lastFound, foundBefore)
            return names[lastFound]
        }
        for index in keys.indices where keys[index] == key && bytes[index].withUnsafeBytes({ key.names($0, sameAs: raw) }) {
            (foundBefore, lastFound) = (lastFound, index)
            return names[index]
        }
        return nil
    }

    /// Keeps a name (1 byte or more), in a free slot or else in the oldest one's.
    mutating func remember(_ name: String) {
        let utf8 = Array(name.utf8)
        precondition(!utf8.isEmpty, "names take 1 byte or more")
        let key = utf8.withUnsafeBytes { NameKey($0) }
        if keys.count < Self.slots {
            keys.append(key)
            bytes.append(utf8)
            names.append(name)
            return
        }
        keys[next] = key
        bytes[next] = utf8
        names[next] = name
        next = (next + 1) % Self.slots
    }
}
