import DugongStore
import Foundation

/// The scenarios, each measured per system and reported as a number and as ratios.
enum Scenario: String, CaseIterable, Codable, Sendable {
    case appendHundred = "append-100"
    case appendThousand = "append-1000"
    case singleEventWriters = "single-event-commits"
    case replayStream = "replay-stream"
    case replayStreamInterleaved = "replay-stream-interleaved"
    case replayAll = "replay-all"
    case bytesPerEvent = "bytes-per-event"
    case memoryPerEvent = "memory-per-event"

    var title: String {
        switch self {
        case .appendHundred: "append, 100-event commits, durable (events/s)"
        case .appendThousand: "append, 1,000-event commits, durable (events/s)"
        case .singleEventWriters: "single-event commits, durable; DugongStore from 64 writers, peers one at a time (events/s)"
        case .replayStream: "replay one stream of ~200 events written in commits of 100 (events/s)"
        case .replayStreamInterleaved: "replay one stream of ~200 events written in commits of 2, interleaved (events/s)"
        case .replayAll: "replay everything from position 0 (events/s)"
        case .bytesPerEvent: "bytes on disk per event after close"
        case .memoryPerEvent: "resident memory per event held after open (bytes: heap / heap + mapped)"
        }
    }

    var higherIsBetter: Bool { self != .bytesPerEvent && self != .memoryPerEvent }
}

/// How big a run is.
struct RunSize: Sendable {
    var events: Int
    var singleEvents: Int
    var streams: Int
    var sampledStreams: Int
    var repetitions: Int

    static let full = RunSize(events: 200_000, singleEvents: 5_000, streams: 1_000, sampledStreams: 200, repetitions: 3)
    static let quick = RunSize(events: 3_000, singleEvents: 100, streams: 30, sampledStreams: 10, repetitions: 1)
}

/// The deterministic workload, generated once and shared by every system.
struct Workload: Sendable {
    let size: RunSize
    let commitsOf100: [WorkloadCommit]
    let commitsOf1000: [WorkloadCommit]
    let commitsOf2: [WorkloadCommit]
    let singleEventCommits: [WorkloadCommit]
    /// Streams read back in the replay-stream scenarios, and how many events each holds.
    let sampledStreams: [(String, Int)]

    init(size: RunSize) {
        self.size = size
        var generator = SyntheticEvents()
        let events = (0..<size.events).map { index in
            generator.event(stream: (index / 100) % size.streams, at: 1_732_000_000_000 + Int64(index))
        }
        func commits(of count: Int) -> [WorkloadCommit] {
            stride(from: 0, to: events.count, by: count).enumerated().map { commit, start in
                WorkloadCommit(stream: "account/\(commit % size.streams)", events: Array(events[start..<min(start + count, events.count)]))
            }
        }
        commitsOf100 = commits(of: 100)
        commitsOf1000 = commits(of: 1000)
        commitsOf2 = commits(of: 2)
        singleEventCommits = (0..<size.singleEvents).map { index in
            WorkloadCommit(stream: "single/\(index % size.streams)", events: [generator.event(stream: index, at: Int64(index))])
        }
        var counts: [String: Int] = [:]
        for commit in commitsOf100 { counts[commit.stream, default: 0] += commit.events.count }
        var picked: [(String, Int)] = []
        for index in 0..<size.sampledStreams {
            let stream = "account/\(Int(generator.next() % UInt64(size.streams)))"
            picked.append((stream, counts[stream] ?? 0))
            _ = index
        }
        sampledStreams = picked
    }

    /// Events per stream in the commits-of-2 dataset, which spreads the same events differently.
    func interleavedCount(of stream: String) -> Int {
        commitsOf2.filter { $0.stream == stream }.reduce(0) { $0 + $1.events.count }
    }
}

