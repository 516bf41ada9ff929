#if Postgres
import Dugong
import DugongPostgres
import DugongTesting
import Foundation
import Logging
import PostgresNIO
import Testing

/// The server the tests use: `DUGONG_POSTGRES_URL` (tools/test starts a throwaway one). Without
/// it the suites are disabled, visibly, with that reason.
enum TestServer {
    static let url = ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"]
    static var isAvailable: Bool { url != nil }

    /// A client of a fresh database of its own (created from the server's `postgres` one), with
    /// the schema migrated; `body` runs while the client's pool runs, then the database is dropped.
    static func withFreshDatabase<R: Sendable>(_ body: (PostgresClient) async throws -> R) async throws -> R {
        let server = PostgresClient(configuration: try PostgresConnectionURL.configuration(from: url!))
        let database = "dugong_test_\(UUID().uuidString.prefix(8).lowercased())"
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await server.run() }
            defer { group.cancelAll() }
            try await server.query("CREATE DATABASE \(unescaped: database)")
            var configuration = try PostgresConnectionURL.configuration(from: url!)
            configuration.database = database
            let client = PostgresClient(configuration: configuration)
            let result: Result<R, any Error>
            do {
                result = .success(try await withThrowingTaskGroup(of: Void.self) { inner in
                    inner.addTask { await client.run() }
                    defer { inner.cancelAll() }
                    try await PostgresSchema.migrate(client)
                    return try await body(client)
                })
            } catch {
                result = .failure(error)
            }
            try await server.query("DROP DATABASE \(unescaped: database) WITH (FORCE)")
            return try result.get()
        }
    }
}

@Suite("PostgreSQL adapters pass the port contracts", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresContractTests {
    @Test(arguments: EventStoreContract.checks)
    func eventStore(_ check: EventStoreContract.Check) async throws {
        try await TestServer.withFreshDatabase { client in
            try await check.run { PostgresEventStore(client: client) }
        }
    }
}

@Suite("PostgreSQL schema", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresSchemaTests {
    @Test func migratingAgainAndFromManyInstancesAtOnceChangesNothing() async throws {
        try await TestServer.withFreshDatabase { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await PostgresSchema.migrate(client) } }
                try await group.waitForAll()
            }
            let rows = try await client.query("SELECT version FROM dugong_schema ORDER BY version")
            var versions: [Int] = []
            for try await version in rows.decode(Int.self) { versions.append(version) }
            #expect(versions == Array(1...PostgresSchema.version))
        }
    }

    @Test func aSchemaFromANewerBuildIsRefusedWithAMessage() async throws {
        try await TestServer.withFreshDatabase { client in
            try await client.query("INSERT INTO dugong_schema (version) VALUES (\(PostgresSchema.version + 1))")
            await #expect(throws: PostgresStoreError.schemaTooNew(found: PostgresSchema.version + 1, supported: PostgresSchema.version)) {
                try await PostgresSchema.migrate(client)
            }
            #expect("\(PostgresStoreError.schemaTooNew(found: 2, supported: 1))".contains("upgrade Dugong"))
        }
    }
}
#endif
