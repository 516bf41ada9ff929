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
        // Decide every append against the streams as the ones before it leave them, holding
        // only the new events aside (a trial copy of every stream made each append cost
        // O(streams)); publish them only if all pass.
        var added: [StreamID: [SerializedDomainEvent]] = [:]
        var pendingLog = 0
        var created: [StreamID] = []
        var results: [AppendResult] = []
        for append in appends {
            let request = try AppendRequest(events: append.events, stream: append.stream, expected: append.expected)
            let existing = streams[append.stream] ?? []
            let new = added[append.stream] ?? []
            let count = existing.count + new.count
            let decision = try request.decide(currentVersion: count) { version in
                version <= existing.count ? existing[version - 1].id : new[version - 1 - existing.count].id
            }
            if decision == .duplicate {
                results.append(AppendResult(version: count, wasDuplicate: true))
                continue
            }
            if count == 0 { created.append(append.stream) }
            added[append.stream, default: []].append(contentsOf: append.events)
            assert(count + append.events.count == request.lastSequenceNumber)
            pendingLog += append.events.count
            results.append(AppendResult(
                version: request.lastSequenceNumber, wasDuplicate: false, cursor: LogCursor(position: UInt64(log.count + pendingLog - 1))))
        }
        for (stream, events) in added { streams[stream, default: []].append(contentsOf: events) }
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

    /// Cursors are positions (transaction 0): an event's index in the log.
    public func events(from cursor: LogCursor, maxCount: Int) -> [RecordedEvent] {
        guard cursor.transaction == 0, cursor.position < UInt64(log.count), maxCount > 0 else { return [] }
        let start = Int(cursor.position)
        let end = start + min(log.count - start, maxCount)
        return (start..<end).map { RecordedEvent(cursor: LogCursor(position: UInt64($0)), event: log[$0]) }
    }

    public func endCursor() -> LogCursor { LogCursor(position: UInt64(log.count)) }

    public func waitForEvents(from cursor: LogCursor) async {
        // A cursor of a later transaction than 0 is past every event this store will hold.
        if cursor.transaction == 0 && UInt64(log.count) > cursor.position { return }
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
