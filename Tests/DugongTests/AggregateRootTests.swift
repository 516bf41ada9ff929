import Dugong
@testable import DugongExample
import Foundation
import Testing

@Suite("Aggregate roots")
struct AggregateRootTests {
    @Test func creationAssignsANewUUIDAndNumbersEventsFromOne() throws {
        var account = AggregateRoot<BankAccount>()
        #expect(account.id == nil)
        try account.create { try $0.open(owner: "Ada") }
        let id = try #require(account.id)
        #expect(UUID(uuidString: id) != nil)
        try account.execute { try $0.deposit(10) }
        try account.execute { try $0.deposit(5) }
        #expect(account.stagedEvents.map(\.sequenceNumber) == [1, 2, 3])
        #expect(account.stagedEvents.allSatisfy { $0.aggregateID == id })
        #expect(Set(account.stagedEvents.map(\.id)).count == 3)
        #expect(account.state.balance == 15)
        #expect(account.sequenceNumber == 3 && account.committedSequenceNumber == 0)
        account.markCommitted()
        #expect(account.stagedEvents.isEmpty && account.committedSequenceNumber == 3)
    }

    @Test func creationKeepsAGivenID() throws {
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        #expect(account.id == "acc-1")
    }

    @Test func aFailingCommandStagesNothing() throws {
        var account = AggregateRoot<BankAccount>()
        try account.create { try $0.open(owner: "Ada") }
        #expect(throws: BankAccountError.insufficientFunds(balance: 0, requested: 1)) {
            try account.execute { try $0.withdraw(1) }
        }
        #expect(account.stagedEvents.count == 1 && account.sequenceNumber == 1)
    }

    @Test func commandsNeedACreatedAggregateAndCreationNeedsANewOne() throws {
        var account = AggregateRoot<BankAccount>()
        #expect(throws: AggregateError.notCreated(aggregateType: "BankAccount")) {
            try account.execute { try $0.deposit(1) }
        }
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        #expect(throws: AggregateError.alreadyCreated(aggregateID: "acc-1")) {
            try account.create { try $0.open(owner: "Bob") }
        }
    }

    @Test func aDeletedAggregateRefusesCommands() throws {
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        try account.execute { try $0.close() }
        #expect(account.isDeleted)
        #expect(throws: AggregateError.deleted(aggregateID: "acc-1")) {
            try account.execute { try $0.deposit(1) }
        }
    }

    @Test func applyingOutOfSequenceIsATypedError() throws {
        var account = AggregateRoot<BankAccount>(id: "acc-1")
        try account.apply(EventEnvelope(event: AccountOpened(owner: "Ada"), aggregateID: "acc-1", sequenceNumber: 1))
        #expect(throws: AggregateError.sequenceNumberMismatch(aggregateID: "acc-1", expected: 2, actual: 3)) {
            try account.apply(EventEnvelope(event: MoneyDeposited(amount: 1), aggregateID: "acc-1", sequenceNumber: 3))
        }
        #expect(throws: AggregateError.sequenceNumberMismatch(aggregateID: "acc-1", expected: 2, actual: 1)) {
            try account.apply(EventEnvelope(event: MoneyDeposited(amount: 1), aggregateID: "acc-1", sequenceNumber: 1))
        }
        #expect(account.sequenceNumber == 1 && account.state.balance == 0)
    }

    @Test func applyingAnotherAggregatesEventIsATypedError() throws {
        var account = AggregateRoot<BankAccount>(id: "acc-1")
        #expect(throws: AggregateError.aggregateIDMismatch(expected: "acc-1", actual: "acc-2")) {
            try account.apply(EventEnvelope(event: AccountOpened(owner: "Ada"), aggregateID: "acc-2", sequenceNumber: 1))
        }
    }

    @Test func anAggregateWithoutIDAdoptsTheFirstEventsID() throws {
        var account = AggregateRoot<BankAccount>()
        try account.apply(EventEnvelope(event: AccountOpened(owner: "Ada"), aggregateID: "acc-9", sequenceNumber: 1))
        #expect(account.id == "acc-9" && account.state.owner == "Ada")
    }

    @Test func storedEventsCannotBeAppliedOverStagedOnes() throws {
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        #expect(throws: AggregateError.uncommittedEvents(aggregateID: "acc-1", count: 1)) {
            try account.apply(EventEnvelope(event: MoneyDeposited(amount: 1), aggregateID: "acc-1", sequenceNumber: 2))
        }
    }

    @Test func timestampsHaveMillisecondPrecisionAndRoundTrip() {
        for milliseconds: Int64 in [0, 1, 999, 1_732_862_695_123, -1_000, 4_102_444_800_001] {
            #expect(Date(millisecondsSince1970: milliseconds).millisecondsSince1970 == milliseconds)
        }
        let now = Date.currentMillisecond
        #expect(Date(millisecondsSince1970: now.millisecondsSince1970) == now)
    }
}
