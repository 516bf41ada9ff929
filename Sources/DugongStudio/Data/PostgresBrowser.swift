#if Postgres
import Dugong
import DugongPostgres
import DugongStore
import Foundation

/// What the page asks of a PostgreSQL database (``DugongPostgres/PostgresEventStore``): the
/// same answers as an embedded store's, its events in the embedded store's layout, cursors
/// `transaction:position`. Read-only: verify and compaction are PostgreSQL's own business.
struct PostgresBrowser: StudioSource {
    let store: PostgresEventStore
    /// The database's URL without its password.
    let label: String
    let aggregates: AggregateQueryService?

    init(store: PostgresEventStore, label: String, aggregates: [any Aggregate.Type]) throws {
        self.store = store
        self.label = label
        self.aggregates = aggregates.isEmpty
            ? nil : try AggregateQueryService(store: store, snapshotStore: PostgresSnapshotStore(client: store.client), aggregates: aggregates)
    }

    func overview() async throws -> String {
        let statistics = try await store.statistics()
        return JSONText.object([
            "kind": JSONText.quoted("postgres"),
            "directory": JSONText.quoted(label),
            "readOnly": "true",
            "events": "\(statistics.events)",
            "streams": "\(statistics.streams)",
            "schemaVersion": "\(statistics.schemaVersion)",
            "fileBytes": "\(statistics.tableBytes)",
            "rawPayloadBytes": "\(statistics.payloadBytes)",
            "oldestOpenTransactionSeconds": try await store.oldestOpenTransactionAge().map { "\(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)" },
            "segments": "[]", "damageAtOpen": "[]",
            "aggregates": aggregates.map { service in
                JSONText.array(service.types().map { JSONText.object(["origin": JSONText.quoted($0.origin), "type": JSONText.quoted($0.type)]) })
            },
        ])
    }

    func categories() async throws -> String {
        Self.categories(of: try await store.streamStates().map(\.name))
    }

    func streams(search: String, category: String?, after: Int, afterCheck: String?, limit: Int) async throws -> String {
        // (A stream begun or tombstoned between two pages is listed before others.)
        let states = try await store.streamStates()
        var rows: [String] = []
        var (index, check, restarted) = StreamListCheck.start(in: states.lazy.map(\.name), after: after, afterCheck: afterCheck)
        while index < states.count, rows.count < limit {
            let state = states[index]
            index += 1
            check.add(state.name)
            guard Self.isIn(category, state.name), Self.matches(state.name, search: search) else { continue }
            rows.append(
                Self.streamRow(
                    state.name, version: state.version, firstVisibleVersion: state.firstVisibleVersion, tombstoned: state.isTombstoned,
                    empty: state.readsAsEmpty))
        }
        return JSONText.object([
            "streams": JSONText.array(rows), "next": index < states.count ? "\(index)" : "null",
            "nextCheck": index < states.count ? JSONText.quoted(check.text) : "null", "total": "\(states.count)", "restarted": "\(restarted)",
        ])
    }

