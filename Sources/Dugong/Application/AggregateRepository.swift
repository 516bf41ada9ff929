import Foundation
import Logging

/// An aggregate whose state can be snapshotted: its state is `Codable`.
///
/// Give the state a new ``snapshotSchemaVersion`` whenever its encoding changes: snapshots of
/// another version are ignored (the aggregate is rebuilt from its events), never misread.
public protocol SnapshottableAggregate: Aggregate, Codable {
    /// The version of the state's encoding. Default 1.
    static var snapshotSchemaVersion: Int { get }
    /// Take a snapshot once this many events were committed since the last one. Default 10.
    static var snapshotInterval: Int { get }
}

extension SnapshottableAggregate {
    public static var snapshotSchemaVersion: Int { 1 }
    public static var snapshotInterval: Int { 10 }
}

/// Why the repository refused.
public enum RepositoryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No aggregate has events at this stream.
    case notFound(StreamID)
    /// `update` met a concurrency conflict on every attempt.
    case tooManyConflicts(StreamID, attempts: Int)
    /// Commands on an ``ExternalAggregate`` are not committed: its owner's service writes it.
    case readOnly(aggregateType: String, origin: String)
    /// A snapshot was not saved: the state it would restore differs from the state (a
    /// `Codable` conformance that leaves something out or changes it).
    case snapshotNotRestorable(StreamID, reason: String)
    /// The state asked for needs events that the stream hides (those before `firstVersion`:
    /// truncated, or deleted before later appends), and its latest snapshot (of the state's
    /// schema version, between them and the state asked for) does not restore them.
    case truncated(StreamID, firstVersion: Int)

    public var description: String {
        switch self {
        case .notFound(let stream): "no aggregate \(stream)"
        case .tooManyConflicts(let stream, let attempts): "\(stream): a concurrency conflict on each of \(attempts) attempts"
        case .readOnly(let type, let origin): "\(type) is owned by \(origin): it is read-only here"
        case .snapshotNotRestorable(let stream, let reason): "\(stream): no snapshot saved: \(reason)"
        case .truncated(let stream, let first):
            "\(stream): its events before version \(first) are hidden (truncated, or deleted before later appends), and its latest snapshot (of the state's schema version, from version \(first - 1) up to the state asked for) does not restore them: this state cannot be rebuilt"
        }
    }
}

/// Loads and commits aggregates of one type: DugongJS's aggregate factory and manager in one.
///
/// ```swift
/// let accounts = AggregateRepository<BankAccount>(eventStore: store, snapshotStore: snapshots, registry: registry)
/// var account = try await accounts.create { try $0.open(owner: "Ada") }
/// account = try await accounts.update(account.id!) { try $0.deposit(100) }   // retries on conflicts
/// let earlier = try await accounts.load(account.id!, asOf: 1)                  // time travel
/// ```
///
/// Every load, commit and query goes through the repository's ``context`` (tenant, correlation
/// and causation ids, metadata): scope it per request with ``in(_:)``.
public struct AggregateRepository<State: Aggregate>: Sendable {
    public let eventStore: any EventStore
    public let snapshotStore: (any SnapshotStore)?
    public let registry: EventRegistry
    /// The context every call acts in.
    public let context: EventContext
    /// How many times ``update(_:_:)`` tries when it meets a concurrency conflict. Default 3.
    public var maximumAttempts = 3
    private let logger: Logger

    public init(
        eventStore: any EventStore, snapshotStore: (any SnapshotStore)? = nil, registry: EventRegistry,
        context: EventContext = EventContext(), logger: Logger = Logger(label: "dugong.repository")
    ) {
        self.eventStore = eventStore
        self.snapshotStore = snapshotStore
        self.registry = registry
        self.context = context
        self.logger = logger
    }

    /// The same repository acting in another context (another tenant, request, user).
    public func `in`(_ context: EventContext) -> Self {
        var copy = Self(eventStore: eventStore, snapshotStore: snapshotStore, registry: registry, context: context, logger: logger)
        copy.maximumAttempts = maximumAttempts
        return copy
    }

