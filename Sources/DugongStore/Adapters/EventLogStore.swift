import Dugong
import Foundation

/// The framework's ``Dugong/EventStore`` and ``Dugong/TransactionalEventStore`` ports on an
/// ``EventLog``: an append to several aggregates is one engine commit, hence one frame.
///
/// Each aggregate is one engine stream named by ``AggregateStreamName``; sequence numbers are
/// stream versions. An event is stored with its event type as the engine type, its payload
/// JSON as the data (empty for no payload) and the rest of the envelope as a JSON object in the
/// metadata: `schemaVersion`, and when present `correlationId`, `triggeredByEventId`,
/// `triggeredByUserId` and `metadata`.
public struct EventLogStore: TransactionalEventStore, GlobalEventLog {
    public let log: EventLog

    public init(log: EventLog) {
        self.log = log
    }

    /// Appends to several aggregates' streams in one engine commit (one frame): all or none.
    @discardableResult
    public func append(_ appends: [StreamAppend]) async throws -> [AppendResult] {
        guard !appends.isEmpty else { return [] }
        let requests = try appends.map { try AppendRequest(events: $0.events, stream: $0.stream, expected: $0.expected) }
        let names = appends.map { AggregateStreamName.name(of: $0.stream) }
        let encoded = try appends.map { try $0.events.map(Self.encode) }
        // The engine checks `.exact(first - 1)` atomically; that is the caller's expectation
        // whenever the caller's expectation holds at that version. Otherwise, and after a
        // refusal, the contract's rules decide against the current state.
        // Streams by their names' bytes, as the engine tells them apart.
        let keys = names.map { Array($0.utf8) }
        for _ in 0..<8 {
            var results = [AppendResult?](repeating: nil, count: appends.count)
            var engineAppends: [EventLog.Append] = []
            var engineIndex: [Int] = []
            // What the appends sent to the engine so far leave each stream at, and their events'
            // ids: an append that repeats them (an aggregate staged twice) is a retry.
            var unitVersion: [[UInt8]: Int] = [:]
            var unitIDs: [[UInt8]: [Int: UUID]] = [:]
            for (index, request) in requests.enumerated() {
                let first = request.events[0].sequenceNumber
                if request.expected.isSatisfied(byVersion: first - 1) {
                    engineAppends.append(EventLog.Append(stream: names[index], events: encoded[index], expected: .exact(first - 1)))
                    engineIndex.append(index)
                    unitVersion[keys[index]] = max(unitVersion[keys[index]] ?? 0, request.lastSequenceNumber)
                    for event in request.events { unitIDs[keys[index], default: [:]][event.sequenceNumber] = event.id }
                } else {
                    // Only an idempotent retry can succeed: decide now, against the stream as the
                    // appends before it leave it (throws otherwise). Those that go to the engine
                    // write or repeat stored events: the stream is then at the higher of its
                    // version and their last sequence number (a retry of stored events taken as
                    // the stream's end made a later retry report that as the version).
                    let current = try max(unitVersion[keys[index]] ?? 0, currentVersion(names[index]))
                    do {
                        _ = try request.decide(currentVersion: current) { version in
                            try unitIDs[keys[index]]?[version] ?? storedID(names[index], version)
                        }
                    } catch {
                        // The unit's error is its first refused append's: one before this one,
                        // which the engine has not decided yet, may be refused too.
                        try refuseInOrder(requests, names: names, keys: keys, through: index)
                        throw error
                    }
                    results[index] = AppendResult(version: current, wasDuplicate: true)
                }
            }
            let commits: [Commit]
            do {
                commits = engineAppends.isEmpty ? [] : try await log.append(engineAppends)
            } catch {
                // (One `catch` and a `switch`: `catch` clauses with patterns of this typed error
                // crash Swift 6.3.1's SIL ownership verifier.)
                switch error {
                case .partialDuplicate, .wrongExpectedVersion:
                    // The engine names one stream; the unit's error is its first refused append's
                    // (the engine's stream may take two appends, and an earlier one may be refused
                    // too): decide them in order against the streams as they are now.
                    try refuseInOrder(requests, names: names, keys: keys, through: requests.count - 1)
                    // None is refused: a concurrent identical append landed first (a duplicate:
                    // the next round sees it), or a stream moved since the refusal: again.
                    continue
                case .eventTooLarge(let name, let index, let size, let maximum):
                    // The port's error, as the other adapters give it: the events are the
                    // caller's; their envelope (ids, schema version, context, metadata) counts too.
                    let stream = appends[names.firstIndex(of: name) ?? 0].stream
                    throw EventStoreError.invalidAppend(
                        stream: stream,
                        reason: "event #\(index + 1) (counted from 1) of the append is \(size) bytes with its envelope's metadata; this store takes at most \(maximum) (EventLog.Options.maximumEventSize)")
                default:
                    throw error
                }
            }
            // A retry's version is its stream's as the appends before it left it, which the
            // engine decided with it (read after the commit, it would count later appends).
            for (commit, index) in zip(commits, engineIndex) {
                results[index] = AppendResult(
                    version: commit.streamVersion, wasDuplicate: commit.wasDuplicate,
                    cursor: commit.wasDuplicate ? nil : LogCursor(position: commit.lastPosition))
            }
            return results.map { $0! }
        }
        throw EventStoreError.conflict(stream: appends[0].stream, expected: appends[0].expected, actual: try currentVersion(names[0]))
    }

