#if Postgres
import Dugong
import DugongPostgres
import DugongStore
import DugongTesting
import Foundation
import Glibc
import PostgresNIO

/// DugongPostgres on a local server of its own, durable (`fsync = on`, `synchronous_commit =
/// on`), against the bound: the same events written by a plain multi-row `INSERT` per commit
/// into the same table through PostgresNIO (one statement, no transaction block, no version
/// check, no idempotency). Systems interleaved per repetition, a fresh database each, medians.
///
///   swift run -c release --package-path Benchmarks --traits Postgres DugongBenchmarks --postgres [--quick] [--repetitions N]
enum PostgresBenchmark {
    static let flag = "--postgres"

    enum System: String, CaseIterable { case dugong = "DugongPostgres", bound = "plain INSERT (bound)" }

    enum Measure: String, CaseIterable {
        case appendHundred = "append, 100-event commits, 1 writer (events/s)"
        case appendHundredEight = "append, 100-event commits, 8 writers (events/s)"
        case singleEvents = "single-event commits, 64 writers (events/s)"
        case replayStream = "replay one aggregate of ~200 events (events/s)"
        case replayAll = "replay everything through the global log (events/s)"
    }

    struct Commit: Sendable {
        let stream: StreamID
        let events: [SerializedDomainEvent]
    }

    /// The workload: `events` in commits of 100 over `streams` aggregates, and single-event
    /// commits to their own aggregates.
    struct Workload: Sendable {
        let commits: [Commit]
        let singles: [Commit]
        let sampled: [StreamID]

        init(events: Int, singles: Int, streams: Int) {
            var generator = SyntheticEvents()
            var versions = [Int](repeating: 0, count: streams)
            func event(_ stream: StreamID, _ index: Int, _ sequence: Int) -> SerializedDomainEvent {
                let new = generator.event(stream: index, at: 1_732_000_000_000 + Int64(index))
                return SerializedDomainEvent(
                    origin: stream.origin, aggregateType: stream.aggregateType, eventType: new.type, version: 1, id: new.id,
                    aggregateID: stream.aggregateID, payload: new.data, sequenceNumber: sequence, timestamp: new.timestamp)
            }
            var commits: [Commit] = []
            for (number, start) in stride(from: 0, to: events, by: 100).enumerated() {
                let index = number % streams
                let stream = StreamID(origin: "bench", aggregateType: "Account", aggregateID: "a\(index)")
                let count = min(100, events - start)
                commits.append(Commit(stream: stream, events: (0..<count).map { event(stream, start + $0, versions[index] + 1 + $0) }))
                versions[index] += count
            }
            self.commits = commits
            self.singles = (0..<singles).map { index in
                let stream = StreamID(origin: "bench", aggregateType: "Single", aggregateID: "s\(index)")
                return Commit(stream: stream, events: [event(stream, index, 1)])
            }
            sampled = (0..<min(streams, 20)).map { StreamID(origin: "bench", aggregateType: "Account", aggregateID: "a\($0)") }
        }
    }

