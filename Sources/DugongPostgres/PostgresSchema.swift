#if Postgres
import Dugong
import Logging
import PostgresNIO
import Synchronization

/// The tables the adapters use, created and upgraded by ``PostgresSchema/migrate(_:logger:)``.
///
/// Versioned: `dugong_schema` holds the versions applied. Each migration runs in one
/// transaction that first takes a transaction-scoped advisory lock, so instances that start
/// together apply each migration once; a database whose schema is newer than this build
/// knows is refused.
public enum PostgresSchema {
    /// The schema version this build writes and reads.
    public static let version = 5

    /// The advisory lock every migration takes (an arbitrary constant: "dugong" in ASCII).
    static let lock: Int64 = 0x6475_676F_6E67

    /// Each version's statements, in order.
    static let migrations: [[String]] = [
        [
            // Every event once. `stream` is the raw stream name the embedded store would use
            // (origin, type, tenant and id, escaped, with "no tenant" distinct from every
            // tenant): the unique key, so that no tenant collides with itself. The key's parts
            // have columns of their own for queries; `tenant_id` is NULL for no tenant.
            """
            CREATE TABLE dugong_events (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                stream text NOT NULL,
                origin text NOT NULL,
                aggregate_type text NOT NULL,
                tenant_id text,
                aggregate_id text NOT NULL,
                sequence_number bigint NOT NULL CHECK (sequence_number >= 1),
                id uuid NOT NULL,
                type text NOT NULL,
                schema_version integer NOT NULL,
                timestamp_ms bigint NOT NULL,
                correlation_id text,
                triggered_by_event_id uuid,
                triggered_by_user_id text,
                data bytea,
                metadata bytea,
                CONSTRAINT dugong_events_stream_sequence UNIQUE (stream, sequence_number),
                CONSTRAINT dugong_events_id UNIQUE (id)
            )
            """,
            // The global log's order: transaction, then position.
            "CREATE INDEX dugong_events_log ON dugong_events (transaction_id, position)",
            "CREATE INDEX dugong_events_kind ON dugong_events (origin, aggregate_type, tenant_id, position)",
            // Streams' states: the first visible sequence number (truncation).
            """
            CREATE TABLE dugong_streams (
                stream text PRIMARY KEY,
                truncate_before bigint NOT NULL DEFAULT 1
            )
            """,
        ],
        [
            // Snapshots: the last few of each stream (``PostgresSnapshotStore``).
            """
            CREATE TABLE dugong_snapshots (
                stream text NOT NULL,
                sequence_number bigint NOT NULL,
                schema_version integer NOT NULL,
                data bytea NOT NULL,
                PRIMARY KEY (stream, sequence_number)
            )
            """
        ],
        [
            // Wakes readers waiting for events: one notification per inserting statement,
            // delivered at commit (identical ones in a transaction are folded into one).
            """
            CREATE FUNCTION dugong_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('dugong_events', '');
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER dugong_events_notify AFTER INSERT ON dugong_events
            FOR EACH STATEMENT EXECUTE FUNCTION dugong_notify_events()
            """,
        ],
        [
            // Streams' states: tombstoned (hidden, never appended to again). A stream with no
            // events whose truncate_before is above 1 begins there (its earlier versions were
            // removed where it was imported from).
            "ALTER TABLE dugong_streams ADD COLUMN tombstoned boolean NOT NULL DEFAULT false"
        ],
        [
            // Streams' states: the highest version whose snapshots a delete hid (NULL: none),
            // as the embedded store hides them: a snapshot of a deleted stream would restore the
            // aggregate its reads no longer show. Streams deleted before this version keep
            // theirs (a delete was not told apart from a truncation).
            "ALTER TABLE dugong_streams ADD COLUMN snapshots_hidden_through bigint"
        ],
    ]

