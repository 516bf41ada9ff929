/// Loading and committing aggregates through any ``EventStore``, without a repository: the
/// same as an ``AggregateRepository`` without snapshots, acting for `tenantID`.
extension EventStore {
    /// Rebuilds an aggregate from its stored events.
    ///
    /// - Returns: the aggregate, or `nil` when the stream has no events.
    /// - Throws: ``EventDecodingError`` for an event the registry cannot decode,
    ///   ``AggregateError`` for an event out of sequence, and the store's errors.
    public func load<State: Aggregate>(
        _: State.Type, id: String, tenantID: String? = nil, registry: EventRegistry
    ) async throws -> AggregateRoot<State>? {
        try await repository(State.self, tenantID: tenantID, registry: registry).load(id)
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
        try await repository(State.self, tenantID: tenantID, registry: EventRegistry()).commit(&aggregate)
    }

    private func repository<State: Aggregate>(
        _: State.Type, tenantID: String?, registry: EventRegistry
    ) -> AggregateRepository<State> {
        AggregateRepository(eventStore: self, registry: registry, context: EventContext(tenantID: tenantID))
    }
}
