#if Postgres
import Dugong
import Foundation
import Logging
import PostgresNIO

/// The event-store port on PostgreSQL: events of every instance of an application in one
/// server's `dugong_events` table (``PostgresSchema``).
///
/// ```swift
/// let client = PostgresClient(configuration: try PostgresConnectionURL.configuration(from: url))
/// let running = Task { await client.run() }      // the connection pool, for the client's life
/// try await PostgresSchema.migrate(client)
/// let store = PostgresEventStore(client: client)
/// ```
///
/// An append to one stream at the version its events follow is written in a transaction
/// shared with the other such appends waiting at the time (``GroupCommit``: one `INSERT`, each
/// append guarded by its own stream's version). Any other append, and one whose guard failed,
/// is one transaction: the stream's version read, the contract's decision
/// (``Dugong/AppendRequest``), the events inserted in one statement. Of concurrent appends at one
/// version the unique key `(stream, sequence_number)` lets exactly one through; the others see
/// the new version and are decided again (a conflict, or an idempotent retry). Data and
/// metadata are stored as `bytea`, byte for byte; timestamps in milliseconds, as the client set
/// them.
public struct PostgresEventStore: TransactionalEventStore, GlobalEventLog {
    public let client: PostgresClient
    /// How often a reader waiting for events looks for them besides the commits' notifications
    /// (which may come before older transactions end, or be lost with a connection). At least
    /// a millisecond.
    public let pollInterval: Duration
    let logger: Logger
    /// The commits' notifications, one listening connection for all of this store's waiting readers.
    let commits: CommitNotifications
    /// Concurrent single-stream appends, written together.
    let groupCommit: GroupCommit

    public init(client: PostgresClient, pollInterval: Duration = .milliseconds(100), logger: Logger = Logger(label: "dugong.postgres")) {
        self.client = client
        self.pollInterval = max(pollInterval, .milliseconds(1))
        self.logger = logger
        commits = CommitNotifications(client: client, logger: logger)
        groupCommit = GroupCommit(client: client, logger: logger)
    }

