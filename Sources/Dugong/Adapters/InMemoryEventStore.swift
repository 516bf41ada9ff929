import Foundation

/// An ``EventStore`` that keeps events in memory: for tests, demos and prototypes.
/// Safe to use from many tasks at once; appends are serialized by the actor.
public actor InMemoryEventStore: EventStore {
    private var streams: [StreamID: [SerializedDomainEvent]] = [:]
    /// Aggregate ids per (origin, type, tenant), in order of first append.
    private var aggregateIDsByKind: [Kind: [String]] = [:]

    private struct Kind: Hashable {
        var origin: String
        var aggregateType: String
        var tenantID: String?
    }

    public init() {}

    @discardableResult
    public func append(
        _ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion
    ) throws -> AppendResult {
        let request = try AppendRequest(events: events, stream: stream, expected: expected)
        let stored = streams[stream, default: []]
        let decision = try request.decide(currentVersion: stored.count) { stored[$0 - 1].id }
        if decision == .duplicate {
            return AppendResult(version: stored.count, wasDuplicate: true)
        }
        if stored.isEmpty {
            let kind = Kind(origin: stream.origin, aggregateType: stream.aggregateType, tenantID: stream.tenantID)
            aggregateIDsByKind[kind, default: []].append(stream.aggregateID)
        }
        streams[stream, default: []].append(contentsOf: events)
        assert(streams[stream]!.count == request.lastSequenceNumber)
        return AppendResult(version: request.lastSequenceNumber, wasDuplicate: false)
    }

    public func read(_ stream: StreamID, from sequenceNumber: Int) -> [SerializedDomainEvent] {
        let stored = streams[stream, default: []]
        let start = max(sequenceNumber, 1) - 1
        return start < stored.count ? Array(stored[start...]) : []
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) -> [String] {
        aggregateIDsByKind[Kind(origin: origin, aggregateType: aggregateType, tenantID: tenantID)] ?? []
    }
}
