extension EventLog {
    /// Every event from global position `position` on, in log order: first the events already
    /// stored (catch-up), then each new one as soon as its commit is acknowledged (live tail).
    /// The sequence ends when the store closes; it throws on damage: in the events it reads,
    /// and, on a read-only store, damage a refresh found anywhere since the store was opened (a
    /// segment cut, removed or put back from an older copy, in what it delivered too).
    ///
    /// On a read-only store it follows a writer in another process through its restarts,
    /// segment rolls and compactions (see ``refresh()``): each event is delivered once, in
    /// order; events a compaction removed before the subscription reached them are skipped.
    ///
    /// ```swift
    /// for try await event in log.subscribe(from: checkpoint) {
    ///     try await project(event)
    ///     checkpoint = event.position + 1
    /// }
    /// ```
    public func subscribe(from position: UInt64 = 0) -> EventSubscription {
        EventSubscription(log: self, position: position)
    }
}

/// The `AsyncSequence` of ``EventLog/subscribe(from:)``.
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = StoredEvent

    let log: EventLog
    let position: UInt64

    public func makeAsyncIterator() -> Iterator {
        Iterator(log: log, next: position)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let log: EventLog
        var core: LogCore { log.core }
        var next: UInt64
        var buffer: [StoredEvent] = []
        var bufferIndex = 0
        /// Events read at a time while catching up.
        static let batchSize = 512

        public mutating func next() async throws -> StoredEvent? {
            while true {
                if bufferIndex < buffer.count {
                    defer { bufferIndex += 1 }
                    return buffer[bufferIndex]
                }
                try Task.checkCancellation()
                if core.shared.withLock({ $0.isClosed }) { return nil }
                do {
                    try log.prepareToRead()
                    if log.options.readOnly { try log.throwDamageFoundSinceOpen() }
                } catch StoreError.closed {
                    return nil  // closed since the check above
                }
                buffer = try core.eventsInLog(from: next, maxCount: Self.batchSize)
                bufferIndex = 0
                if let last = buffer.last {
                    next = last.position + 1
                    continue
                }
                try await log.waitForEvents(after: next)
            }
        }
    }
}
