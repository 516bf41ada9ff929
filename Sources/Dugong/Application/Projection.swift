import Foundation
import Logging

/// Where a reader of the global log is: the cursor it reads on from (``GlobalEventLog/events(from:maxCount:)``).
///
/// A checkpoint is stored as events of a stream of its own (origin `$dugong`, aggregate type
/// `Checkpoint`, id the reader's name), so that saving it can be part of the same unit of work
/// as the reader's own appends: its effects and its progress commit together or not at all.
public struct Checkpoint: Sendable, Equatable {
    /// The origin of the framework's own streams; readers of the global log skip them.
    public static let origin = "$dugong"

    public let name: String
    /// Where the reader reads on from.
    public private(set) var cursor: LogCursor
    /// The sequence number of the checkpoint's last event (0: never saved).
    private var version: Int
    /// Saved by a rebuild before it empties the read model (`"rebuilding": true`), until its
    /// replay saves a checkpoint: a reader that finds it set empties the model again and
    /// replays from the start (the rebuild stopped between the two).
    public private(set) var isRebuilding = false

    static func stream(_ name: String) -> StreamID {
        StreamID(origin: origin, aggregateType: "Checkpoint", aggregateID: name)
    }

    /// The stored checkpoint of `name`, or ``LogCursor/start``.
    ///
    /// Stored as `{"position": P}`, with `"transaction": T` beside it when the cursor's
    /// transaction is not 0 (so checkpoints saved before cursors had transactions read as they
    /// were), and `"rebuilding": true` while a rebuild has not saved its first batch.
    public static func load(_ name: String, from store: any EventStore) async throws -> Checkpoint {
        guard let last = try await store.lastEvent(of: stream(name)) else {
            // Never saved, or its events hidden (the stream deleted): from the start, saved after
            // the version the stream keeps (saving after 0 was refused for ever).
            return Checkpoint(name: name, cursor: .start, version: try await store.streamVersion(of: stream(name)))
        }
        func number(_ value: JSONValue?) -> UInt64?? {
            switch value {
            case nil: .some(nil)
            case .int(let number)?: number >= 0 ? UInt64(number) : nil
            case .uint(let number)?: number
            default: nil
            }
        }
        guard let payload = last.payload, case .object(let object) = try JSONValue(json: payload),
            case .some(.some(let position)) = number(object["position"]), case .some(let transaction) = number(object["transaction"])
        else { throw CheckpointError.unreadable(name: name) }
        var checkpoint = Checkpoint(name: name, cursor: LogCursor(transaction: transaction ?? 0, position: position), version: last.sequenceNumber)
        checkpoint.isRebuilding = object["rebuilding"] == .bool(true)
        return checkpoint
    }

    /// Stages "read on from `cursor`" into `unit`, to commit with the reader's own appends.
    public mutating func advance(to cursor: LogCursor, in unit: inout UnitOfWork) throws {
        try advance(to: cursor, rebuilding: false, in: &unit)
    }

    private mutating func advance(to cursor: LogCursor, rebuilding: Bool, in unit: inout UnitOfWork) throws {
        var stored: JSONObject = ["position": Self.json(cursor.position)]
        if cursor.transaction != 0 { stored["transaction"] = Self.json(cursor.transaction) }
        if rebuilding { stored["rebuilding"] = .bool(true) }
        let event = SerializedDomainEvent(
            origin: Self.origin, aggregateType: "Checkpoint", eventType: "CheckpointSaved", version: 1, id: EventID.random(),
            aggregateID: name, payload: try JSONValue.object(stored).jsonData(),
            sequenceNumber: version + 1, timestamp: .currentMillisecond)
        unit.add(StreamAppend(stream: Self.stream(name), events: [event], expected: version == 0 ? .noStream : .exact(version)))
        self.cursor = cursor
        isRebuilding = rebuilding
        version += 1
    }

    private static func json(_ number: UInt64) -> JSONValue {
        number <= UInt64(Int.max) ? .int(Int(number)) : .uint(number)
    }

    /// Saves "read on from `cursor`" on its own. Every ``truncationInterval`` saves, the
    /// checkpoint's older events are truncated (only the last one matters).
    public mutating func save(_ cursor: LogCursor, to store: any TransactionalEventStore) async throws {
        try await save(cursor, rebuilding: false, to: store)
    }

