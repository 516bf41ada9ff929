import Dugong
@testable import DugongExample
import Foundation
import Synchronization
import Testing

/// A store that can be made unreachable: while `down`, every call throws an outage (a
/// ``TransientStoreError``), as a server store's do while its server restarts.
final class UnreachableStore: TransactionalEventStore, GlobalEventLog, Sendable {
    struct Outage: TransientStoreError, CustomStringConvertible {
        var description: String { "the store is out of reach" }
    }

    let inner: InMemoryEventStore
    let down = Mutex(false)
    /// While set, appends are written and then answered with an outage (an answer lost with
    /// the connection: the outcome unknown to the caller).
    let losesAnswers = Mutex(false)
    /// How many of the next appends fail with an outage (the store down for a moment).
    let failingAppends = Mutex(0)
    /// Calls refused while down.
    let refused = Mutex(0)

    init(_ inner: InMemoryEventStore = InMemoryEventStore()) { self.inner = inner }

    private func reachable() throws {
        guard down.withLock({ $0 }) else { return }
        refused.withLock { $0 += 1 }
        throw Outage()
    }

    func append(_ appends: [StreamAppend]) async throws -> [AppendResult] {
        try reachable()
        if failingAppends.withLock({ count in
            defer { count = max(count - 1, 0) }
            return count > 0
        }) {
            throw Outage()
        }
        let results = try await inner.append(appends)
        if losesAnswers.withLock({ $0 }) { throw Outage() }
        return results
    }
    func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        try reachable()
        return await inner.read(stream, from: sequenceNumber)
    }
    func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        try reachable()
        return await inner.aggregateIDs(origin: origin, aggregateType: aggregateType, tenantID: tenantID)
    }
    func lastEvent(of stream: StreamID) async throws -> SerializedDomainEvent? {
        try reachable()
        return try await inner.lastEvent(of: stream)
    }
    func streamVersion(of stream: StreamID) async throws -> Int {
        try reachable()
        return try await inner.streamVersion(of: stream)
    }
    func truncate(_ stream: StreamID, before version: Int) async throws {
        try reachable()
        try await inner.truncate(stream, before: version)
    }
    func events(from cursor: LogCursor, maxCount: Int) async throws -> [RecordedEvent] {
        try reachable()
        return await inner.events(from: cursor, maxCount: maxCount)
    }
    func endCursor() async throws -> LogCursor {
        try reachable()
        return await inner.endCursor()
    }
    func waitForEvents(from cursor: LogCursor) async throws {
        try reachable()
        await inner.waitForEvents(from: cursor)
    }
}

