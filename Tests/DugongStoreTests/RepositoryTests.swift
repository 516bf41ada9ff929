import Dugong
@testable import DugongExample
import DugongStore
#if Postgres
import DugongPostgres
import DugongTesting
#endif
import Foundation
import Synchronization
import Testing

/// The adapters the application-layer tests run on.
enum Adapter: String, CaseIterable, Sendable, CustomStringConvertible {
    case inMemory, dugongStore
    #if Postgres
    /// With a server (`DUGONG_POSTGRES_URL`; tools/test starts one).
    case postgres
    #endif

    /// The adapters these tests run on: PostgreSQL's too when the build has it and a server
    /// is given.
    static var allCases: [Adapter] {
        #if Postgres
        if ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"] != nil { return [.inMemory, .dugongStore, .postgres] }
        #endif
        return [.inMemory, .dugongStore]
    }

    var description: String { rawValue }

    /// Fresh event and snapshot stores, and a closure that releases them.
    func make() async throws -> (any EventStore, any SnapshotStore, @Sendable () -> Void) {
        switch self {
        case .inMemory:
            return (InMemoryEventStore(), InMemorySnapshotStore(), {})
        case .dugongStore:
            let directory = TemporaryDirectory("repository")
            let log = try EventLog.open(at: directory.path, options: .init(createIfMissing: true))
            return (EventLogStore(log: log), EventLogSnapshotStore(log: log), { log.close(); directory.remove() })
        #if Postgres
        case .postgres:
            // A database of its own; dropped after the test (the throwaway server goes anyway).
            let database = try await PostgresTestDatabase.create(onServer: ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"]!)
            return (
                PostgresEventStore(client: database.client), PostgresSnapshotStore(client: database.client),
                { Task { try? await database.drop() } }
            )
        #endif
        }
    }
}

/// An event store that records the sequence numbers reads start from.
actor ReadSpy: EventStore {
    let inner: any EventStore
    private(set) var readsFrom: [Int] = []
    init(_ inner: any EventStore) { self.inner = inner }

    func append(_ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion) async throws -> AppendResult {
        try await inner.append(events, to: stream, expecting: expected)
    }
    func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        readsFrom.append(sequenceNumber)
        return try await inner.read(stream, from: sequenceNumber)
    }
    func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        try await inner.aggregateIDs(origin: origin, aggregateType: aggregateType, tenantID: tenantID)
    }
    func truncate(_ stream: StreamID, before version: Int) async throws {
        try await inner.truncate(stream, before: version)
    }
}

/// An event store whose first append loses a race: a rival deposit lands just before it.
actor RacingStore: EventStore {
    let inner: any EventStore
    private var raced = false
    init(_ inner: any EventStore) { self.inner = inner }

    func append(_ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion) async throws -> AppendResult {
        if !raced, case .exact(let version) = expected {
            raced = true
            var rival = events[0]
            rival.id = UUID()
            rival.sequenceNumber = version + 1
            rival.payload = Data(#"{"amount":1}"#.utf8)
            rival.eventType = "MoneyDeposited"
            _ = try await inner.append([rival], to: stream, expecting: .exact(version))
        }
        return try await inner.append(events, to: stream, expecting: expected)
    }
    func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        try await inner.read(stream, from: sequenceNumber)
    }
    func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        try await inner.aggregateIDs(origin: origin, aggregateType: aggregateType, tenantID: tenantID)
    }
    func truncate(_ stream: StreamID, before version: Int) async throws {
        try await inner.truncate(stream, before: version)
    }
}

@Suite("Aggregate repository on every adapter")
struct RepositoryTests {
    static let registry = try! EventRegistry(BankAccount.self)

