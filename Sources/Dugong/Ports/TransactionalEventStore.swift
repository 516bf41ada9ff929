/// Events for one stream, as part of an atomic append to several streams.
public struct StreamAppend: Sendable {
    public var stream: StreamID
    public var events: [SerializedDomainEvent]
    public var expected: ExpectedVersion

    public init(stream: StreamID, events: [SerializedDomainEvent], expected: ExpectedVersion) {
        self.stream = stream
        self.events = events
        self.expected = expected
    }
}

/// The unit-of-work port (DugongJS's transaction manager): an event store that appends to
/// several streams atomically.
///
/// Contract (checked by `DugongTesting.TransactionalEventStoreContract`): each append follows
/// the rules of ``EventStore/append(_:to:expecting:)``, checked against the streams as the
/// appends before it in the same call leave them; if any append is refused, the call throws that
/// append's error and nothing of any append is stored or visible. Appends to the same stream in
/// one call follow each other; one that repeats events an earlier one stores (an aggregate
/// staged twice) is an idempotent retry of them.
public protocol TransactionalEventStore: EventStore {
    /// Appends every append, or none.
    /// - Returns: one result per append, in order.
    @discardableResult
    func append(_ appends: [StreamAppend]) async throws -> [AppendResult]
}

extension TransactionalEventStore {
    /// An append to one stream: a unit of one append.
    @discardableResult
    public func append(
        _ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion
    ) async throws -> AppendResult {
        try await append([StreamAppend(stream: stream, events: events, expected: expected)])[0]
    }
}

/// Several aggregates' staged events, committed together or not at all.
///
/// ```swift
/// var unit = UnitOfWork()
/// var from = try await accounts.load(a)!
/// try from.execute { try $0.withdraw(50) }
/// var to = try await accounts.load(b)!
/// try to.execute { try $0.deposit(50) }
/// try accounts.stage(from, in: &unit)
/// try accounts.stage(to, in: &unit)
/// try await unit.commit(to: store)           // both or neither
/// ```
public struct UnitOfWork: Sendable {
    /// The appends, in the order they were staged.
    public private(set) var appends: [StreamAppend] = []
    private var envelopes: [EventEnvelope] = []

    public init() {}

    /// Adds an append; `envelopes` get their `committed(as:)` hooks called once the unit commits.
    public mutating func add(_ append: StreamAppend, envelopes: [EventEnvelope] = []) {
        appends.append(append)
        self.envelopes += envelopes
    }

    /// Commits every append atomically.
    /// - Throws: the first refused append's error; then nothing was written.
    @discardableResult
    public func commit(to store: any TransactionalEventStore) async throws -> [AppendResult] {
        guard !appends.isEmpty else { return [] }
        let results = try await store.append(appends)
        for envelope in envelopes { envelope.event.committed(as: envelope) }
        return results
    }
}

extension AggregateRepository {
    /// Adds the aggregate's staged events, stamped with this repository's context, to `unit`,
    /// expecting the stream at the aggregate's committed sequence number. The aggregate itself
    /// is not changed: load it again after the unit commits.
    public func stage(_ aggregate: AggregateRoot<State>, in unit: inout UnitOfWork) throws {
        guard let id = aggregate.id, !aggregate.stagedEvents.isEmpty else { return }
        if State.self is any ExternalAggregate.Type {
            throw RepositoryError.readOnly(aggregateType: State.aggregateType, origin: State.origin)
        }
        var aggregate = aggregate
        aggregate.stamp(context)
        let committed = aggregate.committedSequenceNumber
        unit.add(
            StreamAppend(
                stream: stream(id), events: try aggregate.stagedEvents.map { try $0.serialized(for: State.self) },
                expected: committed == 0 ? .noStream : .exact(committed)),
            envelopes: aggregate.stagedEvents)
    }
}
