import Foundation

/// Turns serialized events back into typed events, by (origin, aggregate type, event type,
/// schema version), upcasting old versions on the way.
///
/// ```swift
/// var registry = try EventRegistry(BankAccount.self)
/// registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 1) { payload in
///     var payload = payload
///     payload["currency"] = "EUR"          // version 1 had no currency
///     return payload
/// }
/// let envelope = try registry.decode(serializedEvent)
/// ```
///
/// Unlike DugongJS, an event whose type is not registered is an error
/// (``EventDecodingError/unknownEventType(_:at:)``), not silently dropped: skipping
/// unknown events is an explicit choice (``unknownEvents``).
public struct EventRegistry: Sendable {
    /// What ``decode(_:)`` does with an event whose type is not registered.
    public enum UnknownEventPolicy: Sendable {
        /// Throw ``EventDecodingError/unknownEventType(_:at:)`` (the default).
        case fail
        /// Return `nil`; loading then advances the aggregate's sequence number without applying.
        case skip
    }

    typealias Decoder = @Sendable (Data?) throws -> any DomainEvent
    typealias Upcaster = @Sendable (JSONObject) throws -> JSONObject

    /// What happens to events of unregistered types. Defaults to ``UnknownEventPolicy/fail``.
    public var unknownEvents: UnknownEventPolicy = .fail
    private var decoders: [EventTypeID: (type: any DomainEvent.Type, decode: Decoder)] = [:]
    private var upcasters: [EventTypeID: Upcaster] = [:]

    /// An empty registry.
    public init() {}

    /// A registry holding every event type of the given aggregates.
    ///
    /// - Throws: ``EventRegistryError/conflictingType(_:registered:new:)`` when two Swift types
    ///   claim one event type and version.
    public init(_ aggregates: any Aggregate.Type...) throws(EventRegistryError) {
        for aggregate in aggregates { try register(aggregate) }
    }

    /// Registers every type in `aggregate.eventTypes`.
    ///
    /// - Throws: ``EventRegistryError/conflictingType(_:registered:new:)``.
    public mutating func register(_ aggregate: any Aggregate.Type) throws(EventRegistryError) {
        for event in aggregate.eventTypes {
            try register(event, origin: aggregate.origin, aggregateType: aggregate.aggregateType)
        }
    }

    /// Registers one event type under an aggregate's origin and type. Registering the same
    /// Swift type again does nothing.
    ///
    /// - Throws: ``EventRegistryError/conflictingType(_:registered:new:)`` when another Swift
    ///   type holds this origin, aggregate type, event type and version (stored events would
    ///   decode as whichever came last).
    public mutating func register(_ event: any DomainEvent.Type, origin: String, aggregateType: String) throws(EventRegistryError) {
        let id = EventTypeID(
            origin: origin, aggregateType: aggregateType, eventType: event.eventType,
            version: event.schemaVersion)
        if let registered = decoders[id]?.type {
            guard registered == event else {
                throw .conflictingType(id, registered: String(reflecting: registered), new: String(reflecting: event))
            }
            return
        }
        decoders[id] = (event, Self.decoder(for: event))
    }

    /// The event types and versions registered, ordered by origin, aggregate type, event type
    /// and version.
    public var registeredTypes: [EventTypeID] { decoders.keys.sorted() }

    /// The Swift type registered for `id`, if any.
    public func registeredType(for id: EventTypeID) -> (any DomainEvent.Type)? { decoders[id]?.type }

    /// The event types and versions an upcaster takes to the next version, ordered as
    /// ``registeredTypes``.
    public var upcastedTypes: [EventTypeID] { upcasters.keys.sorted() }

    private static func decoder<E: DomainEvent>(for type: E.Type) -> Decoder {
        { payload in try PayloadCoding.decode(E.self, from: payload) }
    }

    /// Whether events of this type and version can be decoded (directly, not by upcasting).
    public func isRegistered(_ id: EventTypeID) -> Bool { decoders[id] != nil }

