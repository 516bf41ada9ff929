import Dugong
@testable import DugongExample
import DugongStore
import Foundation
import Synchronization
import Testing

/// "Total balance per owner", the read model of the tests.
final class BalancesByOwner: Sendable {
    private let totals = Mutex<[String: Int]>([:])
    private let owners = Mutex<[String: String]>([:])
    let handled = Mutex(0)

    func apply(_ recorded: RecordedEvent, registry: EventRegistry) throws {
        guard recorded.event.aggregateType == BankAccount.aggregateType, let envelope = try registry.decode(recorded.event) else { return }
        handled.withLock { $0 += 1 }
        let id = envelope.aggregateID
        switch envelope.event {
        case let opened as AccountOpened: owners.withLock { $0[id] = opened.owner }
        case let deposit as MoneyDeposited: add(deposit.amount, to: id)
        case let withdrawal as MoneyWithdrawn: add(-withdrawal.amount, to: id)
        default: break
        }
    }

    private func add(_ amount: Int, to id: String) {
        let owner = owners.withLock { $0[id] ?? "?" }
        totals.withLock { $0[owner, default: 0] += amount }
    }

    func reset() {
        totals.withLock { $0 = [:] }
        owners.withLock { $0 = [:] }
    }

    var snapshot: [String: Int] { totals.withLock { $0 } }
}

@Suite("Projections on every adapter")
struct ProjectionTests {
    static func make(_ adapter: Adapter) async throws -> (Projection.Store, @Sendable () -> Void) {
        let (store, _, release) = try await adapter.make()
        return (store as! Projection.Store, release)
    }

