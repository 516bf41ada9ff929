import Dugong
@testable import DugongExample
import DugongTesting
import Foundation
import Testing

@Suite("Bank account example")
struct BankAccountTests {
    @Test func openingStagesAccountOpened() throws {
        try AggregateScenario<BankAccount>.given()
            .when { try $0.open(owner: "Ada") }
            .then(AccountOpened(owner: "Ada"))
    }

    @Test func withdrawingWithinTheBalance() throws {
        let account = try AggregateScenario<BankAccount>
            .given(AccountOpened(owner: "Ada"), MoneyDeposited(amount: 100))
            .when { try $0.withdraw(30) }
            .then(MoneyWithdrawn(amount: 30))
        #expect(account.state.balance == 70)
    }

    @Test func withdrawingMoreThanTheBalanceIsRefused() throws {
        try AggregateScenario<BankAccount>
            .given(AccountOpened(owner: "Ada"), MoneyDeposited(amount: 100))
            .when { try $0.withdraw(130) }
            .thenFails(with: BankAccountError.insufficientFunds(balance: 100, requested: 130))
    }

    @Test func closingANonEmptyAccountIsRefused() throws {
        try AggregateScenario<BankAccount>
            .given(AccountOpened(owner: "Ada"), MoneyDeposited(amount: 1))
            .when { try $0.close() }
            .thenFails(with: BankAccountError.balanceNotZero(1))
    }

    @Test func scenarioExpectationsCanFail() throws {
        let outcome = try AggregateScenario<BankAccount>.given(AccountOpened(owner: "Ada")).when { try $0.deposit(5) }
        #expect(throws: ScenarioFailure.self) { try outcome.then(MoneyDeposited(amount: 6)) }
        #expect(throws: ScenarioFailure.self) { try outcome.then() }
        #expect(throws: ScenarioFailure.self) { try outcome.thenFails(with: BankAccountError.invalidAmount(5)) }
        let failing = try AggregateScenario<BankAccount>.given(AccountOpened(owner: "Ada")).when { try $0.deposit(-5) }
        #expect(throws: ScenarioFailure.self) { try failing.then(MoneyDeposited(amount: -5)) }
        #expect(throws: ScenarioFailure.self) { try failing.thenFails(with: BankAccountError.invalidAmount(6)) }
        try failing.thenFails(with: BankAccountError.invalidAmount(-5))
    }

    @Test func theDemoStoryCatchesAConflictAndEndsEmpty() async throws {
        var lines: [String] = []
        let final = try await BankAccountStory.run(on: InMemoryEventStore(), snapshots: InMemorySnapshotStore()) { lines.append($0) }
        #expect(lines.contains { $0.contains("conflict caught") && $0.contains("expected version 3, actual version 4") })
        #expect(lines.contains { $0.contains("refused: insufficient funds") })
        #expect(lines.contains { $0.contains("latest snapshot covers version 20 of 25") })
        #expect(lines.contains { $0.contains("after version 3 the balance was 70.00; now it is 20.00") })
        #expect(lines.contains { $0 == "  Ada: 20.00" } && lines.contains { $0 == "  Bob: 12.00" })
        #expect(final.state.balance == 20_00 && final.sequenceNumber == 25 && final.state.owner == "Ada")
    }

    @Test func committingAStaleAggregateKeepsItsStagedEvents() async throws {
        let store = InMemoryEventStore()
        let registry = try EventRegistry(BankAccount.self)
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        try await store.commit(&account)
        var stale = try #require(try await store.load(BankAccount.self, id: "acc-1", registry: registry))
        try account.execute { try $0.deposit(10) }
        try await store.commit(&account)
        try stale.execute { try $0.deposit(20) }
        await #expect(throws: EventStoreError.conflict(stream: StreamID(BankAccount.self, id: "acc-1"), expected: .exact(1), actual: 2)) {
            try await store.commit(&stale)
        }
        #expect(stale.stagedEvents.count == 1)
        let reloaded = try #require(try await store.load(BankAccount.self, id: "acc-1", registry: registry))
        #expect(reloaded.state.balance == 10)
    }

    @Test func tenantsKeepTheirOwnAccounts() async throws {
        let store = InMemoryEventStore()
        let registry = try EventRegistry(BankAccount.self)
        for tenant in ["red", "blue"] {
            var account = AggregateRoot<BankAccount>()
            try account.create(id: "acc-1") { try $0.open(owner: tenant) }
            try await store.commit(&account, tenantID: tenant)
        }
        let red = try #require(try await store.load(BankAccount.self, id: "acc-1", tenantID: "red", registry: registry))
        #expect(red.state.owner == "red")
        #expect(try await store.load(BankAccount.self, id: "acc-1", registry: registry) == nil)
    }
}

@Suite("Aggregate query service")
struct QueryServiceTests {
    @Test func typesIdsStateAsOfAndEvents() async throws {
        let store = InMemoryEventStore()
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        _ = try await accounts.create(id: "a") { try $0.open(owner: "Ada") }
        try await accounts.update("a") { try $0.deposit(10) }
        try await accounts.update("a") { try $0.deposit(5) }
        _ = try await accounts.in(EventContext(tenantID: "t")).create(id: "b") { try $0.open(owner: "Bob") }
        let queries = try AggregateQueryService(store: store, aggregates: [BankAccount.self])
        #expect(queries.types().map(\.type) == ["BankAccount"])
        #expect(try await queries.ids(of: "BankAccount", tenantID: nil) == ["a"])
        #expect(try await queries.ids(of: "BankAccount", tenantID: "t") == ["b"])
        #expect(try await queries.events(of: "BankAccount", id: "a").count == 3)
        let now = try #require(try await queries.state(of: "BankAccount", id: "a"))
        #expect(now["balance"] == 15 && now["owner"] == "Ada" && now["sequenceNumber"] == 3 && now["isDeleted"] == false)
        #expect(try await queries.state(of: "BankAccount", id: "a", asOf: 2)?["balance"] == 10)
        #expect(try await queries.state(of: "BankAccount", id: "a", asOf: 9) == nil)
        // A truncated stream: "after version N" by sequence number (the first events it read
        // were taken for versions 1...N); version 1 is hidden, and without a snapshot no state
        // can be rebuilt (FrameworkFidelityTests has the snapshot's side).
        let stream = StreamID(origin: "bank", aggregateType: "BankAccount", aggregateID: "a")
        try await store.truncate(stream, before: 2)
        for version in [1, 3] {
            await #expect(throws: RepositoryError.truncated(stream, firstVersion: 2)) {
                try await queries.state(of: "BankAccount", id: "a", asOf: version)
            }
        }
        #expect(try await queries.state(of: "BankAccount", id: "a", asOf: 4) == nil)
        await #expect(throws: QueryError.unknownAggregateType(origin: "bank", type: "Loan")) {
            try await queries.ids(of: "Loan", tenantID: nil)
        }
    }
}