    static func run(quick: Bool, repetitions: Int) async throws {
        let workload = quick ? Workload(events: 2_000, singles: 200, streams: 10) : Workload(events: 40_000, singles: 3_000, streams: 200)
        if let url = ProcessInfo.processInfo.environment["DUGONG_BENCH_POSTGRES_URL"] {
            // A server of your own (it should be durable to compare with the numbers here).
            return try await run(workload, url: url, repetitions: repetitions)
        }
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-pg-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let server = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/postgres/server").path
        // system(3): the server inherits the output files; Foundation's Process would wait on it.
        guard Glibc.system("'\(server)' start '\(parent)/pg' durable > '\(parent)/url' 2> '\(parent)/error'") == 0 else {
            throw BenchmarkFailure("cannot start PostgreSQL: \((try? String(contentsOfFile: parent + "/error", encoding: .utf8)) ?? "")")
        }
        defer { _ = Glibc.system("'\(server)' stop '\(parent)/pg' > /dev/null 2>&1") }
        let url = try String(contentsOfFile: parent + "/url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try await run(workload, url: url, repetitions: repetitions)
    }

    static func run(_ workload: Workload, url: String, repetitions: Int) async throws {
        FileHandle.standardError.write(Data("PostgreSQL at \(url); \(workload.commits.count) commits of 100, \(workload.singles.count) single events\n".utf8))

        var results: [System: [Measure: [Double]]] = [:]
        for repetition in 1...repetitions {
            for system in System.allCases {
                FileHandle.standardError.write(Data("run \(repetition)/\(repetitions): \(system.rawValue)\n".utf8))
                for (measure, value) in try await measure(system, workload, server: url) {
                    results[system, default: [:]][measure, default: []].append(value)
                }
            }
        }
        func median(_ values: [Double]?) -> Double? {
            guard let values, !values.isEmpty else { return nil }
            return values.sorted()[values.count / 2]
        }
        print("| scenario (median of \(repetitions)) | DugongPostgres | plain INSERT (bound) | ratio |")
        print("|---|---:|---:|---:|")
        for measure in Measure.allCases {
            let ours = median(results[.dugong]?[measure])
            let bound = median(results[.bound]?[measure])
            let ratio = ours.flatMap { ours in bound.map { String(format: "%.2f×", ours / $0) } } ?? "–"
            print("| \(measure.rawValue) | \(ours.map { String(Int($0)) } ?? "–") | \(bound.map { String(Int($0)) } ?? "–") | \(ratio) |")
        }
    }

    static func measure(_ system: System, _ workload: Workload, server: String) async throws -> [Measure: Double] {
        let clock = ContinuousClock()
        var results: [Measure: Double] = [:]
        func rate(_ count: Int, _ time: Duration) -> Double { Double(count) / Runner.seconds(time) }
        let events = workload.commits.reduce(0) { $0 + $1.events.count }

        // One writer, then eight (each its own aggregates: no conflicts), then 64 single-event writers.
        for writers in [1, 8] {
            let database = try await PostgresTestDatabase.create(onServer: server)
            let store = PostgresEventStore(client: database.client)
            let time = try await clock.measure {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<writers {
                        let mine = workload.commits.filter { abs($0.stream.aggregateID.hashValue) % writers == writer }
                        group.addTask { for commit in mine { try await append(commit, system, store) } }
                    }
                    try await group.waitForAll()
                }
            }
            results[writers == 1 ? .appendHundred : .appendHundredEight] = rate(events, time)
            if writers == 1 && system == .dugong {
                try await store.waitForCommittedEvents()
                var read = 0
                let replay = try await clock.measure {
                    for stream in workload.sampled { read += try await store.read(stream).count }
                }
                results[.replayStream] = rate(read, replay)
                var all = 0
                let replayAll = try await clock.measure {
                    var cursor = LogCursor.start
                    while true {
                        let page = try await store.events(from: cursor, maxCount: 1000)
                        guard let last = page.last else { break }
                        all += page.count
                        cursor = last.next
                    }
                }
                guard all == events else { throw BenchmarkFailure("the global log held \(all) of \(events) events") }
                results[.replayAll] = rate(all, replayAll)
            }
            try await database.drop()
        }
        let database = try await PostgresTestDatabase.create(onServer: server)
        let store = PostgresEventStore(client: database.client)
        let singles = try await clock.measure {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<64 {
                    let mine = stride(from: writer, to: workload.singles.count, by: 64).map { workload.singles[$0] }
                    group.addTask { for commit in mine { try await append(commit, system, store) } }
                }
                try await group.waitForAll()
            }
        }
        results[.singleEvents] = rate(workload.singles.count, singles)
        try await database.drop()
        return results
    }

    static func append(_ commit: Commit, _ system: System, _ store: PostgresEventStore) async throws {
        switch system {
        case .dugong:
            try await store.append(commit.events, to: commit.stream, expecting: .exact(commit.events[0].sequenceNumber - 1))
        case .bound:
            try await plainInsert(commit, store.client)
        }
    }

    /// The bound: one multi-row INSERT of the same columns, as an application would write
    /// them without an event store.
    static func plainInsert(_ commit: Commit, _ client: PostgresClient) async throws {
        let name = AggregateStreamName.name(of: commit.stream)
        var bindings = PostgresBindings(capacity: commit.events.count * 10)
        var values: [String] = []
        for event in commit.events {
            let first = bindings.count + 1
            bindings.append(name)
            bindings.append(event.origin)
            bindings.append(event.aggregateType)
            bindings.append(event.aggregateID)
            bindings.append(Int64(event.sequenceNumber))
            bindings.append(event.id)
            bindings.append(event.eventType)
            bindings.append(Int32(event.version))
            bindings.append(event.timestamp.millisecondsSince1970)
            try bindings.append(event.payload)
            values.append("(" + (first..<(first + 10)).map { "$\($0)" }.joined(separator: ", ") + ")")
        }
        let sql = "INSERT INTO dugong_events (stream, origin, aggregate_type, aggregate_id, sequence_number, id, type, schema_version, timestamp_ms, data) VALUES "
            + values.joined(separator: ", ")
        try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: PostgresTestDatabase.quiet)
    }
}
#endif
