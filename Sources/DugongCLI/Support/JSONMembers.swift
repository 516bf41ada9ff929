import Foundation

/// The raw text of a JSON object's members: `import` stores an event's data and metadata as the
/// very bytes the input line holds (no re-encoding: key order, number spelling and escapes stay
/// as they were), so that `export | import` keeps every payload byte for byte.
enum JSONMembers {
    /// The byte range of each member's value in `bytes`, a JSON object that has been checked to
    /// be valid JSON. A key that appears twice is an error (which of them would count?).
    static func spans(in bytes: [UInt8]) throws -> [String: Range<Int>] {
        var cursor = Cursor(bytes: bytes)
        cursor.skipWhitespace()
        guard cursor.take(UInt8(ascii: "{")) else { throw JSONLines.InputError("not a JSON object") }
        var spans: [String: Range<Int>] = [:]
        cursor.skipWhitespace()
        if cursor.take(UInt8(ascii: "}")) { return spans }
        while true {
            cursor.skipWhitespace()
            let keyStart = cursor.index
            cursor.skipString()
            let keyText = Data(bytes[keyStart..<cursor.index])
            guard let key = try? JSONDecoder().decode(String.self, from: keyText) else { throw JSONLines.InputError("not valid JSON") }
            cursor.skipWhitespace()
            guard cursor.take(UInt8(ascii: ":")) else { throw JSONLines.InputError("not valid JSON") }
            cursor.skipWhitespace()
            let valueStart = cursor.index
            cursor.skipValue()
            guard spans[key] == nil else { throw JSONLines.InputError("field \"\(key)\" appears twice") }
            spans[key] = valueStart..<cursor.index
            cursor.skipWhitespace()
            if cursor.take(UInt8(ascii: ",")) { continue }
            guard cursor.take(UInt8(ascii: "}")) else { throw JSONLines.InputError("not valid JSON") }
            return spans
        }
    }

    /// The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
    /// count).
    static func depth(of bytes: Data) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// Moves over valid JSON text.
    private struct Cursor {
        let bytes: [UInt8]
        var index = 0

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        /// From an opening quote to after the closing one.
        mutating func skipString() {
            index += 1
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            index = min(index + 1, bytes.count)
        }

        mutating func skipValue() {
            guard index < bytes.count else { return }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        skipString()
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                    default:
                        break
                    }
                    index += 1
                    if depth == 0 { return }
                }
            default:
                // A number, true, false or null: up to the next delimiter.
                while index < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                    index += 1
                }
            }
        }
    }
}
