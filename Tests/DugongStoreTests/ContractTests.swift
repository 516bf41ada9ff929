import Dugong
@testable import DugongStore
import DugongTesting
import Synchronization
import Testing

@Suite("DugongStore adapters pass the port contracts")
struct StoreContractTests {
    /// Runs `check` on an adapter made by `adapt` from a fresh store, closing and removing
    /// the store afterwards.
    static func run<Adapter: Sendable>(
        _ check: ContractCheck<Adapter>, adapt: @escaping @Sendable (EventLog) -> Adapter
    ) async throws {
        let directory = TemporaryDirectory("contract")
        let opened = Mutex<EventLog?>(nil)
        try await check.run {
            let log = try EventLog.open(at: directory.path, options: .init(createIfMissing: true))
            opened.withLock { $0 = log }
            return adapt(log)
        } tearDown: { _ in
            opened.withLock { $0 }?.close()
            directory.remove()
        }
    }

    @Test(arguments: EventStoreContract.checks)
    func eventStore(_ check: EventStoreContract.Check) async throws {
        try await Self.run(check) { EventLogStore(log: $0) }
    }

    @Test(arguments: TransactionalEventStoreContract.checks)
    func unitsOfWork(_ check: TransactionalEventStoreContract.Check) async throws {
        try await Self.run(check) { EventLogStore(log: $0) }
    }

    @Test(arguments: CheckpointContract.checks)
    func checkpoints(_ check: CheckpointContract.Check) async throws {
        try await Self.run(check) { EventLogStore(log: $0) }
    }

    @Test(arguments: GlobalEventLogContract.checks)
    func globalLog(_ check: GlobalEventLogContract.Check) async throws {
        try await Self.run(check) { EventLogStore(log: $0) }
    }

    @Test(arguments: ConsumedMessageStoreContract.checks)
    func consumedMessages(_ check: ConsumedMessageStoreContract.Check) async throws {
        try await Self.run(check) { EventStoreConsumedMessages(store: EventLogStore(log: $0)) }
    }

    @Test(arguments: SnapshotStoreContract.checks)
    func snapshotStore(_ check: SnapshotStoreContract.Check) async throws {
        try await Self.run(check) { EventLogSnapshotStore(log: $0) }
    }

    @Test func aggregateStreamNamesAreReversible() {
        let streams = [
            StreamID(origin: "bank", aggregateType: "Account", aggregateID: "a-1"),
            StreamID(origin: "b:a@n/k%", aggregateType: "Acc:ount", aggregateID: "x/y@z:%", tenantID: "t@1/ü"),
            StreamID(origin: "ö", aggregateType: "ß", aggregateID: "", tenantID: ""),
        ]
        for stream in streams {
            let name = AggregateStreamName.name(of: stream)
            #expect(AggregateStreamName.streamID(of: name) == stream, "\(name)")
        }
        #expect(AggregateStreamName.name(of: streams[0]) == "bank:Account/a-1")
        #expect(AggregateStreamName.name(of: streams[1]) == "b%3Aa%40n%2Fk%25:Acc%3Aount@t%401%2Fü/x/y@z:%")
    }
}