/// The store out of reach for a while (a helper review: a projection's and a consumer's
/// `run()` ended at a PostgreSQL connection's loss, and a consumer parked every message it met
/// during an outage longer than its retries).
@Suite("Readers through a store outage")
struct OutageTests {
    @Test func aRunningProjectionWaitsOutAnOutageAndHandlesEveryEventOnce() async throws {
        let store = UnreachableStore()
        let accounts = AggregateRepository<BankAccount>(eventStore: store.inner, registry: try EventRegistry(BankAccount.self))
        let handled = Mutex<[UUID]>([])
        let projection = Projection(name: "through", store: store) { recorded in handled.withLock { $0.append(recorded.event.id) } }
        let running = Task { try await projection.run(longestWait: .milliseconds(200)) }
        _ = try await accounts.create(id: "ada") { try $0.open(owner: "Ada") }
        try await Self.until { handled.withLock { $0.count } == 1 }
        store.down.withLock { $0 = true }
        for amount in 1...5 { try await accounts.update("ada") { try $0.deposit(amount) } }
        try await Self.until { store.refused.withLock { $0 } > 2 }  // it tried while the store was down
        store.down.withLock { $0 = false }
        try await Self.until { handled.withLock { $0.count } >= 6 }
        let events = await store.inner.events(from: .start, maxCount: 100).filter { $0.event.origin != Checkpoint.origin }.map(\.event.id)
        #expect(handled.withLock { $0 } == events, "every event once, in order")
        running.cancel()
        if case .failure(let error) = await running.result { #expect(error is CancellationError, "\(error)") }
    }

    @Test func aConsumerParksNoMessageForAnOutage() async throws {
        let store = UnreachableStore()
        let registry = try EventRegistry(BankAccount.self)
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: registry)
        _ = try await accounts.create(id: "ada") { try $0.open(owner: "Ada") }
        _ = try await accounts.create(id: "bob") { try $0.open(owner: "Bob") }
        try await accounts.update("ada") { try $0.deposit(100) }
        let attempts = Counter()
        let consumer = Transfers.consumer(store, accounts: accounts, attempts: attempts, retry: RetryPolicy(maximumAttempts: 2, initialBackoff: .milliseconds(1)))
        try await consumer.catchUp()
        // Down while the handler runs: its load and its commit fail, more times than it retries.
        store.down.withLock { $0 = true }
        let running = Task { try await consumer.run(longestWait: .milliseconds(100)) }
        _ = try? await Transfers.request(10, from: "ada", to: "bob", accounts: AggregateRepository<BankAccount>(eventStore: store.inner, registry: registry))
        // More calls refused than the handler's retries: without the change it parked the message.
        try await Self.until { store.refused.withLock { $0 } > 4 }
        store.down.withLock { $0 = false }
        try await Self.until { (try? await AggregateRepository<BankAccount>(eventStore: store.inner, registry: registry).load("bob")?.state.balance) == 10 }
        #expect(try await consumer.parked().isEmpty, "an outage is not the message's failure")
        // Down for a moment, as long as the handler's attempts: its commits fail, and the
        // parking record after them would have been written (the store back by then).
        store.failingAppends.withLock { $0 = 2 }
        _ = try await Transfers.request(10, from: "ada", to: "bob", accounts: AggregateRepository<BankAccount>(eventStore: store.inner, registry: registry))
        try await Self.until { (try? await AggregateRepository<BankAccount>(eventStore: store.inner, registry: registry).load("bob")?.state.balance) == 20 }
        #expect(try await consumer.parked().isEmpty, "a moment's outage is not the message's failure either")
        running.cancel()
        _ = await running.result
        #expect(try await AggregateRepository<BankAccount>(eventStore: store.inner, registry: registry).load("bob")?.state.balance == 20, "each once")
    }

    /// A checkpoint save whose answer was lost (it landed): the next catch-up or relay loads
    /// the checkpoint again rather than saving from the version before it (which conflicted
    /// at every later call, for good).
    @Test func aCheckpointSaveWhoseAnswerWasLostIsLoadedAgain() async throws {
        let store = UnreachableStore()
        let accounts = AggregateRepository<BankAccount>(eventStore: store.inner, registry: try EventRegistry(BankAccount.self))
        let handled = Mutex(0)
        let projection = Projection(name: "lost", store: store) { _ in handled.withLock { $0 += 1 } }
        let bus = InMemoryMessageBus()
        let published = Mutex(0)
        await bus.subscribe(to: MessageChannel.id(origin: BankAccount.origin, aggregateType: BankAccount.aggregateType), as: "counter") { _ in
            published.withLock { $0 += 1 }
        }
        let relay = MessageRelay(name: "lost", store: store, producer: bus)
        _ = try await accounts.create(id: "ada") { try $0.open(owner: "Ada") }
        #expect(try await projection.catchUp() == 1)
        #expect(try await relay.relay() == 1)
        try await accounts.update("ada") { try $0.deposit(5) }
        store.losesAnswers.withLock { $0 = true }
        await #expect(throws: UnreachableStore.Outage.self) { try await projection.catchUp() }
        await #expect(throws: UnreachableStore.Outage.self) { try await relay.relay() }
        store.losesAnswers.withLock { $0 = false }
        try await accounts.update("ada") { try $0.deposit(7) }
        // The saves landed: from there on, the third event only.
        #expect(try await projection.catchUp() == 1)
        #expect(try await relay.relay() == 1)
        #expect(handled.withLock { $0 } == 3 && published.withLock { $0 } == 3)
    }

    /// Waits up to 30 s for `condition`.
    static func until(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await !condition() {
            try #require(ContinuousClock.now < deadline, "waited 30 s")
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
