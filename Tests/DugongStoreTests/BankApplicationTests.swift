import Dugong
@testable import DugongExample
import DugongStore
import Foundation
import Testing

/// The bank-account example as a small application, end to end, on every adapter: accounts,
/// deposits and withdrawals, transfers done by a consumer reacting to events, snapshots every
/// 10 events, time travel, a "total balance per owner" projection, a consumer restarted
/// mid-stream that processes every event once in effect, and a poison message that is parked.
@Suite("The bank application")
struct BankApplicationTests {
    @Test(arguments: Adapter.allCases)
    func theWholeStory(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let store = events as! Projection.Store
        let registry = try EventRegistry(BankAccount.self)
        let accounts = AggregateRepository<BankAccount>(eventStore: store, snapshotStore: snapshots, registry: registry)

        for (id, owner) in [("ada-1", "Ada"), ("ada-2", "Ada"), ("bob", "Bob")] {
            _ = try await accounts.create(id: id) { try $0.open(owner: owner) }
        }
        for _ in 1...12 { try await accounts.update("ada-1") { try $0.deposit(100) } }
        try await accounts.update("ada-1") { try $0.withdraw(150) }
        try await accounts.update("bob") { try $0.deposit(500) }
        await #expect(throws: BankAccountError.insufficientFunds(balance: 500, requested: 900)) {
            try await accounts.update("bob") { try $0.withdraw(900) }
        }

        // A snapshot every 10 events; time travel to an earlier balance.
        #expect(try await snapshots.latest(for: StreamID(BankAccount.self, id: "ada-1"))?.sequenceNumber == 10)
        #expect(try await accounts.load("ada-1", asOf: 5)?.state.balance == 400)
        #expect(try await accounts.load("ada-1")?.state.balance == 1_050)

        // Transfers: withdrawals that ask for one, completed by a consumer.
        _ = try await Transfers.request(200, from: "ada-1", to: "bob", accounts: accounts)
        _ = try await Transfers.request(50, from: "bob", to: "ada-2", accounts: accounts)
        let consumer = Transfers.consumer(store, accounts: accounts)
        try await store.waitForCommittedEvents()
        try await consumer.catchUp()
        // The consumer stops mid-stream; more transfers, one of them poison; a new instance resumes.
        _ = try await Transfers.request(100, from: "ada-1", to: "ada-2", accounts: accounts)
        _ = try await Transfers.request(1, from: "bob", to: "closed-long-ago", accounts: accounts)
        let last = try await Transfers.request(25, from: "ada-2", to: "bob", accounts: accounts)
        let restarted = Transfers.consumer(store, accounts: accounts)
        try await restarted.waitUntilCaughtUp(with: last)
        #expect(try await restarted.parked().map { $0.error.contains("closed-long-ago") } == [true])

        let balances = try await [("ada-1", 750), ("ada-2", 125), ("bob", 674)].asyncMap { id, expected in
            (try await accounts.load(id)?.state.balance, expected)
        }
        for (actual, expected) in balances { #expect(actual == expected) }

        // The projection sees the same totals, by owner.
        let model = BalancesByOwner()
        let projection = Projection(name: "totals", store: store, reset: { model.reset() }) { recorded in
            try model.apply(recorded, registry: registry)
        }
        try await store.waitForCommittedEvents()
        try await projection.catchUp()
        #expect(model.snapshot == ["Ada": 875, "Bob": 674])
        #expect(try await projection.rebuild() > 0 && model.snapshot == ["Ada": 875, "Bob": 674])
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
