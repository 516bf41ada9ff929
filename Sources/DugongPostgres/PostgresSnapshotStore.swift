#if Postgres
import Dugong
import Foundation
import Logging
import PostgresNIO

/// The snapshot-store port on PostgreSQL (`dugong_snapshots`), bounded: each stream keeps its
/// ``keep`` snapshots of the highest sequence numbers; saving one deletes the older ones in the
/// same transaction.
///
/// As the embedded store's, ``latest(for:)`` serves no snapshot of a tombstoned stream, nor one
/// of a deleted stream at a version it had when it was deleted
/// (``PostgresEventStore/delete(streamNamed:)``): either would restore an aggregate its reads no
/// longer show. A truncated stream's snapshots are served (truncating after a snapshot is what
/// they are for).
public struct PostgresSnapshotStore: SnapshotStore {
    public let client: PostgresClient
    /// Snapshots kept per stream (at least 1).
    public let keep: Int
    let logger: Logger

    public init(client: PostgresClient, keep: Int = 1, logger: Logger = Logger(label: "dugong.postgres")) {
        self.client = client
        self.keep = max(keep, 1)
        self.logger = logger
    }

    public func save(_ snapshot: SerializedSnapshot) async throws {
        let name = AggregateStreamName.name(of: snapshot.stream)
        try await client.inTransaction(logger: logger) { connection in
            try await connection.openQuery(
                """
                INSERT INTO dugong_snapshots (stream, sequence_number, schema_version, data)
                VALUES (\(name), \(Int64(snapshot.sequenceNumber)), \(Int32(clamping: snapshot.schemaVersion)), \(snapshot.data))
                ON CONFLICT (stream, sequence_number) DO UPDATE SET schema_version = excluded.schema_version, data = excluded.data
                """, logger: logger)
            try await connection.openQuery(
                """
                DELETE FROM dugong_snapshots WHERE stream = \(name) AND sequence_number < (
                    SELECT min(sequence_number) FROM (
                        SELECT sequence_number FROM dugong_snapshots WHERE stream = \(name)
                        ORDER BY sequence_number DESC LIMIT \(Int64(keep))) AS kept)
                """, logger: logger)
        }
    }

    public func latest(for stream: StreamID) async throws -> SerializedSnapshot? {
        try await client.withRows(
            """
            SELECT sn.sequence_number, sn.schema_version, sn.data
            FROM dugong_snapshots sn LEFT JOIN dugong_streams s ON s.stream = sn.stream
            WHERE sn.stream = \(AggregateStreamName.name(of: stream)) AND NOT coalesce(s.tombstoned, false)
              AND (s.snapshots_hidden_through IS NULL OR sn.sequence_number > s.snapshots_hidden_through)
            ORDER BY sn.sequence_number DESC LIMIT 1
            """, logger: logger) { rows in
            for try await (sequence, schema, data) in rows.decode((Int64, Int32, Data).self) {
                return SerializedSnapshot(stream: stream, sequenceNumber: Int(sequence), schemaVersion: Int(schema), data: data)
            }
            return nil
        }
    }
}
#endif
