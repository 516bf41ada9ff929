import Foundation
import Logging

/// Message channels: one per origin and aggregate type, `"<origin>.<aggregateType>"`.
public enum MessageChannel {
    /// The channel of an aggregate type's events. Stable, and different for any other origin or type.
    public static func id(origin: String, aggregateType: String) -> String {
        // Escape the separator so that ("a.b", "c") and ("a", "b.c") differ.
        origin.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ".", with: "%2E")
            + "." + aggregateType.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ".", with: "%2E")
    }

    /// The channel of `State`'s events.
    public static func id<State: Aggregate>(of _: State.Type) -> String {
        id(origin: State.origin, aggregateType: State.aggregateType)
    }
}

/// The outbound messaging port: publishes events on a channel. Publishing no events does nothing.
public protocol MessageProducer: Sendable {
    func publish(_ events: [SerializedDomainEvent], on channel: String) async throws
}

/// The inbound messaging port: delivers a channel's messages to a named consumer. A message is
/// acknowledged when the handler returns; a handler that throws gets it again (at least once).
/// Wrap handlers in an ``IdempotentHandler`` to act on each message once.
public protocol MessageSubscriber: Sendable {
    func subscribe(
        to channel: String, as consumer: String, handler: @escaping @Sendable (SerializedDomainEvent) async throws -> Void
    ) async
}

/// An in-memory message bus for tests and single-process applications: every subscriber of a
/// channel (one per consumer name) receives every message published on it, in order. A message
/// whose handler throws stays queued for that consumer and is delivered again by ``redeliver()``.
public actor InMemoryMessageBus: MessageProducer, MessageSubscriber {
    private struct Subscription {
        var handler: @Sendable (SerializedDomainEvent) async throws -> Void
        var pending: [SerializedDomainEvent] = []
        /// A delivery loop is running for this consumer (one at a time: the actor is re-entered
        /// at every `await`, and two loops delivered its first message twice, then dropped one).
        var delivering = false
    }

    private var subscriptions: [String: [String: Subscription]] = [:]

    public init() {}

    /// Subscribes `consumer` to `channel`; subscribing again replaces its handler and keeps the
    /// messages queued for it.
    public func subscribe(
        to channel: String, as consumer: String, handler: @escaping @Sendable (SerializedDomainEvent) async throws -> Void
    ) {
        // A new handler for a consumer that is there keeps its queued messages.
        if subscriptions[channel]?[consumer] != nil {
            subscriptions[channel]![consumer]!.handler = handler
        } else {
            subscriptions[channel, default: [:]][consumer] = Subscription(handler: handler)
        }
    }

    /// Delivers `events` to every subscriber of `channel`.
    /// - Throws: the first handler error, after every subscriber had its turn; the failed
    ///   messages stay queued for ``redeliver()``.
    public func publish(_ events: [SerializedDomainEvent], on channel: String) async throws {
        guard !events.isEmpty else { return }
        for consumer in subscriptions[channel, default: [:]].keys {
            subscriptions[channel]![consumer]!.pending += events
        }
        try await deliver(channel)
    }

    /// Delivers again every message a handler failed on.
    public func redeliver() async throws {
        for channel in subscriptions.keys { try await deliver(channel) }
    }

    private func deliver(_ channel: String) async throws {
        var firstError: (any Error)?
        for consumer in subscriptions[channel, default: [:]].keys.sorted() {
            // A loop already delivering to this consumer delivers what was just queued too.
            guard subscriptions[channel]?[consumer]?.delivering == false else { continue }
            subscriptions[channel]![consumer]!.delivering = true
            defer { subscriptions[channel]?[consumer]?.delivering = false }
            while let subscription = subscriptions[channel]?[consumer], let message = subscription.pending.first {
                do {
                    try await subscription.handler(message)
                    subscriptions[channel]![consumer]!.pending.removeFirst()
                } catch {
                    firstError = firstError ?? error
                    break
                }
            }
        }
        if let firstError { throw firstError }
    }
}

/// Publishes the store's events to their channels, reading the global log from a durable
/// checkpoint: no dual write (the events are committed first, then relayed, at least once).
public actor MessageRelay {
    public let name: String
    private let store: Projection.Store
    private let producer: any MessageProducer
    private var checkpoint: Checkpoint?
    /// One relay at a time (an actor is re-entered at every `await`, and two calls at once
    /// published one batch twice).
    private let relays = SerialGate()

    public init(name: String, store: Projection.Store, producer: any MessageProducer) {
        self.name = name
        self.store = store
        self.producer = producer
    }

    /// Publishes everything committed since the last call, in order, saving the checkpoint
    /// after each batch; a call made while another runs waits for it. - Returns: the number
    /// of events published.
    ///
    /// - Throws: ``CheckpointError/pastTheLog(name:cursor:end:)`` when the checkpoint is past
    ///   every event of the store (it came with the store from another one): relaying from it
    ///   would skip, for good, the events committed until the log passed it.
    @discardableResult
    public func relay() async throws -> Int {
        try await relays.run {
            do {
                return try await relayAlone()
            } catch {
                // Loaded again next time: a checkpoint save whose outcome is unknown (the answer
                // lost with a connection) may have landed, and saved again from the version
                // before it, it conflicted at every later call.
                checkpoint = nil
                throw error
            }
        }
    }

    private func relayAlone() async throws -> Int {
        var checkpoint = try await loaded()
        var published = 0
        while true {
            let batch = try await store.events(from: checkpoint.cursor, maxCount: 256)
            guard let last = batch.last else { break }
            var run: [SerializedDomainEvent] = []
            var channel: String?
            for recorded in batch where recorded.event.origin != Checkpoint.origin {
                let next = MessageChannel.id(origin: recorded.event.origin, aggregateType: recorded.event.aggregateType)
                if next != channel, let current = channel {
                    try await producer.publish(run, on: current)
                    published += run.count
                    run = []
                }
                channel = next
                run.append(recorded.event)
            }
            if let channel, !run.isEmpty {
                try await producer.publish(run, on: channel)
                published += run.count
            }
            if channel != nil {
                try await checkpoint.save(last.next, to: store)
            } else {
                checkpoint.skip(to: last.next)
            }
            self.checkpoint = checkpoint
        }
        return published
    }

    private func loaded() async throws -> Checkpoint {
        if let checkpoint { return checkpoint }
        let loaded = try await Checkpoint.load("relay:" + name, from: store)
        let end = try await store.committedEnd()
        guard loaded.cursor <= end else { throw CheckpointError.pastTheLog(name: "relay:" + name, cursor: loaded.cursor, end: end) }
        checkpoint = loaded
        return loaded
    }
}

/// An aggregate owned by another service's origin (a shared kernel): rebuilt read-only from
/// its events, which arrive as messages and are stored locally by ``ExternalAggregates/store(_:in:)``.
/// The repository refuses to commit commands on it.
public protocol ExternalAggregate: Aggregate {}

/// Keeping local copies of external aggregates' events.
public enum ExternalAggregates {
    /// Stores a received event at its own sequence number. Receiving it again is a no-op; an
    /// event whose predecessors have not arrived is refused (``EventStoreError/invalidAppend(stream:reason:)``),
    /// so that the handler is retried or the message parked.
    public static func store(_ event: SerializedDomainEvent, in store: any EventStore) async throws {
        try await store.append([event], to: event.stream, expecting: .any)
    }
}