    func stream(_ id: String) -> StreamID {
        StreamID(State.self, id: id, tenantID: context.tenantID)
    }

    // MARK: Loading

    /// The aggregate with its latest state: from its latest snapshot and the events after it,
    /// or from all its events when there is no usable snapshot. Loading never writes a snapshot.
    ///
    /// - Returns: the aggregate (also when it is deleted: see ``AggregateRoot/isDeleted``), or
    ///   `nil` when it has no events, or all of them are hidden (a deleted stream, or one
    ///   truncated past its end) and no snapshot restores its state.
    /// - Throws: ``RepositoryError/truncated(_:firstVersion:)`` when events the stream hides
    ///   (truncated or deleted before later appends) are needed and the latest snapshot does
    ///   not restore them. (A stream that hides every event and has no usable snapshot reads as
    ///   deleted: `nil`; the store does not tell the two apart.)
    ///
    /// - Parameter skippingSnapshot: replay every event even when a snapshot exists (to check a
    ///   snapshot, or after changing how the state is built from events); on a stream whose
    ///   first events are hidden that throws.
    public func load(_ id: String, skippingSnapshot: Bool = false) async throws -> AggregateRoot<State>? {
        if !skippingSnapshot, let restored = try await loadFromSnapshot(id) { return restored }
        let events = try await eventStore.read(stream(id))
        guard let last = events.last else { return nil }
        return try await rebuild(id, from: events[...], through: last.sequenceNumber, firstVisible: events[0].sequenceNumber, usingSnapshot: false)
    }

    /// The aggregate as it was after event `sequenceNumber` (time travel); `nil` when it had no
    /// such event. On a stream whose first events are hidden (truncated), from the latest
    /// snapshot when it lies between them and `sequenceNumber`.
    /// - Throws: ``RepositoryError/truncated(_:firstVersion:)`` for a state that needs events
    ///   the stream hides.
    public func load(_ id: String, asOf sequenceNumber: Int) async throws -> AggregateRoot<State>? {
        guard sequenceNumber >= 1 else { return nil }
        return try await load(id, through: sequenceNumber)
    }

    /// The aggregate after event `sequenceNumber` (the latest when `nil`), replayed from the
    /// start, or from a snapshot only where the stream hides its start; `nil` when it has no
    /// such event.
    func load(_ id: String, through sequenceNumber: Int?) async throws -> AggregateRoot<State>? {
        do {
            return try await loadOnce(id, through: sequenceNumber)
        } catch RepositoryError.truncated where sequenceNumber == nil {
            // The latest state: a commit and a snapshot between the read of the events and
            // the read of the snapshot make a snapshot past the events read. Once more.
            return try await loadOnce(id, through: nil)
        }
    }

    private func loadOnce(_ id: String, through sequenceNumber: Int?) async throws -> AggregateRoot<State>? {
        let events = try await eventStore.read(stream(id))
        guard let first = events.first, let last = events.last else { return try await loadHidden(id, through: sequenceNumber) }
        // By sequence number, not count: a truncated stream's first events are not read.
        guard last.sequenceNumber >= sequenceNumber ?? 0 else { return nil }
        let target = sequenceNumber ?? last.sequenceNumber
        return try await rebuild(
            id, from: events.prefix { $0.sequenceNumber <= target }, through: target, firstVisible: first.sequenceNumber, usingSnapshot: true)
    }

