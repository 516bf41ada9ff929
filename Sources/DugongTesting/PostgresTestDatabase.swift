#if Postgres
import DugongPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A throwaway database on a PostgreSQL server, with Dugong's tables: for the tests of an
/// application (and of the adapters) on PostgreSQL.
///
/// ```swift
/// let database = try await PostgresTestDatabase.create(onServer: "postgres://me@localhost/postgres")
/// let store = PostgresEventStore(client: database.client)
/// …
/// try await database.drop()
/// ```
public final class PostgresTestDatabase: Sendable {
    /// A client of the database, its pool running until ``drop()``.
    public let client: PostgresClient
    /// The database's URL (the server's, with the database's name).
    public let url: String
    let name: String
    let serverURL: String
    private let running: Task<Void, Never>

    private init(client: PostgresClient, url: String, name: String, serverURL: String) {
        self.client = client
        self.url = url
        self.name = name
        self.serverURL = serverURL
        running = Task { await client.run() }
    }

    /// Creates a database of a new name on the server of `serverURL` (which names a database
    /// to connect to for that, such as `postgres`) and migrates it (``PostgresSchema``).
    public static func create(onServer serverURL: String, logger: Logger = quiet) async throws -> PostgresTestDatabase {
        let name = "dugong_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await onServer(serverURL) { try await $0.execute("CREATE DATABASE \(unescaped: name)", logger: logger) }
        var components = URLComponents(string: serverURL)
        components?.path = "/" + name
        guard let url = components?.string else { throw PostgresStoreError.invalidURL("\(serverURL) has no path to replace") }
        // A few connections each: many tests share one server, whose connections are counted.
        var configuration = try PostgresConnectionURL.configuration(from: url)
        configuration.options.maximumConnections = 8
        let database = PostgresTestDatabase(client: PostgresClient(configuration: configuration), url: url, name: name, serverURL: serverURL)
        do {
            try await PostgresSchema.migrate(database.client, logger: logger)
        } catch {
            try? await database.drop()
            throw error
        }
        return database
    }

    /// Stops the client and drops the database (closing what else is connected to it).
    ///
    /// The client's run is given `stopping` to end: a test whose server closed a connection
    /// under it once kept a full test run waiting here (a pool's run ends only when each of its
    /// connections is back). Then the database is dropped anyway, with its connections, and
    /// the wait is reported on standard error.
    public func drop(stopping: Duration = .seconds(20)) async throws {
        running.cancel()
        if await !Self.ends(running, within: stopping) {
            FileHandle.standardError.write(Data(
                "PostgresTestDatabase: the client of \(name) did not stop within \(stopping) (a connection still leased); dropping the database anyway\n".utf8))
        }
        try await Self.onServer(serverURL) { try await $0.execute("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: Self.quiet) }
    }

    /// Whether `task` ended within `limit` (a task's value cannot be waited for with a limit:
    /// the wait is not cancellable, so it runs apart and is left behind when it is late).
    private static func ends(_ task: Task<Void, Never>, within limit: Duration) async -> Bool {
        let first = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        let give: @Sendable (Bool) -> Void = { ended in first.withLock { $0?.resume(returning: ended); $0 = nil } }
        return await withCheckedContinuation { continuation in
            first.withLock { $0 = continuation }
            let late = Task { try? await Task.sleep(for: limit); give(false) }
            Task {
                await task.value
                give(true)
                late.cancel()
            }
        }
    }

    /// Runs `body` with a client of the server's database while its pool runs.
    private static func onServer(_ serverURL: String, _ body: (PostgresClient) async throws -> Void) async throws {
        var configuration = try PostgresConnectionURL.configuration(from: serverURL)
        configuration.options.maximumConnections = 1
        let server = PostgresClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await server.run() }
            defer { group.cancelAll() }
            try await body(server)
        }
    }

    /// Errors only: tests create many databases.
    public static var quiet: Logger {
        var logger = Logger(label: "dugong.postgres.test")
        logger.logLevel = .error
        return logger
    }
}
#endif