    /// Creates or upgrades the tables. Idempotent; safe to run from several instances at once.
    ///
    /// - Throws: ``PostgresStoreError/schemaTooNew(found:supported:)`` when the database was
    ///   migrated by a newer build; what the server reports otherwise.
    public static func migrate(_ client: PostgresClient, logger: Logger = Logger(label: "dugong.postgres")) async throws {
        precondition(migrations.count == version, "one migration per schema version")
        for (index, statements) in migrations.enumerated() {
            let target = index + 1
            try await client.inTransaction(logger: logger) { connection in
                // The lock's row read to its end: a statement that returns rows is answered
                // before it has run, and its error (a lock timeout) comes with the rows.
                for try await _ in try await connection.openQuery("SELECT pg_advisory_xact_lock(\(lock))", logger: logger) {}
                // Under the lock and in the transaction: instances that start together do not
                // race to create it (PostgreSQL's `IF NOT EXISTS` is not safe against that).
                try await connection.openQuery(
                    "CREATE TABLE IF NOT EXISTS dugong_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                    logger: logger)
                let applied = try await appliedVersion(connection, logger: logger)
                guard applied <= version else { throw PostgresStoreError.schemaTooNew(found: applied, supported: version) }
                guard applied < target else { return }
                for statement in statements { try await connection.openQuery(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.openQuery("INSERT INTO dugong_schema (version) VALUES (\(target))", logger: logger)
                logger.info("applied schema version \(target)")
            }
        }
        // Refused also when this build has nothing to apply.
        let applied = try await client.withConnection { try await appliedVersion($0, logger: logger) }
        guard applied <= version else { throw PostgresStoreError.schemaTooNew(found: applied, supported: version) }
        try await checkTransactionIDs(client, logger: logger)
    }

    /// Throws ``PostgresStoreError/transactionIDsFromAnotherServer(highest:next:)`` when the
    /// events table holds a transaction id at or past the next one this server will assign: the
    /// rows were copied from another server (`pg_dump` and `pg_restore`, logical replication),
    /// whose ids mean nothing here. Readers of the global log see an event only once every
    /// transaction older than its own has ended on this server, so they would not see those
    /// events (nor any later one) until this server's ids pass them. (`migrate` checks it.)
    public static func checkTransactionIDs(_ client: PostgresClient, logger: Logger = Logger(label: "dugong.postgres")) async throws {
        let (highest, next) = try await client.withRows(
            "SELECT coalesce(max(transaction_id)::text, '0'), pg_snapshot_xmax(pg_current_snapshot())::text FROM dugong_events", logger: logger
        ) { rows -> (String, String) in
            for try await pair in rows.decode((String, String).self) { return pair }
            return ("0", "0")
        }
        guard let highest = UInt64(highest), let next = UInt64(next) else {
            throw PostgresStoreError.unreadableRow(position: 0, reason: "transaction ids \(highest), \(next)")
        }
        guard highest < next || highest == 0 else { throw PostgresStoreError.transactionIDsFromAnotherServer(highest: highest, next: next) }
    }

    static func appliedVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.openQuery("SELECT coalesce(max(version), 0) FROM dugong_schema", logger: logger)
        for try await version in rows.decode(Int.self) { return version }
        return 0
    }
}

/// What the PostgreSQL adapters report beyond the ports' own errors.
public enum PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The database holds a schema of a newer build.
    case schemaTooNew(found: Int, supported: Int)
    /// The database holds a row the adapter cannot read.
    case unreadableRow(position: Int64, reason: String)
    /// The connection URL cannot be used.
    case invalidURL(String)
    /// An append to a tombstoned stream (by its raw name, ``Dugong/AggregateStreamName``).
    case streamTombstoned(stream: String)
    /// A lifecycle change that cannot be made: what and why.
    case invalidChange(String)
    /// The events table holds transaction ids of another server
    /// (``PostgresSchema/checkTransactionIDs(_:logger:)``).
    case transactionIDsFromAnotherServer(highest: UInt64, next: UInt64)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let supported):
            "the database's Dugong schema is version \(found); this build reads up to version \(supported): upgrade Dugong"
        case .unreadableRow(let position, let reason): "the event at position \(position) cannot be read: \(reason)"
        case .invalidURL(let reason): "invalid PostgreSQL URL: \(reason)"
        case .streamTombstoned(let stream): "stream '\(stream)' is tombstoned: it can never be appended to again"
        case .invalidChange(let reason): "invalid argument: \(reason)"
        case .transactionIDsFromAnotherServer(let highest, let next):
            "the events table holds transaction id \(highest), at or past the next one this server assigns (\(next)): its rows were copied from another server (pg_dump and pg_restore, or replication), and readers of the global log would not see them until this server's ids pass them; move a store with `dugong export OLD | dugong import NEW` (into an empty database), which gives every event this server's ids"
        }
    }
}
#endif