    /// The aggregate as it was at `date`: after its events up to the first one stamped after it
    /// (events are taken in sequence order: when timestamps go backwards, as after a clock step,
    /// a later event stamped before `date` is not included); `nil` when it did not exist yet,
    /// and for a NaN date, which no event is stamped at or before.
    /// - Throws: ``RepositoryError/truncated(_:firstVersion:)`` for a state that needs events
    ///   the stream hides (a date before its first visible event included: the aggregate may
    ///   have existed then).
    public func load(_ id: String, asOf date: Date) async throws -> AggregateRoot<State>? {
        let events = try await eventStore.read(stream(id))
        guard let first = events.first else {
            // Every event hidden: which of them the date would pick is not known.
            let version = try await eventStore.streamVersion(of: stream(id))
            if version > 0, let snapshot = try await usableSnapshot(id), snapshot.sequenceNumber <= version {
                throw RepositoryError.truncated(stream(id), firstVersion: version + 1)
            }
            return nil
        }
        // (On the intervals: `Date`'s `<=` took every event for a NaN date, which is before or
        // after none.)
        let wanted = events.prefix { $0.timestamp.timeIntervalSinceReferenceDate <= date.timeIntervalSinceReferenceDate }
        guard let last = wanted.last else {
            if first.sequenceNumber > 1 { throw RepositoryError.truncated(stream(id), firstVersion: first.sequenceNumber) }
            return nil
        }
        return try await rebuild(id, from: wanted, through: last.sequenceNumber, firstVisible: first.sequenceNumber, usingSnapshot: true)
    }

    /// The aggregate after event `sequenceNumber` (the latest when `nil`) of a stream that
    /// shows no event: none (`nil`), or all hidden. Then only a snapshot at exactly that
    /// version shows its state; without a usable snapshot the aggregate is gone (`nil`, as a
    /// deleted stream, whose snapshots are hidden too, is).
    private func loadHidden(_ id: String, through sequenceNumber: Int?) async throws -> AggregateRoot<State>? {
        let version = try await eventStore.streamVersion(of: stream(id))
        let target = sequenceNumber ?? version
        guard version > 0, target <= version, let snapshot = try await usableSnapshot(id), snapshot.sequenceNumber <= version else { return nil }
        guard snapshot.sequenceNumber == target else { throw RepositoryError.truncated(stream(id), firstVersion: version + 1) }
        return snapshot
    }

    /// The aggregate after its event `target`, from `events`: the stream's visible events from
    /// its first (`firstVisible`) up to `target`. Replayed from the start when the stream hides
    /// none; otherwise, if `usingSnapshot`, from the latest snapshot when it lies between the
    /// hidden events and `target`.
    private func rebuild(
        _ id: String, from events: ArraySlice<SerializedDomainEvent>, through target: Int, firstVisible: Int, usingSnapshot: Bool
    ) async throws -> AggregateRoot<State> {
        if firstVisible == 1 {
            var aggregate = AggregateRoot<State>(id: id)
            try apply(Array(events), to: &aggregate)
            assert(aggregate.sequenceNumber == target, "rebuilt to \(aggregate.sequenceNumber), not \(target)")
            return aggregate
        }
        guard usingSnapshot, var aggregate = try await usableSnapshot(id),
            aggregate.sequenceNumber >= min(firstVisible - 1, target), aggregate.sequenceNumber <= target
        else { throw RepositoryError.truncated(stream(id), firstVersion: firstVisible) }
        try apply(events.filter { $0.sequenceNumber > aggregate.sequenceNumber }, to: &aggregate)
        return aggregate
    }

    private func apply(_ events: [SerializedDomainEvent], to aggregate: inout AggregateRoot<State>) throws {
        try aggregate.apply(events, decodingWith: registry)
    }