    private mutating func save(_ cursor: LogCursor, rebuilding: Bool, to store: any TransactionalEventStore) async throws {
        var unit = UnitOfWork()
        var next = self
        try next.advance(to: cursor, rebuilding: rebuilding, in: &unit)
        try await unit.commit(to: store)
        self = next
        await truncateIfDue(in: store)
    }

    /// How often a checkpoint's stream is truncated to its last event.
    public static let truncationInterval = 100

    /// Truncates the checkpoint's stream before its last event when the interval is reached.
    /// Best effort: a failure leaves more history, nothing else.
    public func truncateIfDue(in store: any EventStore) async {
        guard version % Self.truncationInterval == 0, version > 1 else { return }
        try? await store.truncate(Self.stream(name), before: version)
    }

    /// Moves the cursor past events that need no record (the framework's own), without
    /// saving: saving would itself append such an event.
    mutating func skip(to cursor: LogCursor) {
        self.cursor = max(self.cursor, cursor)
    }

    /// A checkpoint back at ``LogCursor/start`` (for a rebuild); its stream keeps its history.
    public mutating func reset(in store: any TransactionalEventStore) async throws {
        try await save(.start, to: store)
    }

    /// A checkpoint back at ``LogCursor/start`` marked ``isRebuilding``: saved by a rebuild
    /// before it empties the read model.
    mutating func markRebuilding(in store: any TransactionalEventStore) async throws {
        try await save(.start, rebuilding: true, to: store)
    }
}

/// A checkpoint that cannot be used.
public enum CheckpointError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Its stream holds something else than checkpoints.
    case unreadable(name: String)
    /// It is past every event the store has committed: it was written by another store (one
    /// moved with `dugong export | dugong import` keeps its checkpoints, whose cursors mean
    /// nothing here). A reader that went on from it would wait for ever.
    case pastTheLog(name: String, cursor: LogCursor, end: LogCursor)
    /// A rewind needs the reader paused (``GlobalLogReader/pause()``).
    case notPaused(name: String)
    /// A rewind of a projection whose rebuild has not finished (its read model was emptied):
    /// only the start keeps the model whole; the next catch-up finishes the rebuild.
    case unfinishedRebuild(name: String)

    public var description: String {
        switch self {
        case .unreadable(let name): "the checkpoint of '\(name)' cannot be read"
        case .pastTheLog(let name, let cursor, let end):
            "the checkpoint of '\(name)' is at \(cursor), past every event of this store (its end is \(end)): it comes from another store; rebuild the reader, or delete its checkpoint stream"
        case .notPaused(let name): "'\(name)' is reading: pause it before moving its checkpoint"
        case .unfinishedRebuild(let name):
            "'\(name)' has a rebuild that has not finished (its read model was emptied): resume it to finish the rebuild, or rewind it to the start"
        }
    }
}

/// Why ``GlobalLogReader/waitUntilCaughtUp(with:timeout:)`` gave up.
public enum CatchUpError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The cursor is past every event the store has committed: another store's (one moved with
    /// `dugong export | dugong import` has other cursors), or the cursor of a commit that
    /// failed. The wait would never end.
    case notCommitted(name: String, cursor: LogCursor, end: LogCursor)
    /// The reader had not processed the event at `cursor` when `timeout` ran out: it had
    /// reached `reached`. It goes on catching up when asked again.
    case timedOut(name: String, cursor: LogCursor, reached: LogCursor, timeout: Duration)

    public var description: String {
        switch self {
        case .notCommitted(let name, let cursor, let end):
            "'\(name)' was asked to wait for the event at \(cursor), past every event this store has committed (its end is \(end)): the cursor comes from another store or from a commit that failed"
        case .timedOut(let name, let cursor, let reached, let timeout):
            "'\(name)' had not caught up with the event at \(cursor) after \(timeout) (it reads on from \(reached)): on a server store, an older transaction still open holds every reader back"
        }
    }
}