    @Test(arguments: Adapter.allCases)
    func createUpdateLoadAndList(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let created = try await accounts.create { try $0.open(owner: "Ada") }
        let id = try #require(created.id)
        try await accounts.update(id) { try $0.deposit(100) }
        let updated = try await accounts.update(id) { try $0.withdraw(30) }
        #expect(updated.state.balance == 70 && updated.sequenceNumber == 3)
        let loaded = try #require(try await accounts.load(id))
        #expect(loaded.state.balance == 70 && loaded.committedSequenceNumber == 3 && loaded.stagedEvents.isEmpty)
        #expect(try await accounts.ids() == [id])
        await #expect(throws: RepositoryError.notFound(StreamID(BankAccount.self, id: "nobody"))) {
            try await accounts.update("nobody") { try $0.deposit(1) }
        }
        #expect(try await accounts.load("nobody") == nil)
    }

    @Test(arguments: Adapter.allCases)
    func snapshotsEveryTenEventsAndLoadsFromTheLatest(_ adapter: Adapter) async throws {
        let (inner, snapshots, release) = try await adapter.make()
        defer { release() }
        let events = ReadSpy(inner)
        let accounts = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        for amount in 1...24 { try await accounts.update(id) { try $0.deposit(amount) } }
        let snapshot = try #require(try await snapshots.latest(for: StreamID(BankAccount.self, id: id)))
        #expect(snapshot.sequenceNumber == 20 && snapshot.schemaVersion == 1)
        let before = await events.readsFrom.count
        let loaded = try #require(try await accounts.load(id))
        #expect(loaded.state.balance == (1...24).reduce(0, +) && loaded.sequenceNumber == 25)
        #expect(await events.readsFrom.dropFirst(before) == [21], "events after the snapshot only")
    }

    @Test(arguments: Adapter.allCases)
    func aSnapshotOfAnotherSchemaOrThatDoesNotDecodeFallsBackToTheEvents(_ adapter: Adapter) async throws {
        let (inner, snapshots, release) = try await adapter.make()
        defer { release() }
        let events = ReadSpy(inner)
        let accounts = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        for _ in 1...3 { try await accounts.update(id) { try $0.deposit(5) } }
        let stream = StreamID(BankAccount.self, id: id)
        try await snapshots.save(SerializedSnapshot(stream: stream, sequenceNumber: 3, schemaVersion: 9, data: Data("{}".utf8)))
        var loaded = try #require(try await accounts.load(id))
        var lastRead = await events.readsFrom.last
        #expect(loaded.state.balance == 15 && lastRead == 1)
        try await snapshots.save(SerializedSnapshot(stream: stream, sequenceNumber: 4, schemaVersion: 1, data: Data("not json".utf8)))
        loaded = try #require(try await accounts.load(id))
        lastRead = await events.readsFrom.last
        #expect(loaded.state.balance == 15 && lastRead == 1)
    }

    @Test(arguments: Adapter.allCases)
    func loadingNeverWritesASnapshot(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let plain = AggregateRepository<BankAccount>(eventStore: events, registry: Self.registry)
        let id = try #require(try await plain.create { try $0.open(owner: "Ada") }.id)
        for _ in 1...15 { try await plain.update(id) { try $0.deposit(1) } }
        let accounts = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        _ = try await accounts.load(id)
        #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: id)) == nil)
    }

    @Test(arguments: Adapter.allCases)
    func timeTravelBySequenceNumberAndByDate(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        try await accounts.update(id) { try $0.deposit(100) }
        try await Task.sleep(for: .milliseconds(20))
        let between = Date()
        try await Task.sleep(for: .milliseconds(20))
        try await accounts.update(id) { try $0.withdraw(60) }
        #expect(try await accounts.load(id, asOf: 2)?.state.balance == 100)
        #expect(try await accounts.load(id, asOf: 1)?.state.balance == 0)
        #expect(try await accounts.load(id, asOf: 4) == nil)
        #expect(try await accounts.load(id, asOf: 0) == nil)
        #expect(try await accounts.load(id, asOf: between)?.state.balance == 100)
        #expect(try await accounts.load(id, asOf: Date(timeIntervalSince1970: 0)) == nil)
        #expect(try await accounts.load(id)?.state.balance == 40)
        // The far ends, and NaN, which is at or after no event (it gave the latest state).
        #expect(try await accounts.load(id, asOf: .distantFuture)?.state.balance == 40)
        #expect(try await accounts.load(id, asOf: Date(timeIntervalSinceReferenceDate: .infinity))?.state.balance == 40)
        #expect(try await accounts.load(id, asOf: Date(timeIntervalSinceReferenceDate: -.infinity)) == nil)
        #expect(try await accounts.load(id, asOf: Date(timeIntervalSinceReferenceDate: .nan)) == nil)
    }

    @Test(arguments: Adapter.allCases)
    func updateRetriesWithFreshStateAfterAConflict(_ adapter: Adapter) async throws {
        let (inner, snapshots, release) = try await adapter.make()
        defer { release() }
        let setup = AggregateRepository<BankAccount>(eventStore: inner, registry: Self.registry)
        let id = try #require(try await setup.create { try $0.open(owner: "Ada") }.id)
        let accounts = AggregateRepository<BankAccount>(eventStore: RacingStore(inner), snapshotStore: snapshots, registry: Self.registry)
        let updated = try await accounts.update(id) { try $0.deposit(10) }
        #expect(updated.state.balance == 11, "the rival's deposit and ours")
        #expect(try await setup.load(id)?.sequenceNumber == 3)
    }

    @Test(arguments: Adapter.allCases)
    func theContextIsStampedAndTenantsAreIsolated(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let base = AggregateRepository<BankAccount>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let cause = UUID()
        let acme = base.in(EventContext(
            tenantID: "acme", correlationID: "req-1", triggeredByEventID: cause, triggeredByUserID: "u-7",
            metadata: ["source": "api"]))
        let id = try #require(try await acme.create(id: "acc-1") { try $0.open(owner: "Acme") }.id)
        let stored = try await events.read(StreamID(BankAccount.self, id: id, tenantID: "acme"))
        #expect(stored.count == 1)
        #expect(stored[0].tenantID == "acme" && stored[0].correlationID == "req-1")
        #expect(stored[0].triggeredByEventID == cause && stored[0].triggeredByUserID == "u-7")
        #expect(stored[0].metadata == ["source": "api"])
        #expect(try await base.load("acc-1") == nil, "another tenant does not see it")
        _ = try await base.create(id: "acc-1") { try $0.open(owner: "Nobody's") }
        #expect(try await acme.load("acc-1")?.state.owner == "Acme")
        #expect(try await base.load("acc-1")?.state.owner == "Nobody's")
        #expect(try await acme.ids() == ["acc-1"])
        #expect(try await base.in(EventContext(tenantID: "other")).ids().isEmpty)
    }
}

