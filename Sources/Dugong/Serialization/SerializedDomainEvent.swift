import Foundation

/// A domain event in the form that crosses the ports: the payload as JSON bytes plus the
/// envelope and the event type's identity. Event stores store and return exactly this.
public struct SerializedDomainEvent: Sendable, Hashable, Codable {
    /// The service that owns the aggregate.
    public var origin: String
    /// The aggregate's type name.
    public var aggregateType: String
    /// The event's type name.
    public var eventType: String
    /// The event's payload schema version.
    public var version: Int
    /// Unique id of the event.
    public var id: UUID
    /// The aggregate's id.
    public var aggregateID: String
    /// The payload's JSON encoding; `nil` for an event without payload.
    public var payload: Data?
    /// The event's position in its aggregate, from 1.
    public var sequenceNumber: Int
    /// When the event happened, to the millisecond.
    public var timestamp: Date
    public var tenantID: String?
    public var correlationID: String?
    public var triggeredByEventID: UUID?
    public var triggeredByUserID: String?
    public var metadata: JSONObject?

    public init(
        origin: String, aggregateType: String, eventType: String, version: Int, id: UUID,
        aggregateID: String, payload: Data?, sequenceNumber: Int, timestamp: Date,
        tenantID: String? = nil, correlationID: String? = nil, triggeredByEventID: UUID? = nil,
        triggeredByUserID: String? = nil, metadata: JSONObject? = nil
    ) {
        self.origin = origin
        self.aggregateType = aggregateType
        self.eventType = eventType
        self.version = version
        self.id = id
        self.aggregateID = aggregateID
        self.payload = payload
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.tenantID = tenantID
        self.correlationID = correlationID
        self.triggeredByEventID = triggeredByEventID
        self.triggeredByUserID = triggeredByUserID
        self.metadata = metadata
    }

    /// The identity of the event's type.
    public var typeID: EventTypeID {
        EventTypeID(origin: origin, aggregateType: aggregateType, eventType: eventType, version: version)
    }

    /// The stream the event belongs to.
    public var stream: StreamID {
        StreamID(origin: origin, aggregateType: aggregateType, aggregateID: aggregateID, tenantID: tenantID)
    }
}

extension EventEnvelope {
    /// An event's payload: `nil` for an event without one (no stored properties: `{}`).
    private static func payload(of event: any DomainEvent) throws -> Data? {
        let data = try PayloadCoding.encode(event)
        return data == Data("{}".utf8) ? nil : data
    }

    /// The envelope in its serialized form, as an event of aggregate type `State`.
    public func serialized<State: Aggregate>(for _: State.Type) throws -> SerializedDomainEvent {
        let kind = type(of: event)
        return SerializedDomainEvent(
            origin: State.origin, aggregateType: State.aggregateType, eventType: kind.eventType,
            version: kind.schemaVersion, id: id, aggregateID: aggregateID,
            payload: try Self.payload(of: event), sequenceNumber: sequenceNumber,
            timestamp: timestamp, tenantID: tenantID, correlationID: correlationID,
            triggeredByEventID: triggeredByEventID, triggeredByUserID: triggeredByUserID,
            metadata: metadata)
    }
}
