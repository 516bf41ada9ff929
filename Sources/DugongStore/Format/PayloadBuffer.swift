import Foundation

/// A frame's payload as it is built: bytes appended to one allocation that doubles as it fills.
///
/// Event records are the bulk of every frame, so they are encoded in place: the room for a
/// record's largest encoding is reserved first, then its fields are stored through a pointer,
/// with no per-byte capacity or uniqueness checks (an `[UInt8]` built with `append` spent more
/// instructions on those than on the bytes). A value type with
/// copy-on-write: a copy that is changed gets its own bytes.
struct PayloadBuffer {
    private final class Storage {
        var start: UnsafeMutableRawPointer
        var count = 0
        var capacity: Int

        init(capacity: Int) {
            self.capacity = max(capacity, 64)
            start = .allocate(byteCount: self.capacity, alignment: 8)
        }

        deinit { start.deallocate() }

        func copy() -> Storage {
            let copy = Storage(capacity: capacity)
            copy.start.copyMemory(from: start, byteCount: count)
            copy.count = count
            return copy
        }

        func reserve(_ extra: Int) {
            let needed = count + extra
            guard needed > capacity else { return }
            let grown = max(needed, capacity * 2)
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 8)
            bigger.copyMemory(from: start, byteCount: count)
            start.deallocate()
            start = bigger
            capacity = grown
        }
    }

    private var storage: Storage
    private var reserved = 0

    init(capacity: Int = 4096) { storage = Storage(capacity: capacity) }

    var count: Int { storage.count }

    /// Calls `body` with the bytes so far.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.start, count: storage.count))
    }

    /// The bytes so far, copied.
    var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        unique()
        storage.reserve(bytes.count)
        if let base = bytes.baseAddress { (storage.start + storage.count).copyMemory(from: base, byteCount: bytes.count) }
        storage.count += bytes.count
    }

    /// Room for at most `maximum` more bytes: a cursor at the end, for ``keep(upTo:)``.
    mutating func reserve(_ maximum: Int) -> Cursor {
        unique()
        storage.reserve(maximum)
        reserved = maximum
        return Cursor(at: storage.start + storage.count)
    }

    /// Keeps the bytes stored since ``reserve(_:)``, up to `end`.
    mutating func keep(upTo end: Cursor) {
        let written = end.position - (storage.start + storage.count)
        precondition(written >= 0 && written <= reserved, "a record overran the room reserved for it")
        storage.count += written
        reserved = 0
    }

    /// Stores little-endian integers, LEB128 varints and byte runs at a pointer into reserved room
    /// (the same encodings as ``ByteWriter``).
    struct Cursor {
        fileprivate(set) var position: UnsafeMutableRawPointer

        fileprivate init(at position: UnsafeMutableRawPointer) { self.position = position }

        /// The most bytes a varint takes.
        static let maximumVarintSize = 10

        @inline(__always) mutating func u8(_ value: UInt8) {
            position.storeBytes(of: value, as: UInt8.self)
            position += 1
        }

        @inline(__always) mutating func u64(_ value: UInt64) {
            position.storeBytes(of: value.littleEndian, toByteOffset: 0, as: UInt64.self)
            position += 8
        }

        @inline(__always) mutating func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                u8(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            u8(UInt8(value))
        }

        @inline(__always) mutating func raw(_ bytes: UnsafeRawBufferPointer) {
            if let base = bytes.baseAddress { position.copyMemory(from: base, byteCount: bytes.count) }
            position += bytes.count
        }

        @inline(__always) mutating func uuid(_ id: UUID) {
            Swift.withUnsafeBytes(of: id.uuid) { position.copyMemory(from: $0.baseAddress!, byteCount: 16) }
            position += 16
        }

        /// A varint length, then the string's UTF-8 (in place for a native string).
        @inline(__always) mutating func lengthPrefixed(_ text: String) {
            // The closure gets a copy and returns where it ended: no captured `var`.
            position = withUTF8(of: text) { [self] utf8 in
                var cursor = self
                cursor.lengthPrefixed(UnsafeRawBufferPointer(utf8))
                return cursor.position
            }
        }

        /// A varint length, then the bytes.
        @inline(__always) mutating func lengthPrefixed(_ data: Data) {
            position = data.withUnsafeBytes { [self] bytes in
                var cursor = self
                cursor.lengthPrefixed(bytes)
                return cursor.position
            }
        }

        /// A varint length, then the bytes.
        @inline(__always) mutating func lengthPrefixed(_ bytes: UnsafeRawBufferPointer) {
            varint(UInt64(bytes.count))
            raw(bytes)
        }
    }
}

/// Calls `body` with the UTF-8 of `text` (in place for a native string; no `var` to capture: a
/// captured `var` costs a dynamic exclusivity check per access).
@inline(__always)
private func withUTF8<R>(of text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(text.utf8).withUnsafeBufferPointer(body)
}