#if Postgres
extension PostgresClient {
    /// A transaction on one connection, throwing what failed (the body's error, else the
    /// commit's) as it is, so that the ports' own errors reach the caller. Not PostgresNIO's
    /// `withTransaction`: on a connection the server closed while it was leased (a backend
    /// terminated, a server crash), PostgresNIO 1.33 writes the next query to the closed channel
    /// and its answer never comes; its `ROLLBACK` after the failure hung for ever, and so did
    /// `dugong export`. Every query here goes through ``PostgresConnection/openQuery(_:logger:)``.
    func inTransaction<Result>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation, _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await PostgresConnectionLost.naming {
            try await inTransactionOnce(logger: logger, isolation: isolation, body)
        }
    }

    private func inTransactionOnce<Result>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation, _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection(isolation: isolation) { connection in
            try await connection.openQuery("BEGIN;", logger: logger)
            let value: Result
            do {
                value = try await body(connection)
            } catch {
                // A connection whose ROLLBACK failed may still be in the transaction: closed, so
                // that the pool never hands it out (the next user's COMMIT would commit this one's
                // rows).
                do {
                    try await connection.openQuery("ROLLBACK;", logger: logger)
                } catch {
                    if !connection.isClosed { try? await connection.close().get() }
                }
                throw error
            }
            do {
                try await connection.openQuery("COMMIT;", logger: logger, ifLost: .unknown)
            } catch let error as PSQLError where error.code == .server && !PostgresConnectionLost.isLoss(error, on: connection) {
                throw error  // the server refused to commit: rolled back
            } catch let error as PostgresConnectionLost {
                throw error
            } catch {
                // Anything else (a message PostgresNIO could not read, a cancellation) may have
                // come after the server committed.
                throw PostgresConnectionLost(outcome: .unknown, underlying: error)
            }
            return value
        }
    }
}

/// The connection to PostgreSQL closed before a statement's answer came (the server restarted,
/// or the connection was terminated).
///
/// ``mayHaveCommitted`` says whether what was sent may have been committed all the same: when
/// the connection closed during a `COMMIT`, the server may have committed before the close. An append sent again with the same events is then
/// recognized as a retry (``Dugong/AppendResult/wasDuplicate``), so sending it again is safe.
public struct PostgresConnectionLost: TransientStoreError, CustomStringConvertible {
    /// What became of the statement's writes.
    public enum Outcome: Sendable {
        /// Not committed: the connection closed inside a transaction before its `COMMIT`, or
        /// before the statement was sent.
        case notCommitted
        /// Unknown: the connection closed while a `COMMIT` waited for its answer.
        case unknown
    }

    public var outcome: Outcome
    /// Whether the writes may have been committed (``Outcome/unknown``).
    public var mayHaveCommitted: Bool { outcome == .unknown }
    /// What PostgresNIO reported, when it reported the loss (`nil` when the adapter saw the
    /// connection closed).
    public var underlying: (any Error)?

    public init(outcome: Outcome = .notCommitted, underlying: (any Error)? = nil) {
        self.outcome = outcome
        self.underlying = underlying
    }

    /// Runs `body`, saying a connection lost (or none to be had: the server down or
    /// restarting) that it meets outside a statement's answer (reading rows, leasing a
    /// connection) as a ``PostgresConnectionLost`` that committed nothing, as a statement's own is.
    static func naming<Result>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await body()
        } catch let lost as PostgresConnectionLost {
            throw lost
        } catch where isLoss(error) {
            throw PostgresConnectionLost(outcome: .notCommitted, underlying: error)
        }
    }

    /// Whether `error`, from a statement on `connection`, is the connection's loss: it has
    /// closed, or the server said it is ending the session (SQLSTATE class 08, or 57P01–57P03:
    /// terminated by an administrator, a crash, a shutdown).
    static func isLoss(_ error: any Error, on connection: PostgresConnection) -> Bool {
        connection.isClosed || isLoss(error)
    }

    /// Whether `error` says a connection was lost or could not be made (see
    /// ``isLoss(_:on:)``), whatever connection it came from.
    static func isLoss(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .connectionError: return true
        default: break
        }
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
    }

    public var description: String {
        switch outcome {
        case .notCommitted:
            "the server closed the connection (it restarted, or the connection was terminated); nothing was committed"
        case .unknown:
            "the server closed the connection (it restarted, or the connection was terminated) before answering a commit: it may have committed; an append sent again with the same events is recognized as a retry"
        }
    }
}

