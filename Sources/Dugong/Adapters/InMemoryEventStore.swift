import Foundation

/// An ``EventStore`` that keeps events in memory: for tests, demos and prototypes.
/// Safe to use from many tasks at once; appends are serialized by the actor, and appends to
/// several streams are atomic (``TransactionalEventStore``).
public actor InMemoryEventStore: TransactionalEventStore, GlobalEventLog {
    /// Keyed by `StreamID`, whose `==` compares bytes: names that differ only in Unicode
    /// normalization are two streams, as in the other adapters.
    private var streams: [StreamID: [SerializedDomainEvent]] = [:]
    /// Per stream, the first sequence number reads return.
    private var truncateBefore: [StreamID: Int] = [:]
    /// Every event in commit order: index = global position.
    private var log: [SerializedDomainEvent] = []
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0
    /// Aggregate ids per (origin, type, tenant), in order of first append: keyed by the
    /// stream with an empty aggregate id.
    private var aggregateIDsByKind: [StreamID: [String]] = [:]

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
            let key = append.stream
            let existing = streams[key] ?? []
            let new = added[key] ?? []
            let count = existing.count + new.count
            let decision = try request.decide(currentVersion: count) { version in
                version <= existing.count ? existing[version - 1].id : new[version - 1 - existing.count].id
            }
            if decision == .duplicate {
                results.append(AppendResult(version: count, wasDuplicate: true))
                continue
            }
            if count == 0 { created.append(append.stream) }
            added[key, default: []].append(contentsOf: append.events)
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
            let kind = StreamID(origin: stream.origin, aggregateType: stream.aggregateType, aggregateID: "", tenantID: stream.tenantID)
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

    /// The stream's version, its hidden events included.
    public func streamVersion(of stream: StreamID) -> Int {
        streams[stream]?.count ?? 0
    }

    /// Hides the stream's events below `version`, which may be at most its version + 1 (more
    /// would hide its next appends), as the other adapters take it.
    ///
    /// - Throws: ``TruncationError`` when `version` is below 1 or past the stream's version + 1.
    public func truncate(_ stream: StreamID, before version: Int) throws {
        let current = streams[stream]?.count ?? 0
        guard version >= 1, version <= current + 1 else {
            throw TruncationError(stream: stream, version: version, streamVersion: current)
        }
        truncateBefore[stream] = max(truncateBefore[stream] ?? 1, version)
    }

    /// Why ``truncate(_:before:)`` refused: versions start at 1, and truncating past the
    /// stream's version + 1 would hide its next appends. (The embedded store refuses the same
    /// bounds with `StoreError.invalidArgument`, PostgreSQL with `PostgresStoreError.invalidChange`.)
    public struct TruncationError: Error, Sendable, Equatable, CustomStringConvertible {
        public var stream: StreamID
        /// The version it was asked to truncate before.
        public var version: Int
        /// The stream's version then.
        public var streamVersion: Int

        public var description: String {
            version < 1
                ? "truncate \(stream) before version \(version): versions start at 1"
                : "truncate \(stream) before version \(version): its version is \(streamVersion), so at most \(streamVersion + 1) (which hides every version it has)"
        }
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) -> [String] {
        aggregateIDsByKind[StreamID(origin: origin, aggregateType: aggregateType, aggregateID: "", tenantID: tenantID)] ?? []
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
