#if Postgres
import Dugong
@testable import DugongPostgres
import DugongExample
import DugongTesting
import Foundation
import Glibc
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
        try await withFreshDatabase { client, _ in try await body(client) }
    }

    /// ``withFreshDatabase(_:)`` that gives `body` the database's URL too.
    static func withFreshDatabase<R: Sendable>(_ body: (PostgresClient, String) async throws -> R) async throws -> R {
        let database = try await PostgresTestDatabase.create(onServer: url!)
        let result: Result<R, any Error>
        do {
            result = .success(try await body(database.client, database.url))
        } catch {
            result = .failure(error)
        }
        try await database.drop()
        return try result.get()
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

    @Test(arguments: GlobalEventLogContract.checks)
    func globalLog(_ check: GlobalEventLogContract.Check) async throws {
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

    /// As in the embedded store: a deleted stream's snapshots of the versions it had are not
    /// served, nor a tombstoned stream's (they were, and a deleted aggregate loaded again from
    /// its snapshot); a truncated stream's are, and so is a snapshot saved after the delete.
    @Test func snapshotsOfDeletedAndTombstonedStreamsAreNotServed() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let snapshots = PostgresSnapshotStore(client: client)
            let accounts = AggregateRepository<BankAccount>(eventStore: store, snapshotStore: snapshots, registry: try EventRegistry(BankAccount.self))
            for id in ["deleted", "tombstoned", "truncated"] {
                var account = try await accounts.create(id: id) { try $0.open(owner: id) }
                account = try await accounts.update(id) { try $0.deposit(10) }
                try await accounts.snapshot(&account)
                #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: id))?.sequenceNumber == 2)
            }
            func name(_ id: String) -> String { AggregateStreamName.name(of: StreamID(BankAccount.self, id: id)) }
            try await store.delete(streamNamed: name("deleted"))
            try await store.tombstone(streamNamed: name("tombstoned"))
            try await store.truncate(StreamID(BankAccount.self, id: "truncated"), before: 3)

            #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "deleted")) == nil)
            #expect(try await accounts.load("deleted") == nil, "a deleted aggregate is not restored from its snapshot")
            #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "tombstoned")) == nil)
            #expect(try await accounts.load("tombstoned") == nil)
            #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "truncated"))?.sequenceNumber == 2)
            #expect(try await accounts.load("truncated")?.state.balance == 10, "restored from the snapshot its truncation relies on")

            // The deleted stream goes on after its versions: a later snapshot is served.
            try await snapshots.save(SerializedSnapshot(stream: StreamID(BankAccount.self, id: "deleted"), sequenceNumber: 2, data: Data("{}".utf8)))
            #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "deleted")) == nil, "a version it had, saved after the delete")
            try await snapshots.save(SerializedSnapshot(stream: StreamID(BankAccount.self, id: "deleted"), sequenceNumber: 3, data: Data("{}".utf8)))
            #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "deleted"))?.sequenceNumber == 3)
        }
    }

    @Test(arguments: ConsumedMessageStoreContract.checks)
    func consumedMessages(_ check: ConsumedMessageStoreContract.Check) async throws {
        try await Self.run(check) { EventStoreConsumedMessages(store: $0) }
    }
}

