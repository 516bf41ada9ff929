import Dugong
import Foundation

extension RecordedEvent {
    /// The event as the embedded store holds it (``EventLogStore/storedForm(of:)``), at its
    /// cursor's position: how another store's events (PostgreSQL's) are shown and exported in
    /// the embedded store's layout.
    public func storedEvent() throws -> StoredEvent {
        let stream = StreamID(origin: event.origin, aggregateType: event.aggregateType, aggregateID: event.aggregateID, tenantID: event.tenantID)
        let form = try EventLogStore.storedForm(of: event)
        return StoredEvent(
            stream: AggregateStreamName.name(of: stream), version: event.sequenceNumber, position: cursor.position, id: event.id,
            type: event.eventType, timestampMilliseconds: event.timestamp.millisecondsSince1970, data: form.data, metadata: form.metadata)
    }
}
