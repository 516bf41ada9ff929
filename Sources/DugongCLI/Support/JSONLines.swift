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

    /// Stored bytes as the JSON text of a line: the bytes themselves, verbatim, when they are
    /// JSON on one line (so that import stores them again byte for byte); `{"base64": "…"}`
    /// otherwise (also for JSON that is itself a single-key `base64` object, so that it is not
    /// taken for raw bytes, and for JSON nested deeper than ``maximumDepth``); `null` when
    /// empty.
    static func jsonText(of bytes: Data) -> String {
        guard !bytes.isEmpty else { return "null" }
        // The line adds a level: deeper values would make a line JSON parsers refuse.
        if !bytes.contains(0x0A), !bytes.contains(0x0D), JSONMembers.depth(of: bytes) < maximumDepth,
            let value = try? JSONValue(json: bytes)
        {
            switch value {
            case .null:
                break  // the text "null": not to be read back as no bytes
            case .object(let object) where object.count == 1 && object["base64"] != nil:
                break
            default:
                return String(decoding: bytes, as: UTF8.self)
            }
        }
        return "{\"base64\":\"" + bytes.base64EncodedString() + "\"}"
    }

    /// The deepest data or metadata printed as JSON (deeper is printed as base64): the line
    /// around it must stay within the 512 levels common JSON parsers accept.
    static let maximumDepth = 500

    /// The bytes to store for a member of an input line (the inverse of ``jsonText(of:)``): its
    /// raw text, except `null` (no bytes) and `{"base64": "…"}` (the decoded bytes).
    static func bytes(of value: JSONValue?, raw: ArraySlice<UInt8>?) throws -> Data {
        switch value {
        case nil, .null?:
            return Data()
        case .object(let object)? where object.count == 1 && object["base64"] != nil:
            guard case .string(let text)? = object["base64"], let data = Data(base64Encoded: text) else {
                throw InputError("\"base64\" holds invalid base64")
            }
            return data
        case let value?:
            if let raw { return Data(raw) }
            return try value.jsonData()
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
            "\"data\":" + jsonText(of: event.data),
            "\"metadata\":" + jsonText(of: event.metadata),
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
        /// An event; `version` when the line gives one (export's lines do).
        case event(stream: String?, version: Int?, NewEvent)
        /// `{"stream": …, "truncateBefore": n}` or `{"stream": …, "tombstone": true}` (export's last lines).
        case truncate(stream: String, before: Int)
        case tombstone(stream: String)
    }

    /// The fields an event line may have (`position`, printed by `read-all`, is ignored).
    private static let eventFields: Set<String> = ["stream", "version", "position", "id", "type", "timestamp", "data", "metadata"]

    /// Parses an input line: an event (`type`, optional `data`, `metadata`, `id`, `timestamp`,
    /// `version`, and `stream` for import; `position` is ignored) or a lifecycle change
    /// (`stream` with `truncateBefore` or `tombstone`). Any other field is an error: a
    /// misspelled field would otherwise drop what it holds.
    static func parse(_ line: Substring) throws -> Input {
        let value: JSONValue
        do {
            value = try JSONValue(json: Data(line.utf8))
        } catch {
            throw InputError("not valid JSON")
        }
        guard case .object(let object) = value else { throw InputError("not a JSON object") }
        let raw = Array(line.utf8)
        let spans = try JSONMembers.spans(in: raw)
        var stream: String?
        if let field = object["stream"] {
            guard case .string(let name) = field, !name.isEmpty else { throw InputError("\"stream\" must be a non-empty string") }
            stream = name
        }
        let lifecycle = ["truncateBefore", "tombstone"].filter { object[$0] != nil }
        if !lifecycle.isEmpty {
            guard object["type"] == nil else {
                throw InputError("a line is an event (\"type\") or a lifecycle change (\"\(lifecycle[0])\"), not both")
            }
            guard lifecycle.count == 1 else { throw InputError("a line has \"truncateBefore\" or \"tombstone\", not both") }
            guard let stream else { throw InputError("\"\(lifecycle[0])\" needs a \"stream\"") }
            if let unknown = object.keys.sorted().first(where: { !["stream", lifecycle[0]].contains($0) }) {
                throw InputError("unknown field \"\(unknown)\" in a lifecycle line")
            }
            if case .int(let version)? = object["truncateBefore"] {
                guard version >= 1 else { throw InputError("\"truncateBefore\" must be a version (an integer, 1 or more)") }
                return .truncate(stream: stream, before: version)
            }
            if object["truncateBefore"] != nil { throw InputError("\"truncateBefore\" must be a version (an integer, 1 or more)") }
            guard case .bool(true)? = object["tombstone"] else { throw InputError("\"tombstone\" must be true") }
            return .tombstone(stream: stream)
        }
        if let unknown = object.keys.sorted().first(where: { !eventFields.contains($0) }) {
            throw InputError("unknown field \"\(unknown)\" (an event has \(eventFields.sorted().joined(separator: ", ")))")
        }
        guard case .string(let type)? = object["type"], !type.isEmpty else { throw InputError("\"type\" must be a non-empty string") }
        var version: Int?
        if let field = object["version"] {
            guard case .int(let number) = field, number >= 1 else { throw InputError("\"version\" must be an integer, 1 or more") }
            version = number
        }
        var event = NewEvent(
            type: type, data: try bytes(of: object["data"], raw: spans["data"].map { raw[$0] }),
            metadata: try bytes(of: object["metadata"], raw: spans["metadata"].map { raw[$0] }))
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
        return .event(stream: stream, version: version, event)
    }
}
