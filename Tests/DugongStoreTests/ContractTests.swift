import Dugong
@testable import DugongStore
import DugongTesting
import Foundation
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

    // Engine events the adapter skips (streams that are not aggregate streams) do not end a
    // wait for the global log: a projection that read everything would read nothing and wait
    // again at once, a busy loop (and a read-only store would never look for new commits).
    @Test func aWaitForTheGlobalLogIsNotEndedByEventsTheAdapterSkips() async throws {
        let directory = TemporaryDirectory("adapter-wait")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let store = EventLogStore(log: log)
        func event(_ stream: StreamID) -> [SerializedDomainEvent] {
            [SerializedDomainEvent(
                origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Opened", version: 1, id: UUID(),
                aggregateID: stream.aggregateID, payload: Data("{}".utf8), sequenceNumber: 1, timestamp: Date())]
        }
        let first = StreamID(origin: "bank", aggregateType: "Account", aggregateID: "first")
        let result = try await store.append(event(first), to: first, expecting: .noStream)
        try await log.append(Fixture.events(3), to: "not-an-aggregate-stream")
        let next = try #require(result.cursor).successor
        #expect(try await store.events(from: next, maxCount: 10).isEmpty)
        #expect(try await FollowingTests.isStillWaiting(after: .milliseconds(150)) { try await store.waitForEvents(from: next) })
        let second = StreamID(origin: "bank", aggregateType: "Account", aggregateID: "second")
        let waiter = Task { try await store.waitForEvents(from: next) }
        try await Task.sleep(for: .milliseconds(50))
        try await store.append(event(second), to: second, expecting: .noStream)
        try await waiter.value
        #expect(try await store.events(from: next, maxCount: 10).map(\.event.aggregateID) == ["second"])
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
        // Errors name a stream as the stores do (its parts were joined as they are: another
        // stream's name).
        for stream in streams { #expect(stream.description == AggregateStreamName.name(of: stream)) }
        #expect("\(EventStoreError.invalidAppend(stream: streams[1], reason: "r"))".contains("b%3Aa%40n%2Fk%25:Acc%3Aount@t%401%2Fü/x/y@z:%"))
    }
}
