import Dugong
import Foundation

/// JSON as text, for the page: quoting, an object written member by member, and stored bytes
/// shown as they are.
///
/// Stored data is re-indented token by token, never decoded and encoded again: a number, a
/// string's escapes and the order of keys are shown exactly as stored (a browser's `JSON.parse`
/// would round numbers above 2^53).
enum JSONText {
    /// `text` as a JSON string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            // Below 0x20, and the two separators JavaScript once refused in strings.
            case _ where scalar.value < 0x20 || scalar == "\u{2028}" || scalar == "\u{2029}":
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func quoted(_ text: String?) -> String {
        text.map { quoted($0) } ?? "null"
    }

    /// An object of members already written as JSON (`nil` values are left out).
    static func object(_ members: KeyValuePairs<String, String?>) -> String {
        "{" + members.compactMap { key, value in value.map { quoted(key) + ":" + $0 } }.joined(separator: ",") + "}"
    }

    static func array(_ items: [String]) -> String {
        "[" + items.joined(separator: ",") + "]"
    }

    /// Stored bytes for the page: `{"json": "<indented text>"}` when they are JSON, else
    /// `{"text": "…"}` for other UTF-8, else `{"base64": "…"}`; `{}` for none.
    static func payload(_ bytes: Data) -> String {
        if bytes.isEmpty { return "{}" }
        if (try? JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])) != nil,
            let indented = indented(bytes)
        {
            return "{\"json\":" + quoted(indented) + "}"
        }
        if let text = String(validating: bytes, as: UTF8.self) { return "{\"text\":" + quoted(text) + "}" }
        return "{\"base64\":" + quoted(bytes.base64EncodedString()) + "}"
    }

    /// Valid JSON `bytes` re-indented by two spaces, every token as it was; `nil` when they are
    /// not UTF-8.
    static func indented(_ bytes: Data) -> String? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        var afterOpen = false
        func newline() {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * depth))
        }
        for byte in bytes {
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if afterOpen { newline() }
                out.append(byte)
                depth += 1
                afterOpen = true
                continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if !afterOpen { newline() }
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline()
            case UInt8(ascii: ":"):
                out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
            default:
                if afterOpen { newline() }
                if byte == UInt8(ascii: "\"") { inString = true }
                out.append(byte)
            }
            afterOpen = false
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// How an aggregate's state changed: each leaf whose value differs, by its path.
struct StateDifference: Equatable {
    var path: String
    /// The value before, as JSON (`nil`: there was none).
    var before: String?
    var after: String?

    var json: String {
        // Values as their JSON text, for the page to show as they are.
        JSONText.object(["path": JSONText.quoted(path), "before": JSONText.quoted(before), "after": JSONText.quoted(after)])
    }

    /// The leaves of `after` that differ from `before`'s (objects compared key by key, arrays
    /// item by item); the bookkeeping fields the query service adds are left out.
    static func between(_ before: JSONValue?, _ after: JSONValue?) -> [StateDifference] {
        var differences: [StateDifference] = []
        compare(before, after, at: "", into: &differences)
        return differences.filter { $0.path != "sequenceNumber" }
    }

    private static func compare(_ before: JSONValue?, _ after: JSONValue?, at path: String, into differences: inout [StateDifference]) {
        switch (before, after) {
        case (.object(let a)?, .object(let b)?):
            for key in Set(a.keys).union(b.keys).sorted() {
                compare(a[key], b[key], at: path.isEmpty ? key : path + "." + key, into: &differences)
            }
        case (.array(let a)?, .array(let b)?):
            for index in 0..<max(a.count, b.count) {
                let old: JSONValue? = index < a.count ? a[index] : Optional.none
                let new: JSONValue? = index < b.count ? b[index] : Optional.none
                compare(old, new, at: path + "[\(index)]", into: &differences)
            }
        default:
            guard before != after else { return }
            differences.append(StateDifference(path: path.isEmpty ? "(state)" : path, before: before.map(text), after: after.map(text)))
        }
    }

    private static func text(_ value: JSONValue) -> String {
        (try? value.jsonData()).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}
