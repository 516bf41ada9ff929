#if Postgres
import Dugong
import Foundation
import Logging
import PostgresNIO

/// The snapshot-store port on PostgreSQL (`dugong_snapshots`), bounded: each stream keeps its
/// ``keep`` snapshots of the highest sequence numbers; saving one deletes the older ones in the
/// same transaction.
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
            try await connection.query(
                """
                INSERT INTO dugong_snapshots (stream, sequence_number, schema_version, data)
                VALUES (\(name), \(Int64(snapshot.sequenceNumber)), \(Int32(clamping: snapshot.schemaVersion)), \(snapshot.data))
                ON CONFLICT (stream, sequence_number) DO UPDATE SET schema_version = excluded.schema_version, data = excluded.data
                """, logger: logger)
            try await connection.query(
                """
                DELETE FROM dugong_snapshots WHERE stream = \(name) AND sequence_number < (
                    SELECT min(sequence_number) FROM (
                        SELECT sequence_number FROM dugong_snapshots WHERE stream = \(name)
                        ORDER BY sequence_number DESC LIMIT \(Int64(keep))) AS kept)
                """, logger: logger)
        }
    }

    public func latest(for stream: StreamID) async throws -> SerializedSnapshot? {
        let rows = try await client.query(
            """
            SELECT sequence_number, schema_version, data FROM dugong_snapshots
            WHERE stream = \(AggregateStreamName.name(of: stream)) ORDER BY sequence_number DESC LIMIT 1
            """, logger: logger)
        for try await (sequence, schema, data) in rows.decode((Int64, Int32, Data).self) {
            return SerializedSnapshot(stream: stream, sequenceNumber: Int(sequence), schemaVersion: Int(schema), data: data)
        }
        return nil
    }
}
#endif
