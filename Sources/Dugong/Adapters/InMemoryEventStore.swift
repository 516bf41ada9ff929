import Foundation

/// An ``EventStore`` that keeps events in memory: for tests, demos and prototypes.
/// Safe to use from many tasks at once; appends are serialized by the actor, and appends to
/// several streams are atomic (``TransactionalEventStore``).
public actor InMemoryEventStore: TransactionalEventStore, GlobalEventLog {
    private var streams: [StreamID: [SerializedDomainEvent]] = [:]
    /// Per stream, the first sequence number reads return.
    private var truncateBefore: [StreamID: Int] = [:]
    /// Every event in commit order: index = global position.
    private var log: [SerializedDomainEvent] = []
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0
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
        var pendingLog = 0
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
            pendingLog += append.events.count
            results.append(AppendResult(
                version: request.lastSequenceNumber, wasDuplicate: false, position: UInt64(log.count + pendingLog - 1)))
        }
        streams = trial
        for (append, result) in zip(appends, results) where !result.wasDuplicate {
            log.append(contentsOf: append.events)
        }
        let waiting = waiters.values
        waiters.removeAll()
        for waiter in waiting { waiter.resume() }
        for stream in created {
            let kind = Kind(origin: stream.origin, aggregateType: stream.aggregateType, tenantID: stream.tenantID)
            aggregateIDsByKind[kind, default: []].append(stream.aggregateID)
        }
        return results
    }

    public func read(_ stream: StreamID, from sequenceNumber: Int) -> [SerializedDomainEvent] {
        let stored = streams[stream, default: []]
        let start = max(sequenceNumber, truncateBefore[stream] ?? 1, 1) - 1
        return start < stored.count ? Array(stored[start...]) : []
    }

    public func lastEvent(of stream: StreamID) -> SerializedDomainEvent? {
        guard let last = streams[stream]?.last, last.sequenceNumber >= truncateBefore[stream] ?? 1 else { return nil }
        return last
    }

    public func truncate(_ stream: StreamID, before version: Int) {
        truncateBefore[stream] = max(truncateBefore[stream] ?? 1, version)
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) -> [String] {
        aggregateIDsByKind[Kind(origin: origin, aggregateType: aggregateType, tenantID: tenantID)] ?? []
    }

    public func events(from position: UInt64, maxCount: Int) -> [RecordedEvent] {
        guard position < UInt64(log.count), maxCount > 0 else { return [] }
        let start = Int(position)
        let end = min(log.count, start + maxCount)
        return (start..<end).map { RecordedEvent(position: UInt64($0), event: log[$0]) }
    }

    public func headPosition() -> UInt64 { UInt64(log.count) }

    public func waitForEvents(after position: UInt64) async {
        if UInt64(log.count) > position { return }
        nextWaiter += 1
        let id = nextWaiter
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled { continuation.resume() } else { waiters[id] = continuation }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume()
    }
}
