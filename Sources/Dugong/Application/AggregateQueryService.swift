import Foundation

/// Read-only questions about the aggregates of a store: which types exist, which ids a type
/// has (per tenant), an aggregate's state as of a sequence number, its events. What the tool and
/// an inspector (DugongJS's Studio) use.
///
/// ```swift
/// let queries = try AggregateQueryService(store: store, aggregates: [BankAccount.self])
/// let ids = try await queries.ids(of: "BankAccount", tenantID: nil)
/// let state = try await queries.state(of: "BankAccount", id: ids[0], asOf: 3)   // JSON
/// ```
public struct AggregateQueryService: Sendable {
    public let store: any EventStore
    /// Where states of truncated streams are restored from (their first events are hidden).
    public let snapshotStore: (any SnapshotStore)?
    private let aggregates: [any Aggregate.Type]
    private let registry: EventRegistry
    /// The origin that `origin: nil` means (DugongJS: the server's own).
    public let defaultOrigin: String?

    /// - Parameter snapshotStore: the snapshots that restore the states of truncated streams.
    /// - Throws: ``EventRegistryError`` when two of the aggregates' event types conflict.
    public init(
        store: any EventStore, snapshotStore: (any SnapshotStore)? = nil, aggregates: [any Aggregate.Type], defaultOrigin: String? = nil
    ) throws(EventRegistryError) {
        self.store = store
        self.snapshotStore = snapshotStore
        self.aggregates = aggregates
        var registry = EventRegistry()
        for aggregate in aggregates { try registry.register(aggregate) }
        self.registry = registry
        self.defaultOrigin = defaultOrigin ?? aggregates.first?.origin
    }

    /// The aggregate types it knows, as (origin, type).
    public func types() -> [(origin: String, type: String)] {
        aggregates.map { ($0.origin, $0.aggregateType) }
    }

    private func aggregate(_ type: String, origin: String?) throws -> any Aggregate.Type {
        let origin = origin ?? defaultOrigin
        guard let found = aggregates.first(where: { $0.aggregateType == type && $0.origin == origin }) else {
            throw QueryError.unknownAggregateType(origin: origin ?? "?", type: type)
        }
        return found
    }

    /// The ids of one type's aggregates in one tenant.
    public func ids(of type: String, origin: String? = nil, tenantID: String?) async throws -> [String] {
        let aggregate = try aggregate(type, origin: origin)
        return try await store.aggregateIDs(origin: aggregate.origin, aggregateType: type, tenantID: tenantID)
    }

    /// The aggregate's events, in order.
    public func events(of type: String, id: String, origin: String? = nil, tenantID: String? = nil) async throws -> [SerializedDomainEvent] {
        let aggregate = try aggregate(type, origin: origin)
        return try await store.read(StreamID(origin: aggregate.origin, aggregateType: type, aggregateID: id, tenantID: tenantID))
    }

    /// The aggregate's state after event `sequenceNumber` (the latest when `nil`) as JSON;
    /// `nil` when it has no such event. The state type must be `Encodable` (every
    /// ``SnapshottableAggregate`` is). Replayed from the aggregate's first event, or, on a
    /// truncated stream, from its latest snapshot (``AggregateRepository/load(_:asOf:)``).
    /// - Throws: ``RepositoryError/truncated(_:firstVersion:)`` for a state that needs events
    ///   the stream's truncation hides.
    public func state(
        of type: String, id: String, origin: String? = nil, tenantID: String? = nil, asOf sequenceNumber: Int? = nil
    ) async throws -> JSONValue? {
        let aggregate = try aggregate(type, origin: origin)
        if let sequenceNumber, sequenceNumber < 1 { return nil }
        return try await state(aggregate, id: id, tenantID: tenantID, asOf: sequenceNumber)
    }

    private func state<State: Aggregate>(_: State.Type, id: String, tenantID: String?, asOf sequenceNumber: Int?) async throws -> JSONValue? {
        let repository = AggregateRepository<State>(
            eventStore: store, snapshotStore: snapshotStore, registry: registry, context: EventContext(tenantID: tenantID))
        guard let root = try await repository.load(id, through: sequenceNumber) else { return nil }
        guard let encodable = root.state as? any Encodable else {
            throw QueryError.stateNotEncodable(type: State.aggregateType)
        }
        var state = try JSONValue(json: PayloadCoding.encode(encodable))
        state["isDeleted"] = .bool(root.isDeleted)
        state["sequenceNumber"] = .int(root.sequenceNumber)
        return state
    }
}

/// Why a query was refused.
public enum QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownAggregateType(origin: String, type: String)
    case stateNotEncodable(type: String)

    public var description: String {
        switch self {
        case .unknownAggregateType(let origin, let type): "no aggregate type \(type) of origin \(origin) is registered"
        case .stateNotEncodable(let type): "the state of \(type) is not Encodable"
        }
    }
}