    /// The latest snapshot with the events after it applied; `nil` when there is no usable one
    /// (then the caller replays the events).
    /// - Throws: ``RepositoryError/truncated(_:firstVersion:)`` when the stream hides the events
    ///   after it; what decoding an event after it throws.
    private func loadFromSnapshot(_ id: String) async throws -> AggregateRoot<State>? {
        guard var aggregate = try await usableSnapshot(id) else { return nil }
        var after = try await eventStore.read(stream(id), from: aggregate.sequenceNumber + 1)
        if after.isEmpty {
            // Nothing after it: the stream ends at the snapshot, or hides what comes after (it
            // was truncated past its end: its state there cannot be rebuilt), or never reached
            // it (a snapshot of another life of the stream).
            let version = try await eventStore.streamVersion(of: stream(id))
            if version == aggregate.sequenceNumber { return aggregate }
            guard version > aggregate.sequenceNumber else {
                logger.warning("ignoring a snapshot past the stream's version", metadata: [
                    "stream": "\(stream(id))", "sequenceNumber": "\(aggregate.sequenceNumber)", "version": "\(version)",
                ])
                return nil
            }
            // Or another writer committed after the read (a snapshot is often taken at the
            // stream's end): read again before saying anything is hidden.
            after = try await eventStore.read(stream(id), from: aggregate.sequenceNumber + 1)
            if after.isEmpty { throw RepositoryError.truncated(stream(id), firstVersion: version + 1) }
        }
        do {
            try apply(after, to: &aggregate)
            return aggregate
        } catch AggregateError.sequenceNumberMismatch(_, let expected, let actual) {
            // The events after it do not follow it (a truncation hid some): rebuilt from the
            // events, or refused there if they cannot be.
            logger.warning("the events after the snapshot do not follow it; rebuilding from the events", metadata: [
                "stream": "\(stream(id))", "sequenceNumber": "\(aggregate.sequenceNumber)", "expected": "\(expected)", "actual": "\(actual)",
            ])
            return nil
        }
    }

    /// The aggregate as its latest snapshot restores it (no event after it applied); `nil`
    /// when there is none, or none of the state's schema version, or one that does not decode.
    private func usableSnapshot(_ id: String) async throws -> AggregateRoot<State>? {
        guard let snapshotStore, let type = State.self as? any SnapshottableAggregate.Type else { return nil }
        guard let snapshot = try await snapshotStore.latest(for: stream(id)) else { return nil }
        guard snapshot.schemaVersion == type.snapshotSchemaVersion else {
            logger.debug("ignoring a snapshot of another schema version", metadata: [
                "stream": "\(stream(id))", "version": "\(snapshot.schemaVersion)", "expected": "\(type.snapshotSchemaVersion)",
            ])
            return nil
        }
        // A sequence number no event can have (a snapshot store that took any number): unusable.
        guard snapshot.sequenceNumber >= 0, snapshot.sequenceNumber < Int.max else {
            logger.warning("ignoring a snapshot at an impossible sequence number", metadata: [
                "stream": "\(stream(id))", "sequenceNumber": "\(snapshot.sequenceNumber)",
            ])
            return nil
        }
        do {
            guard let state = try Self.decodeState(type, snapshot.data) as? State else { return nil }
            return AggregateRoot<State>(restoring: state, id: id, sequenceNumber: snapshot.sequenceNumber)
        } catch {
            logger.warning("snapshot cannot be restored; rebuilding from the events", metadata: [
                "stream": "\(stream(id))", "sequenceNumber": "\(snapshot.sequenceNumber)", "error": "\(error)",
            ])
            return nil
        }
    }

    /// Why `data` would not restore `state`: its encoding of the restored state differs, or
    /// (for an `Equatable` state) the restored state is not equal to it; `nil` when it would.
    private static func restoringProblem<S: SnapshottableAggregate>(_ state: S, from data: Data) throws -> String? {
        let restored: S
        do {
            restored = try PayloadCoding.decode(S.self, from: data)
        } catch {
            return "the snapshot does not decode: \(error)"
        }
        if try PayloadCoding.encode(restored) != data { return "the restored state encodes differently" }
        // `==` for an Equatable state, else its stored properties one by one through reflection.
        if let difference = StructuralDifference.between(state, restored, at: "state") {
            return "the restored state differs: \(difference) (a property the encoding leaves out?)"
        }
        return nil
    }

    private static func decodeState<S: SnapshottableAggregate>(_: S.Type, _ data: Data) throws -> any Aggregate {
        try PayloadCoding.decode(S.self, from: data)
    }

    // MARK: Committing