    func stream(_ name: String, from version: Int, limit: Int) async throws -> String? {
        // No stream's name holds a NUL, and PostgreSQL's text cannot (the query failed: a 500).
        guard !name.utf8.contains(0) else { return nil }
        guard let state = try await store.state(ofStreamNamed: name) else { return nil }
        let events = state.readsAsEmpty ? [] : try await store.recordedEvents(ofStreamNamed: name, from: max(version, state.firstVisibleVersion, 1), maxCount: limit)
        var page = PageRows(limit: limit)
        var next: Int?
        for recorded in events {
            let version = recorded.event.sequenceNumber
            guard page.add(try Self.event(recorded)) else {
                next = version
                break
            }
            next = version < state.version ? version + 1 : nil
        }
        return JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(state.version)", "firstVisibleVersion": "\(state.firstVisibleVersion)",
            "tombstoned": "\(state.isTombstoned)", "events": page.json, "next": next.map { "\($0)" } ?? "null",
        ])
    }

    func log(from cursor: String?, limit: Int, filter: LogFilter) async throws -> String {
        var next = try await readable(cursor ?? "0")
        var rows = PageRows(limit: limit)
        var scanned = 0
        var complete = false
        var hidden = HiddenEvents(store: store)
        scan: while !rows.isFull, scanned < StoreBrowser.scanBudget {
            let wanted = min(1024, StoreBrowser.scanBudget - scanned)
            let page = try await store.events(from: next, maxCount: wanted)
            for recorded in page {
                let event = try recorded.storedEvent()
                // An event that does not fit starts the next page.
                if filter.admits(event), !rows.add(event.json(next: recorded.next.description, hidden: try await hidden.contains(event))) { break scan }
                scanned += 1
                next = recorded.next
                if rows.isFull { break scan }
            }
            if page.count < wanted {
                complete = true
                break
            }
        }
        return JSONText.object([
            "events": rows.json, "next": JSONText.quoted(next.description),
            "head": JSONText.quoted(try await store.endCursor().description), "scanned": "\(scanned)", "complete": "\(complete)",
        ])
    }

    func checkpoints() async throws -> String {
        let prefix = Self.checkpointCategory + "/"
        var rows: [String] = []
        for state in try await store.streamStates() where state.name.hasPrefix(prefix) {
            guard let last = try await store.recordedEvents(ofStreamNamed: state.name, maxCount: 1, backward: true).first else { continue }
            let stored = try last.storedEvent()
            let cursor = Self.checkpointCursor(stored.data)
            var behind: Int?
            if let cursor { behind = try await store.lag(from: cursor) }
            rows.append(
                JSONText.object([
                    "name": JSONText.quoted(String(state.name.dropFirst(prefix.count))),
                    "cursor": cursor.map { JSONText.quoted($0.description) } ?? "null",
                    "savedAt": JSONText.quoted(PayloadTimestamp.millisecondString(stored.timestampMilliseconds)),
                    // Events readable from the checkpoint on.
                    "behind": behind.map { "\($0)" } ?? "null",
                ]))
        }
        return JSONText.object(["head": JSONText.quoted(try await store.endCursor().description), "checkpoints": JSONText.array(rows)])
    }

    func domainEvent(stream name: String, version: Int) async throws -> SerializedDomainEvent? {
        guard version >= 1, !name.utf8.contains(0), let recorded = try await store.recordedEvents(ofStreamNamed: name, from: version, maxCount: 1).first,
            recorded.event.sequenceNumber == version, AggregateStreamName.streamID(of: name) != nil
        else { return nil }
        return recorded.event
    }

    func version(of name: String, asOf milliseconds: Int64) async throws -> Int? {
        var found: Int?
        var version = 1
        while true {
            let page = try await store.recordedEvents(ofStreamNamed: name, from: version, maxCount: 1024)
            guard let last = page.last else { return found }
            for recorded in page where recorded.event.timestamp.millisecondsSince1970 <= milliseconds { found = recorded.event.sequenceNumber }
            version = last.event.sequenceNumber + 1
        }
    }

    func verify() throws -> String {
        throw Refusal(status: 409, message: "verify checks a directory store's files; PostgreSQL checks its own pages (pg_amcheck)")
    }

    func compact() throws -> String {
        throw Refusal(status: 409, message: "compaction rewrites a directory store's segments; on PostgreSQL, VACUUM reclaims space")
    }

    func tailStart() async throws -> String {
        try await store.endCursor().description
    }

    func tailPage(from cursor: String, filter: LogFilter) async throws -> (events: [(json: String, next: String)], next: String) {
        var next = try await readable(cursor)
        let found = try await store.events(from: next, maxCount: 100)
        var hidden = HiddenEvents(store: store)
        var page = PageRows(limit: 100)
        var events: [(json: String, next: String)] = []
        for recorded in found {
            let event = try recorded.storedEvent()
            if filter.admits(event) {
                let json = event.json(next: recorded.next.description, hidden: try await hidden.contains(event))
                guard page.add(json) else { break }
                events.append((json, recorded.next.description))
            }
            next = recorded.next
        }
        return (events, next.description)
    }

    /// Whether events of the log are ones their streams no longer show (truncated, deleted,
    /// tombstoned): each stream looked up once (keyed by bytes, as the store's names).
    struct HiddenEvents {
        let store: PostgresEventStore
        private var visibleFrom: [[UInt8]: (first: Int, tombstoned: Bool)] = [:]

        init(store: PostgresEventStore) { self.store = store }

        mutating func contains(_ event: StoredEvent) async throws -> Bool {
            let key = Array(event.stream.utf8)
            if visibleFrom[key] == nil {
                let state = try await store.state(ofStreamNamed: event.stream)
                visibleFrom[key] = (state?.firstVisibleVersion ?? 1, state?.isTombstoned ?? false)
            }
            let visibility = visibleFrom[key]!
            return visibility.tombstoned || event.version < visibility.first
        }
    }

    func waitForEvents(from cursor: String) async throws {
        // (The tail waits only at cursors its pages gave or checked: no query for the log's end.)
        try await store.waitForEvents(from: try Self.cursor(cursor))
    }

    static func event(_ recorded: RecordedEvent) throws -> String {
        try recorded.storedEvent().json(next: recorded.next.description)
    }

    /// A cursor of the global log (`transaction:position`, or `0` for its start), from the page.
    /// A bare position (a directory store's) read as the cursor 0:N, before every event, and a
    /// cursor past the log's end answered "complete" and waited there: both silently skipped
    /// events (found by a black-box run; `dugong read-all --from` and a directory store's
    /// Studio refuse them).
    static func cursor(_ text: String) throws -> LogCursor {
        guard let cursor = LogCursor(text) else {
            throw Refusal.badParameter("from must be a cursor of the log (transaction:position), not '\(text)'")
        }
        guard cursor.transaction != 0 || cursor == .start else {
            throw Refusal.badParameter(
                "from \(text) is a position; on PostgreSQL the log's cursors are transaction:position (its events' \"next\" say them)")
        }
        return cursor
    }

    /// ``cursor(_:)``, at or before the log's end.
    func readable(_ text: String) async throws -> LogCursor {
        let cursor = try Self.cursor(text)
        let end = try await store.endCursor()
        guard cursor <= end else { throw Refusal.badParameter("from \(text) is past the log's head (\(end)): no event has it yet") }
        return cursor
    }
}
#endif