    /// Appends to several streams in one transaction: all or none (``Dugong/TransactionalEventStore``).
    @discardableResult
    public func append(_ appends: [StreamAppend]) async throws -> [AppendResult] {
        guard !appends.isEmpty else { return [] }
        let requests = try appends.map { try AppendRequest(events: $0.events, stream: $0.stream, expected: $0.expected) }
        let names = appends.map { AggregateStreamName.name(of: $0.stream) }
        let rows = try appends.map { try $0.events.map(Row.init) }
        // One stream whose expectation holds at the version its events follow: one guarded
        // statement, in a transaction shared with other callers' such appends. Anything else
        // (another version, a tombstone, a race, a duplicate id) is decided in a transaction below.
        if appends.count == 1, requests[0].expected.isSatisfied(byVersion: requests[0].events[0].sequenceNumber - 1),
            let cursor = try await groupCommit.insertIfNext(rows[0], stream: names[0])
        {
            return [AppendResult(version: requests[0].lastSequenceNumber, wasDuplicate: false, cursor: cursor)]
        }
        // A concurrent append may take a version between the read and the insert: the unique
        // key refuses the insert, the transaction rolls back, and the next round decides
        // against the new version.
        var lastRollback: PSQLError?
        for _ in 0..<16 {
            do {
                return try await client.inTransaction(logger: logger) { connection in
                    // Each append is decided against the streams as the appends before it leave
                    // them: streams by the bytes of their names, as the table's key tells them
                    // apart (`String`'s `==` took `café` spelled NFC and NFD for one stream, and
                    // decided the second's append against the first's version).
                    var versions: [[UInt8]: Int] = [:]
                    var results: [AppendResult] = []
                    for (index, request) in requests.enumerated() {
                        let name = names[index]
                        let key = Array(name.utf8)
                        let current: Int
                        if let known = versions[key] { current = known } else {
                            let state = try await Self.version(of: name, on: connection, logger: logger)
                            guard !state.isTombstoned else { throw PostgresStoreError.streamTombstoned(stream: name) }
                            current = state.version
                        }
                        let first = request.events[0].sequenceNumber
                        let stored = first <= current
                            ? try await Self.storedIDs(of: name, from: first, through: min(current, request.lastSequenceNumber), on: connection, logger: logger)
                            : [:]
                        switch try request.decide(currentVersion: current, storedEventID: { stored[$0] }) {
                        case .duplicate:
                            results.append(AppendResult(version: current, wasDuplicate: true))
                            versions[key] = current
                        case .write:
                            let cursor = try await Self.insert(rows[index], stream: name, of: request.stream, on: connection, logger: logger)
                            results.append(AppendResult(version: request.lastSequenceNumber, wasDuplicate: false, cursor: cursor))
                            versions[key] = request.lastSequenceNumber
                        }
                    }
                    return results
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505"
                && error.serverInfo?[.constraintName] == "dugong_events_stream_sequence"
            {
                lastRollback = nil
                continue
            } catch is ConcurrentAppend {
                lastRollback = nil
                continue
            } catch let error as PSQLError where ["40P01", "40001"].contains(error.serverInfo?[.sqlState]) {
                lastRollback = error  // chosen to end a deadlock (with a batch, or another transaction of several streams): rolled back
                continue
            }
        }
        // Sixteen rounds lost: to concurrent appends (a conflict), or to the server's rollbacks
        // (said as they are: not a conflict with the version the append expected).
        if let lastRollback { throw lastRollback }
        throw EventStoreError.conflict(stream: appends[0].stream, expected: appends[0].expected, actual: try await version(of: names[0]))
    }

    public func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        let name = AggregateStreamName.name(of: stream)
        return try await client.withRows(
            """
            SELECT \(unescaped: Row.columns) FROM dugong_events
            WHERE stream = \(name) AND sequence_number >= greatest(\(Int64(max(sequenceNumber, 1))), \(unescaped: Self.firstVisibleVersion))
            ORDER BY sequence_number
            """, logger: logger) { try await Row.events($0, of: stream) }
    }

    public func lastEvent(of stream: StreamID) async throws -> SerializedDomainEvent? {
        let name = AggregateStreamName.name(of: stream)
        return try await client.withRows(
            """
            SELECT \(unescaped: Row.columns) FROM dugong_events
            WHERE stream = \(name) AND sequence_number >= \(unescaped: Self.firstVisibleVersion)
            ORDER BY sequence_number DESC LIMIT 1
            """, logger: logger) { try await Row.events($0, of: stream).first }
    }

    /// The stream's version, its hidden events included.
    public func streamVersion(of stream: StreamID) async throws -> Int {
        try await version(of: AggregateStreamName.name(of: stream))
    }

    /// Hides the stream's versions below `version` (``truncate(streamNamed:before:)``).
    public func truncate(_ stream: StreamID, before version: Int) async throws {
        try await truncate(streamNamed: AggregateStreamName.name(of: stream), before: version)
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        // In order of each aggregate's first event.
        return try await client.withRows(
            """
            SELECT aggregate_id FROM dugong_events
            WHERE origin = \(origin) AND aggregate_type = \(aggregateType) AND tenant_id IS NOT DISTINCT FROM \(tenantID)
            GROUP BY aggregate_id ORDER BY min(position)
            """, logger: logger) { rows in
            var ids: [String] = []
            for try await id in rows.decode(String.self) { ids.append(id) }
            return ids
        }
    }

    // MARK: The global log

    /// Committed events from `cursor` on, in the order of (writing transaction, position).
    ///
    /// Only rows of transactions older than every transaction still open are read
    /// (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`): positions are assigned at
    /// insert but become visible at commit, and a transaction that began earlier may commit
    /// later. A row of an open transaction is held back until it commits (or rolls back), so
    /// the order never changes behind a reader; a long-running transaction, anywhere on the
    /// server, holds readers back while it runs.
    public func events(from cursor: LogCursor, maxCount: Int) async throws -> [RecordedEvent] {
        guard maxCount > 0 else { return [] }
        return try await client.withRows(
            """
            SELECT \(unescaped: Row.columns) FROM dugong_events
            WHERE (transaction_id, position) >= (\(String(cursor.transaction))::xid8, \(Int64(clamping: cursor.position)))
              AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY transaction_id, position
            LIMIT \(Int64(maxCount))
            """, logger: logger) { try await Row.recorded($0) }
    }

    /// A cursor after every readable event: the oldest transaction still open (every readable
    /// row's is older; every row readable later has one at least as new), position 0.
    public func endCursor() async throws -> LogCursor {
        try await client.withRows("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", logger: logger) { rows in
            for try await text in rows.decode(String.self) {
                guard let transaction = UInt64(text) else { throw PostgresStoreError.unreadableRow(position: 0, reason: "snapshot xmin \(text)") }
                return LogCursor(transaction: transaction, position: 0)
            }
            throw PostgresStoreError.unreadableRow(position: 0, reason: "no snapshot")
        }
    }

    /// The next transaction id as of now, position 0: every transaction committed so far has
    /// a lower one, so once ``endCursor()`` (the oldest open transaction) reaches it, all of
    /// them are readable.
    public func committedEnd() async throws -> LogCursor {
        try await client.withRows("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", logger: logger) { rows in
            for try await text in rows.decode(String.self) {
                guard let transaction = UInt64(text) else { throw PostgresStoreError.unreadableRow(position: 0, reason: "snapshot xmax \(text)") }
                return LogCursor(transaction: transaction, position: 0)
            }
            throw PostgresStoreError.unreadableRow(position: 0, reason: "no snapshot")
        }
    }

    /// Returns once an event at or after `cursor` is readable, or the task is cancelled. It
    /// looks when a commit's notification arrives (`dugong_events`; one pooled connection listens
    /// for all of this store's waiting readers) and every ``pollInterval`` too: a notification
    /// may come before older transactions have ended, and one may be lost with a connection.
    public func waitForEvents(from cursor: LogCursor) async throws {
        if try await !events(from: cursor, maxCount: 1).isEmpty { return }
        // Notifications and the poll timer both wake the look (at most one wakeup pending: a
        // burst of commits is one look). Each look leases a connection for one statement.
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let reader = await commits.add(wake)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: pollInterval)
                        wake.yield()
                    }
                }
                defer { group.cancelAll() }
                for await _ in wakeups {
                    if Task.isCancelled { return }
                    if try await !events(from: cursor, maxCount: 1).isEmpty { return }
                }
            }
        } catch {
            await commits.remove(reader)
            throw error
        }
        await commits.remove(reader)
    }

    /// The notification channel commits send on (the schema's `dugong_events_notify` trigger).
    static let channel = "dugong_events"

    // MARK: Metrics

    /// How long the oldest transaction still open on the server that writes (holds a
    /// transaction id) has run, prepared (two-phase) transactions among them: readers of the
    /// global log see no event of a later transaction until it ends. `nil` when none is open.
    ///
    /// PostgreSQL shows a role other sessions' transactions only if it is a superuser or has
    /// `pg_read_all_stats` (`GRANT pg_read_all_stats TO app`): without it, another role's
    /// transactions are not counted here, though they hold readers back all the same.
    public func oldestOpenTransactionAge() async throws -> Duration? {
        try await client.withRows(
            """
            SELECT extract(epoch FROM now() - min(started))::float8 FROM (
                SELECT xact_start AS started FROM pg_stat_activity WHERE backend_xid IS NOT NULL
                UNION ALL SELECT prepared FROM pg_prepared_xacts) AS open
            """,
            logger: logger) { rows in
            for try await seconds in rows.decode(Double?.self) { return seconds.map { .milliseconds(Int64(($0 * 1000).rounded())) } }
            return nil
        }
    }

    /// A reader's lag: how many events are readable from `cursor` on.
    public func lag(from cursor: LogCursor) async throws -> Int {
        try await client.withRows(
            """
            SELECT count(*) FROM dugong_events
            WHERE (transaction_id, position) >= (\(String(cursor.transaction))::xid8, \(Int64(clamping: cursor.position)))
              AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            """, logger: logger) { rows in
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    // MARK: Statements

    func version(of name: String) async throws -> Int {
        try await client.withConnection { try await Self.version(of: name, on: $0, logger: logger) }.version
    }

    /// The SQL of the first version a read returns of the stream of the row `dugong_events`
    /// names: its truncation, or past every version when it is tombstoned.
    static let firstVisibleVersion = """
        coalesce((SELECT CASE WHEN tombstoned THEN 9223372036854775807 ELSE truncate_before END
                  FROM dugong_streams WHERE dugong_streams.stream = dugong_events.stream), 1)
        """

    /// A stream's version (its last event's sequence number, or below where it begins when it
    /// has none) and whether it is tombstoned.
    static func version(of name: String, on connection: PostgresConnection, logger: Logger) async throws -> (version: Int, isTombstoned: Bool) {
        let rows = try await connection.openQuery(
            """
            SELECT greatest(coalesce((SELECT max(sequence_number) FROM dugong_events WHERE stream = \(name)), 0),
                            coalesce(s.truncate_before, 1) - 1),
                   coalesce(s.tombstoned, false)
            FROM (VALUES (1)) AS one LEFT JOIN dugong_streams s ON s.stream = \(name)
            """, logger: logger)
        for try await (version, tombstoned) in rows.decode((Int64, Bool).self) { return (Int(version), tombstoned) }
        return (0, false)
    }

    static func storedIDs(
        of name: String, from first: Int, through last: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> [Int: UUID] {
        let rows = try await connection.openQuery(
            """
            SELECT sequence_number, id FROM dugong_events
            WHERE stream = \(name) AND sequence_number BETWEEN \(Int64(first)) AND \(Int64(last))
            """, logger: logger)
        var ids: [Int: UUID] = [:]
        for try await (sequence, id) in rows.decode((Int64, UUID).self) { ids[Int(sequence)] = id }
        return ids
    }

    /// Checks that PostgreSQL can hold `event` as it is (its texts, its schema version), as an
    /// append does before it writes.
    ///
    /// - Throws: ``EventStoreError/invalidAppend(stream:reason:)`` saying what it cannot hold.
    public static func checkedRow(_ event: SerializedDomainEvent) throws {
        try Row.check(event)
    }

    /// A concurrent append committed the same events first: the append is decided again.
    struct ConcurrentAppend: Error {}

    /// Inserts the events in one statement; returns the last one's cursor.
    ///
    /// `ON CONFLICT (id) DO NOTHING` is targeted at the id alone (an untargeted one would also
    /// swallow a concurrent append's key violation); an id that comes back missing was already
    /// stored, elsewhere than here (the decision above saw this stream's).
    static func insert(
        _ rows: [Row], stream name: String, of stream: StreamID, on connection: PostgresConnection, logger: Logger
    ) async throws -> LogCursor {
        let sql = """
            INSERT INTO dugong_events (\(Row.insertedColumns))
            \(unnestedRows)
            ORDER BY u.n
            ON CONFLICT (id) DO NOTHING
            RETURNING id, transaction_id::text, position
            """
        let inserted = try await connection.openQuery(PostgresQuery(unsafeSQL: sql, binds: unnestBindings(rows, stream: name)), logger: logger)
        var cursors: [UUID: LogCursor] = [:]
        for try await (id, transaction, position) in inserted.decode((UUID, String, Int64).self) {
            guard let transaction = UInt64(transaction) else {
                throw PostgresStoreError.unreadableRow(position: position, reason: "transaction id \(transaction)")
            }
            cursors[id] = LogCursor(transaction: transaction, position: UInt64(position))
        }
        let missing = rows.filter { cursors[$0.id] == nil }
        if !missing.isEmpty {
            // Ids this stream holds now at the very versions: a concurrent append of the same
            // events (two imports of one file) committed while this one waited on the id's key.
            // Decided again (a retry, a duplicate); it was "already stored in another stream".
            let sameHere = try await connection.openQuery(
                PostgresQuery(
                    unsafeSQL: "SELECT count(*) FROM dugong_events WHERE stream = $1 AND (id, sequence_number) IN (SELECT * FROM unnest($2::uuid[], $3::bigint[]))",
                    binds: {
                        var binds = PostgresBindings()
                        binds.append(name)
                        binds.append(missing.map(\.id))
                        binds.append(missing.map(\.sequenceNumber))
                        return binds
                    }()), logger: logger)
            for try await count in sameHere.decode(Int64.self) where count == missing.count { throw ConcurrentAppend() }
            throw EventStoreError.invalidAppend(stream: stream, reason: "event id \(missing[0].id) is already stored in another stream or version")
        }
        guard let last = rows.last.flatMap({ cursors[$0.id] }) else {
            throw EventStoreError.invalidAppend(stream: stream, reason: "no events")
        }
        return last
    }

    /// The rows of ``unnestBindings(_:stream:)`` as a `SELECT` of ``Row/insertedColumns``, one
    /// per event (`u.n`: 1, 2, …), for an `INSERT` to follow with its conditions and order.
    ///
    /// Columns as arrays (`unnest`): one short statement of 20 parameters whatever the number of
    /// events. A VALUES list binds 15 parameters per event: the server parsed and bound it for
    /// longer than the insert took, and PostgreSQL takes at most 65,535 parameters, so an append
    /// of more than 4,369 events could not be sent at all. Arrays hold no NULLs here: nullable
    /// columns come with a flag array.
    static let unnestedRows = """
        SELECT $1::text, $3::text, $4::text, $5::text, $6::text, $2::bigint + u.n, \(Row.unnestedEventColumns)
        FROM unnest(\(Row.eventArrays(from: 7))) WITH ORDINALITY AS u(\(Row.eventArrayNames), n)
        """

    /// The parameters of ``unnestedRows``: the stream's raw name ($1), the version before the
    /// first event ($2: the events' sequence numbers follow it, as an ``Dugong/AppendRequest``'s
    /// do), the stream's parts ($3 to $6), and each column of the events as an array ($7 to $20).
    static func unnestBindings(_ rows: [Row], stream name: String) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 20)
        bindings.append(name)
        bindings.append((rows.first?.sequenceNumber ?? 1) - 1)
        bindings.append(rows.first?.origin ?? "")
        bindings.append(rows.first?.aggregateType ?? "")
        bindings.append(rows.first?.tenantID)
        bindings.append(rows.first?.aggregateID ?? "")
        Row.appendEventArrays(rows, to: &bindings)
        return bindings
    }
}

