import Dugong
@testable import DugongExample
import DugongStore
import Foundation
import Synchronization
import Testing

/// A consumer that completes transfers: a withdrawal whose metadata names `transferTo`
/// becomes a deposit on that account, committed with the consumed mark.
final class Counter: Sendable {
    let value = Mutex(0)
}

enum Transfers {
    static let registry = try! EventRegistry(BankAccount.self)

    /// A store of `adapter` with accounts "ada" (holding `deposit`) and "bob", and `transfers`
    /// requests of 10 from ada to bob; `release` frees the store.
    static func bank(on adapter: Adapter, deposit: Int, transfers: Int) async throws
        -> (store: Projection.Store, accounts: AggregateRepository<BankAccount>, release: @Sendable () -> Void)
    {
        let (events, _, release) = try await adapter.make()
        let store = events as! Projection.Store
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: registry)
        _ = try await accounts.create(id: "ada") { try $0.open(owner: "Ada") }
        _ = try await accounts.create(id: "bob") { try $0.open(owner: "Bob") }
        try await accounts.update("ada") { try $0.deposit(deposit) }
        for _ in 0..<transfers { _ = try await request(10, from: "ada", to: "bob", accounts: accounts) }
        return (store, accounts, release)
    }

    static func consumer(
        _ store: Projection.Store, accounts: AggregateRepository<BankAccount>, attempts: Counter? = nil,
        retry: RetryPolicy = RetryPolicy(maximumAttempts: 3, initialBackoff: .milliseconds(1))
    ) -> EventConsumer {
        EventConsumer(name: "transfers", store: store, retry: retry) { event, unit in
            guard event.aggregateType == BankAccount.aggregateType,
                let envelope = try registry.decode(event),
                let withdrawal = envelope.event as? MoneyWithdrawn,
                case .string(let target)? = envelope.metadata?["transferTo"]
            else { return }
            attempts?.value.withLock { $0 += 1 }
            guard var account = try await accounts.load(target) else { throw RepositoryError.notFound(StreamID(BankAccount.self, id: target)) }
            try account.execute { try $0.deposit(withdrawal.amount) }
            try accounts.stage(account, in: &unit)
        }
    }

    /// Withdraws `amount` from `from`, asking for a transfer to `to`.
    static func request(_ amount: Int, from: String, to: String, accounts: AggregateRepository<BankAccount>) async throws -> LogCursor {
        let scoped = accounts.in(EventContext(metadata: ["transferTo": .string(to)]))
        var account = try #require(try await scoped.load(from))
        try account.execute { try $0.withdraw(amount) }
        return try #require(try await scoped.commit(&account)?.cursor)
    }
}

@Suite("Idempotent consumers on every adapter")
struct ConsumerTests {
    @Test(arguments: Adapter.allCases)
    func transfersHappenOnceAcrossARestartAndAPoisonMessageIsParked(_ adapter: Adapter) async throws {
        let (store, accounts, release) = try await Transfers.bank(on: adapter, deposit: 1_000, transfers: 3)
        defer { release() }

        // The first instance processes what is there, then "crashes" (is dropped).
        let first = Transfers.consumer(store, accounts: accounts)
        try await store.waitForCommittedEvents()
        try await first.catchUp()
        #expect(try await accounts.load("bob")?.state.balance == 30)

        // More transfers, one of them to an account that does not exist: a poison message.
        _ = try await Transfers.request(20, from: "ada", to: "bob", accounts: accounts)
        _ = try await Transfers.request(5, from: "ada", to: "nobody", accounts: accounts)
        let last = try await Transfers.request(40, from: "ada", to: "bob", accounts: accounts)

        // A restarted instance resumes from the checkpoint: every transfer happens exactly once.
        let attempts = Counter()
        let restarted = Transfers.consumer(store, accounts: accounts, attempts: attempts)
        try await restarted.waitUntilCaughtUp(with: last)
        #expect(try await accounts.load("bob")?.state.balance == 90)
        #expect(attempts.value.withLock { $0 } == 2 + 3, "two good transfers once each, the poison one three times")
        let parked = try await restarted.parked()
        #expect(parked.count == 1)
        #expect(parked.first?.attempts == 3 && parked.first?.error.contains("nobody") == true)
        // Its own deposits may become readable only now (a server store): read them, then
        // nothing is left, and the parked message was not retried by itself.
        try await store.waitForCommittedEvents()
        _ = try await restarted.catchUp()
        #expect(try await restarted.catchUp() == 0, "nothing left")
        #expect(attempts.value.withLock { $0 } == 2 + 3, "the parked message is not retried by itself")

        // Once the account exists, replaying the parked message completes the transfer.
        _ = try await accounts.create(id: "nobody") { try $0.open(owner: "Late") }
        #expect(try await restarted.replayParked() == 1)
        #expect(try await accounts.load("nobody")?.state.balance == 5)
        #expect(try await restarted.parked().isEmpty)
        #expect(try await restarted.replayParked() == 0)
    }

    @Test(arguments: Adapter.allCases)
    func aMessageAlreadyConsumedIsSkipped(_ adapter: Adapter) async throws {
        let (store, accounts, release) = try await Transfers.bank(on: adapter, deposit: 100, transfers: 1)
        defer { release() }
        let withdrawal = try #require(try await store.read(StreamID(BankAccount.self, id: "ada")).last)
        // Marked by hand (as a redelivery would find it): the consumer does not act on it.
        try await EventStoreConsumedMessages(store: store).markConsumed(withdrawal.id, by: "transfers", tenantID: nil)
        try await store.waitForCommittedEvents()
        try await Transfers.consumer(store, accounts: accounts).catchUp()
        #expect(try await accounts.load("bob")?.state.balance == 0)
    }

    /// A rewind moves a consumer's checkpoint, not its consumed marks: a transfer it made is not
    /// made again (as its documentation says: each event's effects happen once), and one its
    /// checkpoint was moved past is made once the checkpoint is back before it.
    @Test(arguments: Adapter.allCases)
    func aRewoundConsumerSkipsWhatItConsumedAndHandlesTheRest(_ adapter: Adapter) async throws {
        let (store, accounts, release) = try await Transfers.bank(on: adapter, deposit: 100, transfers: 1)
        defer { release() }
        let attempts = Counter()
        let consumer = Transfers.consumer(store, accounts: accounts, attempts: attempts)
        try await store.waitForCommittedEvents()
        try await consumer.catchUp()
        #expect(try await accounts.load("bob")?.state.balance == 10)

        // Moved past a second transfer: it is skipped.
        _ = try await Transfers.request(20, from: "ada", to: "bob", accounts: accounts)
        try await store.waitForCommittedEvents()
        await consumer.pause()
        try await consumer.rewind(to: try await store.endCursor())
        await consumer.resume()
        #expect(try await consumer.catchUp() == 0)
        #expect(try await accounts.load("bob")?.state.balance == 10)

        // Back to the start: the first transfer is not made again; the second is made now.
        await consumer.pause()
        try await consumer.rewind(to: .start)
        #expect(try await consumer.cursor() == .start)
        await consumer.resume()
        try await store.waitForCommittedEvents()
        try await consumer.catchUp()
        #expect(try await accounts.load("bob")?.state.balance == 30)
        #expect(attempts.value.withLock { $0 } == 2, "each transfer's handler ran once")
    }
}
