import Foundation

/// An ``EventStore`` that keeps events in memory: for tests, demos and prototypes.
/// Safe to use from many tasks at once; appends are serialized by the actor, and appends to
/// several streams are atomic (``TransactionalEventStore``).
public actor InMemoryEventStore: TransactionalEventStore {
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
        try append([StreamAppend(stream: stream, events: events, expected: expected)])[0]
    }

    @discardableResult
    public func append(_ appends: [StreamAppend]) throws -> [AppendResult] {
        // Decide every append against a trial copy; publish it only if all pass.
        var trial = streams
        var created: [StreamID] = []
        var results: [AppendResult] = []
        for append in appends {
            let request = try AppendRequest(events: append.events, stream: append.stream, expected: append.expected)
            let stored = trial[append.stream, default: []]
            let decision = try request.decide(currentVersion: stored.count) { stored[$0 - 1].id }
            if decision == .duplicate {
                results.append(AppendResult(version: stored.count, wasDuplicate: true))
                continue
            }
            if stored.isEmpty { created.append(append.stream) }
            trial[append.stream, default: []].append(contentsOf: append.events)
            assert(trial[append.stream]!.count == request.lastSequenceNumber)
            results.append(AppendResult(version: request.lastSequenceNumber, wasDuplicate: false))
        }
        streams = trial
        for stream in created {
            let kind = Kind(origin: stream.origin, aggregateType: stream.aggregateType, tenantID: stream.tenantID)
            aggregateIDsByKind[kind, default: []].append(stream.aggregateID)
        }
        return results
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