@Suite("PostgreSQL global log: commits out of order", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresOrderingTests {
    static func events(_ id: String) -> (StreamID, [SerializedDomainEvent]) {
        let stream = StreamID(origin: "order", aggregateType: "Account", aggregateID: id)
        let event = SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Opened", version: 1, id: UUID(),
            aggregateID: id, payload: Data(#"{"id":"\#(id)"}"#.utf8), sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1))
        return (stream, [event])
    }

    /// Reads on from `cursor` as a projection does: every event readable now, following `next`.
    static func poll(_ store: PostgresEventStore, from cursor: inout LogCursor) async throws -> [String] {
        var seen: [String] = []
        while true {
            let batch = try await store.events(from: cursor, maxCount: 2)
            guard let last = batch.last else { return seen }
            seen += batch.map(\.event.aggregateID)
            cursor = last.next
        }
    }

    /// Transaction A inserts and stays open; B inserts and commits (a later position *and* a
    /// later transaction); a reader polls and must not pass B, or it would never see A.
    @Test(arguments: [true, false])
    func aTransactionThatCommitsLateIsDeliveredAndNoneIsSkipped(commits: Bool) async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let (c, cEvents) = Self.events("c-before")
            try await GlobalEventLogContract.settle(store, past: try await store.append(cEvents, to: c, expecting: .noStream).cursor)
            var cursor = LogCursor.start
            #expect(try await Self.poll(store, from: &cursor) == ["c-before"])
            let (a, aEvents) = Self.events("a-late")
            let (b, bEvents) = Self.events("b-early")
            let bCursor = try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: Logger(label: "test"))
                _ = try await PostgresEventStore.insert(
                    try aEvents.map(Row.init), stream: AggregateStreamName.name(of: a), of: a, on: connection, logger: Logger(label: "test"))
                let appended = try await store.append(bEvents, to: b, expecting: .noStream)
                #expect(try await Self.poll(store, from: &cursor) == [], "B is held back while A is open")
                try await connection.query(PostgresQuery(unsafeSQL: commits ? "COMMIT" : "ROLLBACK"), logger: Logger(label: "test"))
                return appended.cursor
            }
            try await GlobalEventLogContract.settle(store, past: bCursor)
            #expect(try await Self.poll(store, from: &cursor) == (commits ? ["a-late", "b-early"] : ["b-early"]))
            #expect(try await Self.poll(store, from: &cursor) == [], "nothing twice")
            var fresh = LogCursor.start
            #expect(try await Self.poll(store, from: &fresh) == ["c-before"] + (commits ? ["a-late", "b-early"] : ["b-early"]), "one order for every reader")
        }
    }

    /// The metrics: a reader's lag, and the age of the open transaction that holds readers back.
    @Test func lagAndTheOldestOpenTransactionAreMeasured() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            var last: LogCursor?
            for id in ["m-1", "m-2", "m-3"] {
                let (stream, events) = Self.events(id)
                last = try await store.append(events, to: stream, expecting: .noStream).cursor
            }
            try await GlobalEventLogContract.settle(store, past: last)
            #expect(try await store.lag(from: .start) == 3)
            #expect(try await store.lag(from: last!.successor) == 0)
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: Logger(label: "test"))
                let (stream, events) = Self.events("m-open")
                _ = try await PostgresEventStore.insert(
                    try events.map(Row.init), stream: AggregateStreamName.name(of: stream), of: stream, on: connection, logger: Logger(label: "test"))
                try await Task.sleep(for: .milliseconds(300))
                let age = try #require(try await store.oldestOpenTransactionAge())
                #expect(age >= .milliseconds(250), "\(age)")
                try await connection.query("ROLLBACK", logger: Logger(label: "test"))
            }
        }
    }

    /// A prepared (two-phase) transaction holds readers back as an open one does, though no
    /// session runs it: the age counts it, and a reader waits. (The test server allows
    /// prepared transactions.)
    /// (With the next check, one test: a prepared transaction is seen by every role, so the two
    /// must not run at once. A CI run failed when they did.)
    @Test func theOldestOpenTransactionsAgeCountsPreparedOnesAndOtherRolesWithReadAllStats() async throws {
        try await aPreparedTransactionCountsAsOpen()
        try await anotherRolesTransactionIsSeenOnlyWithReadAllStats()
    }

    func aPreparedTransactionCountsAsOpen() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let name = "dugong-test-\(UUID().uuidString)"
            // tools/postgres/server allows them; a server of your own may not (the default).
            let allowed = try await client.query("SELECT current_setting('max_prepared_transactions')::int", logger: Logger(label: "test"))
            for try await count in allowed.decode(Int.self) where count == 0 { return }
            try await client.withConnection { connection in
                // Any transaction with an id holds readers back (one that inserts events cannot
                // be prepared: the insert's trigger notifies readers).
                try await connection.query("BEGIN", logger: Logger(label: "test"))
                try await connection.query("SELECT pg_current_xact_id()", logger: Logger(label: "test"))
                try await connection.query(PostgresQuery(unsafeSQL: "PREPARE TRANSACTION '\(name)'"), logger: Logger(label: "test"))
            }
            // Always ended: a prepared transaction left behind would hold every reader of the
            // server back for the rest of the run.
            do {
                try await Task.sleep(for: .milliseconds(300))
                let age = try #require(try await store.oldestOpenTransactionAge())
                #expect(age >= .milliseconds(250), "\(age)")
                let (stream, events) = Self.events("after-prepared")
                let cursor = try #require(try await store.append(events, to: stream, expecting: .noStream).cursor)
                #expect(try await store.endCursor() <= cursor, "held back")
            } catch {
                try await client.query(PostgresQuery(unsafeSQL: "ROLLBACK PREPARED '\(name)'"), logger: Logger(label: "test"))
                throw error
            }
            try await client.query(PostgresQuery(unsafeSQL: "ROLLBACK PREPARED '\(name)'"), logger: Logger(label: "test"))
        }
    }

    /// README: the age counts another role's transactions only if the role asking has
    /// `pg_read_all_stats` (PostgreSQL hides their start from others), though they hold readers
    /// back all the same.
    func anotherRolesTransactionIsSeenOnlyWithReadAllStats() async throws {
        try await TestServer.withFreshDatabase { client, url in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let (watcher, other) = ("dugong_watcher_\(suffix)", "dugong_other_\(suffix)")
            let quiet = PostgresTestDatabase.quiet
            for role in [watcher, other] {
                try await client.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(role) LOGIN"), logger: quiet)
            }
            func connect(as role: String) throws -> PostgresClient {
                PostgresClient(configuration: try PostgresConnectionURL.configuration(from: url.replacingOccurrences(of: "://dugong@", with: "://\(role)@")))
            }
            let (watching, holding) = (try connect(as: watcher), try connect(as: other))
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await watching.run() }
                    group.addTask { await holding.run() }
                    defer { group.cancelAll() }
                    try await holding.withConnection { connection in
                        try await connection.query("BEGIN", logger: quiet)
                        try await connection.query("SELECT pg_current_xact_id()", logger: quiet)
                        try await Task.sleep(for: .milliseconds(300))
                        let store = PostgresEventStore(client: watching)
                        #expect(try await store.oldestOpenTransactionAge() == nil, "hidden from a role without pg_read_all_stats")
                        try await client.query(PostgresQuery(unsafeSQL: "GRANT pg_read_all_stats TO \(watcher)"), logger: quiet)
                        let age = try await store.oldestOpenTransactionAge()
                        #expect(age.map { $0 >= .milliseconds(250) } == true, "\(String(describing: age))")
                        try await connection.query("ROLLBACK", logger: quiet)
                    }
                }
            } catch {
                for role in [watcher, other] { _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \(role)"), logger: quiet) }
                throw error
            }
            for role in [watcher, other] { try await client.query(PostgresQuery(unsafeSQL: "DROP ROLE \(role)"), logger: quiet) }
        }
    }

    /// Transaction ids of different lengths (999 and 1000) order as numbers: the log was once
    /// sorted by their text, which only showed once a server had used a thousand of them.
    @Test func transactionIdsOfMoreDigitsComeLater() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            var last: LogCursor?
            var appended: [String] = []
            for index in 0..<6 {
                let (stream, events) = Self.events("digits-\(index)")
                last = try await store.append(events, to: stream, expecting: .noStream).cursor
                appended.append("digits-\(index)")
                // Burn transaction ids until the next power of ten is near (each call is a
                // transaction of its own that takes one).
                let current = try #require(last).transaction
                var power: UInt64 = 10
                while power <= current { power *= 10 }
                // (At most 20,000: a fresh server, as tools/test starts, is a few hundred below
                // 1,000; a long-used one may be too far to cross here, and then only the order
                // is checked.)
                if index == 2, power - 1 - current <= 20_000 {
                    for _ in current..<(power - 1) { try await client.query("SELECT pg_current_xact_id()") }
                }
            }
            try await GlobalEventLogContract.settle(store, past: last)
            var cursor = LogCursor.start
            #expect(try await Self.poll(store, from: &cursor) == appended)
        }
    }

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

    /// A unit of work of 5,000 events to one stream, beside another stream: one transaction,
    /// every field stored, positions in sequence order. (Its insert bound 15 parameters per
    /// event, and PostgreSQL takes at most 65,535: past 4,369 events it was refused.)
    @Test func aUnitOfWorkOfFiveThousandEventsIsStoredInOrder() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let big = StreamID(origin: "bulk", aggregateType: "Thing", aggregateID: "big", tenantID: "t")
            let small = StreamID(origin: "bulk", aggregateType: "Thing", aggregateID: "small")
            func events(_ stream: StreamID, count: Int) -> [SerializedDomainEvent] {
                (1...count).map { sequence in
                    SerializedDomainEvent(
                        origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Happened", version: 1, id: UUID(),
                        aggregateID: stream.aggregateID, payload: sequence % 2 == 0 ? Data(#"{"n":\#(sequence)}"#.utf8) : nil,
                        sequenceNumber: sequence, timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(sequence)),
                        tenantID: stream.tenantID, correlationID: sequence % 3 == 0 ? "c-\(sequence)" : nil,
                        triggeredByEventID: sequence % 7 == 0 ? UUID() : nil, triggeredByUserID: sequence % 11 == 0 ? "u" : nil,
                        metadata: sequence % 5 == 0 ? ["n": .int(sequence)] : nil)
                }
            }
            let bigEvents = events(big, count: 5_000)
            let smallEvents = events(small, count: 1)
            let results = try await store.append([
                StreamAppend(stream: small, events: smallEvents, expected: .noStream),
                StreamAppend(stream: big, events: bigEvents, expected: .noStream),
            ])
            #expect(results == [AppendResult(version: 1, wasDuplicate: false), AppendResult(version: 5_000, wasDuplicate: false)])
            #expect(try await store.read(big) == bigEvents)
            #expect(try await store.read(small) == smallEvents)
            try await GlobalEventLogContract.settle(store, past: results[1].cursor)
            let logged = try await store.events(from: .start, maxCount: 10_000)
            #expect(logged.map(\.event.id) == (smallEvents + bigEvents).map(\.id), "one transaction, in the unit's order")
            #expect(Set(logged.map(\.cursor.transaction)).count == 1)
            // Retried whole: an idempotent no-op, decided in a transaction as well.
            let again = try await store.append([
                StreamAppend(stream: small, events: smallEvents, expected: .noStream),
                StreamAppend(stream: big, events: bigEvents, expected: .noStream),
            ])
            #expect(again == [AppendResult(version: 1, wasDuplicate: true), AppendResult(version: 5_000, wasDuplicate: true)])
            #expect(try await store.read(big).count == 5_000)
        }
    }

    /// Twenty instances deposit to one account at once, each retrying with fresh state after a
    /// conflict: every deposit lands once, at distinct, contiguous versions.
    @Test func twentyConcurrentUpdatesOfOneAggregateAllLand() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            var accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
            accounts.maximumAttempts = 25
            _ = try await accounts.create(id: "shared") { try $0.open(owner: "Ada") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for amount in 1...20 {
                    group.addTask { [accounts] in _ = try await accounts.update("shared") { try $0.deposit(amount) } }
                }
                try await group.waitForAll()
            }
            let events = try await store.read(StreamID(BankAccount.self, id: "shared"))
            #expect(events.map(\.sequenceNumber) == Array(1...21))
            #expect(Set(events.map(\.id)).count == 21)
            #expect(try await accounts.load("shared")?.state.balance == (1...20).reduce(0, +))
        }
    }
}