    /// Decides a unit's appends up to `last` in order against the streams as they are now, each
    /// as the appends before it leave them, and throws the first one the contract refuses (by
    /// the names' bytes, as the engine tells streams apart).
    private func refuseInOrder(_ requests: [AppendRequest], names: [String], keys: [[UInt8]], through last: Int) throws {
        var versions: [[UInt8]: Int] = [:]
        var ids: [[UInt8]: [Int: UUID]] = [:]
        for index in 0...last {
            let key = keys[index]
            let current = try versions[key] ?? currentVersion(names[index])
            let decision = try requests[index].decide(currentVersion: current) { version in
                try ids[key]?[version] ?? storedID(names[index], version)
            }
            if decision == .write {
                versions[key] = requests[index].lastSequenceNumber
                for event in requests[index].events { ids[key, default: [:]][event.sequenceNumber] = event.id }
            }
        }
    }

    /// The id of the event stored at `version`; nil when none is (a read from a hidden version
    /// starts at the first visible one: its id was taken for the hidden event's).
    private func storedID(_ name: String, _ version: Int) throws -> UUID? {
        guard let event = try log.read(stream: name, from: version, maxCount: 1).first, event.version == version else { return nil }
        return event.id
    }

    private func currentVersion(_ name: String) throws -> Int {
        try log.info(stream: name)?.version ?? 0
    }