extension PostgresConnection {
    /// `query`, refused at once on a connection the server has closed, and failed when the
    /// connection closes before the answer comes.
    ///
    /// PostgresNIO 1.33 writes a query to its channel without a promise: a query written to a
    /// channel that has just closed (the server terminated the backend) is dropped, and its
    /// answer never comes. So the query runs in a task of its own, and a watcher looks every
    /// 100 ms whether the connection has closed; the first of the two to finish answers.
    /// (A query that has reached the connection fails when it closes, as it should; the
    /// watcher only ends the wait for one that never did.)
    ///
    /// - Parameter outcome: what a close before the answer means for what the query writes:
    ///   ``PostgresConnectionLost/Outcome/unknown`` for a `COMMIT`.
    @discardableResult
    func openQuery(_ query: PostgresQuery, logger: Logger, ifLost outcome: PostgresConnectionLost.Outcome = .notCommitted) async throws -> PostgresRowSequence {
        guard !isClosed else { throw PostgresConnectionLost(underlying: nil) }
        let answer = FirstAnswer<PostgresRowSequence>()
        return try await withCheckedThrowingContinuation { continuation in
            answer.awaiting(continuation)
            let watcher = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    if isClosed { return answer.give(.failure(PostgresConnectionLost(outcome: outcome, underlying: nil))) }
                }
            }
            Task {
                do {
                    answer.give(.success(try await self.query(query, logger: logger)))
                } catch {
                    // A lost connection is said as one, with what it means for the writes.
                    answer.give(.failure(PostgresConnectionLost.isLoss(error, on: self) ? PostgresConnectionLost(outcome: outcome, underlying: error) : error))
                }
                watcher.cancel()
            }
        }
    }
}

/// The first of several results given, handed to the one waiting continuation.
final class FirstAnswer<Value: Sendable>: Sendable {
    private let waiting = Mutex<CheckedContinuation<Value, any Error>?>(nil)

    func awaiting(_ continuation: CheckedContinuation<Value, any Error>) {
        waiting.withLock { $0 = continuation }
    }

    func give(_ result: Result<Value, any Error>) {
        waiting.withLock { continuation in
            continuation?.resume(with: result)
            continuation = nil
        }
    }
}

extension PostgresClient {
    /// `query` on a pooled connection through ``PostgresConnection/openQuery(_:logger:ifLost:)``
    /// (PostgresNIO's own `query` waits for ever when the connection it leased has just
    /// closed), its rows read by `body` while the connection is held.
    ///
    /// For reads and statements that may run again. A write whose success matters goes in
    /// ``inTransaction(logger:isolation:_:)``: a statement that commits by itself is answered
    /// (at its CommandComplete) before PostgreSQL commits it (at the protocol's Sync), so a
    /// connection lost in between acknowledges what was never committed.
    package func withRows<Result>(
        _ query: PostgresQuery, logger: Logger,
        isolation: isolated (any Actor)? = #isolation, _ body: (PostgresRowSequence) async throws -> sending Result
    ) async throws -> sending Result {
        try await PostgresConnectionLost.naming {
            try await withConnection(isolation: isolation) { connection in
                try await body(try await connection.openQuery(query, logger: logger))
            }
        }
    }

    /// ``withRows(_:logger:isolation:_:)`` for a statement whose rows are not read.
    package func execute(_ query: PostgresQuery, logger: Logger) async throws {
        // Read to the end: a statement that returns rows is answered before it has run, and
        // its error comes with the rows.
        try await withRows(query, logger: logger) { rows in for try await _ in rows {} }
    }
}
#endif