@Suite("PostgreSQL timeouts", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresTimeoutTests {
    /// A statement timeout from the URL (`options=-c statement_timeout=…`) reaches the server:
    /// a statement that runs longer fails with the server's error, instead of holding on.
    @Test func aStatementTimeoutFromTheURLStopsALongStatement() async throws {
        try await TestServer.withFreshDatabase { _, url in
            let separator = url.contains("?") ? "&" : "?"
            let client = PostgresClient(
                configuration: try PostgresConnectionURL.configuration(from: url + separator + "options=-c%20statement_timeout%3D200"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                // The server's own error says the timeout stopped it (no clock in the test).
                do {
                    for try await _ in try await client.query("SELECT pg_sleep(20)") {}
                    Issue.record("a 20 s statement ran to its end")
                } catch let error as PSQLError {
                    #expect(error.serverInfo?[.sqlState] == "57014", "query_canceled, not \(String(reflecting: error))")
                }
                // And an append on a store of that client works as ever.
                let store = PostgresEventStore(client: client)
                let (stream, events) = PostgresOrderingTests.events("within-time")
                #expect(try await store.append(events, to: stream, expecting: .noStream).version == 1)
            }
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

#if Postgres
@Suite("Readers of the PostgreSQL global log", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresReaderTests {
    actor Count {
        var ids: [String] = []
        func add(_ id: String) { ids.append(id) }
    }

    /// A projection on PostgreSQL: catches up, waits for a commit's cursor, keeps its checkpoint
    /// (a cursor with the writing transaction) across instances.
    @Test func aProjectionCatchesUpAndReadsItsOwnWrites() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let seen = Count()
            func projection() -> Projection {
                Projection(name: "ids", store: store) { recorded in await seen.add(recorded.event.aggregateID) }
            }
            for id in ["a", "b", "c"] {
                let (stream, events) = PostgresOrderingTests.events(id)
                try await store.append(events, to: stream, expecting: .noStream)
            }
            let first = projection()
            let (stream, events) = PostgresOrderingTests.events("d")
            let result = try await store.append(events, to: stream, expecting: .noStream)
            try await first.waitUntilCaughtUp(with: try #require(result.cursor))
            #expect(await seen.ids == ["a", "b", "c", "d"])
            // The stored checkpoint is past the last event handled (the reader's own cursor may
            // be further: past its checkpoint's own events, which it skips without saving).
            let saved = try await Checkpoint.load("projection:ids", from: store).cursor
            let reader = try await first.cursor()
            #expect(saved.transaction != 0 && saved > result.cursor! && saved <= reader)
            // Another instance goes on from the saved checkpoint: nothing again.
            #expect(try await projection().catchUp() == 0)
            #expect(await seen.ids == ["a", "b", "c", "d"])
        }
    }

    /// A transaction left open on the server (a client stopped inside it) holds every reader
    /// back: a wait with a timeout ends, saying so, and the reader catches up once it ends.
    @Test func anOpenTransactionHoldsAWaitUntilItsTimeout() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let seen = Count()
            let projection = Projection(name: "held", store: store) { recorded in await seen.add(recorded.event.aggregateID) }
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: Logger(label: "test"))
                let (open, openEvents) = PostgresOrderingTests.events("held-open")
                _ = try await PostgresEventStore.insert(
                    try openEvents.map(Row.init), stream: AggregateStreamName.name(of: open), of: open, on: connection, logger: Logger(label: "test"))
                let (stream, events) = PostgresOrderingTests.events("after")
                let cursor = try #require(try await store.append(events, to: stream, expecting: .noStream).cursor)
                await #expect(throws: CatchUpError.self) { try await projection.waitUntilCaughtUp(with: cursor, timeout: .milliseconds(400)) }
                #expect(await seen.ids == [])
                try await connection.query("COMMIT", logger: Logger(label: "test"))
                try await projection.waitUntilCaughtUp(with: cursor, timeout: .seconds(60))
            }
            #expect(await seen.ids == ["held-open", "after"])
        }
    }

    /// README: `idle_in_transaction_session_timeout` ends a session that waits inside its
    /// transaction (a client stopped there), rolling it back, and the readers it held go on.
    @Test func anIdleInTransactionTimeoutEndsAStoppedClientsHold() async throws {
        try await TestServer.withFreshDatabase { client, url in
            let name = try await client.withRows("SELECT current_database()", logger: PostgresTestDatabase.quiet) { rows in
                var name = ""
                for try await found in rows.decode(String.self) { name = found }
                return name
            }
            try await client.query(
                PostgresQuery(unsafeSQL: "ALTER DATABASE \"\(name)\" SET idle_in_transaction_session_timeout = '500ms'"), logger: PostgresTestDatabase.quiet)
            // A new client: the setting applies to sessions that start after it.
            let stopped = PostgresClient(configuration: try PostgresConnectionURL.configuration(from: url))
            let store = PostgresEventStore(client: client)
            let seen = Count()
            let projection = Projection(name: "bounded", store: store) { recorded in await seen.add(recorded.event.aggregateID) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await stopped.run() }
                defer { group.cancelAll() }
                // (It fails once the server ends the session.)
                _ = try? await stopped.withConnection { connection in
                    try await connection.query("BEGIN", logger: PostgresTestDatabase.quiet)
                    let (open, openEvents) = PostgresOrderingTests.events("never")
                    _ = try await PostgresEventStore.insert(
                        try openEvents.map(Row.init), stream: AggregateStreamName.name(of: open), of: open, on: connection, logger: PostgresTestDatabase.quiet)
                    let (stream, events) = PostgresOrderingTests.events("after")
                    let cursor = try #require(try await store.append(events, to: stream, expecting: .noStream).cursor)
                    // The client "stops" here: the server ends its session after 500 ms.
                    try await projection.waitUntilCaughtUp(with: cursor, timeout: .seconds(60))
                }
            }
            #expect(await seen.ids == ["after"], "the stopped client's insert was rolled back")
        }
    }

    /// A waiting reader is woken by the commit's notification, not by its poll (an hour here).
    /// Commits go on every 200 ms until it wakes: a transaction held open by another test on the
    /// server delays readability past one notification, never past all of them.
    @Test func aCommitWakesAWaitingReader() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client, pollInterval: .seconds(3600))
            let end = try await store.endCursor()
            let woken = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await store.waitForEvents(from: end)
                    return true
                }
                group.addTask {
                    for id in 0..<150 {
                        try await Task.sleep(for: .milliseconds(200))
                        let (stream, events) = PostgresOrderingTests.events("wake-\(id)")
                        try await store.append(events, to: stream, expecting: .noStream)
                    }
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            #expect(woken, "no notification woke the reader in 30 s")
        }
    }

    /// More readers wait than the pool has connections (8 in the tests): each holds one, never
    /// two, so a commit wakes them all. (Each once asked for a second connection to look, and
    /// eight waiters waited for each other for ever.)
    @Test(.timeLimit(.minutes(20))) func moreWaitersThanPooledConnectionsAllWake() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let end = try await store.endCursor()
            let woken = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await store.waitForEvents(from: end)
                        return 1
                    }
                }
                // Long enough for every waiter to be polling (if they wait for each other, the
                // test fails by its time limit: generous, as a full run on two busy cores is slow).
                try await Task.sleep(for: .milliseconds(500))
                let (stream, events) = PostgresOrderingTests.events("wake-all")
                try await store.append(events, to: stream, expecting: .noStream)
                return try await group.reduce(0, +)
            }
            #expect(woken == 12)
        }
    }
}
#endif