    /// Commits the aggregate's staged events, stamped with the context, expecting the stream to
    /// be at the aggregate's committed sequence number; then snapshots it when its policy says so.
    ///
    /// - Throws: ``EventStoreError/conflict(stream:expected:actual:)`` when another writer got
    ///   there first (the aggregate keeps its staged events; reload and retry, or use ``update(_:_:)``).
    @discardableResult
    public func commit(_ aggregate: inout AggregateRoot<State>) async throws -> AppendResult? {
        guard let id = aggregate.id, !aggregate.stagedEvents.isEmpty else { return nil }
        if State.self is any ExternalAggregate.Type {
            throw RepositoryError.readOnly(aggregateType: State.aggregateType, origin: State.origin)
        }
        aggregate.stamp(context)
        let events = try aggregate.stagedEvents.map { try $0.serialized(for: State.self) }
        let committed = aggregate.committedSequenceNumber
        let result = try await eventStore.append(
            events, to: stream(id), expecting: committed == 0 ? .noStream : .exact(committed))
        aggregate.markCommitted()
        await snapshotIfDue(&aggregate)
        return result
    }

    /// Runs a creation command on a new aggregate (id `id`, or a new UUID) and commits it.
    public func create(
        id: String? = nil, _ command: (State) throws -> [any DomainEvent]
    ) async throws -> AggregateRoot<State> {
        var aggregate = AggregateRoot<State>()
        try aggregate.create(id: id, command)
        try await commit(&aggregate)
        return aggregate
    }

    /// Loads the aggregate, runs `command` and commits; on a concurrency conflict it reloads
    /// and runs the command again, up to ``maximumAttempts`` times.
    ///
    /// - Throws: ``RepositoryError/notFound(_:)``, ``RepositoryError/tooManyConflicts(_:attempts:)``,
    ///   and whatever the command throws.
    @discardableResult
    public func update(
        _ id: String, _ command: (State) throws -> [any DomainEvent]
    ) async throws -> AggregateRoot<State> {
        for attempt in 1...max(maximumAttempts, 1) {
            guard var aggregate = try await load(id) else { throw RepositoryError.notFound(stream(id)) }
            try aggregate.execute(command)
            do {
                try await commit(&aggregate)
                return aggregate
            } catch EventStoreError.conflict {
                logger.debug("concurrency conflict; retrying with fresh state", metadata: ["stream": "\(stream(id))", "attempt": "\(attempt)"])
            }
        }
        throw RepositoryError.tooManyConflicts(stream(id), attempts: max(maximumAttempts, 1))
    }

    /// Saves a snapshot now, whatever the policy (the aggregate type must be snapshottable and a
    /// snapshot store configured; otherwise it does nothing). The snapshot is first restored in
    /// memory: one that would not give back the state is not saved.
    ///
    /// - Throws: ``RepositoryError/snapshotNotRestorable(_:reason:)``, ``PayloadCodingError``, or
    ///   the snapshot store's error (the embedded store refuses a snapshot over its event size limit).
    public func snapshot(_ aggregate: inout AggregateRoot<State>) async throws {
        guard let snapshotStore, let id = aggregate.id, aggregate.stagedEvents.isEmpty,
            let state = aggregate.state as? any SnapshottableAggregate
        else { return }
        let data = try PayloadCoding.encode(state)
        if let problem = try Self.restoringProblem(state, from: data) {
            throw RepositoryError.snapshotNotRestorable(stream(id), reason: problem)
        }
        try await snapshotStore.save(SerializedSnapshot(
            stream: stream(id), sequenceNumber: aggregate.sequenceNumber,
            schemaVersion: type(of: state).snapshotSchemaVersion, data: data))
        aggregate.snapshotSequenceNumber = aggregate.sequenceNumber
    }

    private func snapshotIfDue(_ aggregate: inout AggregateRoot<State>) async {
        guard let type = State.self as? any SnapshottableAggregate.Type,
            aggregate.sequenceNumber - aggregate.snapshotSequenceNumber >= type.snapshotInterval
        else { return }
        do {
            try await snapshot(&aggregate)
        } catch {
            // The events are committed; a missing snapshot only costs a longer load.
            logger.warning("saving a snapshot failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Queries

    /// The ids of this type's aggregates in the context's tenant.
    public func ids() async throws -> [String] {
        try await eventStore.aggregateIDs(origin: State.origin, aggregateType: State.aggregateType, tenantID: context.tenantID)
    }
}
