import Dugong
@testable import DugongExample
import DugongStore
import Foundation
import Testing

/// Service B's read-only view of service A's bank accounts (a shared kernel: A's events).
struct AccountView: ExternalAggregate {
    static let origin = BankAccount.origin
    static let aggregateType = BankAccount.aggregateType
    static let eventTypes = BankAccount.eventTypes
    var owner = ""
    var balance = 0
    init() {}
    mutating func apply(_ event: any DomainEvent) {
        switch event {
        case let opened as AccountOpened: owner = opened.owner
        case let deposit as MoneyDeposited: balance += deposit.amount
        case let withdrawal as MoneyWithdrawn: balance -= withdrawal.amount
        default: break
        }
    }
}

@Suite("Messaging and external aggregates")
struct MessagingTests {
    @Test func channelsAreStableAndDistinct() {
        #expect(MessageChannel.id(of: BankAccount.self) == "bank.BankAccount")
        #expect(MessageChannel.id(origin: "a.b", aggregateType: "c") != MessageChannel.id(origin: "a", aggregateType: "b.c"))
    }

    @Test(arguments: Adapter.allCases)
    func eventsRelayedToAnotherServiceBuildItsReadOnlyReplica(_ adapter: Adapter) async throws {
        let (events, _, release) = try await adapter.make()
        defer { release() }
        let serviceA = events as! Projection.Store
        let serviceB = InMemoryEventStore()
        let bus = InMemoryMessageBus()
        let replicate = IdempotentHandler(name: "replica", store: serviceB, retry: RetryPolicy(maximumAttempts: 2, initialBackoff: .milliseconds(1))) { event, _ in
            try await ExternalAggregates.store(event, in: serviceB)
        }
        await bus.subscribe(to: MessageChannel.id(of: BankAccount.self), as: "replica") { event in
            _ = try await replicate.process(event)
        }
        let relay = MessageRelay(name: "to-bus", store: serviceA, producer: bus)

        let accounts = AggregateRepository<BankAccount>(eventStore: serviceA, registry: try EventRegistry(BankAccount.self))
        _ = try await accounts.create(id: "acc") { try $0.open(owner: "Ada") }
        try await accounts.update("acc") { try $0.deposit(100) }
        try await serviceA.waitForCommittedEvents()
        #expect(try await relay.relay() == 2)
        try await accounts.update("acc") { try $0.withdraw(30) }
        try await serviceA.waitForCommittedEvents()
        #expect(try await relay.relay() == 1)
        #expect(try await relay.relay() == 0)

        let views = AggregateRepository<AccountView>(eventStore: serviceB, registry: try EventRegistry(AccountView.self))
        var view = try #require(try await views.load("acc"))
        #expect(view.state.owner == "Ada" && view.state.balance == 70)
        // A replica is read-only.
        try view.execute { _ in [MoneyDeposited(amount: 1)] }
        await #expect(throws: RepositoryError.readOnly(aggregateType: "BankAccount", origin: "bank")) {
            try await views.commit(&view)
        }

        // Redelivered messages change nothing.
        let all = try await serviceA.read(StreamID(BankAccount.self, id: "acc"))
        try await bus.publish(all, on: MessageChannel.id(of: BankAccount.self))
        #expect(try await serviceB.read(StreamID(BankAccount.self, id: "acc")).count == 3)
    }

    @Test func anEventArrivingBeforeItsPredecessorIsParkedAndReplayedLater() async throws {
        let source = InMemoryEventStore()
        let accounts = AggregateRepository<BankAccount>(eventStore: source, registry: try EventRegistry(BankAccount.self))
        _ = try await accounts.create(id: "acc") { try $0.open(owner: "Ada") }
        try await accounts.update("acc") { try $0.deposit(5) }
        let events = try await source.read(StreamID(BankAccount.self, id: "acc"))
        let replica = InMemoryEventStore()
        let handler = IdempotentHandler(name: "replica", store: replica, retry: RetryPolicy(maximumAttempts: 2, initialBackoff: .milliseconds(1))) { event, _ in
            try await ExternalAggregates.store(event, in: replica)
        }
        #expect(try await handler.process(events[1]) == .parked)
        #expect(try await handler.process(events[0]) == .handled)
        #expect(try await handler.process(events[0]) == .alreadyConsumed)
        #expect(try await handler.parked().map(\.event.id) == [events[1].id])
        #expect(try await handler.replayParked() == 1)
        #expect(try await replica.read(StreamID(BankAccount.self, id: "acc")) == events)
        #expect(try await handler.parked().isEmpty)
    }
}
