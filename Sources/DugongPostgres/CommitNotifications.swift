#if Postgres
import Foundation
import Logging
import PostgresNIO

/// The commits' notifications (`LISTEN dugong_events`) shared by every reader of one
/// ``PostgresEventStore`` that waits for events: one pooled connection listens while at least
/// one reader waits, whatever their number, and is given back when the last one stops.
///
/// A connection per waiting reader would take the pool: with as many readers waiting as the
/// pool has connections, the commit they wait for could never get one.
actor CommitNotifications {
    private let client: PostgresClient
    private let logger: Logger
    /// Each waiting reader's wake-up (at most one pending: a burst of commits is one look).
    private var readers: [UUID: AsyncStream<Void>.Continuation] = [:]
    private var listening: Task<Void, Never>?

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Adds a reader: `wake` is yielded on every notification until ``remove(_:)``.
    func add(_ wake: AsyncStream<Void>.Continuation) -> UUID {
        let id = UUID()
        readers[id] = wake
        if listening == nil {
            listening = Task { await self.listen() }
        }
        return id
    }

    func remove(_ id: UUID) {
        readers[id] = nil
        if readers.isEmpty {
            listening?.cancel()
            listening = nil
        }
    }

    private func notifyReaders() {
        for wake in readers.values { wake.yield() }
    }

    /// Listens until cancelled; a lost connection is replaced after a pause (the readers'
    /// polls cover the gap).
    private func listen() async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: PostgresEventStore.channel) { notifications in
                        // Commits made while the LISTEN was being set up notified no one.
                        self.notifyReaders()
                        for try await _ in notifications { self.notifyReaders() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("listening for commits failed; listening again", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}
#endif
