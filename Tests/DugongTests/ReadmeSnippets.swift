import Dugong
@testable import DugongExample
import DugongTesting
import Foundation
import Testing

// Every Swift snippet of the README stands here as it is in the README (indentation aside),
// so that it compiles and runs; ReadmeTests checks that each one is here.

typealias MyEventStore = InMemoryEventStore

@Suite("README snippets")
struct ReadmeSnippets {
    @Test func runningCommands() async throws {
        let store = InMemoryEventStore()
        let registry = try EventRegistry(BankAccount.self)

        var account = AggregateRoot<BankAccount>()
        try account.create { try $0.open(owner: "Ada") }   // assigns a new UUID
        try account.execute { try $0.deposit(100_00) }     // staged as sequence number 2
        try await store.commit(&account)                     // expects the stream not to exist

        var loaded = try await store.load(BankAccount.self, id: account.id!, registry: registry)!
        try loaded.execute { try $0.withdraw(30_00) }
        try await store.commit(&loaded)                      // expects version 2, or throws a conflict

        #expect(try await store.load(BankAccount.self, id: account.id!, registry: registry)?.state.balance == 70_00)
    }

    @Test func testingAnAggregate() throws {
        try AggregateScenario<BankAccount>
            .given(AccountOpened(owner: "Ada"), MoneyDeposited(amount: 100))
            .when { try $0.withdraw(130) }
            .thenFails(with: BankAccountError.insufficientFunds(balance: 100, requested: 130))
    }

    @Test func upcasting() throws {
        var registry = try EventRegistry(BankAccount.self)   // a `var`: upcasters and choices change it
        try registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 1) { payload in
            var payload = payload
            payload["currency"] = "EUR"
            return payload
        }
        try registry.register(MoneyDepositedV2.self, origin: "bank", aggregateType: "BankAccount")
        let event = try #require(try registry.decode(EventRegistryTests.serialized("MoneyDeposited", payload: #"{"amount":1}"#)))
        #expect(event.event as? MoneyDepositedV2 == MoneyDepositedV2(amount: 1, currency: "EUR"))
    }

    @Test(arguments: EventStoreContract.checks)
    func myStore(_ check: EventStoreContract.Check) async throws {
        try await check.run { MyEventStore() }
    }

    @Test func theRepository() async throws {
        let store = InMemoryEventStore()
        let snapshots = InMemorySnapshotStore()
        let registry = try EventRegistry(BankAccount.self)

        let accounts = AggregateRepository<BankAccount>(eventStore: store, snapshotStore: snapshots, registry: registry)
        let opened = try await accounts.create { try $0.open(owner: "Ada") }
        let id = opened.id!
        try await accounts.update(id) { try $0.deposit(100_00) }   // load, run, commit; retries conflicts
        let account = try await accounts.load(id)!                   // state after every event
        #expect(account.state.balance == 100_00)

        let request = accounts.in(EventContext(tenantID: "acme", correlationID: "req-42", triggeredByUserID: "u-7"))
        let acmeAccounts = try await request.ids()
        #expect(acmeAccounts.isEmpty)

        let afterTwoEvents = try await accounts.load(id, asOf: 2)       // after sequence number 2
        let yesterday = try await accounts.load(id, asOf: Date(timeIntervalSinceNow: -86_400))
        #expect(afterTwoEvents?.state.balance == 100_00 && yesterday == nil)

        let otherID = try await accounts.create { try $0.open(owner: "Bob") }.id!
        var unit = UnitOfWork()
        var from = try await accounts.load(id)!
        var to = try await accounts.load(otherID)!
        try from.execute { try $0.withdraw(30_00) }
        try to.execute { try $0.deposit(30_00) }
        try accounts.stage(from, in: &unit)
        try accounts.stage(to, in: &unit)
        try await unit.commit(to: store)                             // both or neither
        #expect(try await accounts.load(otherID)?.state.balance == 30_00)
    }

    /// The read model of the projection snippet.
    actor Model {
        var events = 0
        func apply(_ envelope: EventEnvelope) { events += 1 }
    }

    @Test func projectionsConsumersAndMessaging() async throws {
        let store = InMemoryEventStore()
        let registry = try EventRegistry(BankAccount.self)
        let plain = AggregateRepository<BankAccount>(eventStore: store, registry: registry)
        let model = Model()
        _ = try await plain.create(id: "ada") { try $0.open(owner: "Ada") }
        _ = try await plain.create(id: "bob") { try $0.open(owner: "Bob") }
        try await plain.update("ada") { try $0.deposit(100) }
        // Every event this repository commits asks for a transfer to bob (the consumer acts on withdrawals).
        let accounts = plain.in(EventContext(metadata: ["transferTo": "bob"]))
        var account = try await accounts.load("ada")!
        try account.execute { try $0.withdraw(40) }

        let totals = Projection(name: "totals", store: store) { recorded in
            guard let event = try registry.decode(recorded.event) else { return }
            await model.apply(event)
        }
        try await totals.catchUp()                                    // everything committed so far
        let result = try await accounts.commit(&account)!
        if let cursor = result.cursor {                               // nil for a retry found already written
            try await totals.waitUntilCaughtUp(with: cursor)          // read-your-writes
        }
        try await totals.rebuild()                                    // replay from the start (after `reset:`, if given)
        #expect(await model.events == 4 + 4)

        let transfers = EventConsumer(name: "transfers", store: store) { event, unit in
            guard let envelope = try registry.decode(event), let withdrawal = envelope.event as? MoneyWithdrawn,
                  case .string(let target)? = envelope.metadata?["transferTo"] else { return }
            guard var account = try await accounts.load(target) else {
                throw RepositoryError.notFound(StreamID(BankAccount.self, id: target))   // retried, then parked
            }
            try account.execute { try $0.deposit(withdrawal.amount) }
            try accounts.stage(account, in: &unit)                     // commits with the consumed mark
        }
        try await transfers.catchUp()
        let poison = try await transfers.parked()
        let bobBalance = try await accounts.load("bob")?.state.balance
        #expect(poison.isEmpty && bobBalance == 40)
        // A transfer to an account that does not exist is parked, not a crash (the snippet's
        // first version unwrapped the load with `!`).
        var again = try await plain.in(EventContext(metadata: ["transferTo": "nobody"])).load("ada")!
        try again.execute { try $0.withdraw(1) }
        try await plain.in(EventContext(metadata: ["transferTo": "nobody"])).commit(&again)
        try await transfers.catchUp()
        #expect(try await transfers.parked().count == 1)

        let localStore = InMemoryEventStore()
        let bus = InMemoryMessageBus()
        let replicate = IdempotentHandler(name: "replica", store: localStore) { event, _ in
            try await ExternalAggregates.store(event, in: localStore)
        }
        await bus.subscribe(to: MessageChannel.id(of: BankAccount.self), as: "replica") { event in
            _ = try await replicate.process(event)
        }
        try await MessageRelay(name: "to-bus", store: store, producer: bus).relay()
        #expect(try await localStore.read(StreamID(BankAccount.self, id: "bob")).count == 2)
    }
}
