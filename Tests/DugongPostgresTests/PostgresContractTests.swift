#if Postgres
import Dugong
@testable import DugongPostgres
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
    static func run<Adapter: Sendable>(_ check: ContractCheck<Adapter>, _ adapt: @escaping @Sendable (PostgresEventStore) -> Adapter) async throws {
        try await TestServer.withFreshDatabase { client in
            try await check.run { adapt(PostgresEventStore(client: client)) }
        }
    }

    @Test(arguments: EventStoreContract.checks)
    func eventStore(_ check: EventStoreContract.Check) async throws {
        try await Self.run(check) { $0 }
    }

    @Test(arguments: TransactionalEventStoreContract.checks)
    func unitsOfWork(_ check: TransactionalEventStoreContract.Check) async throws {
        try await Self.run(check) { $0 }
    }

    @Test(arguments: CheckpointContract.checks)
    func checkpoints(_ check: CheckpointContract.Check) async throws {
        try await Self.run(check) { $0 }
    }

    @Test(arguments: SnapshotStoreContract.checks)
    func snapshotStore(_ check: SnapshotStoreContract.Check) async throws {
        try await TestServer.withFreshDatabase { client in
            try await check.run { PostgresSnapshotStore(client: client) }
        }
    }

    @Test func snapshotsAreBoundedPerStream() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresSnapshotStore(client: client, keep: 2)
            let stream = StreamID(origin: "bounded", aggregateType: "Account", aggregateID: "a")
            for sequence in [3, 9, 5, 12] {
                try await store.save(SerializedSnapshot(stream: stream, sequenceNumber: sequence, data: Data("\(sequence)".utf8)))
            }
            let rows = try await client.query("SELECT sequence_number FROM dugong_snapshots ORDER BY sequence_number")
            var kept: [Int64] = []
            for try await sequence in rows.decode(Int64.self) { kept.append(sequence) }
            #expect(kept == [9, 12])
            #expect(try await store.latest(for: stream)?.data == Data("12".utf8))
        }
    }

    @Test(arguments: ConsumedMessageStoreContract.checks)
    func consumedMessages(_ check: ConsumedMessageStoreContract.Check) async throws {
        try await Self.run(check) { EventStoreConsumedMessages(store: $0) }
    }
}

@Suite("PostgreSQL appends racing", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresRaceTests {
    /// Of 20 appends racing at one expected version, exactly one wins; the others get the
    /// port's conflict, and nothing of theirs is stored.
    @Test func ofTwentyAppendsAtOneVersionExactlyOneWins() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let stream = StreamID(origin: "race", aggregateType: "Account", aggregateID: "one")
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let event = SerializedDomainEvent(
                            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Opened", version: 1, id: UUID(),
                            aggregateID: stream.aggregateID, payload: Data("\(index)".utf8), sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1))
                        do {
                            try await store.append([event], to: stream, expecting: .noStream)
                            return true
                        } catch let error as EventStoreError {
                            guard case .conflict = error else { throw error }
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await store.read(stream).count == 1)
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
