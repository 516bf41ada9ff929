#if Postgres
import Dugong
import DugongPostgres
import DugongTesting
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Connections the server kills at random, as a failover, a restart or an administrator does,
/// and a server that crashes and restarts: a model of what was acknowledged checked against
/// what the store and its readers give.
@Suite("PostgreSQL: connections killed and servers crashed at random", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresFaultTests {
    /// Commits per writer (`DUGONG_POSTGRES_FAULT_COMMITS`; 125 by default, 8 writers; 2,000 by hand).
    static let commitsPerWriter = Int(ProcessInfo.processInfo.environment["DUGONG_POSTGRES_FAULT_COMMITS"] ?? "") ?? 125
    static let writers = 8
    static let streamsPerWriter = 3

    /// Eight writers append (one stream, or two streams in one transaction; every kind of
    /// expected version; single-stream appends of several writers share transactions) while a killer terminates random backends of the database every few
    /// milliseconds: writers' statements, open transactions, the readers' and the notification
    /// listener's connections. A writer whose append threw does what a careful client does: it
    /// sends the same append again (same ids, same sequence numbers) until it succeeds. Two
    /// readers follow the global log meanwhile, one polling and one waiting for notifications.
    ///
    /// Then: every stream holds exactly the events acknowledged, byte for byte and in order; an
    /// append answered on its first try was written (not a duplicate); a retried append is
    /// written or a duplicate as a whole, never split between its streams; the global log holds
    /// each acknowledged event once, each stream's in ascending order, and both readers read
    /// exactly that log, in the same order; the cursor an append was answered with is its last
    /// event's in that log; no append was refused for a conflict it did not make.
    // (The limit only guards against a hang: on a loaded machine, beside the server-crash test,
    // a run took 4 minutes, its 1,000 commits all checked.)
    @Test(.timeLimit(.minutes(10))) func killedConnectionsLoseNoAcknowledgedEventAndReadersSkipNone() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["DUGONG_POSTGRES_FAULT_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        try await TestServer.withFreshDatabase { client in
            try await Self.appendAndFollow(client, seed: seed, commitsPerWriter: Self.commitsPerWriter, faults: "backends killed") { stop in
                await Self.killBackends(client, seed: seed, until: stop)
            }
        }
    }

    /// Server crashes per run at most (`DUGONG_POSTGRES_CRASHES`; 4 by default, 40 by hand);
    /// the writers make 40 commits each per crash.
    static let crashes = Int(ProcessInfo.processInfo.environment["DUGONG_POSTGRES_CRASHES"] ?? "") ?? 4

    /// The same writers and readers on a server of the test's own that crashes (an immediate
    /// stop: every backend ends at once, committed or not, answered or not) and restarts, again
    /// and again; the same checks. Unlike a terminated backend, a crash can end one whose
    /// `COMMIT` has committed and not been answered: its append must say it may have been
    /// committed, and its retry must find it written.
    @Test(.timeLimit(.minutes(10))) func serverCrashesLoseNoAcknowledgedEventAndReadersSkipNone() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["DUGONG_POSTGRES_FAULT_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        try await OwnServer.with { url, directory in
            let database = try await PostgresTestDatabase.create(onServer: url)
            let result: Result<Void, any Error>
            do {
                result = .success(
                    try await Self.appendAndFollow(database.client, seed: seed, commitsPerWriter: 40 * Self.crashes, faults: "server crashes") { stop in
                        await Self.crashServer(in: directory, seed: seed, until: stop)
                    })
            } catch {
                result = .failure(error)
            }
            try await database.drop()
            try result.get()
        }
    }

    /// The writers and the readers, with `faults` running until the writers are done (it
    /// returns how many faults it made); then the checks.
    static func appendAndFollow(
        _ client: PostgresClient, seed: UInt64, commitsPerWriter: Int, faults name: String, _ faults: @escaping @Sendable (Flag) async -> Int
    ) async throws {
        let store = PostgresEventStore(client: client, pollInterval: .milliseconds(20))
        let stop = Flag()
        let killer = Task { await faults(stop) }
        let followers = [false, true].map { waits in Task { await Self.follow(store, waitingForNotifications: waits) } }
        var outcomes: [WriterOutcome] = []
        do {
            try await withThrowingTaskGroup(of: WriterOutcome.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask { try await Self.write(store, writer: writer, seed: seed, commits: commitsPerWriter) }
                }
                for try await outcome in group { outcomes.append(outcome) }
            }
        } catch {
            stop.set()
            for follower in followers { follower.cancel() }
            _ = await killer.value
            throw error
        }
        stop.set()
        let kills = await killer.value

        // The readers stop at a last event appended once the faults have stopped.
        let sentinelStream = StreamID(origin: "faults", aggregateType: "End", aggregateID: "end")
        let sentinel = Self.event(of: sentinelStream, sequenceNumber: 1, payload: Data("end".utf8))
        // The pool may still hold connections killed last: the first use of each fails.
        let last = try await Self.retrying { try await store.append([sentinel], to: sentinelStream, expecting: .noStream) }
        try await Self.retrying { try await GlobalEventLogContract.settle(store, past: last.cursor) }
        var log: [RecordedEvent] = []
        var cursor = LogCursor.start
        while true {
            let batch = try await Self.retrying { try await store.events(from: cursor, maxCount: 500) }
            guard let next = batch.last?.next else { break }
            log += batch
            cursor = next
        }
        let read = [await followers[0].value, await followers[1].value]

        let context = "seed \(seed) (replay with DUGONG_POSTGRES_FAULT_SEED=\(seed))"
        var acknowledged: [StreamID: [SerializedDomainEvent]] = [:]
        for outcome in outcomes { acknowledged.merge(outcome.streams) { _, new in new } }
        for (stream, events) in acknowledged {
            let stored = try await Self.retrying { try await store.read(stream) }
            let differs = zip(stored, events).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(stored.count == events.count && differs == nil,
                    "\(stream): \(stored.count) events stored, \(events.count) acknowledged, first difference at \(differs.map { "sequence number \($0 + 1)" } ?? "none"); \(context)")
        }
        let expectedIDs = Set(acknowledged.values.joined().map(\.id)).union([sentinel.id])
        #expect(log.count == expectedIDs.count && Set(log.map(\.event.id)) == expectedIDs,
                "the global log holds \(log.count) events, \(expectedIDs.count) acknowledged; \(context)")
        var lastSequence: [StreamID: Int] = [:]
        for recorded in log {
            let previous = lastSequence[recorded.event.stream, default: 0]
            #expect(recorded.event.sequenceNumber == previous + 1, "\(recorded.event.stream) out of order in the global log; \(context)")
            lastSequence[recorded.event.stream] = recorded.event.sequenceNumber
        }
        for (index, events) in read.enumerated() {
            let name = index == 0 ? "the polling reader" : "the waiting reader"
            #expect(events.map(\.cursor) == log.map(\.cursor) && events.map(\.event) == log.map(\.event),
                    "\(name) read \(events.count) events, the log holds \(log.count); \(context)")
        }
        let total = outcomes.reduce(into: WriterOutcome()) { $0.add($1) }
        let logged = Dictionary(uniqueKeysWithValues: log.map { ($0.event.id, $0.cursor) })
        let misplaced = total.cursors.filter { logged[$0.key] != $0.value }
        #expect(misplaced.isEmpty, "\(misplaced.count) appends answered with another cursor than their last event's, e.g. \(misplaced.first.map { "\($0.value) for \($0.key), logged at \(logged[$0.key].map { "\($0)" } ?? "nowhere")" } ?? ""); \(context)")
        #expect(total.refusals.isEmpty, "appends refused with a conflict no one made: \(total.refusals); \(context)")
        print("""
            PostgreSQL faults, \(context): \(total.commits) commits (\(total.transactions) of two streams), \
            \(total.cursors.count) cursors checked, \(kills) \(name), \(total.failedAttempts) attempts failed, \(total.retried) commits retried \
            (\(total.duplicates) found already written), \(acknowledged.values.joined().count) events; \
            errors: \(total.errors.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
            """)
        #expect(kills > 0 && total.failedAttempts > 0, "no append failed: the test tested nothing")
    }

    // MARK: The model's parts

    /// `body`, again after an error of a lost connection (at most 20 times).
    static func retrying<R>(_ body: () async throws -> R) async throws -> R {
        for _ in 0..<19 {
            do {
                return try await body()
            } catch let error as EventStoreError {
                throw error  // a decision, not a lost connection
            } catch {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        return try await body()
    }

    /// What one writer did: its streams' acknowledged events, and counts.
    struct WriterOutcome: Sendable {
        var streams: [StreamID: [SerializedDomainEvent]] = [:]
        var commits = 0
        var transactions = 0
        var failedAttempts = 0
        var retried = 0
        var duplicates = 0
        var errors: [String: Int] = [:]
        var refusals: [String] = []
        /// The cursor each written append was answered with, by its last event's id.
        var cursors: [UUID: LogCursor] = [:]

        mutating func add(_ other: WriterOutcome) {
            cursors.merge(other.cursors) { first, _ in first }
            commits += other.commits
            transactions += other.transactions
            failedAttempts += other.failedAttempts
            retried += other.retried
            duplicates += other.duplicates
            errors.merge(other.errors, uniquingKeysWith: +)
            refusals += other.refusals
        }
    }

    final class Flag: Sendable {
        private let raised = Atomic(false)
        func set() { raised.store(true, ordering: .releasing) }
        var isSet: Bool { raised.load(ordering: .acquiring) }
    }

    static func event(of stream: StreamID, sequenceNumber: Int, payload: Data?) -> SerializedDomainEvent {
        SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Happened", version: 1, id: UUID(),
            aggregateID: stream.aggregateID, payload: payload, sequenceNumber: sequenceNumber,
            timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(sequenceNumber)))
    }

    /// One writer's commits to its own streams (no one else writes them: every conflict is a
    /// fault of the store), each sent again after a failure until it is answered.
    static func write(_ store: PostgresEventStore, writer: Int, seed: UInt64, commits: Int) async throws -> WriterOutcome {
        var random = SeededRandom(seed: seed &+ UInt64(writer) &* 7919)
        let streams = (0..<streamsPerWriter).map { StreamID(origin: "faults", aggregateType: "Account", aggregateID: "w\(writer)-\($0)") }
        var outcome = WriterOutcome()
        for stream in streams { outcome.streams[stream] = [] }
        for _ in 0..<commits {
            let first = random.below(streams.count)
            let chosen = random.below(10) < 3 ? [first, (first + 1 + random.below(streams.count - 1)) % streams.count] : [first]
            let appends = chosen.map { index in
                let stream = streams[index]
                let version = outcome.streams[stream]!.count
                let events = (1...(1 + random.below(4))).map { offset in
                    let bytes = (0..<random.below(300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                    return event(of: stream, sequenceNumber: version + offset, payload: random.below(8) == 0 ? nil : Data(bytes))
                }
                let expectations: [ExpectedVersion] = version == 0 ? [.noStream, .exact(0), .any] : [.exact(version), .streamExists, .any]
                return StreamAppend(stream: stream, events: events, expected: expectations[random.below(expectations.count)])
            }
            var attempts = 0
            let deadline = ContinuousClock.now + .seconds(60)  // (a server restarting takes a while)
            // Whether a failed attempt may have committed: only a lost connection that says
            // "nothing was committed" rules it out.
            var mayHaveCommitted = false
            while true {
                attempts += 1
                do {
                    let results = try await store.append(appends)
                    #expect(results.count == appends.count)
                    for (append, result) in zip(appends, results) {
                        #expect(result.version == append.events.last!.sequenceNumber, "\(append.stream): version \(result.version) after an append through \(append.events.last!.sequenceNumber)")
                        if !result.wasDuplicate {
                            #expect(result.cursor != nil, "\(append.stream): written without a cursor")
                            outcome.cursors[append.events.last!.id] = result.cursor
                        }
                    }
                    if attempts == 1 {
                        #expect(results.allSatisfy { !$0.wasDuplicate }, "a first attempt found its events already written")
                    } else {
                        outcome.retried += 1
                        let duplicates = results.filter(\.wasDuplicate).count
                        #expect(duplicates == 0 || duplicates == results.count, "a transaction's appends were written in part: \(results)")
                        #expect(duplicates == 0 || mayHaveCommitted, "a retry after failures that said nothing was committed found its events written")
                        if duplicates > 0 { outcome.duplicates += 1 }
                    }
                    break
                } catch let error as EventStoreError {
                    outcome.refusals.append("\(error)")
                    // The model cannot go on past a refusal it did not expect.
                    return outcome
                } catch {
                    outcome.failedAttempts += 1
                    if let lost = error as? PostgresConnectionLost {
                        outcome.errors[lost.mayHaveCommitted ? "connection lost during a commit" : "connection lost, nothing committed", default: 0] += 1
                        mayHaveCommitted = mayHaveCommitted || lost.mayHaveCommitted
                    } else {
                        outcome.errors["\(type(of: error))", default: 0] += 1
                        mayHaveCommitted = true
                    }
                    guard ContinuousClock.now < deadline else { throw error }
                    try await Task.sleep(for: .milliseconds(2 + random.below(10)))
                }
            }
            for append in appends { outcome.streams[append.stream]! += append.events }
            outcome.commits += 1
            if appends.count > 1 { outcome.transactions += 1 }
        }
        return outcome
    }

    /// Terminates a random backend of the test's database (other than its own) every 2–25 ms
    /// until `stop`; one time in three only a backend idle in a transaction, one time in three
    /// only one running a `COMMIT` (whose answer is then lost: the append may have been
    /// committed). Returns how many it terminated.
    static func killBackends(_ client: PostgresClient, seed: UInt64, until stop: Flag) async -> Int {
        var random = SeededRandom(seed: seed ^ 0x6B69_6C6C)
        var kills = 0
        while !stop.isSet {
            try? await Task.sleep(for: .milliseconds(2 + random.below(24)))
            let state = switch random.below(3) {
            case 0: "AND state = 'idle in transaction'"
            case 1: "AND state = 'active' AND query = 'COMMIT;'"
            default: ""
            }
            let query = PostgresQuery(unsafeSQL: """
                SELECT count(*) FROM (
                  SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \(state)
                  ORDER BY random() LIMIT 1) AS chosen
                WHERE killed
                """)
            do {
                // (Not PostgresNIO's `query`: on a connection just closed it waits for ever.)
                kills += try await client.withRows(query, logger: PostgresTestDatabase.quiet) { rows in
                    var killed = 0
                    for try await count in rows.decode(Int64.self) { killed += Int(count) }
                    return killed
                }
            } catch {
                // The killer's own connection may be one a kill left dead in the pool.
            }
        }
        return kills
    }

    /// Crashes the server of `directory` and starts it again (``OwnServer``) every 0.2–1 s
    /// until `stop`, at most ``crashes`` times. Returns how many crashes it made.
    static func crashServer(in directory: String, seed: UInt64, until stop: Flag) async -> Int {
        var random = SeededRandom(seed: seed ^ 0x63_7261_7368)
        var crashes = 0
        while !stop.isSet, crashes < Self.crashes {
            try? await Task.sleep(for: .milliseconds(200 + random.below(800)))
            guard !stop.isSet else { break }
            // On a thread of its own: the script blocks for the restart's second or so, which
            // would hold one of the few threads that run the writers' tasks.
            let restarted = await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
                Thread { done.resume(returning: (try? OwnServer.run("crash-restart", directory)) != nil) }.start()
            }
            #expect(restarted, "the server did not restart")
            guard restarted else { break }
            crashes += 1
        }
        return crashes
    }

    /// Reads the global log from its start, as a projection does, through every failure,
    /// until it has read the sentinel (stream `faults:End/end`).
    static func follow(_ store: PostgresEventStore, waitingForNotifications: Bool) async -> [RecordedEvent] {
        var read: [RecordedEvent] = []
        var cursor = LogCursor.start
        while read.last?.event.aggregateType != "End", !Task.isCancelled {
            do {
                if waitingForNotifications { try await store.waitForEvents(from: cursor) }
                let batch = try await store.events(from: cursor, maxCount: 1 + read.count % 23)
                if let next = batch.last?.next {
                    read += batch
                    cursor = next
                } else if !waitingForNotifications {
                    try await Task.sleep(for: .milliseconds(3))
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        return read
    }
}
#endif
