#if Postgres
import ArgumentParser
import Dugong
import DugongPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization

extension PostgresAccess {
    /// Quiet: the tool says what matters itself.
    static var logger: Logger {
        var logger = Logger(label: "dugong")
        logger.logLevel = .error
        return logger
    }

    /// Connects to the database at `url` and runs `body` with its event store. Writing
    /// commands (`creating`) create or upgrade the tables; reading ones need them at this
    /// build's version and change nothing.
    static func with<R>(_ url: String, creating: Bool = false, _ body: (PostgresEventStore) async throws -> R) async throws -> R {
        // The commands that may create the schema are the ones that write (Terminal.write).
        if creating { Terminal.mayHaveWritten = true }
        let configuration: PostgresClient.Configuration
        do {
            configuration = try PostgresConnectionURL.configuration(from: url)
        } catch {
            throw Terminal.fail("\(error)", code: ExitStatus.usage.rawValue)
        }
        let failures = ConnectionFailures()
        var background = Logger(label: "dugong") { label in ConnectionFailures.Handler(failures: failures, label: label) }
        background.logLevel = .info
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        // The pool runs beside the command and is cancelled when it ends, without waiting for
        // its shutdown: the process ends right after, which closes every connection. (A hang
        // after a connection the server dropped was the next query's, not the shutdown's:
        // PostgresSchema's `inTransaction`.)
        let pool = Task { await client.run() }
        defer { pool.cancel() }
        do {
            try await probe(client, failures: failures, within: configuration.options.connectTimeout)
            if creating {
                try await PostgresSchema.migrate(client, logger: logger)
            } else {
                try await checkSchema(client, url: url)
            }
            return try await body(PostgresEventStore(client: client, logger: logger))
        } catch {
            throw fail(error, url: url)
        }
    }

    private struct Unreachable: Error {
        /// What the server answered to the pool's last attempt, when it answered.
        var serverSaid: String?
        /// How long the first connection was waited for.
        var waited: Duration
    }

