import Dugong
@testable import DugongStore
import DugongTesting
import Testing

@Suite("DugongStore adapters pass the port contracts")
struct StoreContractTests {
    @Test(arguments: EventStoreContract.checks)
    func eventStore(_ check: EventStoreContract.Check) async throws {
        let directory = TemporaryDirectory("contract")
        try await check.run {
            EventLogStore(log: try EventLog.open(at: directory.path, options: .init(createIfMissing: true)))
        } tearDown: { store in
            (store as? EventLogStore)?.log.close()
            directory.remove()
        }
    }

    @Test(arguments: TransactionalEventStoreContract.checks)
    func unitsOfWork(_ check: TransactionalEventStoreContract.Check) async throws {
        let directory = TemporaryDirectory("contract")
        try await check.run {
            EventLogStore(log: try EventLog.open(at: directory.path, options: .init(createIfMissing: true)))
        } tearDown: { store in
            (store as? EventLogStore)?.log.close()
            directory.remove()
        }
    }

    @Test(arguments: CheckpointContract.checks)
    func checkpoints(_ check: CheckpointContract.Check) async throws {
        let directory = TemporaryDirectory("contract")
        try await check.run {
            EventLogStore(log: try EventLog.open(at: directory.path, options: .init(createIfMissing: true)))
        } tearDown: { store in
            (store as? EventLogStore)?.log.close()
            directory.remove()
        }
    }

    @Test(arguments: ConsumedMessageStoreContract.checks)
    func consumedMessages(_ check: ConsumedMessageStoreContract.Check) async throws {
        let directory = TemporaryDirectory("contract")
        try await check.run {
            EventStoreConsumedMessages(store: EventLogStore(log: try EventLog.open(at: directory.path, options: .init(createIfMissing: true))))
        } tearDown: { store in
            ((store as? EventStoreConsumedMessages)?.store as? EventLogStore)?.log.close()
            directory.remove()
        }
    }

    @Test(arguments: SnapshotStoreContract.checks)
    func snapshotStore(_ check: SnapshotStoreContract.Check) async throws {
        let directory = TemporaryDirectory("contract")
        try await check.run {
            EventLogSnapshotStore(log: try EventLog.open(at: directory.path, options: .init(createIfMissing: true)))
        } tearDown: { store in
            (store as? EventLogSnapshotStore)?.log.close()
            directory.remove()
        }
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
