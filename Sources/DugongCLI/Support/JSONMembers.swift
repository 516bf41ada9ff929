import Foundation

/// An input line's members, read in one strict pass (RFC 8259): `import` stores an event's data
/// and metadata as the very bytes the line holds (no re-encoding: key order, number spelling and
/// escapes stay as they were), so that `export | import` keeps every payload byte for byte; the
/// other members are small and decoded from their text. Invalid JSON, a key given twice and
/// nesting deeper than ``maximumDepth`` are errors.
struct JSONMembers {
    /// What a member's value is.
    enum Kind: Equatable {
        case string, number, object, array, `true`, `false`, null
    }

    struct Member {
        var kind: Kind
        /// The value's bytes in the line.
        var range: Range<Int>
    }

    /// The deepest nesting accepted (as common JSON parsers).
    static let maximumDepth = 512

    let bytes: [UInt8]

    private struct Entry {
        /// The key's bytes in the line, quotes included.
        var keyRange: Range<Int>
        /// The key's text when it holds escapes; `nil` when the bytes between the quotes are it.
        var escapedKey: String?
        var member: Member

        var rawKey: Range<Int> { (keyRange.lowerBound + 1)..<(keyRange.upperBound - 1) }
    }

    /// The members in their order (a line has a handful: a list beats a dictionary). Keys stay
    /// bytes in the line: an import compares a few hundred thousand lines' keys with field names.
    private var list: [Entry] = []

    /// The member keys, in their order.
    var keys: [String] { list.map(key(of:)) }
    var count: Int { list.count }

