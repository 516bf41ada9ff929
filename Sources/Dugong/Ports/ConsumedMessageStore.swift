import Foundation

/// The consumed-message port: which consumer has processed which event, per tenant.
///
/// Contract (checked by `DugongTesting.ConsumedMessageStoreContract`): a mark is scoped by
/// (event id, consumer, tenant); ``markConsumed(_:by:tenantID:)`` throws
/// ``ConsumedMessageError/alreadyConsumed(eventID:consumer:)`` for a mark that exists; the
/// same event may be marked by different consumers and under different tenants.
public protocol ConsumedMessageStore: Sendable {
    func isConsumed(_ eventID: UUID, by consumer: String, tenantID: String?) async throws -> Bool
    func markConsumed(_ eventID: UUID, by consumer: String, tenantID: String?) async throws
}

/// A mark that exists already.
public enum ConsumedMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    case alreadyConsumed(eventID: UUID, consumer: String)

    public var description: String {
        switch self {
        case .alreadyConsumed(let id, let consumer): "event \(id) was already consumed by \(consumer)"
        }
    }
}

/// Consumed marks kept as events of the store (origin `$dugong`, one stream per mark), so that
/// a mark commits in the same unit of work as the handler's effects. Works on any
/// ``TransactionalEventStore``: it is the in-memory adapter on ``InMemoryEventStore`` and the
/// engine's on `EventLogStore`.
public struct EventStoreConsumedMessages: ConsumedMessageStore {
    public let store: any TransactionalEventStore

    public init(store: any TransactionalEventStore) {
        self.store = store
    }

    static func stream(_ eventID: UUID, _ consumer: String, _ tenantID: String?) -> StreamID {
        StreamID(
            origin: Checkpoint.origin, aggregateType: "Consumed",
            aggregateID: consumer + "/" + eventID.uuidString.lowercased(), tenantID: tenantID)
    }

    public func isConsumed(_ eventID: UUID, by consumer: String, tenantID: String?) async throws -> Bool {
        try await !store.read(Self.stream(eventID, consumer, tenantID)).isEmpty
    }

    public func markConsumed(_ eventID: UUID, by consumer: String, tenantID: String?) async throws {
        var unit = UnitOfWork()
        Self.stage(eventID, by: consumer, tenantID: tenantID, in: &unit)
        do {
            try await unit.commit(to: store)
        } catch EventStoreError.conflict {
            throw ConsumedMessageError.alreadyConsumed(eventID: eventID, consumer: consumer)
        }
    }

    /// Stages the mark into `unit` (it fails the unit with a conflict if the mark exists).
    public static func stage(_ eventID: UUID, by consumer: String, tenantID: String?, in unit: inout UnitOfWork) {
        let stream = stream(eventID, consumer, tenantID)
        let event = SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "MessageConsumed", version: 1,
            id: EventID.random(), aggregateID: stream.aggregateID, payload: nil, sequenceNumber: 1, timestamp: .currentMillisecond,
            tenantID: tenantID)
        unit.add(StreamAppend(stream: stream, events: [event], expected: .noStream))
    }
}