    public func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent] {
        let name = AggregateStreamName.name(of: stream)
        // Lent, not copied twice: each event's bytes go straight into its serialized form.
        var events: [SerializedDomainEvent] = []
        try log.forEachEvent(in: name, from: max(sequenceNumber, 1)) { events.append(try Self.decode($0, of: stream)) }
        return events
    }

    /// Truncates the engine stream (compaction reclaims the hidden events).
    public func truncate(_ stream: StreamID, before version: Int) async throws {
        try await log.truncate(stream: AggregateStreamName.name(of: stream), before: version)
    }

    /// The last event, read backwards: O(1) whatever the stream's length.
    public func lastEvent(of stream: StreamID) async throws -> SerializedDomainEvent? {
        var last: SerializedDomainEvent?
        try log.forEachEvent(in: AggregateStreamName.name(of: stream), maxCount: 1, direction: .backward) {
            last = try Self.decode($0, of: stream)
        }
        return last
    }

    /// The stream's version, its hidden events included (``EventLog/info(stream:)``).
    public func streamVersion(of stream: StreamID) async throws -> Int {
        try log.info(stream: AggregateStreamName.name(of: stream))?.version ?? 0
    }

    public func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String] {
        let category = AggregateStreamName.category(origin: origin, aggregateType: aggregateType, tenantID: tenantID)
        return try log.streams(inCategory: category).compactMap { AggregateStreamName.streamID(of: $0)?.aggregateID }
    }

    // MARK: The global log

    /// Aggregate events in log order; engine streams that are not aggregate streams are skipped.
    /// Cursors are the engine's positions (transaction 0).
    public func events(from cursor: LogCursor, maxCount: Int) async throws -> [RecordedEvent] {
        guard cursor.transaction == 0 else { return [] }
        var result: [RecordedEvent] = []
        var next = cursor.position
        while result.count < maxCount {
            let wanted = maxCount - result.count
            let after = try log.forEachEvent(from: next, maxCount: wanted) { event in
                guard let stream = AggregateStreamName.streamID(of: event.stream) else { return }
                result.append(RecordedEvent(cursor: LogCursor(position: event.position), event: try Self.decode(event, of: stream)))
            }
            if after == next { break }  // nothing more committed
            next = after
        }
        return result
    }

    public func endCursor() async throws -> LogCursor { LogCursor(position: log.headPosition) }

    /// The end after a read-only log's refresh: a writer in another process may have committed
    /// events this log has not seen yet.
    public func committedEnd() async throws -> LogCursor {
        _ = try log.refresh()
        return LogCursor(position: log.headPosition)
    }

    public func waitForEvents(from cursor: LogCursor) async throws {
        // A cursor of a later transaction than 0 is past every event this store will hold: it
        // waits for the store to close.
        guard cursor.transaction == 0 else { return try await log.waitForEvents(after: .max) }
        // Only an aggregate event ends the wait: for events this adapter skips (engine streams
        // that are not aggregate streams), a reader would find nothing and wait again at once.
        var next = cursor.position
        while !Task.isCancelled {
            var found = false
            let after: UInt64
            do {
                after = try log.forEachEvent(from: next, maxCount: 256) { event in
                    if !found, AggregateStreamName.streamID(of: event.stream) != nil { found = true }
                }
            } catch {
                return  // closed, or damage: the reader's next read says which
            }
            if found { return }
            if after == next {
                try await log.waitForEvents(after: next)
            } else {
                next = after
            }
        }
    }

    // MARK: Envelope encoding

    /// The engine event that holds `event` in this adapter's layout (the envelope in its
    /// metadata): what `dugong export` prints of it.
    public static func storedForm(of event: SerializedDomainEvent) throws -> NewEvent {
        try encode(event)
    }

    /// The framework's event an engine event of `stream` holds (``storedForm(of:)`` undone).
    ///
    /// - Throws: ``StoreError/invalidArgument(_:)`` when its metadata is not a Dugong envelope.
    public static func domainEvent(_ event: StoredEvent, of stream: StreamID) throws -> SerializedDomainEvent {
        try decode(
            metadata: event.metadata, id: event.id, type: event.type, version: event.version, position: event.position,
            timestamp: event.timestamp, data: event.data, of: stream)
    }

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

    static func decode(_ event: borrowing EventView, of stream: StreamID) throws -> SerializedDomainEvent {
        try decode(
            metadata: event.metadata, id: event.id, type: event.type, version: event.version, position: event.position,
            timestamp: event.timestamp, data: event.dataCount == 0 ? Data() : event.data, of: stream)
    }

    private static func decode(
        metadata bytes: Data, id: UUID, type: String, version sequenceNumber: Int, position: UInt64, timestamp: Date, data: Data,
        of stream: StreamID
    ) throws -> SerializedDomainEvent {
        guard case .object(let envelope) = try JSONValue(json: bytes),
            case .int(let version) = envelope["schemaVersion"]
        else {
            throw StoreError.invalidArgument("event \(id) at position \(position) has no Dugong envelope in its metadata")
        }
        func string(_ key: String) -> String? {
            if case .string(let value) = envelope[key] { return value }
            return nil
        }
        var metadata: JSONObject?
        if case .object(let value) = envelope["metadata"] { metadata = value }
        return SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: type, version: version,
            id: id, aggregateID: stream.aggregateID, payload: data.isEmpty ? nil : data,
            sequenceNumber: sequenceNumber, timestamp: timestamp, tenantID: stream.tenantID,
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
