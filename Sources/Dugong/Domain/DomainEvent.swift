import Foundation

/// The payload of a domain event: a fact about an aggregate, named in the past tense.
///
/// A domain event type is identified by the origin and aggregate type of the aggregate it
/// belongs to (see ``Aggregate``) plus its own ``eventType`` and ``schemaVersion``. Its stored
/// form is its `Codable` encoding as JSON. An event that carries nothing is an empty struct.
///
/// ```swift
/// struct MoneyDeposited: DomainEvent {
///     static let eventType = "MoneyDeposited"
///     var amount: Int
/// }
/// ```
///
/// When the shape of an event changes, give the new shape a higher ``schemaVersion`` and
/// register an upcaster from the old version (see ``EventRegistry/addUpcaster(eventType:from:_:)``).
public protocol DomainEvent: Codable, Sendable {
    /// The event's type name, stable for the life of the store (e.g. `"MoneyDeposited"`).
    static var eventType: String { get }
    /// The version of this event's payload schema. Starts at 1.
    static var schemaVersion: Int { get }

    // Lifecycle hooks, all optional (DugongJS declares onCommit and onApply but never calls
    // them; these are all called).

    /// Called when a command returned this event, before anything of the command is staged:
    /// the place to validate a payload (a throw fails the command, nothing is staged).
    /// Not called for events read back from a store, so that old events always load.
    func created() throws
    /// Called after the event was numbered, stamped and staged on its aggregate.
    func staged(as envelope: EventEnvelope)
    /// Called after the event's applier ran (staging and loading both apply).
    func applied(as envelope: EventEnvelope)
    /// Called after the store accepted the event (once per commit).
    func committed(as envelope: EventEnvelope)
}

extension DomainEvent {
    public static var schemaVersion: Int { 1 }

    public func created() throws {}
    public func staged(as envelope: EventEnvelope) {}
    public func applied(as envelope: EventEnvelope) {}
    public func committed(as envelope: EventEnvelope) {}
}

/// The full identity of a domain event type: who owns it, on which aggregate, which type and
/// which schema version. The event registry is keyed by it.
public struct EventTypeID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var origin: String
    public var aggregateType: String
    public var eventType: String
    public var version: Int

    /// Ordered by origin, aggregate type, event type, then version.
    public static func < (a: Self, b: Self) -> Bool {
        (a.origin, a.aggregateType, a.eventType, a.version) < (b.origin, b.aggregateType, b.eventType, b.version)
    }

    public init(origin: String, aggregateType: String, eventType: String, version: Int) {
        self.origin = origin
        self.aggregateType = aggregateType
        self.eventType = eventType
        self.version = version
    }

    public var description: String {
        "\(origin)/\(aggregateType)/\(eventType) v\(version)"
    }
}