/// A read model fed from the global log, with its own checkpoint.
///
/// ```swift
/// let balances = Projection(name: "balances", store: store) { recorded in
///     guard let event = try registry.decode(recorded.event) else { return }
///     await model.apply(event)
/// }
/// try await balances.catchUp()                                // everything committed so far
/// if let cursor = result.cursor {                              // nil for a retry found already written
///     try await balances.waitUntilCaughtUp(with: cursor)        // read-your-writes
/// }
/// ```
///
/// Run one instance per projection name: two instances saving the same checkpoint meet a
/// concurrency conflict (``EventStoreError/conflict(stream:expected:actual:)``).
///
/// Delivery is at least once: the checkpoint is saved after each batch, so a crash between a
/// handler's effect and the next save delivers the rest of that batch again. A handler whose
/// effects are appends to the same store can commit them with the checkpoint in one unit of
/// work instead (see ``Checkpoint/advance(to:in:)``), which makes them exactly once.
public actor Projection: CheckpointedReader {
    public typealias Store = any TransactionalEventStore & GlobalEventLog

    public let name: String
    let store: Store
    public nonisolated var log: any GlobalEventLog { store }
    private let batchSize: Int
    private let handle: @Sendable (RecordedEvent) async throws -> Void
    private let reset: @Sendable () async throws -> Void
    var checkpoint: Checkpoint?
    public nonisolated var checkpointName: String { "projection:" + name }
    let gate = SerialGate()
    private let logger: Logger

    /// - Parameters:
    ///   - handle: called for every aggregate event in global order.
    ///   - reset: called by ``rebuild()`` before replaying from the start: empty the read model.
    public init(
        name: String, store: Store, batchSize: Int = 256, logger: Logger = Logger(label: "dugong.projection"),
        reset: @escaping @Sendable () async throws -> Void = {},
        handle: @escaping @Sendable (RecordedEvent) async throws -> Void
    ) {
        self.name = name
        self.store = store
        self.batchSize = max(batchSize, 1)
        self.handle = handle
        self.reset = reset
        self.logger = logger
    }

    /// Processes every event committed so far, saving the checkpoint after each batch.
    /// - Returns: the number of events handled.
    @discardableResult
    public func catchUp() async throws -> Int {
        try await catchingUp { try await catchUpAlone() }
    }

    private func catchUpAlone(modelEmptied: Bool = false) async throws -> Int {
        var checkpoint = try await loadedCheckpoint()
        if checkpoint.isRebuilding && !modelEmptied {
            // A rebuild stopped after it marked the checkpoint and before its replay saved one:
            // the model may hold part of the replay. Emptied again, replayed from the start.
            logger.info("finishing an interrupted rebuild from the start", metadata: ["projection": "\(name)"])
            try await reset()
        }
        var handled = 0
        while true {
            let batch = try await store.events(from: checkpoint.cursor, maxCount: batchSize)
            guard let last = batch.last else { break }
            var handledInBatch = 0
            for recorded in batch where recorded.event.origin != Checkpoint.origin {
                try await handle(recorded)
                handledInBatch += 1
            }
            if handledInBatch > 0 {
                try await checkpoint.save(last.next, to: store)
            } else {
                checkpoint.skip(to: last.next)
            }
            self.checkpoint = checkpoint
            handled += handledInBatch
            // Paused meanwhile: the pause waits for this catch-up, which ends here (under
            // steady writes it would never end).
            if gate.isPaused { break }
        }
        if checkpoint.isRebuilding {
            // Replayed to the end, or to a pause, without a save (no event to handle): the mark
            // is cleared at a cursor the model holds everything before.
            try await checkpoint.save(checkpoint.cursor, to: store)
            self.checkpoint = checkpoint
        }
        return handled
    }

    /// Empties the read model (the `reset` closure) and replays the log from the start. Waits,
    /// as a catch-up does, while the projection is paused; a pause made while it replays ends it
    /// after its batch, and the next catch-up after ``resume()`` finishes it (the count returned
    /// is then of the events replayed so far).
    @discardableResult
    public func rebuild() async throws -> Int {
        // Alone, as a catch-up: a catch-up under way would go on applying its batch to the
        // emptied model, and the rebuild would then apply it again.
        try await gate.run {
            // Read again (another instance may have moved it), kept only once marked: a failed
            // mark leaves the one it had (a checkpoint past the log, kept unchecked, would have
            // held the reader there).
            var checkpoint = try await freshCheckpoint(anywhere: true)
            // Marked first, then emptied: a rebuild that stops anywhere after the mark is
            // finished by the next catch-up (it emptied the model, then failed to save the
            // checkpoint, and the next catch-up went on from the old one over the empty model).
            try await checkpoint.markRebuilding(in: store)
            self.checkpoint = checkpoint
            try await reset()
            logger.info("rebuilding projection from the start", metadata: ["projection": "\(name)"])
            return try await catchUpAlone(modelEmptied: true)
        }
    }
}

