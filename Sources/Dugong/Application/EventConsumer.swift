import Foundation
import Logging

/// How a failing handler is retried before its message is parked.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included. Default 5.
    public var maximumAttempts: Int
    /// The wait before the second attempt; each later wait doubles. Default 50 ms.
    public var initialBackoff: Duration

    public init(maximumAttempts: Int = 5, initialBackoff: Duration = .milliseconds(50)) {
        self.maximumAttempts = max(maximumAttempts, 1)
        self.initialBackoff = initialBackoff
    }
}

/// A message whose handler failed every attempt, set aside where it can be listed and replayed.
public struct ParkedMessage: Sendable, Equatable {
    /// The event's global position, when it came from the store.
    public var position: UInt64?
    public var event: SerializedDomainEvent
    /// The last attempt's error.
    public var error: String
    public var attempts: Int
}

/// Handles messages (events) at most once in effect: a message already marked consumed is
/// skipped; otherwise the handler's appends, the consumed mark and any extra appends (a
/// checkpoint) commit in one unit of work. A failing handler is retried with exponential
/// backoff; after the last attempt the message is **parked** (DugongJS swallows the error; this
/// does not): stored, with the error, where ``parked()`` lists it and ``replayParked()`` runs it
/// again, and marked consumed so that the stream of messages goes on.
public actor IdempotentHandler {
    public typealias Handler = @Sendable (SerializedDomainEvent, inout UnitOfWork) async throws -> Void

    /// What became of a message.
    public enum Outcome: Sendable, Equatable {
        case handled, alreadyConsumed, parked
    }

    /// The consumer's name: it scopes the consumed marks and names the parked messages' stream.
    public let name: String
    private let store: any TransactionalEventStore
    private let retry: RetryPolicy
    private let handle: Handler
    private let logger: Logger
    private var parkedVersion: Int?
    /// One ``replayParked()`` at a time (an actor is re-entered at every `await`, and two calls both ran a parked message's handler
    /// and committed its effects twice).
    private let replays = SerialGate()

    public init(
        name: String, store: any TransactionalEventStore, retry: RetryPolicy = RetryPolicy(),
        logger: Logger = Logger(label: "dugong.consumer"), handle: @escaping Handler
    ) {
        self.name = name
        self.store = store
        self.retry = retry
        self.handle = handle
        self.logger = logger
    }

    private var marks: EventStoreConsumedMessages { EventStoreConsumedMessages(store: store) }

    private var parkedStream: StreamID {
        StreamID(origin: Checkpoint.origin, aggregateType: "Parked", aggregateID: name)
    }

    /// Handles `event` unless it was consumed before.
    /// - Parameters:
    ///   - position: its global position, when it comes from the store (kept with a parked message).
    ///   - alongside: appends to commit with the handler's effects (a reader's checkpoint).
    public func process(
        _ event: SerializedDomainEvent, position: UInt64? = nil, alongside: [StreamAppend] = []
    ) async throws -> Outcome {
        if try await marks.isConsumed(event.id, by: name, tenantID: event.tenantID) { return .alreadyConsumed }
        var backoff = retry.initialBackoff
        var lastError: (any Error)?
        for attempt in 1...retry.maximumAttempts {
            var unit = UnitOfWork()
            do {
                try await handle(event, &unit)
                EventStoreConsumedMessages.stage(event.id, by: name, tenantID: event.tenantID, in: &unit)
                for append in alongside { unit.add(append) }
                try await unit.commit(to: store)
                return .handled
            } catch {
                // Cancelled (the application stopping), or the store out of reach: not the
                // message's failure, never parked (an outage longer than the retries parked
                // every message it met). The caller tries again later; a commit that landed
                // is found consumed then.
                if error is CancellationError || Task.isCancelled || error is any TransientStoreError { throw error }
                lastError = error
                logger.warning("handler failed", metadata: [
                    "consumer": "\(name)", "event": "\(event.id)", "attempt": "\(attempt)", "error": "\(error)",
                ])
                // Another instance may have consumed it meanwhile: then it is done.
                if try await marks.isConsumed(event.id, by: name, tenantID: event.tenantID) { return .alreadyConsumed }
                if attempt < retry.maximumAttempts {
                    try await Task.sleep(for: backoff)
                    backoff *= 2
                }
            }
        }
        try await park(event, position: position, error: lastError.map { "\($0)" } ?? "unknown", alongside: alongside)
        return .parked
    }

    private func park(_ event: SerializedDomainEvent, position: UInt64?, error: String, alongside: [StreamAppend]) async throws {
        var payload: JSONValue = [
            "error": .string(error), "attempts": .int(retry.maximumAttempts),
            "event": try JSONValue(json: JSONEncoder().encode(event)),
        ]
        if let position { payload["position"] = position <= UInt64(Int.max) ? .int(Int(position)) : .uint(position) }
        try await commitWithParkedRecord("MessageParked", payload: payload) { unit in
            EventStoreConsumedMessages.stage(event.id, by: name, tenantID: event.tenantID, in: &unit)
            for append in alongside { unit.add(append) }
        }
        logger.error("message parked after every attempt failed", metadata: [
            "consumer": "\(name)", "event": "\(event.id)", "error": "\(error)",
        ])
    }

    private func parkedRecord(_ type: String, payload: JSONValue, version: Int) -> StreamAppend {
        StreamAppend(
            stream: parkedStream,
            events: [SerializedDomainEvent(
                origin: parkedStream.origin, aggregateType: parkedStream.aggregateType, eventType: type, version: 1,
                id: EventID.random(), aggregateID: name, payload: try? payload.jsonData(), sequenceNumber: version + 1,
                timestamp: .currentMillisecond)],
            expected: version == 0 ? .noStream : .exact(version))
    }

    /// Commits `base` with a record appended to the parked stream, whose version is the lock
    /// among instances of this consumer: on a conflict there the version is read again and the
    /// commit tried again (a park does not depend on what the list holds).
    private func commitWithParkedRecord(
        _ type: String, payload: JSONValue, unit base: UnitOfWork = UnitOfWork(), others: (inout UnitOfWork) -> Void = { _ in }
    ) async throws {
        for attempt in 1...3 {
            let version = try await loadedParkedVersion()
            var unit = base
            unit.add(parkedRecord(type, payload: payload, version: version))
            others(&unit)
            do {
                try await unit.commit(to: store)
                parkedVersion = version + 1
                return
            } catch EventStoreError.conflict(let stream, _, _) where stream == parkedStream && attempt < 3 {
                parkedVersion = nil
            }
        }
    }

    private func loadedParkedVersion() async throws -> Int {
        if let parkedVersion { return parkedVersion }
        let version = try await store.streamVersion(of: parkedStream)
        parkedVersion = version
        return version
    }

    /// The parked messages not replayed successfully since, oldest first.
    public func parked() async throws -> [ParkedMessage] {
        try await parkedList().messages
    }

    /// The parked messages, and the parked stream's version they are as of: an unpark decided
    /// on them commits at that version, so that another instance's change in between is a
    /// conflict.
    private func parkedList() async throws -> (messages: [ParkedMessage], version: Int) {
        var parked: [UUID: ParkedMessage] = [:]
        var order: [UUID] = []
        let records = try await store.read(parkedStream)
        let version = if let last = records.last { last.sequenceNumber } else { try await store.streamVersion(of: parkedStream) }
        for stored in records {
            guard let payload = stored.payload, case .object(let object) = try JSONValue(json: payload) else { continue }
            switch stored.eventType {
            case "MessageParked":
                guard let eventJSON = object["event"], case .string(let error)? = object["error"],
                    case .int(let attempts)? = object["attempts"]
                else { continue }
                var position: UInt64?
                // (Bounded: a negative number here stopped the process.)
                switch object["position"] {
                case .int(let value)?: position = UInt64(exactly: value)
                case .uint(let value)?: position = value
                default: break
                }
                let event = try JSONDecoder().decode(SerializedDomainEvent.self, from: try eventJSON.jsonData())
                parked[event.id] = ParkedMessage(position: position, event: event, error: error, attempts: attempts)
                order.append(event.id)
            case "MessageUnparked":
                if case .string(let id)? = object["eventId"], let uuid = UUID(uuidString: id) { parked.removeValue(forKey: uuid) }
            default:
                continue
            }
        }
        return (order.compactMap { parked[$0] }, version)
    }

    /// Runs the handler once more for every parked message; those that succeed leave the list
    /// (their effects and the removal commit together), those that fail (the handler throws,
    /// or its effects cannot be committed) stay, and the replay goes on. A message whose effects
    /// meet a conflict (a stream it appends to moved while its handler ran) is run again, up to
    /// the retry policy's attempts, with its backoff. Calls on one handler run one at a time:
    /// a call made while another runs waits for it, then replays what is still parked.
    ///
    /// Two instances of the consumer (two processes) replaying at once may both *run* a
    /// message's handler; only one commits its effects and removes it from the list, the other's
    /// are dropped. Effects outside the store (an e-mail, a call to another service) happen at
    /// least once, as they do after a crash between the handler and its commit: make them
    /// idempotent, or replay from one instance.
    /// - Returns: the number replayed successfully.
    @discardableResult
    public func replayParked() async throws -> Int {
        try await replays.run { try await replayParkedAlone() }
    }

    private func replayParkedAlone() async throws -> Int {
        var replayed = 0
        let (listing, version) = try await parkedList()
        var known = KnownParked(version: version, ids: Set(listing.map(\.event.id)))
        for message in listing where known.ids.contains(message.event.id) {
            if try await replay(message, known: &known) { replayed += 1 }
        }
        return replayed
    }

    /// The parked stream's version, and the messages parked as of it. Each unpark commits at
    /// that version, never at one read for another purpose meanwhile (a list shown, a park):
    /// a message another instance replayed in between would commit its effects twice.
    private struct KnownParked {
        var version: Int
        var ids: Set<UUID>
    }

    /// The parked list read again, or `nil` when it cannot be (said in the log: the message stays
    /// parked, and the replay goes on with the next). - Throws: `CancellationError`.
    private func freshParkedList(for id: UUID) async throws -> KnownParked? {
        do {
            let (listing, version) = try await parkedList()
            return KnownParked(version: version, ids: Set(listing.map(\.event.id)))
        } catch {
            if error is CancellationError || Task.isCancelled { throw error }
            logger.warning("the parked list could not be read again; the message stays parked", metadata: ["event": "\(id)", "error": "\(error)"])
            return nil
        }
    }

    /// Runs a parked message's handler and commits its effects with the message's removal from
    /// the list, at the version `known` says the message is parked at. Another instance's change
    /// to the list in between is a conflict on the parked stream: the list is read again, and
    /// the effects go in only if the message is still parked. A conflict on a stream of its
    /// effects (a stream it appends to moved while its handler ran) runs it again, up to the
    /// retry policy's attempts, with its backoff. A handler that fails, effects that cannot be
    /// committed, or conflicts on every attempt leave the message parked. - Returns: whether it
    /// committed.
    private func replay(_ message: ParkedMessage, known: inout KnownParked) async throws -> Bool {
        let id = message.event.id
        var backoff = retry.initialBackoff
        for attempt in 1...retry.maximumAttempts {
            var effects = UnitOfWork()
            do {
                try await handle(message.event, &effects)
            } catch {
                if error is CancellationError || Task.isCancelled { throw error }
                logger.warning("parked message failed again", metadata: ["event": "\(id)", "error": "\(error)"])
                return false
            }
            var listReads = 0
            while known.ids.contains(id) {
                var unit = effects
                unit.add(parkedRecord("MessageUnparked", payload: ["eventId": .string(id.uuidString)], version: known.version))
                do {
                    try await unit.commit(to: store)
                    known.version += 1
                    known.ids.remove(id)
                    parkedVersion = nil  // (a park reads the version afresh)
                    return true
                } catch EventStoreError.conflict(let stream, _, _) where stream == parkedStream {
                    // Another instance parked or replayed meanwhile: read the list again.
                    listReads += 1
                    guard listReads <= 3 else {
                        logger.warning("the parked list kept moving; the message stays parked", metadata: ["event": "\(id)"])
                        return false
                    }
                    guard let fresh = try await freshParkedList(for: id) else { return false }
                    known = fresh
                } catch EventStoreError.conflict(let stream, let expected, let actual) {
                    logger.warning("parked message's effects conflicted", metadata: [
                        "event": "\(id)", "stream": "\(stream)", "expected": "\(expected)", "actual": "\(actual)", "attempt": "\(attempt)",
                    ])
                    // Still parked? (Not run again, its effects outside the store with it, if
                    // another instance replayed it meanwhile.)
                    guard let fresh = try await freshParkedList(for: id) else { return false }
                    known = fresh
                    break
                } catch {
                    if error is CancellationError || Task.isCancelled { throw error }
                    logger.warning("parked message's effects could not be committed", metadata: ["event": "\(id)", "error": "\(error)"])
                    return false
                }
            }
            // Replayed by another instance meanwhile: its effects are in; these are dropped.
            guard known.ids.contains(id) else { return false }
            if attempt < retry.maximumAttempts {
                try await Task.sleep(for: backoff)
                backoff *= 2
            }
        }
        return false
    }
}

