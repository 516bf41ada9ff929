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
    /// The event's global position.
    public var position: UInt64
    public var event: SerializedDomainEvent
    /// The last attempt's error.
    public var error: String
    public var attempts: Int
}

/// An idempotent consumer of the store's own events: it reads the global log from a durable
/// checkpoint (no dual write: the events are the messages), and for each event commits the
/// handler's appends, the consumed mark and the checkpoint in one unit of work, so that each
/// event's effects happen once even across crashes and restarts. A failing handler is retried
/// with exponential backoff; after the last attempt the message is **parked** (DugongJS
/// swallows the error; this does not) and the consumer goes on.
///
/// ```swift
/// let transfers = EventConsumer(name: "transfers", store: store) { recorded, unit in
///     guard let withdrawal = try registry.decode(recorded.event), … else { return }
///     var target = try await accounts.load(…)!
///     try target.execute { try $0.deposit(…) }
///     try accounts.stage(target, in: &unit)      // commits with the consumed mark
/// }
/// try await transfers.run()
/// ```
public actor EventConsumer {
    public typealias Handler = @Sendable (RecordedEvent, inout UnitOfWork) async throws -> Void

    public let name: String
    private let store: Projection.Store
    private let retry: RetryPolicy
    private let handle: Handler
    private let logger: Logger
    private var checkpoint: Checkpoint?
    private var parkedVersion: Int?
    private var isCatchingUp = false
    private var waitingToCatchUp: [CheckedContinuation<Void, Never>] = []

    public init(
        name: String, store: Projection.Store, retry: RetryPolicy = RetryPolicy(),
        logger: Logger = Logger(label: "dugong.consumer"), handle: @escaping Handler
    ) {
        self.name = name
        self.store = store
        self.retry = retry
        self.handle = handle
        self.logger = logger
    }

    private var parkedStream: StreamID {
        StreamID(origin: Checkpoint.origin, aggregateType: "Parked", aggregateID: name)
    }

    /// The next position the consumer will read.
    public func position() async throws -> UInt64 {
        try await loadedCheckpoint().position
    }

    private func loadedCheckpoint() async throws -> Checkpoint {
        if let checkpoint { return checkpoint }
        let loaded = try await Checkpoint.load("consumer:" + name, from: store)
        checkpoint = loaded
        return loaded
    }

    /// Processes every event committed so far.
    /// - Returns: the number of events handled (parked ones included).
    @discardableResult
    public func catchUp() async throws -> Int {
        while isCatchingUp { await withCheckedContinuation { waitingToCatchUp.append($0) } }
        isCatchingUp = true
        defer {
            isCatchingUp = false
            if !waitingToCatchUp.isEmpty { waitingToCatchUp.removeFirst().resume() }
        }
        var handled = 0
        while true {
            let position = try await loadedCheckpoint().position
            let batch = try await store.events(from: position, maxCount: 64)
            guard !batch.isEmpty else { break }
            for recorded in batch {
                if recorded.event.origin == Checkpoint.origin {
                    checkpoint!.skip(to: recorded.position + 1)
                    continue
                }
                if try await process(recorded) { handled += 1 }
            }
        }
        return handled
    }

    /// Handles one event with retries, or parks it. Returns false when it was consumed before.
    private func process(_ recorded: RecordedEvent) async throws -> Bool {
        let event = recorded.event
        let consumer = "consumer:" + name
        if try await EventStoreConsumedMessages(store: store).isConsumed(event.id, by: consumer, tenantID: event.tenantID) {
            checkpoint!.skip(to: recorded.position + 1)
            return false
        }
        var backoff = retry.initialBackoff
        var lastError: (any Error)?
        for attempt in 1...retry.maximumAttempts {
            var unit = UnitOfWork()
            var next = try await loadedCheckpoint()
            do {
                try await handle(recorded, &unit)
                EventStoreConsumedMessages.stage(event.id, by: consumer, tenantID: event.tenantID, in: &unit)
                try next.advance(to: recorded.position + 1, in: &unit)
                try await unit.commit(to: store)
                checkpoint = next
                return true
            } catch {
                lastError = error
                logger.warning("handler failed", metadata: [
                    "consumer": "\(name)", "event": "\(event.id)", "attempt": "\(attempt)", "error": "\(error)",
                ])
                // Another instance may have consumed it meanwhile: then it is done.
                if try await EventStoreConsumedMessages(store: store).isConsumed(event.id, by: consumer, tenantID: event.tenantID) {
                    checkpoint = nil
                    return false
                }
                if attempt < retry.maximumAttempts {
                    try await Task.sleep(for: backoff)
                    backoff *= 2
                }
            }
        }
        try await park(recorded, error: lastError.map { "\($0)" } ?? "unknown", consumer: consumer)
        return true
    }

    private func park(_ recorded: RecordedEvent, error: String, consumer: String) async throws {
        let version = try await loadedParkedVersion()
        let payload: JSONValue = [
            "position": .int(Int(recorded.position)), "error": .string(error), "attempts": .int(retry.maximumAttempts),
            "event": try JSONValue(json: JSONEncoder().encode(recorded.event)),
        ]
        var unit = UnitOfWork()
        unit.add(StreamAppend(
            stream: parkedStream,
            events: [SerializedDomainEvent(
                origin: parkedStream.origin, aggregateType: parkedStream.aggregateType, eventType: "MessageParked", version: 1,
                id: UUID(), aggregateID: name, payload: try payload.jsonData(), sequenceNumber: version + 1,
                timestamp: .currentMillisecond)],
            expected: version == 0 ? .noStream : .exact(version)))
        EventStoreConsumedMessages.stage(recorded.event.id, by: consumer, tenantID: recorded.event.tenantID, in: &unit)
        var next = try await loadedCheckpoint()
        try next.advance(to: recorded.position + 1, in: &unit)
        try await unit.commit(to: store)
        checkpoint = next
        parkedVersion = version + 1
        logger.error("message parked after every attempt failed", metadata: [
            "consumer": "\(name)", "event": "\(recorded.event.id)", "position": "\(recorded.position)", "error": "\(error)",
        ])
    }

    private func loadedParkedVersion() async throws -> Int {
        if let parkedVersion { return parkedVersion }
        let version = try await store.read(parkedStream).last?.sequenceNumber ?? 0
        parkedVersion = version
        return version
    }

    /// The parked messages not replayed successfully since, oldest first.
    public func parked() async throws -> [ParkedMessage] {
        var parked: [UUID: ParkedMessage] = [:]
        var order: [UUID] = []
        for stored in try await store.read(parkedStream) {
            guard let payload = stored.payload, case .object(let object) = try JSONValue(json: payload) else { continue }
            switch stored.eventType {
            case "MessageParked":
                guard case .int(let position)? = object["position"], let eventJSON = object["event"],
                    case .string(let error)? = object["error"], case .int(let attempts)? = object["attempts"]
                else { continue }
                let event = try JSONDecoder().decode(SerializedDomainEvent.self, from: try eventJSON.jsonData())
                parked[event.id] = ParkedMessage(position: UInt64(position), event: event, error: error, attempts: attempts)
                order.append(event.id)
            case "MessageUnparked":
                if case .string(let id)? = object["eventId"], let uuid = UUID(uuidString: id) { parked.removeValue(forKey: uuid) }
            default:
                continue
            }
        }
        return order.compactMap { parked[$0] }
    }

    /// Runs the handler once more for every parked message; those that succeed leave the list
    /// (their effects and the removal commit together).
    /// - Returns: the number replayed successfully.
    @discardableResult
    public func replayParked() async throws -> Int {
        var replayed = 0
        for message in try await parked() {
            var unit = UnitOfWork()
            do {
                try await handle(RecordedEvent(position: message.position, event: message.event), &unit)
            } catch {
                logger.warning("parked message failed again", metadata: ["event": "\(message.event.id)", "error": "\(error)"])
                continue
            }
            let version = try await loadedParkedVersion()
            unit.add(StreamAppend(
                stream: parkedStream,
                events: [SerializedDomainEvent(
                    origin: parkedStream.origin, aggregateType: parkedStream.aggregateType, eventType: "MessageUnparked",
                    version: 1, id: UUID(), aggregateID: name,
                    payload: try JSONValue.object(["eventId": .string(message.event.id.uuidString)]).jsonData(),
                    sequenceNumber: version + 1, timestamp: .currentMillisecond)],
                expected: .exact(version)))
            try await unit.commit(to: store)
            parkedVersion = version + 1
            replayed += 1
        }
        return replayed
    }

    /// Returns once every event up to and including `position` was handled or parked.
    public func waitUntilCaughtUp(with position: UInt64) async throws {
        while try await loadedCheckpoint().position <= position {
            if try await catchUp() == 0, try await loadedCheckpoint().position <= position {
                try await store.waitForEvents(after: try await loadedCheckpoint().position)
            }
            try Task.checkCancellation()
        }
    }

    /// Runs until the task is cancelled.
    public func run() async throws {
        while !Task.isCancelled {
            try await catchUp()
            try await store.waitForEvents(after: try await loadedCheckpoint().position)
        }
    }
}
