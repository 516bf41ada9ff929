import Foundation

/// An aggregate instance: its id, its state, the sequence number of the last event applied and
/// the events staged by commands but not committed yet.
///
/// ```swift
/// var account = AggregateRoot<BankAccount>()
/// try account.create { try $0.open(owner: "Ada") }   // assigns a new UUID id
/// try account.execute { try $0.deposit(100) }
/// account.stagedEvents.count                           // 2, numbered 1 and 2
/// ```
///
/// A command's events are stamped (event id, aggregate id, sequence number, timestamp) and
/// applied to the state at once, so the next command sees them; they stay in ``stagedEvents``
/// until ``markCommitted()`` is called after the store accepted them.
public struct AggregateRoot<State: Aggregate>: Sendable {
    /// The aggregate's id; `nil` until a creation command ran or an event was applied.
    public private(set) var id: String?
    /// The state after every applied and staged event.
    public private(set) var state: State
    /// The sequence number of the last event applied or staged (0 before the first).
    public private(set) var sequenceNumber: Int = 0
    /// The sequence number of the last event known to be stored (0 before the first).
    public private(set) var committedSequenceNumber: Int = 0
    /// Events staged by commands and not yet committed, in order.
    public internal(set) var stagedEvents: [EventEnvelope] = []
    /// The sequence number of the latest snapshot this aggregate was restored from or saved
    /// at (0: none); the repository's snapshot policy counts from it.
    public internal(set) var snapshotSequenceNumber: Int = 0

    /// A new, not yet created aggregate.
    public init() {
        state = State()
    }

    /// An aggregate with a known id and no events applied yet (for loading it from a store).
    public init(id: String) {
        self.id = id
        state = State()
    }

    /// An aggregate restored from a snapshot of its state after event `sequenceNumber`.
    public init(restoring state: State, id: String, sequenceNumber: Int) {
        precondition(sequenceNumber >= 0)
        self.id = id
        self.state = state
        self.sequenceNumber = sequenceNumber
        committedSequenceNumber = sequenceNumber
        snapshotSequenceNumber = sequenceNumber
    }

    /// Whether the aggregate is logically deleted.
    public var isDeleted: Bool { state.isDeleted }

    /// Runs a creation command: assigns `id` (a new lowercase UUID when `nil`), then stages the
    /// events the command returns.
    ///
    /// - Throws: ``AggregateError/alreadyCreated(aggregateID:)`` when the aggregate has events,
    ///   ``AggregateError/idAlreadyAssigned(aggregateID:given:)`` when it was made with another id
    ///   (`AggregateRoot(id:)`), and whatever the command throws (nothing is staged then).
    public mutating func create(
        id: String? = nil, _ command: (State) throws -> [any DomainEvent]
    ) throws {
        guard sequenceNumber == 0 else {
            throw AggregateError.alreadyCreated(aggregateID: self.id ?? "?")
        }
        if let id, let assigned = self.id, assigned != id {
            throw AggregateError.idAlreadyAssigned(aggregateID: assigned, given: id)
        }
        let events = try command(state)
        for event in events { try event.created() }
        if let id { self.id = id } else if self.id == nil { self.id = EventID.random().uuidString.lowercased() }
        stage(events)
    }

    /// Runs a command on an existing aggregate and stages the events it returns.
    ///
    /// - Throws: ``AggregateError/notCreated(aggregateType:)`` before creation,
    ///   ``AggregateError/deleted(aggregateID:)`` on a deleted aggregate, and whatever the
    ///   command throws (nothing is staged then).
    public mutating func execute(_ command: (State) throws -> [any DomainEvent]) throws {
        guard let id, sequenceNumber > 0 else {
            throw AggregateError.notCreated(aggregateType: State.aggregateType)
        }
        guard !state.isDeleted else { throw AggregateError.deleted(aggregateID: id) }
        let events = try command(state)
        for event in events { try event.created() }
        stage(events)
    }

    private mutating func stage(_ events: [any DomainEvent]) {
        guard let id else { preconditionFailure("staging requires an aggregate id") }
        for event in events {
            sequenceNumber += 1
            let envelope = EventEnvelope(event: event, aggregateID: id, sequenceNumber: sequenceNumber)
            state.apply(event)
            stagedEvents.append(envelope)
            event.staged(as: envelope)
            event.applied(as: envelope)
        }
        assert(sequenceNumber == committedSequenceNumber + stagedEvents.count)
    }

    /// Applies one stored event: the way an aggregate is rebuilt from its history.
    ///
    /// - Throws: ``AggregateError/sequenceNumberMismatch(aggregateID:expected:actual:)`` unless
    ///   the event is the next one, ``AggregateError/aggregateIDMismatch(expected:actual:)`` for
    ///   another aggregate's event, ``AggregateError/uncommittedEvents(aggregateID:count:)``
    ///   while events are staged.
    public mutating func apply(_ envelope: EventEnvelope) throws {
        try advance(to: envelope.sequenceNumber, aggregateID: envelope.aggregateID)
        state.apply(envelope.event)
        envelope.event.applied(as: envelope)
    }

    /// Accepts a stored event without applying it: what loading does with an event type it was
    /// told to skip (``EventRegistry/UnknownEventPolicy/skip``). Same checks as ``apply(_:)``.
    public mutating func skip(sequenceNumber: Int, aggregateID: String) throws {
        try advance(to: sequenceNumber, aggregateID: aggregateID)
    }

    private mutating func advance(to next: Int, aggregateID: String) throws {
        guard stagedEvents.isEmpty else {
            throw AggregateError.uncommittedEvents(aggregateID: id ?? aggregateID, count: stagedEvents.count)
        }
        if let id, id != aggregateID {
            throw AggregateError.aggregateIDMismatch(expected: id, actual: aggregateID)
        }
        guard next == sequenceNumber + 1 else {
            throw AggregateError.sequenceNumberMismatch(
                aggregateID: aggregateID, expected: sequenceNumber + 1, actual: next)
        }
        id = aggregateID
        sequenceNumber = next
        committedSequenceNumber = next
    }

    /// Declares the staged events stored: calls their `committed(as:)` hooks, clears them and
    /// advances ``committedSequenceNumber``. Call it after the event store accepted them.
    public mutating func markCommitted() {
        for envelope in stagedEvents { envelope.event.committed(as: envelope) }
        committedSequenceNumber = sequenceNumber
        stagedEvents.removeAll()
    }
}
