#if Postgres
import Dugong
import Logging
import PostgresNIO

/// Streams by their raw names (``Dugong/AggregateStreamName``): their states and the lifecycle
/// changes the embedded store has (delete, truncate, tombstone, begin at a version), for the
/// `dugong` tool and for operators.
extension PostgresEventStore {
    /// What the database holds of one stream.
    public struct StreamState: Sendable, Equatable {
        /// The raw stream name.
        public var name: String
        /// Its last event's sequence number (appends continue after it); for a stream without
        /// events that begins later, one below where it begins.
        public var version: Int
        /// The first version reads return (above ``version`` when none is visible).
        public var firstVisibleVersion: Int
        /// Hidden for good: no append is accepted again.
        public var isTombstoned: Bool
        /// Rows stored, hidden ones included (PostgreSQL keeps truncated rows).
        public var storedEvents: Int
        /// The lowest sequence number stored (``version`` + 1 when none is).
        public var firstStoredVersion: Int

        /// Nothing is visible: deleted, truncated past its version, or tombstoned.
        public var readsAsEmpty: Bool { isTombstoned || firstVisibleVersion > version }
    }

    /// Every stream with events or a lifecycle record, in the order they began (streams with no
    /// events first, by name).
    public func streamStates() async throws -> [StreamState] {
        try await states(where: "")
    }

    /// The state of the stream of that raw name, or `nil` when the database has never seen it.
    public func state(ofStreamNamed name: String) async throws -> StreamState? {
        try await states(where: "WHERE stream = $1", name).first
    }

    private func states(where condition: String, _ name: String? = nil) async throws -> [StreamState] {
        try await client.withConnection { try await Self.states(where: condition, name, on: $0, logger: logger) }
    }

    static func states(where condition: String, _ name: String? = nil, on connection: PostgresConnection, logger: Logger) async throws -> [StreamState] {
        var bindings = PostgresBindings()
        if let name { bindings.append(name) }
        let rows = try await connection.openQuery(
            PostgresQuery(
                unsafeSQL: """
                    SELECT stream, coalesce(e.version, 0), coalesce(e.first_version, 0), coalesce(e.events, 0),
                           coalesce(s.truncate_before, 1), coalesce(s.tombstoned, false)
                    FROM (SELECT stream, max(sequence_number) AS version, min(sequence_number) AS first_version,
                                 count(*) AS events, min(position) AS began
                          FROM dugong_events \(condition) GROUP BY stream) e
                    FULL JOIN (SELECT * FROM dugong_streams \(condition)) s USING (stream)
                    ORDER BY e.began NULLS FIRST, stream
                    """, binds: bindings), logger: logger)
        var states: [StreamState] = []
        for try await (name, last, first, events, truncateBefore, tombstoned) in rows.decode((String, Int64, Int64, Int64, Int64, Bool).self) {
            let version = max(Int(last), Int(truncateBefore) - 1)
            states.append(
                StreamState(
                    name: name, version: version, firstVisibleVersion: Int(truncateBefore), isTombstoned: tombstoned,
                    storedEvents: Int(events), firstStoredVersion: events > 0 ? Int(first) : version + 1))
        }
        return states
    }

    /// Soft-deletes the stream: it reads as empty at once; later appends continue its versions.
    /// Its snapshots of the versions it has are hidden too (``PostgresSnapshotStore``): one would
    /// restore the deleted aggregate; one saved later, of a later version, is served.
    public func delete(streamNamed name: String) async throws {
        try Self.validate(name)
        try await client.inTransaction(logger: logger) { connection in
            let state = try await Self.version(of: name, on: connection, logger: logger)
            // As the embedded store: a tombstoned stream refuses it (it said "tombstoned already"
            // and recorded a truncation), and one without versions has nothing to hide (a row
            // made a stream of a name never used).
            if state.isTombstoned { throw PostgresStoreError.streamTombstoned(stream: name) }
            if state.version == 0 { return }
            try await Self.setFirstVisibleVersion(of: name, to: state.version + 1, on: connection, logger: logger)
            // (`greatest` skips a NULL: none hidden yet.)
            try await connection.openQuery(
                """
                UPDATE dugong_streams SET snapshots_hidden_through = greatest(snapshots_hidden_through, \(Int64(state.version)))
                WHERE stream = \(name)
                """, logger: logger)
        }
    }

