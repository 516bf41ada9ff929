import Dugong
import DugongStore
import Foundation

/// Where the Studio reads: an embedded store (``StoreBrowser``) or a PostgreSQL database
/// (`PostgresBrowser`). Every answer is JSON text for the page, a bounded page of it.
///
/// Cursors of the global log are text, as the source writes them (a position for an embedded
/// store, `transaction:position` for PostgreSQL): the page hands them back as it got them.
protocol StudioSource: Sendable {
    /// The application's aggregates, when the Studio is embedded: states, diffs.
    var aggregates: AggregateQueryService? { get }
    func overview() async throws -> String
    func categories() async throws -> String
    /// `category`: nil for any; "" for streams without one (no "/" in the name). `after` and
    /// `afterCheck` are a page's `next` and `nextCheck` (``StreamListCheck``): when the streams
    /// before `after` are no longer the ones the page saw, the answer starts again from the
    /// first stream and says `"restarted": true`, instead of skipping or repeating streams.
    func streams(search: String, category: String?, after: Int, afterCheck: String?, limit: Int) async throws -> String
    /// `nil`: no such stream.
    func stream(_ name: String, from version: Int, limit: Int) async throws -> String?
    func log(from cursor: String?, limit: Int, filter: LogFilter) async throws -> String
    func checkpoints() async throws -> String
    /// The stream's event at `version` as the framework reads it; `nil` when there is none.
    func domainEvent(stream name: String, version: Int) async throws -> SerializedDomainEvent?
    /// The stream's last version at or before `milliseconds`.
    func version(of name: String, asOf milliseconds: Int64) async throws -> Int?
    func verify() async throws -> String
    func compact() async throws -> String

    /// The cursor after the last event readable now.
    func tailStart() async throws -> String
    /// Events from `cursor` on (at most 100, and about ``PageRows/maximumBytes``) as JSON, each
    /// with the cursor after it, and the cursor after them all.
    func tailPage(from cursor: String, filter: LogFilter) async throws -> (events: [(json: String, next: String)], next: String)
    /// Returns once an event at `cursor` or later is readable.
    func waitForEvents(from cursor: String) async throws
    /// Damage a read of this Studio met (the overview's health shows it from then on).
    func noteDamage(_ description: String)
}

extension StudioSource {
    func noteDamage(_ description: String) {}
}

/// What the log's page is filtered by.
struct LogFilter: Sendable {
    var type: String?
    var streamPrefix: String?
    /// Milliseconds since 1970: events at or after `since` and before `until` (exclusive, as
    /// `dugong read-all --until`).
    var since: Int64?
    var until: Int64?

    /// Types and names compared by bytes, as the store tells them apart (`String`'s `==` and
    /// `hasPrefix` compare canonically equivalent text as equal, and Characters, not bytes).
    func admits(_ event: StoredEvent) -> Bool {
        if let type, !event.type.utf8.elementsEqual(type.utf8) { return false }
        if let streamPrefix, !event.stream.utf8.starts(with: streamPrefix.utf8) { return false }
        if let since, event.timestampMilliseconds < since { return false }
        if let until, event.timestampMilliseconds >= until { return false }
        return true
    }
}

/// The rows of a page, bounded by their number and by their bytes (an event may hold
/// megabytes): at least one row always fits.
struct PageRows {
    static let maximumBytes = 2 << 20
    let limit: Int
    private(set) var rows: [String] = []
    private var bytes = 0

    init(limit: Int) {
        self.limit = limit
    }

    var isFull: Bool { rows.count >= limit || bytes >= Self.maximumBytes }
    var isEmpty: Bool { rows.isEmpty }

    /// Adds `row` unless the page is full or the row would take it past its bytes.
    mutating func add(_ row: String) -> Bool {
        guard rows.count < limit, rows.isEmpty || bytes + row.utf8.count <= Self.maximumBytes else { return false }
        rows.append(row)
        bytes += row.utf8.count
        return true
    }

    var json: String { JSONText.array(rows) }
}

/// A request the source cannot answer as asked: a 4xx with its message.
struct Refusal: Error {
    /// 400: a parameter; 404: nothing there; 409: not on this kind of store.
    let status: Int
    let message: String

    static func badParameter(_ message: String) -> Refusal { Refusal(status: 400, message: message) }
}

