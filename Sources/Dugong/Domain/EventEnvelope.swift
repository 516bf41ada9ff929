import Foundation

/// A domain event together with everything the framework records about it.
///
/// The envelope carries the fields DugongJS carries on every event: the event's own id, the
/// aggregate it belongs to, its sequence number in that aggregate, when it happened, and the
/// optional tenant, correlation, causation and metadata fields.
public struct EventEnvelope: Sendable {
    /// The event payload.
    public var event: any DomainEvent
    /// Unique id of this event.
    public var id: UUID
    /// The id of the aggregate the event belongs to.
    public var aggregateID: String
    /// Position of the event in its aggregate: 1 for the first event, contiguous after that.
    public var sequenceNumber: Int
    /// When the event was created, to the millisecond.
    public var timestamp: Date
    /// The tenant the aggregate belongs to, if the application is multi-tenant.
    public var tenantID: String?
    /// Correlates the events caused by one request or process.
    public var correlationID: String?
    /// The event that caused this one, if any.
    public var triggeredByEventID: UUID?
    /// The user whose action caused this event, if any.
    public var triggeredByUserID: String?
    /// Free-form metadata (a JSON object).
    public var metadata: JSONObject?

    public init(
        event: any DomainEvent,
        id: UUID = EventID.random(),
        aggregateID: String,
        sequenceNumber: Int,
        timestamp: Date = .currentMillisecond,
        tenantID: String? = nil,
        correlationID: String? = nil,
        triggeredByEventID: UUID? = nil,
        triggeredByUserID: String? = nil,
        metadata: JSONObject? = nil
    ) {
        self.event = event
        self.id = id
        self.aggregateID = aggregateID
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.tenantID = tenantID
        self.correlationID = correlationID
        self.triggeredByEventID = triggeredByEventID
        self.triggeredByUserID = triggeredByUserID
        self.metadata = metadata
    }

    /// The event's type name.
    public var eventType: String { type(of: event).eventType }
    /// The event's schema version.
    public var schemaVersion: Int { type(of: event).schemaVersion }
}

extension Date {
    /// Now, rounded to whole milliseconds: the precision every Dugong store keeps, so that a
    /// timestamp reads back exactly as it was written.
    public static var currentMillisecond: Date {
        Date(millisecondsSince1970: Date().millisecondsSince1970)
    }

    /// Milliseconds since 1970-01-01 UTC, rounded to the nearest whole millisecond (so that
    /// `Date(millisecondsSince1970: n).millisecondsSince1970 == n` despite binary fractions).
    public var millisecondsSince1970: Int64 {
        Int64((timeIntervalSince1970 * 1000).rounded())
    }

    /// How far from 1970 a date's milliseconds fit the signed 64-bit integer every Dugong store
    /// keeps them in: ±9.2 × 10^15 s, about ±290 million years.
    public static let storableSecondsSince1970 = 9.2e15

    /// Whether a store can keep this date: within ``storableSecondsSince1970`` of 1970 (NaN and
    /// the infinities are not). Appends of other dates are refused
    /// (``millisecondsSince1970`` traps on them).
    public var isStorable: Bool { timeIntervalSince1970.magnitude < Self.storableSecondsSince1970 }

    /// The date `milliseconds` after 1970-01-01 UTC.
    public init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