/// A reader of the global log with a durable checkpoint: what ``Projection`` and
/// ``EventConsumer`` share.
public protocol GlobalLogReader: Actor {
    /// Its checkpoint's name: `projection:NAME` or `consumer:NAME`.
    nonisolated var checkpointName: String { get }
    /// The log it reads.
    nonisolated var log: any GlobalEventLog { get }
    /// Where it reads on from: past every event it has processed.
    func cursor() async throws -> LogCursor
    /// Processes every event committed so far (waiting while paused, or while another
    /// catch-up runs). - Returns: how many it handled.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    func catchUp() async throws -> Int
    /// Whether ``pause()`` holds it.
    var isPaused: Bool { get }
    /// Holds every later catch-up (``run()`` waits) until ``resume()``, and returns once a
    /// catch-up under way has finished (it ends after its batch): for moving its checkpoint
    /// (``rewind(to:)``) while nothing reads. A ``resume()`` made while it waits ends the pause.
    /// Cancelled while it waits, it returns at once, paused (the catch-up may still run: a
    /// rewind waits for it).
    ///
    /// Not from inside the reader's own handler: it would wait for the catch-up that called it
    /// (so would ``catchUp()`` and a rebuild).
    func pause() async
    /// Lets catch-ups run again.
    func resume()
    /// Moves the checkpoint to `cursor`, paused: the reader reads on from there once resumed.
    /// A ``Projection`` handles those events again (``LogCursor/start``: everything). An
    /// ``EventConsumer`` reads them again but skips the ones it consumed (their effects happened
    /// once, and its consumed marks stay): it handles only those it never did, such as the
    /// ones a rewind to a later cursor skipped. Its parked messages are run again by
    /// ``EventConsumer/replayParked()``.
    ///
    /// - Throws: ``CheckpointError/notPaused(name:)`` unless paused;
    ///   ``CheckpointError/pastTheLog(name:cursor:end:)`` for a cursor past every committed event;
    ///   ``CheckpointError/unfinishedRebuild(name:)`` for a projection whose rebuild has not
    ///   finished, unless to the start.
    func rewind(to cursor: LogCursor) async throws
}

extension GlobalLogReader {
    /// Returns once every event up to and including the one at `cursor` was processed:
    /// read-your-writes with the cursor of a commit (``AppendResult/cursor``).
    ///
    /// A server store shows a commit to readers only once every transaction on the server older
    /// than its own has ended, so a client that stops inside its transaction holds this wait
    /// for as long: give a `timeout` where that must not hold the caller.
    ///
    /// - Parameter timeout: the longest wait; nil (the default) waits as long as it takes.
    /// - Throws: ``CatchUpError/notCommitted(name:cursor:end:)`` for a cursor past every event
    ///   the store has committed (another store's, or of a commit that failed: the wait would
    ///   never end); ``CatchUpError/timedOut(name:cursor:reached:timeout:)`` once `timeout` has
    ///   passed; `CancellationError` when the task is cancelled.
    public func waitUntilCaughtUp(with cursor: LogCursor, timeout: Duration? = nil) async throws {
        guard try await self.cursor() <= cursor else { return }
        let end = try await log.committedEnd()
        guard cursor < end else { throw CatchUpError.notCommitted(name: checkpointName, cursor: cursor, end: end) }
        guard let timeout else { return try await catchUp(through: cursor) }
        precondition(timeout >= .zero, "a wait's timeout is not negative")
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await self.catchUp(through: cursor); return true }
            group.addTask { try await Task.sleep(for: timeout); return false }
            defer { group.cancelAll() }
            if try await group.next() == false {
                // The catch-up may have finished as the time ran out: caught up is not late.
                let reached = try await self.cursor()
                if reached <= cursor { throw CatchUpError.timedOut(name: checkpointName, cursor: cursor, reached: reached, timeout: timeout) }
            }
        }
    }

    /// Catches up and waits for new events until every event up to `cursor` was processed.
    private func catchUp(through cursor: LogCursor) async throws {
        while try await self.cursor() <= cursor {
            if try await catchUp() == 0, try await self.cursor() <= cursor {
                try await log.waitForEvents(from: try await self.cursor())
            }
            try Task.checkCancellation()
        }
    }

    /// Runs until the task is cancelled: catches up, then waits for new events.
    ///
    /// The store out of reach (a ``TransientStoreError``: a lost connection, a server
    /// restarting) does not end it: it tries again after 0.1 s, doubling the wait up to
    /// `longestWait`, and reads on from its checkpoint (a projection may handle the events of the
    /// batch it was in again, as after a crash). Any other error ends it.
    public func run(longestWait: Duration = .seconds(5)) async throws {
        var wait = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                _ = try await catchUp()
                try await log.waitForEvents(from: try await cursor())
                wait = .milliseconds(100)
            } catch is any TransientStoreError {
                try await Task.sleep(for: wait)
                wait = min(wait * 2, max(longestWait, .milliseconds(100)))
            }
        }
    }
}