    /// Adds an upcaster that turns the JSON payload of version `version` of an event into the
    /// payload of version `version + 1`. Upcasters chain: v1 → v2 → v3.
    ///
    /// - Throws: ``EventRegistryError/invalidUpcaster(_:reason:)`` for a version below 1;
    ///   ``EventRegistryError/duplicateUpcaster(_:)`` when that version already has one (the
    ///   second would silently replace the first).
    public mutating func addUpcaster(
        eventType: String, of aggregate: any Aggregate.Type, from version: Int,
        _ transform: @escaping @Sendable (JSONObject) throws -> JSONObject
    ) throws(EventRegistryError) {
        let id = EventTypeID(
            origin: aggregate.origin, aggregateType: aggregate.aggregateType, eventType: eventType,
            version: version)
        guard version >= 1 else { throw .invalidUpcaster(id, reason: "schema versions start at 1") }
        guard upcasters[id] == nil else { throw .duplicateUpcaster(id) }
        upcasters[id] = transform
    }

    /// Adds a typed upcaster from one version of an event to the next. `Old` need not be
    /// registered.
    ///
    /// - Throws: ``EventRegistryError/invalidUpcaster(_:reason:)`` unless `New` is version
    ///   `Old.schemaVersion + 1` of the same event type; ``EventRegistryError/duplicateUpcaster(_:)``
    ///   when `Old`'s version already has one.
    public mutating func addUpcaster<Old: DomainEvent, New: DomainEvent>(
        from _: Old.Type, to _: New.Type, of aggregate: any Aggregate.Type,
        _ transform: @escaping @Sendable (Old) throws -> New
    ) throws(EventRegistryError) {
        guard New.schemaVersion == Old.schemaVersion + 1 && New.eventType == Old.eventType else {
            throw .invalidUpcaster(
                EventTypeID(origin: aggregate.origin, aggregateType: aggregate.aggregateType, eventType: Old.eventType, version: Old.schemaVersion),
                reason: "it goes to \(New.eventType) version \(New.schemaVersion): an upcaster goes from version n to n + 1 of the same event type")
        }
        try addUpcaster(eventType: Old.eventType, of: aggregate, from: Old.schemaVersion) { payload in
            let old = try PayloadCoding.decode(Old.self, from: try JSONValue.object(payload).jsonData())
            let new = try transform(old)
            guard case .object(let upcasted) = try JSONValue(json: PayloadCoding.encode(new)) else {
                throw EventDecodingError.payloadNotAnObject(EventTypeID(
                    origin: aggregate.origin, aggregateType: aggregate.aggregateType,
                    eventType: New.eventType, version: New.schemaVersion), at: nil)
            }
            return upcasted
        }
    }

    /// Decodes a serialized event into a typed envelope, upcasting it to the newest version
    /// that has upcasters.
    ///
    /// - Returns: the envelope, or `nil` when the type is unknown and ``unknownEvents`` is
    ///   ``UnknownEventPolicy/skip``.
    /// - Throws: ``EventDecodingError``.
    public func decode(_ serialized: SerializedDomainEvent) throws -> EventEnvelope? {
        var typeID = serialized.typeID
        var payload = serialized.payload
        while let upcaster = upcasters[typeID] {
            let object: JSONObject
            switch try payload.map(JSONValue.init(json:)) ?? .object([:]) {
            case .object(let value): object = value
            default: throw EventDecodingError.payloadNotAnObject(typeID, at: serialized.location)
            }
            do {
                payload = try JSONValue.object(try upcaster(object)).jsonData()
            } catch {
                throw EventDecodingError.upcastFailed(typeID, at: serialized.location, reason: "\(error)")
            }
            typeID.version += 1
        }
        guard let decoder = decoders[typeID]?.decode else {
            if unknownEvents == .skip { return nil }
            throw EventDecodingError.unknownEventType(typeID, at: serialized.location)
        }
        let event: any DomainEvent
        do {
            event = try decoder(payload)
        } catch {
            throw EventDecodingError.undecodablePayload(typeID, at: serialized.location, reason: "\(error)")
        }
        return EventEnvelope(
            event: event, id: serialized.id, aggregateID: serialized.aggregateID,
            sequenceNumber: serialized.sequenceNumber, timestamp: serialized.timestamp,
            tenantID: serialized.tenantID, correlationID: serialized.correlationID,
            triggeredByEventID: serialized.triggeredByEventID,
            triggeredByUserID: serialized.triggeredByUserID, metadata: serialized.metadata)
    }
}