    /// Hides the stream's versions below `version` (which may be at most its version + 1: more
    /// would hide its next appends). Rows stay in the table; reads skip them.
    ///
    /// - Throws: ``PostgresStoreError/invalidChange(_:)`` when `version` is out of range.
    public func truncate(streamNamed name: String, before version: Int) async throws {
        guard version >= 1 else { throw PostgresStoreError.invalidChange("truncate before version \(version): versions start at 1") }
        try Self.validate(name)
        try await client.inTransaction(logger: logger) { connection in
            let state = try await Self.version(of: name, on: connection, logger: logger)
            if state.isTombstoned { throw PostgresStoreError.streamTombstoned(stream: name) }
            guard version <= state.version + 1 else {
                throw PostgresStoreError.invalidChange(
                    "truncate '\(name)' before version \(version): the stream is at version \(state.version), so at most \(state.version + 1) (which hides every version it has)")
            }
            // No version is below 1: nothing to hide, nothing written (a row would make a stream
            // of a name never used), as the embedded store does.
            if version == 1 { return }
            try await Self.setFirstVisibleVersion(of: name, to: version, on: connection, logger: logger)
        }
    }

    /// Tombstones the stream: it reads as empty, no append is accepted again and no snapshot of
    /// it is served (a name never seen may be tombstoned: it is reserved for good).
    public func tombstone(streamNamed name: String) async throws {
        try Self.validate(name)
        // In a transaction: a statement that commits by itself is answered before it commits
        // (``PostgresClient/withRows(_:logger:isolation:_:)`` says why).
        try await client.inTransaction(logger: logger) { connection in
            _ = try await connection.openQuery(
                """
                INSERT INTO dugong_streams (stream, tombstoned) VALUES (\(name), true)
                ON CONFLICT (stream) DO UPDATE SET tombstoned = true
                """, logger: logger)
        }
    }

    /// The bounds the embedded store puts on a stream name (its lifecycle commands took an empty
    /// name or one of 2,004 bytes, which a directory store then refused to import).
    static func validate(_ name: String) throws {
        let bytes = name.utf8.count
        guard bytes > 0 else { throw PostgresStoreError.invalidChange("stream name is empty") }
        guard bytes <= maximumNameLength else {
            throw PostgresStoreError.invalidChange("stream name is \(bytes) bytes long, over the maximum of \(maximumNameLength)")
        }
        guard !name.utf8.contains(0) else { throw PostgresStoreError.invalidChange("stream name contains a NUL byte") }
    }

    /// The longest stream name, in UTF-8 bytes (the embedded store's bound).
    static let maximumNameLength = 1024

    /// Declares that the stream, which has no events yet, begins at `version`: its earlier
    /// versions are not in this database (they were removed where it came from). Doing it again
    /// with the same version does nothing.
    ///
    /// - Throws: ``PostgresStoreError/invalidChange(_:)`` when the stream has events or begins
    ///   elsewhere already.
    public func beginStream(named name: String, atVersion version: Int) async throws {
        guard version >= 1 else { throw PostgresStoreError.invalidChange("a stream begins at version 1 or later, not \(version)") }
        try await client.inTransaction(logger: logger) { connection in
            let state = try await Self.version(of: name, on: connection, logger: logger)
            guard state.version == version - 1 || state.version == 0 else {
                throw PostgresStoreError.invalidChange("stream '\(name)' cannot begin at version \(version): its version is \(state.version)")
            }
            try await Self.setFirstVisibleVersion(of: name, to: version, on: connection, logger: logger)
        }
    }