/// What checkpointed readers share: their checkpoint and one catch-up at a time (an actor is
/// re-entered at every `await`).
protocol CheckpointedReader: GlobalLogReader {
    var store: Projection.Store { get }
    var checkpoint: Checkpoint? { get set }
    /// One catch-up (rebuild, rewind) at a time; a pause holds them.
    var gate: SerialGate { get }
}

extension CheckpointedReader {
    /// Where the reader reads on from.
    public func cursor() async throws -> LogCursor {
        // Read, not kept: only the gate's holder (a catch-up, rebuild or rewind) sets the
        // checkpoint. (Kept from here, a value read before a rewind's save replaced the rewound
        // one once both awaits ended, and the reader went back to its old cursor.)
        if let checkpoint { return checkpoint.cursor }
        return try await freshCheckpoint(anywhere: false).cursor
    }

    /// The checkpoint, loaded once (call it holding the gate). One past every event the store
    /// has committed (another store's) is refused unless `anywhere` (a rebuild, which starts
    /// over).
    func loadedCheckpoint(anywhere: Bool = false) async throws -> Checkpoint {
        if let checkpoint { return checkpoint }
        let loaded = try await freshCheckpoint(anywhere: anywhere)
        checkpoint = loaded
        return loaded
    }

    /// Runs `body`, a catch-up, alone (the gate). After a failed one the checkpoint is loaded
    /// again from the store next time: a save whose outcome is unknown (a connection lost
    /// during its commit) may have landed.
    func catchingUp(_ body: () async throws -> Int) async throws -> Int {
        try await gate.run {
            do {
                return try await body()
            } catch {
                checkpoint = nil
                throw error
            }
        }
    }

    /// The checkpoint as stored, not kept.
    func freshCheckpoint(anywhere: Bool) async throws -> Checkpoint {
        let loaded = try await Checkpoint.load(checkpointName, from: store)
        let end = try await store.committedEnd()
        guard anywhere || loaded.cursor <= end else {
            throw CheckpointError.pastTheLog(name: checkpointName, cursor: loaded.cursor, end: end)
        }
        return loaded
    }

    public var isPaused: Bool { gate.isPaused }

    public func pause() async {
        await gate.pause()
    }

    public func resume() {
        gate.resume()
    }

    public func rewind(to cursor: LogCursor) async throws {
        guard gate.isPaused else { throw CheckpointError.notPaused(name: checkpointName) }
        // Alone: a resume during the rewind lets catch-ups run only once the checkpoint moved.
        // (The pause is looked at again inside: a resume while it waited for the gate ends it.)
        try await gate.run(evenIfPaused: true) { try await rewindAlone(to: cursor) }
    }

    private func rewindAlone(to cursor: LogCursor) async throws {
        // Resumed while the rewind waited for a catch-up to end: a catch-up may have run since.
        guard gate.isPaused else { throw CheckpointError.notPaused(name: checkpointName) }
        // Read again (another instance may have moved it), kept only once saved.
        var checkpoint = try await freshCheckpoint(anywhere: true)
        if checkpoint.isRebuilding {
            // Its model was emptied for a rebuild that has not finished: moved anywhere but the
            // start (where the mark already has it), the rest of the log would go into an
            // emptied model. (A save here cleared the mark.)
            guard cursor == .start else { throw CheckpointError.unfinishedRebuild(name: checkpointName) }
            self.checkpoint = checkpoint
            return
        }
        let end = try await store.committedEnd()
        guard cursor <= end else { throw CheckpointError.pastTheLog(name: checkpointName, cursor: cursor, end: end) }
        try await checkpoint.save(cursor, to: store)
        self.checkpoint = checkpoint
    }
}
