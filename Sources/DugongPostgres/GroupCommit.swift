#if Postgres
import Dugong
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Single-stream appends of concurrent callers written together: one transaction (`BEGIN`,
/// one `INSERT`, `COMMIT`) for every such append waiting when it starts, each guarded by its
/// own stream's version and tombstone exactly as an append alone is.
///
/// An append alone pays three statements and a flush of the server's log at its `COMMIT`:
/// 64 writers of one-event commits paid them 64 times, and ran at half the speed of plain
/// `INSERT`s that commit by themselves (which acknowledge before they have committed, see
/// ``PostgresClient/withRows(_:logger:isolation:_:)``). A batch pays them once.
///
/// - At most ``concurrentBatches`` batches run at once: a batch starts at once when fewer run
///   (an append alone waits for no one), and takes every append waiting when it starts.
/// - The batcher belongs to one ``PostgresEventStore`` value (and the copies of it): share one
///   store across requests, rather than making one per request.
/// - A batch never holds two appends to one stream, nor a stream that the other batch holds:
///   an append to such a stream waits for the next batch, so that each append is decided
///   against its stream's version as the appends before it left it.
/// - What each append is told:
///   - its events' last cursor when its rows were inserted and the batch committed;
///   - `nil` when its guard kept its rows out, or when the batch failed before its commit
///     (a concurrent append took a version, an id was stored already, a deadlock, a
///     connection lost before `COMMIT` was sent): nothing of the batch was committed, and the
///     append is decided again on its own (``PostgresEventStore/append(_:)``);
///   - ``PostgresConnectionLost`` with ``PostgresConnectionLost/Outcome/unknown`` when the
///     connection closed while the batch's `COMMIT` waited for its answer: every append of
///     the batch may have been committed, and each caller is told so (also the callers whose
///     guard had kept their rows out: sent again, they are decided again).
final class GroupCommit: Sendable {
    /// Batches running at once.
    static let concurrentBatches = 2
    /// Appends in one batch at most.
    static let maximumAppends = 128
    /// Events in one batch at most (a larger append is a batch of its own).
    static let maximumEvents = 8_192
    /// Bytes of data and metadata in one batch at most (a larger append is a batch of its own):
    /// far below PostgreSQL's 1 GB for one parameter, which many callers' appends together
    /// could pass where each alone would not.
    static let maximumBytes = 16 << 20

    private let client: PostgresClient
    private let logger: Logger
    private let state = Mutex(State())

    /// One caller's append, waiting for its batch.
    private struct Waiting: Sendable {
        var rows: [Row]
        /// Bytes of the events' data and metadata.
        var bytes: Int
        /// The stream's raw name and its bytes (streams are told apart by the bytes, as the
        /// table's key does).
        var name: String
        var key: [UInt8]
        var answer: CheckedContinuation<LogCursor?, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        /// The streams of the batches running.
        var streamsInBatches: Set<[UInt8]> = []
        var runningBatches = 0
        var batchesTaken = 0
        var appendsTaken = 0
    }

    /// Batches taken so far, and the appends they held (the tests' evidence that appends share
    /// transactions).
    var counts: (batches: Int, appends: Int) {
        state.withLock { ($0.batchesTaken, $0.appendsTaken) }
    }

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Inserts `rows`, the events of one stream, if the stream's version is the one before
    /// their first and it is not tombstoned, in a batch with the appends of other callers;
    /// returns the last event's cursor once the batch has committed, or `nil` when nothing of
    /// it was committed (see the type's documentation).
    func insertIfNext(_ rows: [Row], stream name: String) async throws -> LogCursor? {
        precondition(!rows.isEmpty, "an append holds at least one event")
        return try await withCheckedThrowingContinuation { continuation in
            let startsBatch = state.withLock { state in
                let bytes = rows.reduce(0) { $0 + ($1.data?.count ?? 0) + ($1.metadata?.count ?? 0) }
                state.waiting.append(Waiting(rows: rows, bytes: bytes, name: name, key: Array(name.utf8), answer: continuation))
                guard state.runningBatches < Self.concurrentBatches else { return false }
                state.runningBatches += 1
                return true
            }
            // A task of its own, not one of the callers': a caller's cancellation must not
            // end the others' batch.
            if startsBatch { Task { await self.runBatches() } }
        }
    }

    /// Runs batches until none can be taken. The count of running batches falls in the same
    /// lock that finds nothing to take, so that an append added meanwhile is never left
    /// waiting with no batch to take it.
    private func runBatches() async {
        var finished: [Waiting] = []
        while true {
            let batch = state.withLock { state -> [Waiting]? in
                for done in finished { state.streamsInBatches.remove(done.key) }
                let batch = Self.take(from: &state)
                if batch.isEmpty { state.runningBatches -= 1 }
                return batch.isEmpty ? nil : batch
            }
            guard let batch else { return }
            let answers = await run(batch)
            assert(answers.count == batch.count)
            for (waiting, answer) in zip(batch, answers) { waiting.answer.resume(with: answer) }
            finished = batch
        }
    }

    /// The next batch: the waiting appends in the order they came, skipping those whose
    /// stream is in a batch already, up to the batch's limits (always at least one); then in
    /// the order of their streams' bytes, so that two batches (of two instances of an
    /// application) take the streams' index entries in one order and never deadlock.
    private static func take(from state: inout State) -> [Waiting] {
        var batch: [Waiting] = []
        var events = 0
        var bytes = 0
        var left: [Waiting] = []
        for waiting in state.waiting {
            let fits = batch.isEmpty
                || (batch.count < maximumAppends && events + waiting.rows.count <= maximumEvents && bytes + waiting.bytes <= maximumBytes)
            if fits, !state.streamsInBatches.contains(waiting.key) {
                state.streamsInBatches.insert(waiting.key)
                batch.append(waiting)
                events += waiting.rows.count
                bytes += waiting.bytes
            } else {
                left.append(waiting)
            }
        }
        state.waiting = left
        batch.sort { $0.key.lexicographicallyPrecedes($1.key) }
        if !batch.isEmpty {
            state.batchesTaken += 1
            state.appendsTaken += batch.count
        }
        return batch
    }

    /// One batch's transaction, and what each of its appends is told.
    private func run(_ batch: [Waiting]) async -> [Result<LogCursor?, any Error>] {
        let query = PostgresQuery(unsafeSQL: Self.guardedInsert, binds: Self.bindings(batch))
        let expected = batch.reduce(0) { $0 + $1.rows.count }
        do {
            let cursors = try await client.inTransaction(logger: logger) { connection in
                let inserted = try await connection.openQuery(query, logger: logger)
                // Rows by their stream's bytes and sequence number, which a batch holds once each
                // (not by event id: two appends of a batch may carry one id, and the one whose
                // guard failed must not be answered with the other's row).
                var cursors: [InsertedEvent: LogCursor] = [:]
                for try await (stream, sequenceNumber, transaction, position) in inserted.decode((String, Int64, String, Int64).self) {
                    guard let transaction = UInt64(transaction) else {
                        throw PostgresStoreError.unreadableRow(position: position, reason: "transaction id \(transaction)")
                    }
                    cursors[InsertedEvent(stream: Array(stream.utf8), sequenceNumber: sequenceNumber)] = LogCursor(transaction: transaction, position: UInt64(position))
                }
                // Each append's rows are all inserted or none (its guard holds for all of them):
                // anything else is refused before the commit.
                for waiting in batch {
                    let found = waiting.rows.count(where: { cursors[InsertedEvent(stream: waiting.key, sequenceNumber: $0.sequenceNumber)] != nil })
                    guard found == 0 || found == waiting.rows.count else {
                        throw GroupCommitInvariant(reason: "\(found) of the \(waiting.rows.count) events of an append to '\(waiting.name)' inserted")
                    }
                }
                assert(cursors.count <= expected)
                return cursors
            }
            return batch.map { waiting in
                // Positions rise with the order of the rows: the last event's is the largest.
                .success(cursors[InsertedEvent(stream: waiting.key, sequenceNumber: waiting.rows[waiting.rows.count - 1].sequenceNumber)])
            }
        } catch let lost as PostgresConnectionLost where lost.mayHaveCommitted {
            return batch.map { _ in .failure(lost) }
        } catch {
            // Rolled back: nothing of the batch was committed. Each append is decided again on
            // its own, which says its own error if it has one.
            logger.debug("a batch of \(batch.count) appends was rolled back: \(String(reflecting: error))")
            return batch.map { _ in .success(nil) }
        }
    }

    /// An inserted row: its stream's raw name as bytes, its sequence number.
    private struct InsertedEvent: Hashable {
        var stream: [UInt8]
        var sequenceNumber: Int64
    }

    /// Found false after an insert: the batch is rolled back.
    struct GroupCommitInvariant: Error, CustomStringConvertible {
        var reason: String
        var description: String { "a batch of appends inserted part of one append: \(reason)" }
    }

    /// The batch's statement. `m`: one row per append (`k`: 1, 2, …) whose stream is at the
    /// version before the append's first event and not tombstoned, read once per append
    /// (`MATERIALIZED`); `u`: one row per event, joined to its append by `k`, inserted in the
    /// order given (`u.n`) so that positions rise with it.
    static let guardedInsert = """
        WITH m AS MATERIALIZED (
            SELECT m.* FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::text[])
                 WITH ORDINALITY AS m(stream, before, origin, aggregate_type, tenant, tenant_null, aggregate_id, k)
            WHERE NOT EXISTS (SELECT 1 FROM dugong_streams s WHERE s.stream = m.stream AND s.tombstoned)
              AND greatest(coalesce((SELECT max(sequence_number) FROM dugong_events e WHERE e.stream = m.stream), 0),
                           coalesce((SELECT truncate_before FROM dugong_streams s WHERE s.stream = m.stream), 1) - 1) = m.before
        )
        INSERT INTO dugong_events (\(Row.insertedColumns))
        SELECT m.stream, m.origin, m.aggregate_type, CASE WHEN m.tenant_null THEN NULL ELSE m.tenant END, m.aggregate_id,
               u.sequence_number, \(Row.unnestedEventColumns)
        FROM unnest($8::bigint[], $9::bigint[], \(Row.eventArrays(from: 10)))
             WITH ORDINALITY AS u(k, sequence_number, \(Row.eventArrayNames), n)
        JOIN m ON m.k = u.k
        ORDER BY u.n
        RETURNING stream, sequence_number, transaction_id::text, position
        """

    /// The parameters of ``guardedInsert``: per append ($1 to $7) its stream's raw name, the
    /// version before its first event and the stream's parts; per event ($8, $9) its append's
    /// `k` and its sequence number, then its columns (``Row/appendEventArrays(_:to:)``).
    private static func bindings(_ batch: [Waiting]) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 23)
        bindings.append(batch.map(\.name))
        bindings.append(batch.map { $0.rows[0].sequenceNumber - 1 })
        bindings.append(batch.map(\.rows[0].origin))
        bindings.append(batch.map(\.rows[0].aggregateType))
        bindings.append(batch.map { $0.rows[0].tenantID ?? "" })
        bindings.append(batch.map { $0.rows[0].tenantID == nil })
        bindings.append(batch.map(\.rows[0].aggregateID))
        let rows = batch.flatMap(\.rows)
        bindings.append(batch.enumerated().flatMap { index, waiting in Array(repeating: Int64(index + 1), count: waiting.rows.count) })
        bindings.append(rows.map(\.sequenceNumber))
        Row.appendEventArrays(rows, to: &bindings)
        return bindings
    }
}
#endif
