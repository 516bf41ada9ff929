import Dugong
import DugongStore
import Foundation

/// The JSON Lines the tool reads and writes. See the README's "The dugong tool".
enum JSONLines {
    private static let timestampFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// ISO 8601, UTC, milliseconds: `2024-11-29T06:44:55.123Z`. Built from the stored integer
    /// milliseconds (formatting a `Date` truncates binary fractions: .008 would print as .007).
    static func timestamp(_ event: StoredEvent) -> String {
        let milliseconds = event.timestampMilliseconds
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let (wholeSeconds, millis) = fraction < 0 ? (seconds - 1, fraction + 1000) : (seconds, fraction)
        let text = Date(timeIntervalSince1970: Double(wholeSeconds)).formatted(Date.ISO8601FormatStyle())
        return String(text.dropLast()) + "." + String(format: "%03d", millis) + "Z"
    }

    /// Stored bytes as a JSON value: the bytes themselves when they are JSON, `{"base64": …}`
    /// otherwise, `null` when empty.
    static func value(of bytes: Data) -> JSONValue {
        guard !bytes.isEmpty else { return .null }
        if let value = try? JSONValue(json: bytes) { return value }
        return ["base64": .string(bytes.base64EncodedString())]
    }

    /// The bytes to store for a JSON value read from input (the inverse of ``value(of:)``).
    static func bytes(of value: JSONValue?) throws -> Data {
        switch value {
        case nil, .null?: return Data()
        case .object(let object)? where object.count == 1:
            if case .string(let text)? = object["base64"] {
                guard let data = Data(base64Encoded: text) else { throw InputError("\"base64\" holds invalid base64") }
                return data
            }
            return try value!.jsonData()
        case let value?: return try value.jsonData()
        }
    }

    static func quoted(_ text: String) -> String {
        String(decoding: (try? JSONValue.string(text).jsonData()) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    static func text(_ value: JSONValue) -> String {
        String(decoding: (try? value.jsonData()) ?? Data("null".utf8), as: UTF8.self)
    }

    /// One event as `read` and `read-all` print it; `position` is left out for `export`.
    static func line(for event: StoredEvent, withPosition: Bool = true) -> String {
        var fields = ["\"stream\":" + quoted(event.stream), "\"version\":\(event.version)"]
        if withPosition { fields.append("\"position\":\(event.position)") }
        fields += [
            "\"id\":" + quoted(event.id.uuidString.lowercased()),
            "\"type\":" + quoted(event.type),
            "\"timestamp\":" + quoted(timestamp(event)),
            "\"data\":" + text(value(of: event.data)),
            "\"metadata\":" + text(value(of: event.metadata)),
        ]
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// The acknowledgement of a durable commit.
    static func line(for commit: Commit) -> String {
        "{\"stream\":\(quoted(commit.stream)),\"firstVersion\":\(commit.firstVersion),\"lastVersion\":\(commit.lastVersion),"
            + "\"firstPosition\":\(commit.firstPosition),\"lastPosition\":\(commit.lastPosition)}"
    }

    /// A bad input line: what is wrong with it.
    struct InputError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One parsed input line.
    enum Input {
        case event(stream: String?, NewEvent)
        /// `{"stream": …, "truncateBefore": n}` or `{"stream": …, "tombstone": true}` (export's last lines).
        case truncate(stream: String, before: Int)
        case tombstone(stream: String)
    }

    /// Parses an input line: `type`, `data`, optional `metadata`, `id`, `timestamp`, and
    /// (for import) `stream`; `version` and `position` are ignored (the store assigns them).
    static func parse(_ line: Substring) throws -> Input {
        let value: JSONValue
        do {
            value = try JSONValue(json: Data(line.utf8))
        } catch {
            throw InputError("not valid JSON")
        }
        guard case .object(let object) = value else { throw InputError("not a JSON object") }
        var stream: String?
        if let field = object["stream"] {
            guard case .string(let name) = field else { throw InputError("\"stream\" must be a string") }
            stream = name
        }
        if object["type"] == nil, let stream {
            if case .int(let version)? = object["truncateBefore"], version >= 1 { return .truncate(stream: stream, before: version) }
            if case .bool(true)? = object["tombstone"] { return .tombstone(stream: stream) }
        }
        guard case .string(let type)? = object["type"], !type.isEmpty else { throw InputError("\"type\" must be a non-empty string") }
        var event = NewEvent(type: type, data: try bytes(of: object["data"]), metadata: try bytes(of: object["metadata"]))
        if let field = object["id"] {
            guard case .string(let text) = field, let id = UUID(uuidString: text) else { throw InputError("\"id\" must be a UUID string") }
            event.id = id
        }
        if let field = object["timestamp"] {
            guard case .string(let text) = field, let date = try? timestampFormat.parse(text) else {
                throw InputError("\"timestamp\" must be an ISO 8601 date like 2024-11-29T06:44:55.123Z")
            }
            event.timestamp = date
        }
        return .event(stream: stream, event)
    }
}