extension StudioSource {
    /// The state before and after the stream's event at `version`, what changed, and the
    /// command context; `nil` when the stream has no such aggregate event or the Studio does
    /// not know the application's aggregates.
    func aggregateEvent(stream name: String, version: Int) async throws -> String? {
        guard let aggregates, let id = AggregateStreamName.streamID(of: name),
            let event = try await domainEvent(stream: name, version: version)
        else { return nil }
        func state(_ sequenceNumber: Int) async throws -> JSONValue? {
            guard sequenceNumber >= 1 else { return nil }
            do {
                return try await aggregates.state(
                    of: id.aggregateType, id: id.aggregateID, origin: id.origin, tenantID: id.tenantID, asOf: sequenceNumber)
            } catch QueryError.unknownAggregateType(let origin, let type) {
                // A stream named like an aggregate's (the framework's checkpoints are) whose type
                // the Studio was not given: nothing to show, not a failure (404).
                throw Refusal(status: 404, message: "'\(name)' is not a stream of an aggregate type the Studio knows (\(type) of origin \(origin))")
            } catch let error as RepositoryError {
                // A state the stream's truncation hides (no snapshot restores it): gone (410).
                guard case .truncated = error else { throw error }
                throw Refusal(status: 410, message: "\(error)")
            }
        }
        // The state before the stream's first visible event may be hidden (truncated, and no
        // snapshot restores it) while the state after it is not: shown as hidden, not as gone.
        var beforeHidden = false
        let before: JSONValue?
        do {
            before = try await state(version - 1)
        } catch let refusal as Refusal where refusal.status == 410 {
            before = nil
            beforeHidden = true
        }
        let after = try await state(version)
        func text(_ value: JSONValue?) -> String {
            guard let value, let data = try? value.jsonData() else { return "null" }
            return JSONText.quoted(JSONText.indented(data) ?? "")
        }
        return JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(version)",
            "before": text(before), "beforeHidden": "\(beforeHidden)", "after": text(after),
            "changes": JSONText.array(beforeHidden ? [] : StateDifference.between(before, after).map(\.json)),
            "context": JSONText.object([
                "correlationID": JSONText.quoted(event.correlationID),
                "triggeredByEventID": JSONText.quoted(event.triggeredByEventID?.uuidString.lowercased()),
                "triggeredByUserID": JSONText.quoted(event.triggeredByUserID),
            ]),
        ])
    }

    /// Whether stream `name` contains `search` (every name when it is empty), case aside,
    /// compared by the bytes of their lowercase forms (as categories are told apart by bytes).
    /// (Foundation's string searches on Linux stop at a NUL: a search for "1" and a NUL found
    /// the names ending in "1". Found by a black-box run.)
    static func matches(_ name: String, search: String) -> Bool {
        search.isEmpty || name.lowercased().utf8.firstRange(of: search.lowercased().utf8) != nil
    }

    /// Whether stream `name` is in `category` (nil: any; "": none, no "/" in the name), as
    /// ``categories(of:)`` counts them.
    static func isIn(_ category: String?, _ name: String) -> Bool {
        guard let category else { return true }
        return categoryBytes(of: name).elementsEqual(category.utf8)
    }

    /// The bytes of a name's category: those before its first `/` ("" without one).
    static func categoryBytes(of name: String) -> Substring.UTF8View {
        let bytes = name[...].utf8
        return bytes[..<(bytes.firstIndex(of: UInt8(ascii: "/")) ?? bytes.startIndex)]
    }

    /// Categories (the part of a name before its first `/`) with their numbers of streams,
    /// told apart by their bytes as the filter tells them (keyed by `String`, `café` in NFC and
    /// NFD were one button that listed only one of them).
    static func categories(of names: some Sequence<String>) -> String {
        var counts: [[UInt8]: Int] = [:]
        for name in names {
            counts[Array(categoryBytes(of: name)), default: 0] += 1
        }
        return JSONText.array(
            counts.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { category, streams in
                JSONText.object(["category": JSONText.quoted(String(decoding: category, as: UTF8.self)), "streams": "\(streams)"])
            })
    }

    /// A stream's row in the streams list.
    static func streamRow(_ name: String, version: Int, firstVisibleVersion: Int, tombstoned: Bool, empty: Bool) -> String {
        JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(version)", "firstVisibleVersion": "\(firstVisibleVersion)",
            "tombstoned": "\(tombstoned)", "empty": "\(empty)",
        ])
    }

    /// A checkpoint's position as stored (`{"position": P, "transaction": T}`), `nil` when unreadable.
    static func checkpointCursor(_ data: Data) -> LogCursor? {
        func number(_ value: JSONValue?) -> UInt64? {
            switch value {
            case .int(let number)?: number >= 0 ? UInt64(number) : nil
            case .uint(let number)?: number
            default: nil
            }
        }
        guard let value = try? JSONValue(json: data), let position = number(value["position"]) else { return nil }
        return LogCursor(transaction: number(value["transaction"]) ?? 0, position: position)
    }

    /// The framework's checkpoints' category.
    static var checkpointCategory: String {
        AggregateStreamName.category(origin: Checkpoint.origin, aggregateType: "Checkpoint", tenantID: nil)
    }
}

extension StoredEvent {
    /// Every field of the event, the framework's envelope when its metadata holds one,
    /// `next`: the log cursor after it, and `hidden`: whether its stream's reads no longer show
    /// it (truncated, deleted or tombstoned; the global log still holds it). With `mayBeHidden`
    /// (an event before damage found at open, which may have held what hides it) and `hidden`
    /// false, `hidden` is `null`: unknown.
    func json(next: String, hidden: Bool = false, mayBeHidden: Bool = false) -> String {
        var envelope: String?
        if let id = AggregateStreamName.streamID(of: stream), let domain = try? EventLogStore.domainEvent(self, of: id) {
            envelope = JSONText.object([
                "origin": JSONText.quoted(domain.origin), "aggregateType": JSONText.quoted(domain.aggregateType),
                "aggregateID": JSONText.quoted(domain.aggregateID), "tenantID": JSONText.quoted(domain.tenantID),
                "schemaVersion": "\(domain.version)", "correlationID": JSONText.quoted(domain.correlationID),
                "triggeredByEventID": JSONText.quoted(domain.triggeredByEventID?.uuidString.lowercased()),
                "triggeredByUserID": JSONText.quoted(domain.triggeredByUserID),
            ])
        }
        return JSONText.object([
            "stream": JSONText.quoted(stream), "version": "\(version)", "position": "\(position)",
            "id": JSONText.quoted(id.uuidString.lowercased()), "type": JSONText.quoted(type),
            "timestamp": JSONText.quoted(PayloadTimestamp.millisecondString(timestampMilliseconds)),
            "timestampMilliseconds": "\(timestampMilliseconds)",
            "data": JSONText.payload(data), "metadata": JSONText.payload(metadata), "envelope": envelope, "next": JSONText.quoted(next),
            "hidden": hidden ? "true" : mayBeHidden ? "null" : "false",
        ])
    }
}
