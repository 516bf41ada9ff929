import Foundation

/// Who and what a call acts for: the tenant every load, commit and query goes through, and the
/// fields stamped on every event it commits.
///
/// ```swift
/// let context = EventContext(tenantID: "acme", correlationID: request.id, triggeredByUserID: user.id)
/// let accounts = repository.in(context)
/// ```
public struct EventContext: Sendable, Hashable {
    /// The tenant; `nil` is "no tenant", which sees only untenanted aggregates.
    public var tenantID: String?
    public var correlationID: String?
    public var triggeredByEventID: UUID?
    public var triggeredByUserID: String?
    /// Metadata merged into every committed event's metadata (the event's own keys win).
    public var metadata: JSONObject?

    public init(
        tenantID: String? = nil, correlationID: String? = nil, triggeredByEventID: UUID? = nil,
        triggeredByUserID: String? = nil, metadata: JSONObject? = nil
    ) {
        self.tenantID = tenantID
        self.correlationID = correlationID
        self.triggeredByEventID = triggeredByEventID
        self.triggeredByUserID = triggeredByUserID
        self.metadata = metadata
    }
}

extension AggregateRoot {
    /// Stamps `context` on every staged event: tenant, correlation and causation ids (where the
    /// event has none of its own) and metadata (merged; the event's own keys win).
    public mutating func stamp(_ context: EventContext) {
        stagedEvents = stagedEvents.map { envelope in
            var envelope = envelope
            envelope.tenantID = context.tenantID
            envelope.correlationID = envelope.correlationID ?? context.correlationID
            envelope.triggeredByEventID = envelope.triggeredByEventID ?? context.triggeredByEventID
            envelope.triggeredByUserID = envelope.triggeredByUserID ?? context.triggeredByUserID
            if let shared = context.metadata {
                envelope.metadata = shared.merging(envelope.metadata ?? [:]) { _, own in own }
            }
            return envelope
        }
    }
}
