import Dugong
import DugongStore
import Foundation

/// The JSON Lines the tool reads and writes. See the README's "The dugong tool".
enum JSONLines {
    /// ISO 8601, UTC, milliseconds: `2024-11-29T06:44:55.123Z`, from the stored integer
    /// milliseconds, in the calendar the input is read in (proleptic Gregorian).
    static func timestamp(_ event: StoredEvent) -> String {
        PayloadTimestamp.millisecondString(event.timestampMilliseconds)
    }

    /// A UUID from its 36-character text (`UUID(uuidString:)` uses `sscanf` here, which
    /// importing spent much of its time in).
    static func uuid(parsing text: String) -> UUID? {
        var text = text
        return text.withUTF8(uuid(utf8:))
    }

    /// A UUID from the UTF-8 of its 36-character text.
    static func uuid(utf8 bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard bytes.count == 36 else { return nil }
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let valid = withUnsafeMutableBytes(of: &value) { raw -> Bool in
            var byte = 0
            var index = 0
            while index < 36 {
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard bytes[index] == UInt8(ascii: "-") else { return false }
                    index += 1
                    continue
                }
                guard let high = hexValue(bytes[index]), let low = hexValue(bytes[index + 1]) else { return false }
                raw[byte] = high << 4 | low
                byte += 1
                index += 2
            }
            return true
        }
        return valid ? UUID(uuid: value) : nil
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A timestamp as the tool prints it (`2024-11-29T06:44:55.123Z`, read without a date
    /// parser: importing spends its time here otherwise), or any other ISO 8601 date.
    static func timestamp(parsing text: String) -> Date? {
        var text = text
        return text.withUTF8(timestamp(utf8:))
            ?? PayloadTimestamp.milliseconds(from: text).flatMap { $0.magnitude < exactMilliseconds ? Date(millisecondsSince1970: $0) : nil }
    }

    /// How far from 1970, in milliseconds, a `Date` (seconds in a `Double`) holds every whole
    /// millisecond exactly: 2^50 ms, about 35,678 years. Beyond it an event's timestamp would be
    /// stored as a neighbouring millisecond (found by a black-box run: `+300000-01-01T00:00:00.123Z`
    /// read back as `.124Z`, with exit 0), so the tool refuses it.
    static let exactMilliseconds: UInt64 = 1 << 50

    private static let daysInMonth = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    /// The common case of ``timestamp(parsing:)``, `2024-11-29T06:44:55.123Z`, from its UTF-8;
    /// `nil` for any other spelling.
    static func timestamp(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        guard bytes.count == 24, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes[19] == UInt8(ascii: "."),
            bytes[23] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = Int(bytes[index]) - 48
                guard digit >= 0, digit <= 9 else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), let millisecond = number(20..<23),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        guard day <= daysInMonth[month - 1] + (month == 2 && leap ? 1 : 0) else { return nil }
        // Days from 1970-01-01 to the date (the proleptic Gregorian calendar, by eras of 400 years).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let milliseconds = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millisecond
        return Date(millisecondsSince1970: Int64(milliseconds))
    }

    /// Stored bytes as the JSON text of a line: the bytes themselves, verbatim, when they are
    /// JSON on one line with no whitespace around it (so that import, which stores a member's
    /// value from its first byte to its last, stores them again byte for byte);
    /// `{"base64": "…"}` otherwise (also for JSON that is itself a single-key `base64` object
    /// with a string value,
    /// so that it is not taken for raw bytes, and for JSON nested deeper than
    /// ``maximumDepth``); `null` when empty.
    static func jsonText(of bytes: Data) -> String {
        guard !bytes.isEmpty else { return "null" }
        // The line adds a level: deeper values would make a line JSON parsers refuse.
        let raw = [UInt8](bytes)
        let whitespace: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
        if !raw.contains(0x0A), !raw.contains(0x0D), !whitespace.contains(raw[0]), !whitespace.contains(raw[raw.count - 1]),
            let kind = JSONMembers.kind(ofValue: raw, maximumDepth: maximumDepth)
        {
            switch kind {
            case .null:
                break  // the text "null": not to be read back as no bytes
            case .object where (try? JSONMembers(raw))?.isBase64Object ?? false:
                break
            default:
                return String(decoding: raw, as: UTF8.self)
            }
        }
        return "{\"base64\":\"" + bytes.base64EncodedString() + "\"}"
    }

    /// A random (version 4) UUID (``EventID/random()``: Foundation's `UUID()` opens a random
    /// device for each one, which dominated importing lines without ids).
    static func newID() -> UUID { EventID.random() }

    /// The deepest data or metadata printed as JSON (deeper is printed as base64): the line
    /// around it must stay within the 512 levels common JSON parsers accept.
    static let maximumDepth = 500

