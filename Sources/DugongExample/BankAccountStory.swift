import Dugong
import Foundation

/// The bank-account story that `dugong demo` tells: commands, events, a refused withdrawal,
/// an optimistic-concurrency conflict caught and retried, and the final state.
public enum BankAccountStory {
    /// Runs the story on `store`, reporting each step through `say`: commands and events, a
    /// caught concurrency conflict, then snapshots, time travel and a projection.
    /// - Returns: the account's final state.
    @discardableResult
    public static func run(
        on store: any TransactionalEventStore & GlobalEventLog, snapshots: any SnapshotStore, say: (String) -> Void
    ) async throws -> AggregateRoot<BankAccount> {
        let registry = try EventRegistry(BankAccount.self)

        var account = AggregateRoot<BankAccount>()
        try account.create { try $0.open(owner: "Ada") }
        let id = account.id!
        say("open an account for Ada          → \(staged(account))")
        try account.execute { try $0.deposit(100_00) }
        say("deposit 100.00                   → \(staged(account))")
        try account.execute { try $0.withdraw(30_00) }
        say("withdraw 30.00                   → \(staged(account))")
        do {
            try account.execute { try $0.withdraw(500_00) }
        } catch let error as BankAccountError {
            say("withdraw 500.00                  → refused: \(error)")
        }
        let opened = try await store.commit(&account)
        say("commit → stream \(StreamID(BankAccount.self, id: id)) at version \(opened?.version ?? 0)")

        say("")
        say("Two tellers load the account at version \(account.sequenceNumber), balance \(money(account.state.balance)).")
        var first = try await store.load(BankAccount.self, id: id, registry: registry)!
        var second = try await store.load(BankAccount.self, id: id, registry: registry)!
        try first.execute { try $0.withdraw(20_00) }
        let firstResult = try await store.commit(&first)
        say("teller 1 withdraws 20.00 → committed at version \(firstResult?.version ?? 0)")
        try second.execute { try $0.withdraw(50_00) }
        do {
            try await store.commit(&second)
            say("teller 2 withdraws 50.00 → committed (unexpected: no conflict)")
        } catch let conflict as EventStoreError {
            say("teller 2 withdraws 50.00 → conflict caught: \(conflict)")
            second = try await store.load(BankAccount.self, id: id, registry: registry)!
            try second.execute { try $0.withdraw(50_00) }
            let retried = try await store.commit(&second)
            say("teller 2 reloads (balance \(money(second.state.balance + 50_00))), retries → committed at version \(retried?.version ?? 0)")
        }

        say("")
        say("Events in the store:")
        for event in try await store.read(StreamID(BankAccount.self, id: id)) {
            let payload = event.payload.map { String(decoding: $0, as: UTF8.self) } ?? "null"
            say("  #\(event.sequenceNumber) \(event.eventType) v\(event.version) \(payload)")
        }
        let final = try await store.load(BankAccount.self, id: id, registry: registry)!
        say("")
        say("State: owner \(final.state.owner), balance \(money(final.state.balance)), version \(final.sequenceNumber)")

        say("")
        say("The repository snapshots the account every \(BankAccount.snapshotInterval) events; 20 deposits of 1.00:")
        let accounts = AggregateRepository<BankAccount>(eventStore: store, snapshotStore: snapshots, registry: registry)
        for _ in 1...20 { try await accounts.update(id) { try $0.deposit(1_00) } }
        let snapshot = try await snapshots.latest(for: StreamID(BankAccount.self, id: id))
        say("  latest snapshot covers version \(snapshot?.sequenceNumber ?? 0) of \(try await accounts.load(id)!.sequenceNumber)")
        let asOf = try await accounts.load(id, asOf: 3)!
        say("Time travel: after version 3 the balance was \(money(asOf.state.balance)); now it is \(money(try await accounts.load(id)!.state.balance))")

        say("")
        _ = try await accounts.create { try $0.open(owner: "Ada") }
        let bob = try await accounts.create { try $0.open(owner: "Bob") }
        try await accounts.update(bob.id!) { try $0.deposit(12_00) }
        let totals = Totals()
        let projection = Projection(name: "totals-per-owner", store: store) { recorded in
            guard recorded.event.aggregateType == BankAccount.aggregateType, let envelope = try registry.decode(recorded.event) else { return }
            await totals.apply(envelope)
        }
        let handled = try await projection.catchUp()
        say("Projection \"total balance per owner\" read \(handled) events:")
        for (owner, total) in await totals.byOwner.sorted(by: { $0.key < $1.key }) { say("  \(owner): \(money(total))") }
        return try await accounts.load(id)!
    }

    /// The projection's read model.
    actor Totals {
        private var owners: [String: String] = [:]
        private(set) var byOwner: [String: Int] = [:]

        func apply(_ envelope: EventEnvelope) {
            let id = envelope.aggregateID
            switch envelope.event {
            case let opened as AccountOpened:
                owners[id] = opened.owner
                byOwner[opened.owner, default: 0] += 0
            case let deposit as MoneyDeposited: byOwner[owners[id] ?? "?", default: 0] += deposit.amount
            case let withdrawal as MoneyWithdrawn: byOwner[owners[id] ?? "?", default: 0] -= withdrawal.amount
            default: break
            }
        }
    }

    private static func staged(_ account: AggregateRoot<BankAccount>) -> String {
        guard let last = account.stagedEvents.last else { return "nothing staged" }
        return "staged \(last.eventType) #\(last.sequenceNumber), balance \(money(account.state.balance))"
    }

    static func money(_ cents: Int) -> String {
        String(format: "%d.%02d", cents / 100, cents % 100)
    }
}