/// Runs every scenario on one system, in fresh directories under `root`.
struct Runner {
    let workload: Workload
    let root: String
    let clock = ContinuousClock()

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    func freshDirectory(_ label: String) -> String {
        let path = root + "/" + label + "-" + UUID().uuidString.prefix(8)
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    func run(_ kind: SystemKind) async throws -> [Scenario: Double] {
        var results: [Scenario: Double] = [:]
        let events = Double(workload.size.events)

        // 1, 4, 5, 6: append in commits of 100, then replay streams and everything, then size.
        let main = freshDirectory("main")
        defer { try? FileManager.default.removeItem(atPath: main) }
        var system = try await kind.make(directory: main, durable: true)
        let appendTime = try await clock.measure {
            for commit in workload.commitsOf100 { try await system.append(commit) }
        }
        results[.appendHundred] = events / Self.seconds(appendTime)
        try await system.reopen()
        if kind.readsStreams {
            results[.replayStream] = try await replayStreams(system) { stream, _ in
                workload.sampledStreams.first { $0.0 == stream }!.1
            }
        }
        var replayed = (events: 0, bytes: 0)
        let replayTime = try await clock.measure { replayed = try await system.replayAll() }
        guard replayed.events == workload.size.events else {
            throw BenchmarkFailure("\(kind.name) replayed \(replayed.events) of \(workload.size.events) events")
        }
        results[.replayAll] = events / Self.seconds(replayTime)
        try await system.close()
        results[.bytesPerEvent] = Double(bytesOnDisk(of: main)) / events
        if kind == .dugong {
            results[.memoryPerEvent] = try MemoryProbe.measure(store: main, events: workload.size.events)
        }

        // 2: commits of 1,000.
        let thousand = freshDirectory("thousand")
        defer { try? FileManager.default.removeItem(atPath: thousand) }
        system = try await kind.make(directory: thousand, durable: true)
        let thousandTime = try await clock.measure {
            for commit in workload.commitsOf1000 { try await system.append(commit) }
        }
        results[.appendThousand] = events / Self.seconds(thousandTime)
        try await system.close()

        // 3: single-event commits.
        let single = freshDirectory("single")
        defer { try? FileManager.default.removeItem(atPath: single) }
        system = try await kind.make(directory: single, durable: true)
        let singleTime = try await clock.measure {
            try await system.appendConcurrently(workload.singleEventCommits, writers: 64)
        }
        results[.singleEventWriters] = Double(workload.singleEventCommits.count) / Self.seconds(singleTime)
        try await system.close()

        // 4b: the same events in commits of 2, interleaved over the streams (written without
        // sync: the layout on disk is what matters), then stream replays.
        if kind.readsStreams {
            let interleaved = freshDirectory("interleaved")
            defer { try? FileManager.default.removeItem(atPath: interleaved) }
            system = try await kind.make(directory: interleaved, durable: false)
            for commit in workload.commitsOf2 { try await system.append(commit) }
            try await system.reopen()
            results[.replayStreamInterleaved] = try await replayStreams(system) { stream, _ in
                workload.interleavedCount(of: stream)
            }
            try await system.close()
        }
        return results
    }

    /// Reads the sampled streams; checks each one's count. Returns events per second.
    private func replayStreams(
        _ system: any SystemUnderTest, expected: (String, Int) -> Int
    ) async throws -> Double {
        var total = 0
        var counts: [(String, Int)] = []
        let time = try await clock.measure {
            for (stream, _) in workload.sampledStreams {
                let read = try await system.replay(stream: stream)
                total += read.events
                counts.append((stream, read.events))
            }
        }
        for (stream, count) in counts where count != expected(stream, count) {
            throw BenchmarkFailure("read \(count) events of \(stream), expected \(expected(stream, count))")
        }
        return Double(total) / Self.seconds(time)
    }
}

/// Measures, in a child process, the resident memory that opening a store adds.
enum MemoryProbe {
    static let flag = "--measure-memory"

    /// Runs this executable with `--measure-memory <store>`; returns heap bytes per event.
    static func measure(store: String, events: Int) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = [flag, store]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let fields = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard process.terminationStatus == 0, fields.count == 2 else {
            throw BenchmarkFailure("memory probe failed: \(String(decoding: data, as: UTF8.self))")
        }
        lastMapped = Double(fields[1]) / Double(events)
        return Double(fields[0]) / Double(events)
    }

    /// Mapped (file-backed) resident bytes per event of the last probe.
    nonisolated(unsafe) static var lastMapped: Double = 0

    /// The child's side: opens the store and prints the growth of anonymous and file-backed
    /// resident memory, in bytes.
    static func runChild(store: String) throws {
        let before = residentKilobytes()
        let log = try EventLog.open(at: store)
        let after = residentKilobytes()
        print((after.anonymous - before.anonymous) * 1024, (after.file - before.file) * 1024)
        log.close()
    }

    static func residentKilobytes() -> (anonymous: Int, file: Int) {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return (field("RssAnon"), field("RssFile"))
    }
}