extension Row {
    /// The names ``eventArrays(from:)`` unnest to, in order.
    static let eventArrayNames = "id, type, schema_version, ts, c, c_null, te, te_null, tu, tu_null, d, d_null, m, m_null"

    /// The 14 parameters of ``appendEventArrays(_:to:)``, from `$first`, typed for `unnest`.
    static func eventArrays(from first: Int) -> String {
        ["uuid", "text", "integer", "bigint", "text", "boolean", "uuid", "boolean", "text", "boolean", "bytea", "boolean", "bytea", "boolean"]
            .enumerated().map { "$\(first + $0.offset)::\($0.element)[]" }.joined(separator: ", ")
    }

    /// The inserted columns from `id` on (``insertedColumns``), of the unnested row `u`.
    static let unnestedEventColumns = """
        u.id, u.type, u.schema_version, u.ts,
               CASE WHEN u.c_null THEN NULL ELSE u.c END, CASE WHEN u.te_null THEN NULL ELSE u.te END,
               CASE WHEN u.tu_null THEN NULL ELSE u.tu END, CASE WHEN u.d_null THEN NULL ELSE u.d END,
               CASE WHEN u.m_null THEN NULL ELSE u.m END
        """

    /// Each column of the events from `id` on as an array: 14 parameters. Arrays hold no NULLs
    /// here: nullable columns come with a flag array.
    static func appendEventArrays(_ rows: [Row], to bindings: inout PostgresBindings) {
        bindings.append(rows.map(\.id))
        bindings.append(rows.map(\.type))
        bindings.append(rows.map(\.schemaVersion))
        bindings.append(rows.map(\.timestamp))
        bindings.append(rows.map { $0.correlationID ?? "" })
        bindings.append(rows.map { $0.correlationID == nil })
        bindings.append(rows.map { $0.triggeredByEventID ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) })
        bindings.append(rows.map { $0.triggeredByEventID == nil })
        bindings.append(rows.map { $0.triggeredByUserID ?? "" })
        bindings.append(rows.map { $0.triggeredByUserID == nil })
        bindings.append(rows.map { ByteBuffer(data: $0.data ?? Data()) })
        bindings.append(rows.map { $0.data == nil })
        bindings.append(rows.map { ByteBuffer(data: $0.metadata ?? Data()) })
        bindings.append(rows.map { $0.metadata == nil })
    }
}

