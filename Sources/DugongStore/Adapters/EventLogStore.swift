import Dugong
import Foundation

/// The framework's ``Dugong/EventStore`` port on an ``EventLog``.
///
/// Each aggregate is one engine stream named by ``AggregateStreamName``; sequence numbers are
/// stream versions. An event is stored with its event type as the engine type, its payload
/// JSON as the data (empty for no payload) and the rest of the envelope as a JSON object in the
/// metadata: `schemaVersion`, and when present `correlationId`, `triggeredByEventId`,
/// `triggeredByUserId` and `metadata`.
public struct EventLogStore: EventStore {
    public let log: EventLog

    public init(log: EventLog) {
        self.log = log
    }

    @discardableResult
    public func append(
        _ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion
    ) async throws -> AppendResult {
        let request = try AppendRequest(events: events, stream: stream, expected: expected)
        let name = AggregateStreamName.name(of: stream)
        let first = events[0].sequenceNumber
        let encoded = try events.map(Self.encode)
        // The engine checks `.exact(first - 1)` atomically; that is the caller's expectation
        // whenever the caller's expectation holds at that version. Otherwise, and after a
        // refusal, the contract's rules decide against the current state.
        for _ in 0..<8 {
            if expected.isSatisfied(byVersion: first - 1) {
                do {
                    let commit = try await log.append(encoded, to: name, expecting: .exact(first - 1))
                    let version = commit.wasDuplicate ? try currentVersion(name) : commit.lastVersion
                    return AppendResult(version: version, wasDuplicate: commit.wasDuplicate)
                } catch StoreError.partialDuplicate(_, let stored, let appended) {
                    throw EventStoreError.partialDuplicate(stream: stream, storedCount: stored, appendedCount: appended)
                } catch StoreError.wrongExpectedVersion {
                    // Decided below against the current state.
                }
            }
            let current = try currentVersion(name)
            let decision = try request.decide(currentVersion: current) { version in
                try log.read(stream: name, from: version, maxCount: 1).first?.id
            }
            if decision == .duplicate { return AppendResult(version: current, wasDuplicate: true) }
            // The stream moved between the engine's refusal and this check: try again.
        }
        throw EventStoreError.conflict(stream: stream, expected: expected, actual: try currentVersion(name))
    }

    private func currentVersion(_ name: String) throws -> Int {
        try log.info(stream: name)?.version ?? 0
    }

    public func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        let name = AggregateStreamName.name(of: stream)
        return try log.read(stream: name, from: max(sequenceNumber, 1)).map { try Self.decode($0, of: stream) }
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        let category = AggregateStreamName.category(origin: origin, aggregateType: aggregateType, tenantID: tenantID)
        return try log.streams(inCategory: category).compactMap { AggregateStreamName.streamID(of: $0)?.aggregateID }
    }

    // MARK: Envelope encoding

    static func encode(_ event: SerializedDomainEvent) throws -> NewEvent {
        var envelope: JSONObject = ["schemaVersion": .int(event.version)]
        if let value = event.correlationID { envelope["correlationId"] = .string(value) }
        if let value = event.triggeredByEventID { envelope["triggeredByEventId"] = .string(value.uuidString) }
        if let value = event.triggeredByUserID { envelope["triggeredByUserId"] = .string(value) }
        if let value = event.metadata { envelope["metadata"] = .object(value) }
        return NewEvent(
            id: event.id, type: event.eventType, timestamp: event.timestamp, data: event.payload ?? Data(),
            metadata: try JSONValue.object(envelope).jsonData())
    }

    static func decode(_ event: StoredEvent, of stream: StreamID) throws -> SerializedDomainEvent {
        guard case .object(let envelope) = try JSONValue(json: event.metadata),
            case .int(let version) = envelope["schemaVersion"]
        else {
            throw StoreError.invalidArgument(
                "event \(event.id) at position \(event.position) has no Dugong envelope in its metadata")
        }
        func string(_ key: String) -> String? {
            if case .string(let value) = envelope[key] { return value }
            return nil
        }
        var metadata: JSONObject?
        if case .object(let value) = envelope["metadata"] { metadata = value }
        return SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: event.type, version: version,
            id: event.id, aggregateID: stream.aggregateID, payload: event.data.isEmpty ? nil : event.data,
            sequenceNumber: event.version, timestamp: event.timestamp, tenantID: stream.tenantID,
            correlationID: string("correlationId"), triggeredByEventID: string("triggeredByEventId").flatMap(UUID.init),
            triggeredByUserID: string("triggeredByUserId"), metadata: metadata)
    }
}

/// The framework's ``Dugong/SnapshotStore`` port on an ``EventLog``: the engine keeps the
/// latest snapshot per stream; the snapshot's schema version travels in its metadata
/// (`{"schemaVersion": n}`).
public struct EventLogSnapshotStore: SnapshotStore {
    public let log: EventLog

    public init(log: EventLog) {
        self.log = log
    }

    public func save(_ snapshot: SerializedSnapshot) async throws {
        let metadata = try JSONValue.object(["schemaVersion": .int(snapshot.schemaVersion)]).jsonData()
        try await log.saveSnapshot(StoredSnapshot(
            stream: AggregateStreamName.name(of: snapshot.stream), version: snapshot.sequenceNumber,
            data: snapshot.data, metadata: metadata))
    }

    public func latest(for stream: StreamID) async throws -> SerializedSnapshot? {
        guard let stored = try log.latestSnapshot(of: AggregateStreamName.name(of: stream)) else { return nil }
        guard case .object(let metadata) = try JSONValue(json: stored.metadata),
            case .int(let schemaVersion) = metadata["schemaVersion"]
        else { throw StoreError.invalidArgument("snapshot of \(stream) has no schema version in its metadata") }
        return SerializedSnapshot(stream: stream, sequenceNumber: stored.version, schemaVersion: schemaVersion, data: stored.data)
    }
}