/// Why a registration was refused.
public enum EventRegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another Swift type is registered for this event type and version.
    case conflictingType(EventTypeID, registered: String, new: String)
    /// This event type and version already has an upcaster.
    case duplicateUpcaster(EventTypeID)
    /// An upcaster that cannot be: from a version below 1, or not to the next version of the
    /// same event type.
    case invalidUpcaster(EventTypeID, reason: String)

    public var description: String {
        switch self {
        case .conflictingType(let id, let registered, let new):
            "\(id) is registered as \(registered); \(new) cannot be registered for it too (give it another event type or version)"
        case .duplicateUpcaster(let id):
            "\(id) already has an upcaster: one event version has one upcaster, to the next version"
        case .invalidUpcaster(let id, let reason):
            "the upcaster from \(id) cannot be added: \(reason)"
        }
    }
}

/// Where a stored event stands, as an error about it names it: its id, its stream (aggregate,
/// tenant) and its sequence number.
public struct EventLocation: Sendable, Hashable, CustomStringConvertible {
    public var eventID: UUID
    public var stream: StreamID
    public var sequenceNumber: Int

    public init(eventID: UUID, stream: StreamID, sequenceNumber: Int) {
        self.eventID = eventID
        self.stream = stream
        self.sequenceNumber = sequenceNumber
    }

    /// `event <id> (<stream> #<sequence number>)`.
    public var description: String { "event \(eventID) (\(stream) #\(sequenceNumber))" }
}

extension SerializedDomainEvent {
    /// Where this event stands.
    public var location: EventLocation { EventLocation(eventID: id, stream: stream, sequenceNumber: sequenceNumber) }
}

/// Why a serialized event could not be turned into a typed event. Each case names the event
/// (its id, stream and sequence number: ``EventLocation``).
public enum EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No event type is registered for this origin, aggregate type, event type and version.
    case unknownEventType(EventTypeID, at: EventLocation)
    /// The payload did not decode as the registered type.
    case undecodablePayload(EventTypeID, at: EventLocation, reason: String)
    /// An upcaster threw.
    case upcastFailed(EventTypeID, at: EventLocation, reason: String)
    /// An upcaster's input payload is not a JSON object (or a typed upcaster's output, where the
    /// event is not known: that one is told as ``upcastFailed(_:at:reason:)``).
    case payloadNotAnObject(EventTypeID, at: EventLocation?)

    public var description: String {
        switch self {
        case .unknownEventType(let type, let location):
            "unknown event type \(type) (\(location)): register it, add an upcaster, or choose to skip unknown events"
        case .undecodablePayload(let type, let location, let reason):
            "\(location) of type \(type) has a payload that does not decode: \(reason)"
        case .upcastFailed(let type, let location, let reason):
            "upcasting \(location) from \(type) failed: \(reason)"
        case .payloadNotAnObject(let type, let location):
            "the payload of \(type)\(location.map { " (\($0))" } ?? "") is not a JSON object, so it cannot be upcast"
        }
    }
}

extension AggregateRoot {
    /// Applies stored events in order, decoded with `registry`; events it is told to skip
    /// advance the sequence number without being applied.
    public mutating func apply(_ events: [SerializedDomainEvent], decodingWith registry: EventRegistry) throws {
        for serialized in events {
            if let envelope = try registry.decode(serialized) {
                try apply(envelope)
            } else {
                try skip(sequenceNumber: serialized.sequenceNumber, aggregateID: serialized.aggregateID)
            }
        }
    }
}
