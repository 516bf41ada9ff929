import Dugong
import DugongTesting
import Testing

@Suite("In-memory adapters pass the port contracts")
struct InMemoryContractTests {
    @Test(arguments: EventStoreContract.checks)
    func eventStore(_ check: EventStoreContract.Check) async throws {
        try await check.run { InMemoryEventStore() }
    }

    @Test(arguments: SnapshotStoreContract.checks)
    func snapshotStore(_ check: SnapshotStoreContract.Check) async throws {
        try await check.run { InMemorySnapshotStore() }
    }

    @Test(arguments: TransactionalEventStoreContract.checks)
    func unitsOfWork(_ check: TransactionalEventStoreContract.Check) async throws {
        try await check.run { InMemoryEventStore() }
    }

    @Test(arguments: ConsumedMessageStoreContract.checks)
    func consumedMessages(_ check: ConsumedMessageStoreContract.Check) async throws {
        try await check.run { EventStoreConsumedMessages(store: InMemoryEventStore()) }
    }

    @Test(arguments: CheckpointContract.checks)
    func checkpoints(_ check: CheckpointContract.Check) async throws {
        try await check.run { InMemoryEventStore() }
    }

    @Test(arguments: GlobalEventLogContract.checks)
    func globalLog(_ check: GlobalEventLogContract.Check) async throws {
        try await check.run { InMemoryEventStore() }
    }
}

/// A store that breaks the contract on purpose: the suite must notice.
actor ForgetfulEventStore: EventStore {
    func append(_ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion)
        -> AppendResult
    {
        AppendResult(version: events.last?.sequenceNumber ?? 0, wasDuplicate: false)
    }
    func read(_ stream: StreamID, from sequenceNumber: Int) -> [SerializedDomainEvent] { [] }
    func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) -> [String] { [] }
    func truncate(_ stream: StreamID, before version: Int) {}
}

@Suite("The contract suites catch broken adapters")
struct ContractSuiteTests {
    @Test func aStoreThatForgetsFailsTheOrderingCheck() async throws {
        let check = try #require(EventStoreContract.checks.first { $0.name.contains("sequence order") })
        await #expect(throws: ContractViolation.self) {
            try await check.run { ForgetfulEventStore() }
        }
    }

    @Test func aStoreWithoutConcurrencyControlFailsMostChecks() async throws {
        var failures = 0
        for check in EventStoreContract.checks {
            do { try await check.run { ForgetfulEventStore() } } catch { failures += 1 }
        }
        #expect(failures >= EventStoreContract.checks.count - 2)
    }
}