/// One event as a row of `dugong_events`.
struct Row {
    var id: UUID
    var origin: String
    var aggregateType: String
    var tenantID: String?
    var aggregateID: String
    var sequenceNumber: Int64
    var type: String
    var schemaVersion: Int32
    var timestamp: Int64
    var correlationID: String?
    var triggeredByEventID: UUID?
    var triggeredByUserID: String?
    var data: Data?
    var metadata: Data?

    static let insertedColumns =
        "stream, origin, aggregate_type, tenant_id, aggregate_id, sequence_number, id, type, schema_version, timestamp_ms, correlation_id, triggered_by_event_id, triggered_by_user_id, data, metadata"
    /// (The transaction id is selected as text under a name of its own: an output column named
    /// `transaction_id` would be what `ORDER BY transaction_id` sorts by — as text, putting
    /// transaction 1020 before 983.)
    static let columns =
        "position, transaction_id::text AS transaction_text, origin, aggregate_type, tenant_id, aggregate_id, sequence_number, id, type, schema_version, timestamp_ms, correlation_id, triggered_by_event_id, triggered_by_user_id, data, metadata"

    /// What PostgreSQL cannot hold of `event` as it is: a schema version past 32 bits, a NUL in
    /// a text column (the server refused the whole statement with an encoding error: a failed
    /// system call to the tool, exit 74, instead of bad input).
    static func check(_ event: SerializedDomainEvent) throws {
        let stream = { StreamID(origin: event.origin, aggregateType: event.aggregateType, aggregateID: event.aggregateID, tenantID: event.tenantID) }
        guard Int32(exactly: event.version) != nil else {
            throw EventStoreError.invalidAppend(
                stream: stream(), reason: "schema version \(event.version) of event \(event.id) is outside the 32 bits PostgreSQL stores")
        }
        let texts: [(String, String?)] = [
            ("origin", event.origin), ("aggregate type", event.aggregateType), ("tenant", event.tenantID), ("aggregate id", event.aggregateID),
            ("event type", event.eventType), ("correlation id", event.correlationID), ("triggering user id", event.triggeredByUserID),
        ]
        if let (field, _) = texts.first(where: { $0.1?.utf8.contains(0) ?? false }) {
            throw EventStoreError.invalidAppend(
                stream: stream(), reason: "the \(field) of event \(event.id) holds a NUL character, which PostgreSQL's text cannot hold")
        }
    }