    /// Raises the stream's first visible version (never lowers it).
    static func setFirstVisibleVersion(of name: String, to version: Int, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.openQuery(
            """
            INSERT INTO dugong_streams (stream, truncate_before) VALUES (\(name), \(Int64(version)))
            ON CONFLICT (stream) DO UPDATE SET truncate_before = greatest(dugong_streams.truncate_before, excluded.truncate_before)
            """, logger: logger)
    }

    // MARK: Reading by raw name, and everything at once

    /// The stream's events from `version` on (down from it with `backward`), at most
    /// `maxCount`, with their cursors; hidden ones (truncated, deleted, tombstoned) too when
    /// `includeHidden`.
    public func recordedEvents(
        ofStreamNamed name: String, from version: Int? = nil, maxCount: Int = .max, backward: Bool = false, includeHidden: Bool = false
    ) async throws -> [RecordedEvent] {
        guard maxCount > 0 else { return [] }
        let bound = Int64(version ?? (backward ? Int(Int64.max) : 1))
        let visible = includeHidden ? "1" : Self.firstVisibleVersion
        return try await client.withRows(
            PostgresQuery(
                unsafeSQL: """
                    SELECT \(Row.columns) FROM dugong_events
                    WHERE stream = $1 AND sequence_number \(backward ? "<=" : ">=") $2 AND sequence_number >= \(visible)
                    ORDER BY sequence_number \(backward ? "DESC" : "ASC") LIMIT $3
                    """, binds: {
                    var bindings = PostgresBindings()
                    bindings.append(name)
                    bindings.append(bound)
                    bindings.append(Int64(clamping: maxCount))
                    return bindings
                }()), logger: logger) { try await Row.recorded($0) }
    }

    /// Every committed event, in pages of `pageSize` in the order (transaction, position), and
    /// then the streams' states, all as of one moment (one repeatable-read transaction):
    /// complete even while a long transaction holds the global log's readers back. For exports.
    public func forEachCommittedEvent(pageSize: Int = 4096, _ body: ([RecordedEvent]) async throws -> Void) async throws -> [StreamState] {
        precondition(pageSize > 0, "a page holds at least one event")
        return try await client.inTransaction(logger: logger) { connection in
            try await connection.openQuery("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            var cursor = LogCursor.start
            while true {
                let rows = try await connection.openQuery(
                    """
                    SELECT \(unescaped: Row.columns) FROM dugong_events
                    WHERE (transaction_id, position) >= (\(String(cursor.transaction))::xid8, \(Int64(clamping: cursor.position)))
                    ORDER BY transaction_id, position
                    LIMIT \(Int64(pageSize))
                    """, logger: logger)
                let page = try await Row.recorded(rows)
                guard let last = page.last else { break }
                try await body(page)
                cursor = last.next
            }
            return try await Self.states(where: "", on: connection, logger: logger)
        }
    }

    /// What the database holds, for `dugong stats`.
    public struct Statistics: Sendable, Equatable, Codable {
        public var schemaVersion: Int
        public var events: Int
        public var streams: Int
        /// The events table with its indexes and TOAST, as PostgreSQL counts them.
        public var tableBytes: Int
        /// Bytes of event data and metadata columns.
        public var payloadBytes: Int
    }

    public func statistics() async throws -> Statistics {
        try await client.withRows(
            """
            SELECT (SELECT coalesce(max(version), 0) FROM dugong_schema),
                   (SELECT count(*) FROM dugong_events),
                   (SELECT count(*) FROM (SELECT stream FROM dugong_events UNION SELECT stream FROM dugong_streams) s),
                   pg_total_relation_size('dugong_events'),
                   (SELECT coalesce(sum(coalesce(octet_length(data), 0) + coalesce(octet_length(metadata), 0)), 0)::bigint FROM dugong_events)
            """, logger: logger) { rows in
            for try await (schema, events, streams, table, payload) in rows.decode((Int32, Int64, Int64, Int64, Int64).self) {
                return Statistics(
                    schemaVersion: Int(schema), events: Int(events), streams: Int(streams), tableBytes: Int(table), payloadBytes: Int(payload))
            }
            throw PostgresStoreError.unreadableRow(position: 0, reason: "no statistics")
        }
    }
}
#endif
