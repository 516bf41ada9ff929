/// An event with its place in the global log.
public struct RecordedEvent: Sendable, Hashable {
    /// Where the event stands: increases with every committed event, store-wide.
    public var cursor: LogCursor
    public var event: SerializedDomainEvent

    /// The event's global position (a server store's positions may have gaps, and are in commit
    /// order only together with the transaction: ``cursor``).
    public var position: UInt64 { cursor.position }

    /// Where a reader that has handled this event reads on from (``GlobalEventLog/events(from:maxCount:)``).
    public var next: LogCursor { cursor.successor }

    public init(cursor: LogCursor, event: SerializedDomainEvent) {
        self.cursor = cursor
        self.event = event
    }
}

/// The store's events in one global order: what projections and the store-as-a-source
/// consumers read (DugongJS has no global order; this port fixes that).
///
/// Contract (`DugongTesting.GlobalEventLogContract`): ``events(from:maxCount:)`` returns
/// readable aggregate events whose cursor is ≥ `cursor`, in ascending cursor order, at most
/// `maxCount`; an event's cursor never changes, and an event that becomes readable later has a
/// cursor above every event readable before it, so a reader that goes on from the last event's
/// ``RecordedEvent/next`` never skips one. A committed event is readable once ``endCursor()`` is
/// past its cursor: at once in an embedded store; in a server store once every transaction
/// older than the event's has ended. Cursors may have gaps (streams that are not aggregates',
/// compaction, rolled-back transactions). The framework's own streams are aggregate streams of
/// origin ``Checkpoint/origin`` (`$dugong`: checkpoints, consumed marks, parked messages) and are
/// returned too; the framework's readers (projections, consumers, the message relay) skip them
/// by that origin, and so should a reader of your own. ``waitForEvents(from:)`` returns once an
/// event with a cursor ≥ `cursor` may be readable, or the store closes.
public protocol GlobalEventLog: Sendable {
    /// Committed aggregate events with cursors ≥ `cursor`, ascending, at most `maxCount` (the
    /// framework's own, of origin ``Checkpoint/origin``, among them).
    func events(from cursor: LogCursor, maxCount: Int) async throws -> [RecordedEvent]
    /// A cursor after every event readable now: ``events(from:maxCount:)`` from it returns only
    /// events that become readable later.
    func endCursor() async throws -> LogCursor
    /// Returns once an event with a cursor ≥ `cursor` may be readable (or the store closes).
    func waitForEvents(from cursor: LogCursor) async throws
    /// A cursor at or after every event committed so far, readable or not: once
    /// ``endCursor()`` reaches it, everything committed before this call is readable. The end
    /// cursor itself (by default) where commits are readable at once.
    func committedEnd() async throws -> LogCursor
}

extension GlobalEventLog {
    public func committedEnd() async throws -> LogCursor { try await endCursor() }

    /// Returns once every event committed before the call is readable (on a server store, once
    /// the transactions open at the call have ended); it looks every `interval`.
    public func waitForCommittedEvents(interval: Duration = .milliseconds(5)) async throws {
        let end = try await committedEnd()
        while try await endCursor() < end {
            try await Task.sleep(for: interval)
        }
    }
}