    /// A checkpoint another store wrote (a store moved with `dugong export | dugong import`
    /// keeps its checkpoints) that is past every event here is refused with a message, never
    /// waited on for ever; a rebuild starts over.
    @Test(arguments: Adapter.allCases)
    func aCheckpointFromAnotherStoreIsRefusedAndARebuildStartsOver(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        _ = try await accounts.create { try $0.open(owner: "Ada") }
        var foreign = try await Checkpoint.load("projection:moved", from: store)
        let elsewhere = LogCursor(transaction: UInt64.max / 2, position: 7)
        try await foreign.save(elsewhere, to: store)
        let handled = Mutex(0)
        let projection = Projection(name: "moved", store: store) { _ in handled.withLock { $0 += 1 } }
        await #expect {
            try await projection.catchUp()
        } throws: { error in
            guard case .pastTheLog(let name, let cursor, _) = error as? CheckpointError else { return false }
            return name == "projection:moved" && cursor == elsewhere && "\(error)".contains("another store")
        }
        #expect(handled.withLock { $0 } == 0)
        try await store.waitForCommittedEvents()
        #expect(try await projection.rebuild() == 1)
        #expect(handled.withLock { $0 } == 1)
    }

    /// A paused reader reads nothing until resumed (a catch-up meanwhile waits); paused, its
    /// checkpoint moves back (all again) or refuses a cursor past the log; not paused, it
    /// refuses to move.
    @Test(arguments: Adapter.allCases)
    func aPausedReaderReadsNothingAndRewinds(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        try await store.waitForCommittedEvents()
        let handled = Mutex(0)
        let projection = Projection(name: "paused", store: store) { recorded in
            if recorded.event.aggregateType == BankAccount.aggregateType { handled.withLock { $0 += 1 } }
        }
        #expect(try await projection.catchUp() == 1)
        await #expect(throws: CheckpointError.notPaused(name: "projection:paused")) { try await projection.rewind(to: .start) }

        await projection.pause()
        #expect(await projection.isPaused)
        try await accounts.update(id) { try $0.deposit(5) }
        try await store.waitForCommittedEvents()
        let waiting = Task { try await projection.catchUp() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(handled.withLock { $0 } == 1, "nothing read while paused")
        await #expect(throws: CheckpointError.self) { try await projection.rewind(to: LogCursor(transaction: UInt64.max / 2, position: 1)) }
        try await projection.rewind(to: .start)
        #expect(try await projection.cursor() == .start)
        await projection.resume()
        _ = try await waiting.value
        #expect(handled.withLock { $0 } == 3, "the first event again, then the deposit")
        #expect(await !projection.isPaused)
    }

    struct Stuck: Error {}

    /// The task's value, or `Stuck` when it has not finished within `limit` (a reader held for
    /// good would otherwise hang the test run; a time limit on the whole test trips when the
    /// PostgreSQL server is busy with the other suites).
    static func value<T: Sendable>(of task: Task<T, any Error>, within limit: Duration = .seconds(120)) async throws -> T {
        let finished = Mutex(false)
        Task {
            _ = await task.result
            finished.withLock { $0 = true }
        }
        let deadline = ContinuousClock.now + limit
        while !finished.withLock({ $0 }) {
            guard ContinuousClock.now < deadline else { throw Stuck() }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await task.value
    }

    /// Pauses and resumes made while a catch-up runs take effect in the order they were made: a
    /// resume while a pause waits for the catch-up is not lost (the reader stayed paused for
    /// good), and two pauses are ended by one resume.
    @Test(arguments: Adapter.allCases)
    func aResumeWhileAPauseWaitsIsNotLost(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        try await store.waitForCommittedEvents()
        let entered = Mutex(0)
        let (go, letGo) = AsyncStream.makeStream(of: Void.self)
        let projection = Projection(name: "held", store: store) { recorded in
            guard recorded.event.aggregateType == BankAccount.aggregateType else { return }
            let count = entered.withLock { $0 += 1; return $0 }
            if count == 1 { for await _ in go { break } }  // the first event waits to be let go
        }
        func whenHandlerEntered(_ count: Int) async throws {
            while entered.withLock({ $0 }) < count { try await Task.sleep(for: .milliseconds(5)) }
        }

        // A resume while the pause waits for the catch-up: the reader ends up running.
        let catchingUp = Task { try await projection.catchUp() }
        try await whenHandlerEntered(1)
        let pausing = Task { await projection.pause() }
        // (Until the task has run: a fixed wait could end first under load.)
        let pausedBy = ContinuousClock.now + .seconds(20)
        while await !projection.isPaused, ContinuousClock.now < pausedBy { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await projection.isPaused, "paused at once, though the catch-up runs on")
        await projection.resume()
        letGo.yield()
        #expect(try await catchingUp.value == 1)
        await pausing.value
        #expect(await !projection.isPaused, "the resume made after the pause holds")
        try await accounts.update(id) { try $0.deposit(5) }
        try await store.waitForCommittedEvents()
        let reading = Task { try await projection.catchUp() }
        try await whenHandlerEntered(2)
        #expect(try await Self.value(of: reading) == 1)

        // Two pauses, one resume: not paused.
        await projection.pause()
        await projection.pause()
        #expect(await projection.isPaused)
        await projection.resume()
        #expect(await !projection.isPaused)
        #expect(try await projection.catchUp() == 0)
    }

    /// A catch-up waiting on a paused reader ends when its task is cancelled, and does not run
    /// later (found by a review: it waited until a resume, holding a graceful shutdown, then ran).
    @Test(arguments: Adapter.allCases)
    func aCatchUpWaitingOnAPauseEndsWhenCancelled(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        _ = try await accounts.create { try $0.open(owner: "Ada") }
        try await store.waitForCommittedEvents()
        let handled = Mutex(0)
        let projection = Projection(name: "cancelled", store: store) { recorded in
            if recorded.event.aggregateType == BankAccount.aggregateType { handled.withLock { $0 += 1 } }
        }
        await projection.pause()
        let waiting = Task { try await projection.catchUp() }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await Self.value(of: waiting) }
        await projection.resume()
        try await Task.sleep(for: .milliseconds(100))
        #expect(handled.withLock { $0 } == 0, "the cancelled catch-up did not run")
        #expect(try await projection.catchUp() == 1)
    }

    /// A pause returns while writers keep the log growing (found by a review: the catch-up
    /// under way read on until a batch came back empty, which steady writes never let happen,
    /// and the pause waited for it for ever). Here the handler itself appends an event for each
    /// it handles.
    @Test(arguments: Adapter.allCases)
    func aPauseReturnsWhileTheLogKeepsGrowing(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let feed = StreamID(origin: "tests", aggregateType: "Feed", aggregateID: "growing")
        @Sendable func item(_ number: Int) -> SerializedDomainEvent {
            SerializedDomainEvent(
                origin: feed.origin, aggregateType: feed.aggregateType, eventType: "Item", version: 1, id: UUID(), aggregateID: feed.aggregateID,
                payload: Data("{}".utf8), sequenceNumber: number, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
        }
        _ = try await store.append([item(1)], to: feed, expecting: .noStream)
        try await store.waitForCommittedEvents()
        let handled = Mutex(0)
        let cap = 3_000
        let reader = Mutex<Projection?>(nil)
        let projection = Projection(name: "growing", store: store, batchSize: 5) { recorded in
            guard recorded.event.aggregateType == "Feed" else { return }
            let count = handled.withLock { $0 += 1; return $0 }
            guard count < cap else { return }
            // From the tenth on, each waits for the pause to be asked for (whatever the
            // machine's speed, the pause then comes while the log still grows).
            if count >= 10, let projection = reader.withLock({ $0 }) {
                while !(await projection.isPaused) { try await Task.sleep(for: .milliseconds(1)) }
            }
            _ = try await store.append([item(recorded.event.sequenceNumber + 1)], to: feed, expecting: .exact(recorded.event.sequenceNumber))
            try await store.waitForCommittedEvents()
        }
        reader.withLock { $0 = projection }
        let reading = Task { try await projection.catchUp() }
        while handled.withLock({ $0 }) < 10 { try await Task.sleep(for: .milliseconds(5)) }
        await projection.pause()
        let atPause = handled.withLock { $0 }
        #expect(atPause < cap / 2, "the pause waited for \(atPause) events")
        _ = try await Self.value(of: reading)
        #expect(await projection.isPaused)
        await projection.resume()
    }

    @Test(arguments: Adapter.allCases)
    func totalsPerOwnerCatchUpResumeAndRebuild(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let registry = try EventRegistry(BankAccount.self)
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: registry)
        let ada1 = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        let ada2 = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        let bob = try #require(try await accounts.create { try $0.open(owner: "Bob") }.id)
        try await accounts.update(ada1) { try $0.deposit(100) }
        try await accounts.update(ada2) { try $0.deposit(50) }
        try await accounts.update(bob) { try $0.deposit(70) }
        try await accounts.update(ada1) { try $0.withdraw(30) }

        let model = BalancesByOwner()
        let projection = Projection(name: "balances", store: store, batchSize: 3, reset: { model.reset() }) { recorded in
            try model.apply(recorded, registry: registry)
        }
        try await store.waitForCommittedEvents()
        #expect(try await projection.catchUp() == 7)
        #expect(model.snapshot == ["Ada": 120, "Bob": 70])

        // Read your writes: wait for the position of a commit.
        var account = try #require(try await accounts.load(bob))
        try account.execute { try $0.deposit(5) }
        let result = try #require(try await accounts.commit(&account))
        try await projection.waitUntilCaughtUp(with: try #require(result.cursor))
        #expect(model.snapshot["Bob"] == 75)

        // A new instance resumes from the checkpoint: only new events are handled.
        try await accounts.update(ada2) { try $0.deposit(1) }
        let before = model.handled.withLock { $0 }
        let restarted = Projection(name: "balances", store: store) { recorded in try model.apply(recorded, registry: registry) }
        try await store.waitForCommittedEvents()
        #expect(try await restarted.catchUp() == 1)
        #expect(model.handled.withLock { $0 } == before + 1 && model.snapshot["Ada"] == 121)

        // Rebuilding replays everything into an emptied model, to the same totals.
        #expect(try await projection.rebuild() == 9)
        #expect(model.snapshot == ["Ada": 121, "Bob": 75])
    }

    @Test(arguments: Adapter.allCases)
    func aRunningProjectionFollowsNewCommitsUntilCancelled(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let registry = try EventRegistry(BankAccount.self)
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: registry)
        let model = BalancesByOwner()
        let projection = Projection(name: "live", store: store) { recorded in try model.apply(recorded, registry: registry) }
        let running = Task { try await projection.run() }
        let id = try #require(try await accounts.create { try $0.open(owner: "Zoë") }.id)
        var account = try #require(try await accounts.load(id))
        try account.execute { try $0.deposit(42) }
        let result = try #require(try await accounts.commit(&account))
        try await projection.waitUntilCaughtUp(with: try #require(result.cursor))
        #expect(model.snapshot == ["Zoë": 42])
        running.cancel()
        _ = await running.result
    }

    /// Read-your-writes never waits for ever: a cursor past every committed event (another
    /// store's) is refused at once, and a timeout ends a wait that a paused reader (or, on a
    /// server, an older open transaction) holds; the same reader catches up once let go.
    @Test(arguments: Adapter.allCases)
    func waitingToCatchUpEndsForACursorPastTheLogAndAtItsTimeout(_ adapter: Adapter) async throws {
        let (store, release) = try await Self.make(adapter)
        defer { release() }
        let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
        let handled = Mutex(0)
        let projection = Projection(name: "waits", store: store) { _ in handled.withLock { $0 += 1 } }
        let id = try #require(try await accounts.create { try $0.open(owner: "Ada") }.id)
        var account = try #require(try await accounts.load(id))
        try account.execute { try $0.deposit(1) }
        let cursor = try #require(try await accounts.commit(&account)?.cursor)

        let elsewhere = LogCursor(transaction: cursor.transaction + 1_000_000, position: cursor.position + 1_000_000)
        let start = ContinuousClock.now
        do {
            try await projection.waitUntilCaughtUp(with: elsewhere)
            Issue.record("a cursor past the log was waited for")
        } catch let error as CatchUpError {
            guard case .notCommitted(let name, let asked, let end) = error else { throw error }
            #expect(name == "projection:waits" && asked == elsewhere && end <= elsewhere)
            #expect("\(error)".contains("past every event this store has committed"))
        }
        #expect(handled.withLock { $0 } == 0, "refused before reading")

        await projection.pause()
        do {
            try await projection.waitUntilCaughtUp(with: cursor, timeout: .milliseconds(300))
            Issue.record("a paused reader caught up")
        } catch let error as CatchUpError {
            guard case .timedOut(let name, let asked, let reached, let timeout) = error else { throw error }
            #expect(name == "projection:waits" && asked == cursor && reached <= cursor && timeout == .milliseconds(300))
            #expect("\(error)".contains("had not caught up"))
        }
        #expect(ContinuousClock.now - start >= .milliseconds(300) && ContinuousClock.now - start < .seconds(20))
        await projection.resume()
        try await projection.waitUntilCaughtUp(with: cursor, timeout: .seconds(30))
        let reached = try await projection.cursor()
        #expect(handled.withLock { $0 } == 2 && reached > cursor)
        // Already past it: returns at once, whatever the timeout.
        try await projection.waitUntilCaughtUp(with: cursor, timeout: .zero)
    }

    /// A read-only store beside a writer in another process: its committed end takes in the
    /// writer's commits (it refreshes), so a wait for a commit's cursor is not refused as past
    /// the log, and a reader that follows catches up with it.
    @Test func aReadOnlyStoreBesideAWriterWaitsForTheWritersCursor() async throws {
        let directory = TemporaryDirectory("projection-follower")
        defer { directory.remove() }
        let writer = try EventLog.open(at: directory.path, options: .init(createIfMissing: true))
        defer { writer.close() }
        let writing = EventLogStore(log: writer)
        var options = EventLog.Options()
        options.readOnly = true
        let follower = EventLogStore(log: try EventLog.open(at: directory.path, options: options))
        defer { follower.log.close() }
        #expect(try await follower.committedEnd() == .start)
        let accounts = AggregateRepository<BankAccount>(eventStore: writing, registry: try EventRegistry(BankAccount.self))
        var account = AggregateRoot<BankAccount>()
        try account.create { try $0.open(owner: "Ada") }
        let cursor = try #require(try await accounts.commit(&account)?.cursor)
        #expect(try await follower.committedEnd() > cursor, "the writer's commit is committed for the follower too")
        #expect(try await follower.events(from: .start, maxCount: 10).map(\.cursor) == [cursor])
    }
}