    init(_ event: SerializedDomainEvent) throws {
        try Self.check(event)
        id = event.id
        origin = event.origin
        aggregateType = event.aggregateType
        tenantID = event.tenantID
        aggregateID = event.aggregateID
        sequenceNumber = Int64(event.sequenceNumber)
        type = event.eventType
        schemaVersion = Int32(event.version)  // (checked above)
        timestamp = event.timestamp.millisecondsSince1970
        correlationID = event.correlationID
        triggeredByEventID = event.triggeredByEventID
        triggeredByUserID = event.triggeredByUserID
        data = event.payload
        metadata = try event.metadata.map { try JSONValue.object($0).jsonData() }
    }

    /// The events of `rows` (selected with ``columns``), as the framework's events of `stream`.
    static func events(_ rows: PostgresRowSequence, of stream: StreamID) async throws -> [SerializedDomainEvent] {
        try await recorded(rows).map(\.event)
    }

    /// The farthest from 1970 a stored timestamp may be, in milliseconds: what the framework
    /// lets a store keep.
    static let storableMilliseconds = UInt64(Date.storableSecondsSince1970 * 1000)

    /// The events of `rows` (selected with ``columns``) with their cursors.
    static func recorded(_ rows: PostgresRowSequence) async throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        for try await row in rows {
            let columns = row.makeRandomAccess()
            let position = try columns[0].decode(Int64.self)
            func column<T: PostgresDecodable>(_ index: Int, _ type: T.Type) throws -> T {
                do { return try columns[index].decode(T.self) } catch {
                    throw PostgresStoreError.unreadableRow(position: position, reason: "column \(index): \(error)")
                }
            }
            let transaction = try column(1, String.self)
            // A row another program wrote may hold any bigint: past what the framework stores
            // (``Date/storableSecondsSince1970``) a `Date`'s milliseconds do not fit 64 bits, and
            // converting them back trapped (found by a black-box run: `dugong export` died).
            let milliseconds = try column(10, Int64.self)
            guard milliseconds.magnitude <= Self.storableMilliseconds else {
                throw PostgresStoreError.unreadableRow(
                    position: position,
                    reason: "timestamp_ms \(milliseconds) is farther from 1970 than a store keeps (\(Self.storableMilliseconds) ms, about 290 million years)")
            }
            var metadata: JSONObject?
            if let bytes = try column(15, Data?.self) {
                guard case .object(let object) = try JSONValue(json: bytes) else {
                    throw PostgresStoreError.unreadableRow(position: position, reason: "metadata is not a JSON object")
                }
                metadata = object
            }
            let event = SerializedDomainEvent(
                origin: try column(2, String.self), aggregateType: try column(3, String.self), eventType: try column(8, String.self),
                version: Int(try column(9, Int32.self)), id: try column(7, UUID.self), aggregateID: try column(5, String.self),
                payload: try column(14, Data?.self), sequenceNumber: Int(try column(6, Int64.self)),
                timestamp: Date(millisecondsSince1970: milliseconds), tenantID: try column(4, String?.self),
                correlationID: try column(11, String?.self), triggeredByEventID: try column(12, UUID?.self),
                triggeredByUserID: try column(13, String?.self), metadata: metadata)
            guard let transactionID = UInt64(transaction) else {
                throw PostgresStoreError.unreadableRow(position: position, reason: "transaction id \(transaction)")
            }
            events.append(RecordedEvent(cursor: LogCursor(transaction: transactionID, position: UInt64(position)), event: event))
        }
        return events
    }
}
#endif