/// An idempotent consumer of the store's own events: it reads the global log from a durable
/// checkpoint (no dual write: the events are the messages) and hands each event to an
/// ``IdempotentHandler`` with the checkpoint's advance, so that the handler's appends, the
/// consumed mark and the checkpoint commit together: each event's effects happen once, across
/// crashes and restarts, and poison messages are parked.
///
/// Once also across a ``rewind(to:)``: it moves the checkpoint, not the consumed marks, so the
/// events read again that were consumed are skipped; a consumer to run again on everything is a
/// new consumer (another name).
///
/// ```swift
/// let transfers = EventConsumer(name: "transfers", store: store) { event, unit in
///     guard let withdrawal = try registry.decode(event), … else { return }
///     var target = try await accounts.load(…)!
///     try target.execute { try $0.deposit(…) }
///     try accounts.stage(target, in: &unit)      // commits with the consumed mark
/// }
/// try await transfers.run()
/// ```
public actor EventConsumer: CheckpointedReader {
    public let name: String
    let store: Projection.Store
    public nonisolated var log: any GlobalEventLog { store }
    /// Handles, marks and parks the events.
    public let handler: IdempotentHandler
    var checkpoint: Checkpoint?
    public nonisolated var checkpointName: String { "consumer:" + name }
    let gate = SerialGate()

    public init(
        name: String, store: Projection.Store, retry: RetryPolicy = RetryPolicy(),
        logger: Logger = Logger(label: "dugong.consumer"), handle: @escaping IdempotentHandler.Handler
    ) {
        self.name = name
        self.store = store
        handler = IdempotentHandler(name: name, store: store, retry: retry, logger: logger, handle: handle)
    }

    /// Processes every event committed so far.
    /// - Returns: the number of events handled or parked.
    @discardableResult
    public func catchUp() async throws -> Int {
        try await catchingUp { try await catchUpAlone() }
    }

    private func catchUpAlone() async throws -> Int {
        var handled = 0
        while true {
            let batch = try await store.events(from: try await loadedCheckpoint().cursor, maxCount: 64)
            guard !batch.isEmpty else { break }
            for recorded in batch {
                var next = try await loadedCheckpoint()
                if recorded.event.origin == Checkpoint.origin {
                    next.skip(to: recorded.next)
                    checkpoint = next
                    continue
                }
                var advance = UnitOfWork()
                try next.advance(to: recorded.next, in: &advance)
                switch try await handler.process(recorded.event, position: recorded.position, alongside: advance.appends) {
                case .handled, .parked:
                    checkpoint = next
                    await next.truncateIfDue(in: store)
                    handled += 1
                case .alreadyConsumed:
                    // Consumed before (maybe by another instance, whose checkpoint is now ahead).
                    checkpoint = nil
                    var current = try await loadedCheckpoint()
                    current.skip(to: recorded.next)
                    checkpoint = current
                }
            }
            // Paused meanwhile: the pause waits for this catch-up, which ends here.
            if gate.isPaused { break }
        }
        return handled
    }

    /// The parked messages (see ``IdempotentHandler/parked()``).
    public func parked() async throws -> [ParkedMessage] { try await handler.parked() }

    /// Replays the parked messages (see ``IdempotentHandler/replayParked()``).
    @discardableResult
    public func replayParked() async throws -> Int { try await handler.replayParked() }
}