/// Events whose hooks count their calls.
enum HookLog {
    static let calls = Mutex<[String]>([])
}

struct Noted: DomainEvent {
    static let eventType = "Noted"
    var text: String
    func created() throws {
        guard !text.isEmpty else { throw BankAccountError.invalidAmount(0) }
        HookLog.calls.withLock { $0.append("created \(text)") }
    }
    func staged(as envelope: EventEnvelope) { HookLog.calls.withLock { $0.append("staged \(text) #\(envelope.sequenceNumber)") } }
    func applied(as envelope: EventEnvelope) { HookLog.calls.withLock { $0.append("applied \(text) #\(envelope.sequenceNumber)") } }
    func committed(as envelope: EventEnvelope) { HookLog.calls.withLock { $0.append("committed \(text) #\(envelope.sequenceNumber)") } }
}

struct Notebook: Aggregate {
    static let origin = "test"
    static let aggregateType = "Notebook"
    static let eventTypes: [any DomainEvent.Type] = [Noted.self]
    var notes: [String] = []
    init() {}
    mutating func apply(_ event: any DomainEvent) {
        if let noted = event as? Noted { notes.append(noted.text) }
    }
}

@Suite("Event lifecycle hooks", .serialized)
struct HookTests {
    @Test func everyHookIsCalled() async throws {
        HookLog.calls.withLock { $0 = [] }
        let notebooks = AggregateRepository<Notebook>(eventStore: InMemoryEventStore(), registry: try EventRegistry(Notebook.self))
        _ = try await notebooks.create(id: "n") { _ in [Noted(text: "a")] }
        #expect(HookLog.calls.withLock { $0 } == ["created a", "staged a #1", "applied a #1", "committed a #1"])
        HookLog.calls.withLock { $0 = [] }
        _ = try await notebooks.load("n")
        #expect(HookLog.calls.withLock { $0 } == ["applied a #1"], "loading applies; it does not create")
        await #expect(throws: BankAccountError.self) {
            try await notebooks.update("n") { _ in [Noted(text: "b"), Noted(text: "")] }
        }
        #expect(try await notebooks.load("n")?.state.notes == ["a"], "a failing created() hook stages nothing")
    }
}