    /// Reads `bytes`, which must be one JSON object.
    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        var scanner = Scanner(bytes: bytes, maximumDepth: Self.maximumDepth)
        scanner.skipWhitespace()
        guard scanner.peek == UInt8(ascii: "{") else {
            // (Editors on some systems begin a UTF-8 file with EF BB BF: JSON Lines has none.)
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
                throw JSONLines.InputError("not a JSON object: the line begins with a byte order mark (EF BB BF); save the file as UTF-8 without one")
            }
            throw JSONLines.InputError("not a JSON object")
        }
        scanner.index += 1
        // The line's object is the first level: its members' values are at the second (a value
        // nested 512 levels deep made a line of 513, which README says is refused).
        try scanner.members(depth: 2) { keyRange, kind, valueRange in
            let escaped = bytes[keyRange].contains(UInt8(ascii: "\\")) ? try Self.decodeString(bytes, keyRange) : nil
            let entry = Entry(keyRange: keyRange, escapedKey: escaped, member: Member(kind: kind, range: valueRange))
            guard !list.contains(where: { sameKey($0, entry) }) else {
                throw JSONLines.InputError("field \"\(key(of: entry))\" appears twice")
            }
            list.append(entry)
        }
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw JSONLines.InputError("not valid JSON (text after the object)") }
    }

    subscript(key: String) -> Member? { list.first { has($0, key: key) }?.member }

    /// The first key in byte order that is not one of `names`, if any.
    func unknownKey(among names: [String]) -> String? {
        list.filter { entry in !names.contains { has(entry, key: $0) } }.map(key(of:)).min()
    }

    private func key(of entry: Entry) -> String {
        entry.escapedKey ?? String(decoding: bytes[entry.rawKey], as: UTF8.self)
    }

    /// Whether an entry's key is `key`, byte for byte.
    private func has(_ entry: Entry, key: String) -> Bool {
        if let escaped = entry.escapedKey { return escaped.utf8.elementsEqual(key.utf8) }
        let raw = entry.rawKey
        guard raw.count == key.utf8.count else { return false }
        return key.utf8.withContiguousStorageIfAvailable { name in
            bytes.withUnsafeBufferPointer { line in raw.isEmpty || memcmp(name.baseAddress!, line.baseAddress! + raw.lowerBound, raw.count) == 0 }
        } ?? key.utf8.elementsEqual(bytes[raw])
    }

    private func sameKey(_ a: Entry, _ b: Entry) -> Bool {
        if a.escapedKey == nil, b.escapedKey == nil {
            let left = a.rawKey, right = b.rawKey
            guard left.count == right.count else { return false }
            return bytes.withUnsafeBufferPointer { line in
                left.isEmpty || memcmp(line.baseAddress! + left.lowerBound, line.baseAddress! + right.lowerBound, left.count) == 0
            }
        }
        return has(a, key: key(of: b))
    }

    /// The kind of the one JSON value `bytes` holds (whitespace around it allowed), or `nil`
    /// when they are not one JSON value nested at most `maximumDepth` deep, or hold an escaped
    /// half of a surrogate pair alone (which Foundation's parser refuses).
    static func kind(ofValue bytes: [UInt8], maximumDepth: Int) -> Kind? {
        var scanner = Scanner(bytes: bytes, maximumDepth: maximumDepth, pairsSurrogates: true)
        scanner.skipWhitespace()
        guard let kind = try? scanner.value(depth: 1) else { return nil }
        scanner.skipWhitespace()
        return scanner.index == bytes.count ? kind : nil
    }

    /// Whether this object is `{"base64": "…"}`.
    var isBase64Object: Bool { list.count == 1 && has(list[0], key: "base64") && list[0].member.kind == .string }

    /// Whether a member is the object `{"base64": "…"}` (raw bytes in the tool's lines).
    func isBase64Object(_ key: String) -> Bool {
        guard let member = self[key], member.kind == .object else { return false }
        // Only an object whose first key is "base64" is read again.
        let body = bytes[(member.range.lowerBound + 1)...].drop { [0x20, 0x09, 0x0A, 0x0D].contains($0) }
        guard body.starts(with: #""base64""#.utf8), let inner = try? JSONMembers(Array(bytes[member.range])) else { return false }
        return inner.isBase64Object
    }

    /// The text of a string member, unescaped.
    func string(_ key: String) throws -> String? {
        guard let member = self[key] else { return nil }
        guard member.kind == .string else { throw JSONLines.InputError("\"\(key)\" must be a string") }
        return try Self.decodeString(bytes, member.range)
    }

    /// A string member's text parsed from its UTF-8 by `parse`, without making a `String` when
    /// it holds no escapes; `nil` when absent, not a string, or refused by `parse`.
    func parsedString<T>(_ key: String, _ parse: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        guard let member = self[key], member.kind == .string else { return nil }
        let inner = (member.range.lowerBound + 1)..<(member.range.upperBound - 1)
        if bytes[inner].contains(UInt8(ascii: "\\")) {
            guard var text = try? Self.decodeString(bytes, member.range) else { return nil }
            return text.withUTF8(parse)
        }
        return bytes.withUnsafeBufferPointer { parse(UnsafeBufferPointer(rebasing: $0[inner])) }
    }

    /// An integer member (no fraction, no exponent); `nil` when it is absent.
    func integer(_ key: String, _ problem: String) throws -> Int? {
        guard let member = self[key] else { return nil }
        guard member.kind == .number, let value = Int(String(decoding: bytes[member.range], as: UTF8.self)) else {
            throw JSONLines.InputError(problem)
        }
        return value
    }

    /// The raw bytes of a member's value.
    func raw(_ key: String) -> ArraySlice<UInt8>? { self[key].map { bytes[$0.range] } }

    /// A JSON string's text from its quoted bytes (validated by the scanner).
    static func decodeString(_ bytes: [UInt8], _ range: Range<Int>) throws -> String {
        let inner = bytes[(range.lowerBound + 1)..<(range.upperBound - 1)]
        guard inner.contains(UInt8(ascii: "\\")) else { return String(decoding: inner, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            if !utf8.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll()
            }
        }
        var index = inner.startIndex
        while index < inner.endIndex {
            let byte = inner[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            flush()
            let escape = inner[index + 1]
            index += 2
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            default:  // u: validated as four hex digits
                var code = UInt32(Self.hex(inner[index..<(index + 4)]))
                index += 4
                if (0xD800..<0xDC00).contains(code), index + 6 <= inner.endIndex, inner[index] == UInt8(ascii: "\\"),
                    inner[index + 1] == UInt8(ascii: "u")
                {
                    let low = UInt32(Self.hex(inner[(index + 2)..<(index + 6)]))
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                guard let scalar = Unicode.Scalar(code) else {
                    throw JSONLines.InputError("a string holds an unpaired surrogate (\\u\(String(code, radix: 16)))")
                }
                scalars.append(scalar)
            }
        }
        flush()
        return String(scalars)
    }

    fileprivate static func hex(_ digits: ArraySlice<UInt8>) -> Int {
        digits.reduce(0) { value, digit in
            value * 16 + Int(digit <= UInt8(ascii: "9") ? digit - UInt8(ascii: "0") : (digit | 0x20) - UInt8(ascii: "a") + 10)
        }
    }

    /// A strict JSON scanner over bytes: it checks and skips values, recording nothing.
    private struct Scanner {
        let bytes: [UInt8]
        let maximumDepth: Int
        /// Whether an escaped half of a surrogate pair alone is refused: JSON's grammar takes
        /// it, Unicode text has no such character, and Foundation's parser refuses it.
        /// `export` prints such bytes as base64 (strict); an import line takes them as the
        /// bytes they are (lenient: earlier builds exported them as JSON).
        var pairsSurrogates = false
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        func invalid() -> JSONLines.InputError { JSONLines.InputError("not valid JSON (at byte \(index + 1))") }

        mutating func expect(_ byte: UInt8) throws {
            guard peek == byte else { throw invalid() }
            index += 1
        }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        /// A value; returns its kind. `depth` is the level an object or array there would be
        /// (only they nest: a string, number or literal adds no level).
        mutating func value(depth: Int) throws -> Kind {
            if peek == UInt8(ascii: "{") || peek == UInt8(ascii: "[") {
                guard depth <= maximumDepth else {
                    throw JSONLines.InputError("JSON nested deeper than \(maximumDepth) levels")
                }
            }
            switch peek {
            case UInt8(ascii: "\""):
                _ = try string()
                return .string
            case UInt8(ascii: "{"):
                index += 1
                try members(depth: depth + 1) { _, _, _ in }
                return .object
            case UInt8(ascii: "["):
                index += 1
                try elements(closedBy: UInt8(ascii: "]")) { _ = try $0.value(depth: depth + 1) }
                return .array
            case UInt8(ascii: "t"):
                try literal("true")
                return .true
            case UInt8(ascii: "f"):
                try literal("false")
                return .false
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default:
                try number()
                return .number
            }
        }

        /// An object's members after its `{`, up to its `}`: each one's key (quotes included),
        /// value kind and value range, values at `depth`.
        mutating func members(depth: Int, _ member: (Range<Int>, Kind, Range<Int>) throws -> Void) throws {
            try elements(closedBy: UInt8(ascii: "}")) { scanner in
                let key = try scanner.string()
                scanner.skipWhitespace()
                try scanner.expect(UInt8(ascii: ":"))
                scanner.skipWhitespace()
                let start = scanner.index
                let kind = try scanner.value(depth: depth)
                try member(key, kind, start..<scanner.index)
            }
        }

        /// Comma-separated elements after an opening bracket, up to `closing` (none is fine).
        mutating func elements(closedBy closing: UInt8, _ element: (inout Scanner) throws -> Void) throws {
            skipWhitespace()
            if peek == closing {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try element(&self)
                skipWhitespace()
                guard peek == UInt8(ascii: ",") else { return try expect(closing) }
                index += 1
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw invalid() }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw invalid() }
            index += count
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
        mutating func number() throws {
            func digits() throws {
                guard let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw invalid() }
                while let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            }
            if peek == UInt8(ascii: "-") { index += 1 }
            if peek == UInt8(ascii: "0") {
                index += 1
            } else {
                try digits()
            }
            if peek == UInt8(ascii: ".") {
                index += 1
                try digits()
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                try digits()
            }
        }

        /// A string, quotes included; returns its range. Control characters must be escaped;
        /// escapes must be one of JSON's.
        mutating func string() throws -> Range<Int> {
            let start = index
            try expect(UInt8(ascii: "\""))
            while true {
                guard let byte = peek else { throw invalid() }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return start..<index
                case UInt8(ascii: "\\"):
                    guard let escape = peek else { throw invalid() }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        let code = try escapedCode()
                        // A surrogate only as a pair, high then low (when asked): an escape of
                        // half a character is not Unicode text, as raw surrogate bytes are not
                        // UTF-8 (`utf8Sequence`).
                        guard pairsSurrogates else { continue }
                        if (0xD800..<0xDC00).contains(code) {
                            let at = index
                            guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                                throw unpaired(code, at: at - 6)
                            }
                            index += 2
                            guard (0xDC00..<0xE000).contains(try escapedCode()) else { throw unpaired(code, at: at - 6) }
                        } else if (0xDC00..<0xE000).contains(code) {
                            throw unpaired(code, at: index - 6)
                        }
                    default:
                        throw invalid()
                    }
                case 0..<0x20:
                    throw invalid()
                case 0x80...0xFF:
                    try utf8Sequence(after: byte)
                default:
                    continue
                }
            }
        }

        /// The four hex digits of a `\u` escape (after the `u`), as a number.
        mutating func escapedCode() throws -> Int {
            guard index + 4 <= bytes.count, bytes[index..<(index + 4)].allSatisfy({ $0.isHexDigit }) else { throw invalid() }
            index += 4
            return JSONMembers.hex(bytes[(index - 4)..<index])
        }

        func unpaired(_ code: Int, at offset: Int) -> JSONLines.InputError {
            JSONLines.InputError("not valid JSON: an unpaired surrogate, \\u\(String(code, radix: 16, uppercase: true)), at byte \(offset + 1) (a character above U+FFFF is escaped as a pair, \\uD83D\\uDE00)")
        }

        /// The bytes after `lead` of one UTF-8 sequence (RFC 3629: no overlong forms, no
        /// surrogates, nothing above U+10FFFF); JSON text is UTF-8.
        mutating func utf8Sequence(after lead: UInt8) throws {
            let (count, second): (Int, ClosedRange<UInt8>)
            switch lead {
            case 0xC2...0xDF: (count, second) = (1, 0x80...0xBF)
            case 0xE0: (count, second) = (2, 0xA0...0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (count, second) = (2, 0x80...0xBF)
            case 0xED: (count, second) = (2, 0x80...0x9F)
            case 0xF0: (count, second) = (3, 0x90...0xBF)
            case 0xF1...0xF3: (count, second) = (3, 0x80...0xBF)
            case 0xF4: (count, second) = (3, 0x80...0x8F)
            default: throw notUTF8()
            }
            guard index + count <= bytes.count, second.contains(bytes[index]),
                bytes[(index + 1)..<(index + count)].allSatisfy({ (0x80...0xBF).contains($0) })
            else { throw notUTF8() }
            index += count
        }

        func notUTF8() -> JSONLines.InputError { JSONLines.InputError("not valid UTF-8 (at byte \(index))") }
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self | 0x20)
    }
}