    /// One query, within `timeout` (the URL's `connect_timeout`, PostgresNIO's 10 s by default:
    /// the pool would keep trying for a minute); at once when the server refuses the
    /// connection with a reason (a database or role that does not exist: waiting changes
    /// nothing). (A black-box run found `connect_timeout` taken and not waited by: 10 s always.)
    private static func probe(_ client: PostgresClient, failures: ConnectionFailures, within timeout: Duration) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await client.execute("SELECT 1", logger: logger)
                return true
            }
            group.addTask {
                let deadline = ContinuousClock.now + timeout
                while ContinuousClock.now < deadline, !failures.isFinal { try await Task.sleep(for: .milliseconds(50)) }
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else { throw Unreachable(serverSaid: failures.serverSaid, waited: timeout) }
        }
    }

    /// The reason the server gave the connection pool for its last failed connection
    /// (PostgresNIO logs it, at `info`, and retries; the tool said only "cannot reach … within
    /// 10 s" of a database that does not exist).
    final class ConnectionFailures: Sendable {
        private let last = Mutex<(said: String, state: String)?>(nil)

        var serverSaid: String? { last.withLock { $0?.said } }

        /// Whether the reason is one that waiting does not change: no such database, no such
        /// role, a refused password or permission. A server starting up (57P03) or full (53300)
        /// is waited for as before, within the connection timeout.
        var isFinal: Bool { last.withLock { $0.map { ["3D000", "28000", "28P01", "42501"].contains($0.state) } ?? false } }

        struct Handler: LogHandler {
            let failures: ConnectionFailures
            let label: String
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                if event.message.description == "Connection creation failed" {
                    // `String(reflecting:)` of a PSQLError: "…serverInfo: [… message: TEXT, …, sqlState: CODE…]".
                    let text = (event.metadata ?? [:]).values.map(\.description).joined(separator: " ")
                    if let message = text.firstMatch(of: /message: (.+?)(?:, [A-Za-z]+: |\])/)?.1,
                        let state = text.firstMatch(of: /sqlState: ([0-9A-Z]{5})/)?.1
                    {
                        failures.last.withLock { $0 = ("\(message) (SQLSTATE \(state))", String(state)) }
                    }
                }
                // What the quiet logger printed before: errors.
                if event.level >= .error {
                    var stream = StreamLogHandler.standardError(label: label)
                    stream.logLevel = .error
                    stream.log(event: event)
                }
            }
        }
    }

    /// A reading command on a database without the tables, or with an older or newer schema:
    /// said, and nothing changed.
    private static func checkSchema(_ client: PostgresClient, url: String) async throws {
        var applied = 0
        let exists = try await client.withRows("SELECT to_regclass('dugong_schema') IS NOT NULL", logger: logger) { rows in
            try await rows.decode(Bool.self).contains(true)
        }
        if exists {
            applied = try await client.withRows("SELECT coalesce(max(version), 0) FROM dugong_schema", logger: logger) { rows in
                var applied = 0
                for try await version in rows.decode(Int.self) { applied = version }
                return applied
            }
        }
        if applied == 0 {
            throw Terminal.fail(
                "\(redacted(url)) has no Dugong tables: nothing was written there yet (`dugong import` creates them)",
                code: ExitStatus.notFound.rawValue)
        }
        if applied > PostgresSchema.version { throw PostgresStoreError.schemaTooNew(found: applied, supported: PostgresSchema.version) }
        if applied < PostgresSchema.version {
            throw Terminal.fail(
                "\(redacted(url)) has Dugong schema version \(applied), older than this dugong's \(PostgresSchema.version): an application of this version upgrades it when it starts (PostgresSchema.migrate), and so does any writing command (`dugong import` of an empty input)",
                code: ExitStatus.notFound.rawValue)
        }
        // Said, not refused: `export` is how such a store is moved (it reads every row).
        do {
            try await PostgresSchema.checkTransactionIDs(client, logger: logger)
        } catch let error as PostgresStoreError {
            Terminal.error("warning: \(redacted(url)): \(error)")
        }
    }

    /// An error as the tool says it, with the exit status of its kind.
    static func fail(_ error: any Error, url: String, prefix: String = "") -> any Error {
        if error is ExitCode || error is CleanExit { return error }
        let where_ = redacted(url)
        let (message, status): (String, ExitStatus)
        switch error {
        case let error as PostgresStoreError:
            switch error {
            case .schemaTooNew: (message, status) = ("\(where_): \(error)", .notFound)
            case .unreadableRow: (message, status) = ("\(where_): \(error)", .damaged)
            case .invalidURL: (message, status) = ("\(error)", .usage)
            case .streamTombstoned: (message, status) = ("\(error)", .conflict)
            case .invalidChange: (message, status) = ("\(error)", .badInput)
            case .transactionIDsFromAnotherServer: (message, status) = ("\(where_): \(error)", .damaged)
            }
        case let error as EventStoreError:
            switch error {
            case .conflict, .partialDuplicate: (message, status) = ("\(error)", .conflict)
            case .invalidAppend: (message, status) = ("\(error)", .badInput)
            }
        case let error as PSQLError:
            if let server = error.serverInfo?[.message] {
                (message, status) = ("\(where_): the server says: \(server) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))", .ioFailure)
            } else if error.code == .serverClosedConnection || error.code == .clientClosedConnection {
                // (A PSQLError's own description is a placeholder that names nothing.)
                (message, status) = ("\(where_): the server closed the connection (it restarted, or the connection was terminated)", .ioFailure)
            } else {
                let cause = error.underlying.flatMap { $0 is PSQLError ? nil : "\($0)" } ?? "\(error.code)"
                (message, status) = ("cannot reach \(where_): \(cause)", .ioFailure)
            }
        case let error as Unreachable:
            if let said = error.serverSaid {
                (message, status) = ("cannot connect to \(where_): the server says: \(said)", .ioFailure)
            } else {
                (message, status) = (
                    "cannot reach \(where_) within \(error.waited) (is the server running, and are the host, port, socket directory and database right?)",
                    .ioFailure
                )
            }
        case _ where String(describing: type(of: error)) == "ConnectionPoolError":
            // PostgresNIO's pool gave up after its new connections kept failing (about a
            // minute: a follower waiting through a restart); its own words name its internals.
            (message, status) = ("cannot reach \(where_): new connections kept failing (the server stopped, or is unreachable)", .ioFailure)
        default:
            (message, status) = ("\(where_): \(error)", .ioFailure)
        }
        return Terminal.fail(prefix + message, code: status.rawValue)
    }
}
#endif