#if Postgres
/// A server of the test's own (`tools/postgres/server`), that it can crash and restart.
enum OwnServer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/postgres/server").path

    /// Runs the script; its standard output, or an error with its standard error.
    static func run(_ command: String, _ directory: String) throws -> String {
        // Output to files: the server it starts inherits them, and a pipe would never close.
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-pg-script-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: files) }
        // system(3), not Process: Foundation's Process waits for descriptors the server inherits.
        let status = Glibc.system("'\(script)' \(command) '\(directory)' > '\(files.path)/out' 2> '\(files.path)/err'")
        let text = (try? String(contentsOf: files.appendingPathComponent("out"), encoding: .utf8)) ?? ""
        let problem = (try? String(contentsOf: files.appendingPathComponent("err"), encoding: .utf8)) ?? ""
        guard status == 0 else { throw PostgresStoreError.invalidChange("server \(command) failed: \(problem)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts a server in a new directory; `body` gets its URL and the directory; then it is
    /// stopped and removed.
    static func with<R>(_ body: (String, String) async throws -> R) async throws -> R {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-pg-restart-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let directory = parent + "/pg"
        let url = try run("start", directory)
        defer { _ = try? run("stop", directory) }
        return try await body(url, directory)
    }
}

@Suite("PostgreSQL server restarts", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresRestartTests {
    /// A transaction is open (A), a later one committed (B) and held back from readers; the
    /// server crashes and restarts. A never committed and is never delivered; B is, once; the
    /// store's clients reconnect by themselves and a commit after the restart is delivered
    /// after B. Every reader agrees on the order.
    @Test func aCrashInTheMiddleOfOutOfOrderCommitsSkipsNothingAndClientsReconnect() async throws {
        try await OwnServer.with { url, directory in
            let database = try await PostgresTestDatabase.create(onServer: url)
            let store = PostgresEventStore(client: database.client)
            let (c, cEvents) = PostgresOrderingTests.events("c-before")
            try await GlobalEventLogContract.settle(store, past: try await store.append(cEvents, to: c, expecting: .noStream).cursor)
            var cursor = LogCursor.start
            #expect(try await PostgresOrderingTests.poll(store, from: &cursor) == ["c-before"])
            let (a, aEvents) = PostgresOrderingTests.events("a-lost")
            let (b, bEvents) = PostgresOrderingTests.events("b-early")
            do {
                try await database.client.withConnection { connection in
                    try await connection.query("BEGIN", logger: Logger(label: "test"))
                    _ = try await PostgresEventStore.insert(
                        try aEvents.map(Row.init), stream: AggregateStreamName.name(of: a), of: a, on: connection, logger: Logger(label: "test"))
                    _ = try await store.append(bEvents, to: b, expecting: .noStream)
                    #expect(try await PostgresOrderingTests.poll(store, from: &cursor) == [], "B is held back while A is open")
                    _ = try OwnServer.run("crash-restart", directory)
                    // (A statement sent on this dead connection would never return with
                    // PostgresNIO 1.33.2; it goes back to the pool, which drops it.)
                }
            } catch {
                // A's connection died with the server: A is rolled back.
            }
            // The pool reconnects: appends work again (within a while of the restart).
            let (d, dEvents) = PostgresOrderingTests.events("d-after")
            var appended: AppendResult?
            let deadline = ContinuousClock.now + .seconds(30)
            while appended == nil, ContinuousClock.now < deadline {
                do { appended = try await store.append(dEvents, to: d, expecting: .noStream) } catch { try await Task.sleep(for: .milliseconds(100)) }
            }
            try await GlobalEventLogContract.settle(store, past: try #require(appended?.cursor))
            #expect(try await PostgresOrderingTests.poll(store, from: &cursor) == ["b-early", "d-after"])
            #expect(try await PostgresOrderingTests.poll(store, from: &cursor) == [], "nothing twice")
            var fresh = LogCursor.start
            #expect(try await PostgresOrderingTests.poll(store, from: &fresh) == ["c-before", "b-early", "d-after"])
            try await database.drop()
        }
    }

    /// A running projection goes on through a server crash and restart (a helper review: its
    /// `run()` ended at the first lost connection): it waits the outage out and handles every
    /// committed event, in order; those of the batch it was in may come twice, none is skipped.
    @Test func aRunningProjectionGoesOnThroughACrashAndRestart() async throws {
        try await OwnServer.with { url, directory in
            let database = try await PostgresTestDatabase.create(onServer: url)
            let store = PostgresEventStore(client: database.client, pollInterval: .milliseconds(20))
            let seen = PostgresReaderTests.Count()
            let projection = Projection(name: "through", store: store) { recorded in await seen.add(recorded.event.aggregateID) }
            let running = Task { try await projection.run(longestWait: .milliseconds(500)) }
            func append(_ id: String) async throws {
                let (stream, events) = PostgresOrderingTests.events(id)
                let deadline = ContinuousClock.now + .seconds(60)
                while true {
                    do {
                        _ = try await store.append(events, to: stream, expecting: .noStream)
                        return
                    } catch let lost as PostgresConnectionLost where ContinuousClock.now < deadline {
                        _ = lost
                        try await Task.sleep(for: .milliseconds(100))
                    } catch EventStoreError.conflict where ContinuousClock.now < deadline {
                        return  // a retry of an append whose answer the crash lost: it was committed
                    }
                }
            }
            for index in 0..<5 { try await append("before-\(index)") }
            _ = try OwnServer.run("crash-restart", directory)
            for index in 0..<5 { try await append("after-\(index)") }
            let expected = (0..<5).map { "before-\($0)" } + (0..<5).map { "after-\($0)" }
            let deadline = ContinuousClock.now + .seconds(60)
            while Set(await seen.ids) != Set(expected), ContinuousClock.now < deadline, !running.isCancelled {
                try await Task.sleep(for: .milliseconds(50))
            }
            let ids = await seen.ids
            #expect(Set(ids) == Set(expected), "\(ids)")
            var firsts: [String] = []
            for id in ids where !firsts.contains(id) { firsts.append(id) }
            #expect(firsts == expected, "in order: \(ids)")
            running.cancel()
            if case .failure(let error) = await running.result { #expect(error is CancellationError, "it went on: \(error)") }
            try await database.drop()
        }
    }
}
#endif

@Suite("PostgreSQL: a connection the server closes", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct ClosedConnectionTests {
    // Found by a black-box test: `dugong export` (and an import during a server restart) hung
    // for ever, with no message, when the server closed the connection of its transaction
    // between two queries: PostgresNIO wrote the next query (then the ROLLBACK) to the closed
    // channel and waited for an answer that never came.
    // (A hang is what it catches: the limit is generous, as a full run on two cores can keep a
    // task waiting for a thread a long time.)
    @Test(.timeLimit(.minutes(3))) func aTransactionWhoseConnectionTheServerClosedFailsAtOnce() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let stream = StreamID(origin: "o", aggregateType: "Thing", aggregateID: "1")
            let events = (1...6).map { sequence in
                SerializedDomainEvent(
                    origin: "o", aggregateType: "Thing", eventType: "Happened", version: 1, id: UUID(), aggregateID: "1",
                    payload: Data("{}".utf8), sequenceNumber: sequence, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
            }
            _ = try await store.append(events, to: stream, expecting: .noStream)
            var pages = 0
            await #expect(throws: PostgresConnectionLost.self) {
                _ = try await store.forEachCommittedEvent(pageSize: 2) { _ in
                    pages += 1
                    guard pages == 1 else { return }
                    // The page's rows can arrive before its backend reports itself idle in its
                    // transaction (a CI run's terminate found nobody): look until it does.
                    let deadline = ContinuousClock.now + .seconds(30)
                    var terminated = 0
                    while terminated == 0, ContinuousClock.now < deadline {
                        terminated = try await client.withRows(
                            """
                            SELECT count(*) FROM (
                              SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
                              WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()) AS chosen
                            WHERE killed
                            """, logger: PostgresTestDatabase.quiet
                        ) { rows in
                            var count = 0
                            for try await found in rows.decode(Int64.self) { count += Int(found) }
                            return count
                        }
                        if terminated == 0 { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(terminated == 1, "the transaction's backend was terminated")
                    try await Task.sleep(for: .milliseconds(500))  // the close reaches the client
                }
            }
            #expect(pages == 1)
        }
    }
}