    /// The bytes to store for a member of an input line (the inverse of ``jsonText(of:)``):
    /// its raw JSON text, except `null` (no bytes) and `{"base64": "…"}` (the decoded bytes).
    static func bytes(of object: JSONMembers, _ key: String) throws -> Data {
        guard let member = object[key], member.kind != .null else { return Data() }
        if object.isBase64Object(key) {
            let inner = try JSONMembers(Array(object.raw(key)!))
            guard let text = try inner.string("base64"), let data = decodeBase64(text) else {
                throw InputError("\"base64\" holds invalid base64 (standard base64 with its padding, as `export` prints it)")
            }
            return data
        }
        return Data(object.raw(key)!)
    }

    /// The bytes of standard base64 as `export` writes it (RFC 4648 §4): the standard alphabet
    /// in groups of four, `=` only to pad the last group, and no bits set past the last byte.
    /// Anything else is `nil`: there is no one right guess at what it meant (Foundation's
    /// decoder took an `=` inside a group and made up bytes).
    static func decodeBase64(_ text: String) -> Data? {
        let characters = Array(text.utf8)
        guard characters.count % 4 == 0 else { return nil }
        func sextet(_ character: UInt8) -> UInt32? {
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(character - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(character - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(character - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): 62
            case UInt8(ascii: "/"): 63
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(characters.count / 4 * 3)
        for start in stride(from: 0, to: characters.count, by: 4) {
            let group = characters[start..<start + 4]
            let isLast = start + 4 == characters.count
            let padding = isLast ? group.reversed().prefix { $0 == UInt8(ascii: "=") }.count : 0
            guard padding <= 2 else { return nil }
            var value: UInt32 = 0
            for character in group.prefix(4 - padding) {
                guard let bits = sextet(character) else { return nil }
                value = value << 6 | bits
            }
            value <<= UInt32(6 * padding)
            let kept = 3 - padding
            // Bits past the last byte must be 0 (else two texts would mean the same bytes).
            guard value & ((1 << UInt32(8 * (3 - kept))) - 1) == 0 else { return nil }
            for index in 0..<kept { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(16 - 8 * index))) }
        }
        return Data(bytes)
    }

    /// A stream's truncation as `export` prints it and `import` reads and acknowledges it.
    static func truncation(of stream: String, before version: Int) -> String {
        "{\"stream\":\(quoted(stream)),\"truncateBefore\":\(version)}"
    }

    /// A stream's tombstone as `export` prints it and `import` reads and acknowledges it.
    static func tombstone(of stream: String) -> String { "{\"stream\":\(quoted(stream)),\"tombstone\":true}" }

    static func quoted(_ text: String) -> String {
        String(decoding: (try? JSONValue.string(text).jsonData()) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    static func text(_ value: JSONValue) -> String {
        String(decoding: (try? value.jsonData()) ?? Data("null".utf8), as: UTF8.self)
    }

    /// One event as `read` and `read-all` print it; `position` is left out for `export`.
    static func line(for event: StoredEvent, withPosition: Bool = true, cursor: LogCursor? = nil) -> String {
        var fields = ["\"stream\":" + quoted(event.stream), "\"version\":\(event.version)"]
        if withPosition { fields.append("\"position\":\(event.position)") }
        if let cursor { fields.append("\"cursor\":\"\(cursor)\"") }
        fields += [
            "\"id\":" + quoted(event.id.uuidString.lowercased()),
            "\"type\":" + quoted(event.type),
            "\"timestamp\":" + quoted(timestamp(event)),
            "\"data\":" + jsonText(of: event.data),
            "\"metadata\":" + jsonText(of: event.metadata),
        ]
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// The acknowledgement of an imported line skipped because the store holds its event: as a
    /// duplicate commit's, at the stored event's version and position.
    static func acknowledgement(ofStored event: StoredEvent) -> String {
        "{\"stream\":\(quoted(event.stream)),\"firstVersion\":\(event.version),\"lastVersion\":\(event.version),"
            + "\"firstPosition\":\(event.position),\"lastPosition\":\(event.position),\"duplicate\":true}"
    }

    /// The acknowledgement of a durable commit.
    static func line(for commit: Commit) -> String {
        "{\"stream\":\(quoted(commit.stream)),\"firstVersion\":\(commit.firstVersion),\"lastVersion\":\(commit.lastVersion),"
            + "\"firstPosition\":\(commit.firstPosition),\"lastPosition\":\(commit.lastPosition)"
            + (commit.wasDuplicate ? ",\"duplicate\":true}" : "}")
    }

    /// A bad input line: what is wrong with it.
    struct InputError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One parsed input line.
    enum Input {
        /// An event; `version` when the line gives one (export's lines do); `idGiven` when its
        /// id is the line's (else a new one).
        case event(stream: String?, version: Int?, NewEvent, idGiven: Bool)
        /// `{"stream": …, "truncateBefore": n}` or `{"stream": …, "tombstone": true}` (export's last lines).
        case truncate(stream: String, before: Int)
        case tombstone(stream: String)
    }

    /// The fields an event line may have (`position` and `cursor`, printed by `read-all`, are
    /// ignored).
    private static let eventFields = ["stream", "version", "position", "cursor", "id", "type", "timestamp", "data", "metadata"]

    /// The name (a stream's, an event type's) in member `key`, checked as a store checks names
    /// (so that the line, not the commit, is named when one is refused); nil when absent.
    private static func name(_ key: String, in object: JSONMembers) throws -> String? {
        guard object[key] != nil else { return nil }
        let name: String
        do {
            guard let text = try object.string(key) else { return nil }
            name = text
        } catch {
            throw InputError("\"\(key)\" must be a non-empty string of valid Unicode (\(error))")
        }
        let bytes = name.utf8.count
        guard bytes > 0 else { throw InputError("\"\(key)\" must be a non-empty string") }
        guard bytes <= EventLog.Options.maximumNameLength else {
            throw InputError("\"\(key)\" is \(bytes) bytes long, over the maximum of \(EventLog.Options.maximumNameLength)")
        }
        guard !name.utf8.contains(0) else { throw InputError("\"\(key)\" contains a NUL character (\\u0000)") }
        return name
    }

    /// Parses an input line: an event (`type`, optional `data`, `metadata`, `id`, `timestamp`,
    /// `version`, and `stream` for import; `position` is ignored) or a lifecycle change
    /// (`stream` with `truncateBefore` or `tombstone`). Any other field is an error: a
    /// misspelled field would otherwise drop what it holds.
    static func parse(_ line: [UInt8]) throws -> Input {
        let object = try JSONMembers(line)
        let stream = try name("stream", in: object)
        if object["truncateBefore"] != nil || object["tombstone"] != nil {
            let lifecycle = ["truncateBefore", "tombstone"].filter { object[$0] != nil }
            let keys = object.keys
            guard object["type"] == nil else {
                throw InputError("a line is an event (\"type\") or a lifecycle change (\"\(lifecycle[0])\"), not both")
            }
            guard lifecycle.count == 1 else { throw InputError("a line has \"truncateBefore\" or \"tombstone\", not both") }
            guard let stream else { throw InputError("\"\(lifecycle[0])\" needs a \"stream\"") }
            if let unknown = keys.sorted().first(where: { !["stream", lifecycle[0]].contains($0) }) {
                throw InputError("unknown field \"\(unknown)\" in a lifecycle line")
            }
            let problem = "\"truncateBefore\" must be a version (an integer, 1 or more)"
            if let version = try object.integer("truncateBefore", problem) {
                guard version >= 1 else { throw InputError(problem) }
                return .truncate(stream: stream, before: version)
            }
            guard object["tombstone"]?.kind == .true else { throw InputError("\"tombstone\" must be true") }
            return .tombstone(stream: stream)
        }
        if let unknown = object.unknownKey(among: eventFields) {
            throw InputError("unknown field \"\(unknown)\" (an event has \(eventFields.sorted().joined(separator: ", ")))")
        }
        guard let type = try name("type", in: object) else { throw InputError("\"type\" must be a non-empty string") }
        let versionProblem = "\"version\" must be an integer, 1 to \(EventLog.maximumVersion)"
        let version = try object.integer("version", versionProblem)
        if let version, version < 1 || version > EventLog.maximumVersion { throw InputError(versionProblem) }
        var id: UUID?
        if object["id"] != nil {
            guard let parsed = object.parsedString("id", uuid(utf8:)) else { throw InputError("\"id\" must be a UUID string") }
            id = parsed
        }
        var event = NewEvent(
            id: id ?? newID(), type: type, data: try bytes(of: object, "data"), metadata: try bytes(of: object, "metadata"))
        if object["timestamp"] != nil {
            guard
                let date = object.parsedString("timestamp", timestamp(utf8:))
                    ?? (try? object.string("timestamp")).flatMap({ $0.flatMap(timestamp(parsing:)) })
            else {
                throw InputError(
                    "\"timestamp\" must be an ISO 8601 date like 2024-11-29T06:44:55.123Z (a year past 9999 with its sign: +010000-01-01T00:00:00Z), within 2^50 ms (about 35,678 years) of 1970, where a timestamp is kept to the millisecond")
            }
            event.timestamp = date
        }
        return .event(stream: stream, version: version, event, idGiven: id != nil)
    }
}
