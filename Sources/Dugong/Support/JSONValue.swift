import Foundation

/// A JSON value: what event metadata and upcasted payloads are made of.
///
/// Numbers are kept as `Int` when they are whole numbers that fit one (so that
/// `{"amount": 100}` round-trips as `100`, not `100.0`), as `UInt64` when they are whole numbers
/// above `Int.max` that fit one, and as `Double` otherwise: every `Int64`, `UInt64` and `Double`
/// a payload holds comes back exactly.
///
/// ```swift
/// let metadata: JSONObject = ["source": "web", "attempt": 2]
/// ```
///
/// Like JSON, it has one kind of number: `.int(1)`, `.uint(1)` and `.double(1.0)` are equal
/// (and hash alike), so a value is equal to itself read back from its JSON, whichever case the
/// decoder picks.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    /// A whole number above `Int.max` (decoding makes `.int` for every smaller one).
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The value under `key` when this is an object, otherwise `nil`.
    public subscript(key: String) -> JSONValue? {
        get {
            if case .object(let object) = self { return object[key] }
            return nil
        }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }
}

extension JSONValue {
    /// A number in one canonical case, by the number its JSON text says: whole numbers that
    /// fit an `Int` as `.int`, larger ones that fit a `UInt64` as `.uint`, every other as
    /// `.double`. A `Double` counts as the shortest decimal that reads back as it (what its
    /// JSON says): `.double(-1.801439850948205e16)` is `.int(-18014398509482050)`, which is what
    /// decoding its JSON gives.
    private var canonical: JSONValue {
        switch self {
        case .uint(let value): if let small = Int(exactly: value) { return .int(small) }
        case .double(let value):
            let decimal = value.shortestDecimal
            if let whole = Int(decimal) { return .int(whole) }
            if let whole = UInt64(decimal) { return .uint(whole) }
        default: break
        }
        return self
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a.canonical, b.canonical) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.uint(let x), .uint(let y)): x == y
        case (.double(let x), .double(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x == y
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch canonical {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .int(let value): hasher.combine(value)
        case .uint(let value): hasher.combine(value)
        case .double(let value): hasher.combine(value)
        case .string(let value): hasher.combine(value)
        case .array(let value): hasher.combine(value)
        case .object(let value): hasher.combine(value)
        }
    }
}

/// A JSON object: string keys to JSON values.
public typealias JSONObject = [String: JSONValue]

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            // JSON's -0 (or -0.0) is a Double's negative zero: as an Int it would lose its sign.
            if value == 0, let double = try? container.decode(Double.self), double.sign == .minus {
                self = .double(double)
            } else {
                self = .int(value)
            }
        } else if let value = try? container.decode(UInt64.self) {
            self = .uint(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode(JSONObject.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .uint(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    /// Parses JSON text into a value.
    public init(json data: Data) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// The value as compact JSON text with sorted keys (deterministic bytes).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

extension Double {
    /// The shortest decimal that reads back as this value, without an exponent (`1e-05` is
    /// `0.00001`, `1e+16` is `10000000000000000`, `2.0` is `2`).
    var shortestDecimal: String {
        var text = "\(self)"
        if text.hasSuffix(".0") { text.removeLast(2) }
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }), let exponent = Int(text[text.index(after: e)...]) else {
            return text
        }
        let negative = text.hasPrefix("-")
        let mantissa = text[..<e].drop { $0 == "-" }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        var digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
        var point = parts[0].count + exponent
        if point <= 0 {
            digits = String(repeating: "0", count: 1 - point) + digits
            point = 1
        }
        if point >= digits.count { return (negative ? "-" : "") + digits + String(repeating: "0", count: point - digits.count) }
        return (negative ? "-" : "") + digits.prefix(point) + "." + digits.dropFirst(point)
    }
}
