/// An event with its global position: where it stands among all events of the store.
public struct RecordedEvent: Sendable, Hashable {
    /// Increases with every committed event, store-wide.
    public var position: UInt64
    public var event: SerializedDomainEvent

    public init(position: UInt64, event: SerializedDomainEvent) {
        self.position = position
        self.event = event
    }
}

/// The store's events in one global order: what projections and the store-as-a-source
/// consumers read (DugongJS has no global order; this port fixes that).
///
/// Contract: ``events(from:maxCount:)`` returns committed aggregate events with position ≥
/// `from`, ascending, at most `maxCount`; positions never change and new events get higher
/// ones. Positions may have gaps (framework-internal streams, compaction). ``waitForEvents(after:)``
/// returns once an event at or after the position may be readable, or the store closes.
public protocol GlobalEventLog: Sendable {
    func events(from position: UInt64, maxCount: Int) async throws -> [RecordedEvent]
    /// The position the next committed event will get.
    func headPosition() async throws -> UInt64
    func waitForEvents(after position: UInt64) async throws
}