@Suite("Units of work on every adapter")
struct UnitOfWorkTests {
    static func make(_ adapter: Adapter) async throws -> (any TransactionalEventStore, @Sendable () -> Void) {
        let (store, _, release) = try await adapter.make()
        return (store as! any TransactionalEventStore, release)
    }

    @Test(arguments: Adapter.allCases)
    func aTransferCommitsBothAccountsOrNeither(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: RepositoryTests.registry)
        let a = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        let b = try #require(try await accounts.create { try $0.open(owner: "Bob") }.id)
        try await accounts.update(a) { try $0.deposit(100) }

        var unit = UnitOfWork()
        var from = try #require(try await accounts.load(a))
        var to = try #require(try await accounts.load(b))
        try from.execute { try $0.withdraw(60) }
        try to.execute { try $0.deposit(60) }
        try accounts.stage(from, in: &unit)
        try accounts.stage(to, in: &unit)
        let results = try await unit.commit(to: store)
        #expect(results.map(\.version) == [3, 2])
        #expect(try await accounts.load(a)?.state.balance == 40)
        #expect(try await accounts.load(b)?.state.balance == 60)

        // A unit made from stale state: the first account moved meanwhile, so neither changes.
        var stale = UnitOfWork()
        var staleFrom = try #require(try await accounts.load(a))
        var staleTo = try #require(try await accounts.load(b))
        try staleFrom.execute { try $0.withdraw(10) }
        try staleTo.execute { try $0.deposit(10) }
        try accounts.stage(staleTo, in: &stale)
        try accounts.stage(staleFrom, in: &stale)
        try await accounts.update(a) { try $0.deposit(1) }
        await #expect(throws: EventStoreError.self) { try await stale.commit(to: store) }
        #expect(try await accounts.load(a)?.state.balance == 41)
        #expect(try await accounts.load(b)?.state.balance == 60, "the deposit half was not written either")
    }
}

@Suite("Atomic appends in the engine")
struct AtomicAppendTests {
    @Test func aUnitIsOneFrameAndARefusedOneWritesNothing() async throws {
        let directory = TemporaryDirectory("atomic")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        let commits = try await log.append([
            EventLog.Append(stream: "a/1", events: Fixture.events(2), expected: .noStream),
            EventLog.Append(stream: "b/1", events: Fixture.events(1), expected: .noStream),
            EventLog.Append(stream: "a/1", events: Fixture.events(1), expected: .exact(2)),
        ])
        #expect(commits.map(\.firstPosition) == [0, 2, 3] && commits.map(\.lastVersion) == [2, 1, 3])
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "b/1", expected: .noStream, actual: 1)) {
            try await log.append([
                EventLog.Append(stream: "c/1", events: Fixture.events(1)),
                EventLog.Append(stream: "b/1", events: Fixture.events(1), expected: .noStream),
            ])
        }
        #expect(try log.read(stream: "c/1").isEmpty && log.headPosition == 4)
        log.close()
        #expect(try Fixture.eventFrameOffsets(of: directory.file("00000000000000000000.dseg")).count == 1)
    }

    @Test func concurrentRetriesOfOneAppendWriteItOnce() async throws {
        let directory = TemporaryDirectory("retries")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let events = Fixture.events(3)
        let commits = try await withThrowingTaskGroup(of: Commit.self) { group in
            for _ in 0..<16 { group.addTask { try await log.append(events, to: "s/1", expecting: .noStream) } }
            return try await group.reduce(into: [Commit]()) { $0.append($1) }
        }
        #expect(commits.filter { !$0.wasDuplicate }.count == 1)
        #expect(Set(commits.map(\.firstPosition)) == [0] && Set(commits.map(\.lastPosition)) == [2])
        #expect(try log.read(stream: "s/1").map(\.id) == events.map(\.id))
    }
}
