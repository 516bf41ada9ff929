import Foundation

/// How event payloads and snapshots become JSON and back, so that every value comes back as it
/// was committed: sorted keys; integers and `Decimal`s with all their digits; `Double`s in the
/// shortest form that reads back the same; dates as ISO 8601 text that reads back as the same
/// `Date` (``PayloadTimestamp``). What JSON cannot hold exactly (NaN, infinities, dates outside
/// the years 0000 to 9999) is refused with ``PayloadCodingError``, never rounded.
public enum PayloadCoding {
    /// An encoder configured as Dugong encodes payloads.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            guard let text = PayloadTimestamp.string(from: date) else {
                throw EncodingError.invalidValue(
                    date, .init(codingPath: encoder.codingPath, debugDescription: "a date outside the years 0000 to 9999, or not finite"))
            }
            var container = encoder.singleValueContainer()
            try container.encode(text)
        }
        return encoder
    }

    /// A decoder configured as Dugong decodes payloads (dates also as older payloads and
    /// snapshots wrote them: ISO 8601 without a fraction, seconds since 2001).
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            if let seconds = try? container.decode(Double.self) { return Date(timeIntervalSinceReferenceDate: seconds) }
            let text = try container.decode(String.self)
            guard let date = PayloadTimestamp.date(from: text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an ISO 8601 date")
            }
            return date
        }
        return decoder
    }

    /// The JSON of `value`.
    ///
    /// - Throws: ``PayloadCodingError/notEncodable(type:path:reason:)`` for a value JSON cannot
    ///   hold exactly.
    public static func encode(_ value: some Encodable) throws -> Data {
        do {
            return try encoder().encode(value)
        } catch let EncodingError.invalidValue(_, context) {
            throw PayloadCodingError.notEncodable(
                type: "\(type(of: value))", path: context.codingPath.map(\.stringValue).joined(separator: "."),
                reason: context.debugDescription)
        }
    }

    /// A value of `type` from its JSON; an absent payload decodes as `{}`.
    public static func decode<T: Decodable>(_ type: T.Type, from payload: Data?) throws -> T {
        try decoder().decode(type, from: payload ?? Data("{}".utf8))
    }
}

/// A payload that cannot be encoded as JSON that reads back the same.
public enum PayloadCodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `path` (dotted coding keys) of a `type` holds a value JSON cannot hold exactly: a NaN or
    /// infinite number, or a date outside the years 0000 to 9999.
    case notEncodable(type: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .notEncodable(let type, let path, let reason):
            "\(type) cannot be encoded: \(path.isEmpty ? "the value" : "'\(path)'") is \(reason)"
        }
    }
}
