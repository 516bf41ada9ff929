import Foundation

/// The state of an event-sourced aggregate, and the rules that decide its events.
///
/// An aggregate is a value type. Its state changes only in ``apply(_:)``, which folds one
/// event into it; commands are ordinary methods that look at the state, validate their input
/// and *return* the events to stage, without changing anything. ``AggregateRoot`` runs the
/// commands, numbers and stamps the events and applies them.
///
/// ```swift
/// struct Counter: Aggregate {
///     static let origin = "example"
///     static let aggregateType = "Counter"
///     static let eventTypes: [any DomainEvent.Type] = [Incremented.self]
///
///     private(set) var count = 0
///     init() {}
///
///     mutating func apply(_ event: any DomainEvent) {
///         if event is Incremented { count += 1 }
///     }
///
///     func increment() -> [any DomainEvent] { [Incremented()] }
/// }
/// ```
public protocol Aggregate: Sendable {
    /// The service that owns this kind of aggregate (DugongJS's "origin").
    static var origin: String { get }
    /// The name of this kind of aggregate, stable for the life of the store.
    static var aggregateType: String { get }
    /// Every event type this aggregate records, for the ``EventRegistry``.
    static var eventTypes: [any DomainEvent.Type] { get }

    /// The state before the first event.
    init()

    /// Folds one event into the state. The only place where state changes.
    /// Events this aggregate does not react to are ignored.
    mutating func apply(_ event: any DomainEvent)

    /// Whether the aggregate is logically deleted (its events stay in the store).
    /// Commands are refused on a deleted aggregate. Defaults to `false`.
    var isDeleted: Bool { get }
}

extension Aggregate {
    public var isDeleted: Bool { false }

    /// The registry key prefix of this aggregate's events.
    static func eventTypeID(of event: any DomainEvent.Type) -> EventTypeID {
        EventTypeID(
            origin: origin, aggregateType: aggregateType,
            eventType: event.eventType, version: event.schemaVersion)
    }
}
