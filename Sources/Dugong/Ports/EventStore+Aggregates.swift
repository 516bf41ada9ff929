/// Loading and committing aggregates through any ``EventStore``.
extension EventStore {
    /// Rebuilds an aggregate from its stored events.
    ///
    /// - Returns: the aggregate, or `nil` when the stream has no events.
    /// - Throws: ``EventDecodingError`` for an event the registry cannot decode,
    ///   ``AggregateError`` for an event out of sequence, and the store's errors.
    public func load<State: Aggregate>(
        _: State.Type, id: String, tenantID: String? = nil, registry: EventRegistry
    ) async throws -> AggregateRoot<State>? {
        let events = try await read(StreamID(State.self, id: id, tenantID: tenantID))
        guard !events.isEmpty else { return nil }
        var aggregate = AggregateRoot<State>(id: id)
        for serialized in events {
            if let envelope = try registry.decode(serialized) {
                try aggregate.apply(envelope)
            } else {
                try aggregate.skip(sequenceNumber: serialized.sequenceNumber, aggregateID: serialized.aggregateID)
            }
        }
        return aggregate
    }

    /// Appends an aggregate's staged events, expecting the stream to be at the aggregate's
    /// committed sequence number, and marks them committed.
    ///
    /// - Returns: the append's result, or `nil` when nothing was staged.
    /// - Throws: ``EventStoreError/conflict(stream:expected:actual:)`` when another writer got
    ///   there first (the aggregate keeps its staged events: reload and retry).
    @discardableResult
    public func commit<State: Aggregate>(
        _ aggregate: inout AggregateRoot<State>, tenantID: String? = nil
    ) async throws -> AppendResult? {
        guard let id = aggregate.id, !aggregate.stagedEvents.isEmpty else { return nil }
        aggregate.stamp(EventContext(tenantID: tenantID))
        let events = try aggregate.stagedEvents.map { try $0.serialized(for: State.self) }
        let committed = aggregate.committedSequenceNumber
        let result = try await append(
            events, to: StreamID(State.self, id: id, tenantID: tenantID),
            expecting: committed == 0 ? .noStream : .exact(committed))
        aggregate.markCommitted()
        return result
    }
}
