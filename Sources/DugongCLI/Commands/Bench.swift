import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// `dugong bench`: measures a store on this machine's disk.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure append and replay rates of a DugongStore on this disk.",
        discussion: """
            Creates a store (in a new temporary directory unless --dir is given), appends \
            deterministic ~170-byte JSON events in commits of --batch events, round-robin over \
            --streams streams, with durable (fdatasync) commits, then replays one stream at a time \
            and the whole log, verifies the store, and prints the rates and the bytes each event \
            takes on disk.

            Examples:
              dugong bench
              dugong bench --dir /mnt/fast/bench --events 1000000 --batch 1000
              dugong bench --batch 1 --writers 64 --events 20000
            """
    )

    @Option(help: "Directory for the store; must not hold a store yet. Default: a temporary directory, removed afterwards.")
    var dir: String?

    @Option(parsing: .unconditional, help: "Events to append.")
    var events = 200_000

    @Option(parsing: .unconditional, help: "Events per commit.")
    var batch = 100

    @Option(parsing: .unconditional, help: "Streams the events are spread over (at most one per commit: fewer when there are fewer commits).")
    var streams = 1_000

    @Option(parsing: .unconditional, help: "Concurrent appenders (group commit shares frames and syncs among them).")
    var writers = 1

    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        guard events > 0, batch > 0, streams > 0, writers > 0 else {
            throw ValidationError("--events, --batch, --streams and --writers must be positive")
        }
        guard writers <= 10_000 else {
            throw ValidationError("--writers must be at most 10000 (one task each)")
        }
    }

    struct Results: Codable {
        var events: Int
        var batch: Int
        var streams: Int
        var writers: Int
        var appendEventsPerSecond: Double
        var appendMegabytesPerSecond: Double
        var replayAllEventsPerSecond: Double
        var replayStreamEventsPerSecond: Double
        var bytesPerEvent: Double
        var payloadBytesPerEvent: Double
        var verifiedClean: Bool
    }

    func run() async throws {
        try PostgresAccess.refuse(dir ?? "", "bench measures a directory store on this machine's disk (the Benchmarks package measures PostgreSQL)")
        let scratch = dir == nil ? ScratchDirectory(prefix: "dugong-bench") : nil
        defer { scratch?.remove() }
        let directory = dir ?? scratch!.path
        let log = try StoreAccess.open(directory, forWriting: true, creating: true)
        defer { log.close() }
        guard log.eventCount == 0 else { throw Terminal.fail("\(directory) already holds a store with events; name a new directory", code: ExitStatus.usage.rawValue) }

        // Prepare every commit first so that generating JSON is not timed.
        var workload = SyntheticEvents()
        var commits: [(String, [NewEvent])] = []
        var payloadBytes = 0
        var remaining = events
        var commitIndex = 0
        while remaining > 0 {
            let count = min(batch, remaining)
            let stream = commitIndex % streams
            let events = (0..<count).map { offset in
                workload.event(stream: stream, at: 1_732_000_000_000 + Int64(commitIndex * batch + offset))
            }
            payloadBytes += events.reduce(0) { $0 + $1.data.count }
            commits.append(("account/\(stream)", events))
            remaining -= count
            commitIndex += 1
        }

        // One stream per commit at most: fewer commits than --streams reach fewer streams.
        let streams = min(streams, commits.count)

        let clock = ContinuousClock()
        let appending = ProgressBar("appending")
        let appendTime = try await clock.measure {
            if writers == 1 {
                for (number, (stream, events)) in commits.enumerated() {
                    try await log.append(events, to: stream)
                    if number % 64 == 0 { appending.update(number, of: commits.count) }
                }
                return
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    let mine = stride(from: writer, to: commits.count, by: writers).map { commits[$0] }
                    group.addTask {
                        for (stream, events) in mine { try await log.append(events, to: stream) }
                    }
                }
                try await group.waitForAll()
            }
        }
        appending.finish()
        let replayAllTime = try clock.measure {
            // The lending read: each event looked at in place, as a replay does.
            var position: UInt64 = 0
            var seen = 0
            while true {
                let next = try log.forEachEvent(from: position, maxCount: 4096) { _ in seen += 1 }
                if next == position { break }
                position = next
            }
            precondition(seen == events, "replayed \(seen) of \(events) events")
        }
        log.dropCaches()
        let sampled = Array(Set((0..<min(streams, 200)).map { ($0 * 7919) % streams })).sorted()
        var streamEvents = 0
        let replayStreamTime = try clock.measure {
            for stream in sampled { streamEvents += try log.forEachEvent(in: "account/\(stream)") { _ in } }
        }

        let bar = ProgressBar("verifying")
        let verification = try log.verify { bar.update($0, of: $1) }
        bar.finish()

        let seconds = { (duration: Duration) in Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
        let results = Results(
            events: events, batch: batch, streams: streams, writers: writers,
            appendEventsPerSecond: Double(events) / seconds(appendTime),
            appendMegabytesPerSecond: Double(payloadBytes) / seconds(appendTime) / 1e6,
            replayAllEventsPerSecond: Double(events) / seconds(replayAllTime),
            replayStreamEventsPerSecond: Double(streamEvents) / seconds(replayStreamTime),
            bytesPerEvent: Double(log.frameBytes) / Double(events),
            payloadBytesPerEvent: Double(payloadBytes) / Double(events), verifiedClean: verification.isClean)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            Terminal.emit(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        let plural = { (count: Int, noun: String) in "\(count) \(noun)\(count == 1 ? "" : "s")" }
        Terminal.emit("dugong bench: \(events) events of ~\(Int(results.payloadBytesPerEvent)) B, \(batch) per commit, \(plural(streams, "stream")), \(writers) writer(s), durable")
        Terminal.emit("")
        Terminal.emit("| measure | value |")
        Terminal.emit("|---|---|")
        Terminal.emit("| append | \(Int(results.appendEventsPerSecond)) events/s, \(String(format: "%.1f", results.appendMegabytesPerSecond)) MB/s of event data |")
        Terminal.emit("| replay everything | \(Int(results.replayAllEventsPerSecond)) events/s |")
        Terminal.emit("| replay one stream (\(plural(sampled.count, "stream")), cold cache) | \(Int(results.replayStreamEventsPerSecond)) events/s |")
        // (A ratio below 1 is said as "larger": "0.86× smaller" read as a saving.)
        let ratio = results.payloadBytesPerEvent / results.bytesPerEvent
        let size = ratio >= 1 ? "\(String(format: "%.2f", ratio))× smaller than the JSON" : "\(String(format: "%.2f", 1 / ratio))× larger than the JSON"
        Terminal.emit("| on disk | \(String(format: "%.1f", results.bytesPerEvent)) bytes/event (frames), \(size) |")
        Terminal.emit("| verify | \(verification.isClean ? "clean" : "\(verification.problems.count) problem(s)"): \(Terminal.count(verification.frames, "event frame")), \(Terminal.count(verification.events, "event")) |")
        if !verification.isClean { throw Terminal.fail("the store did not verify clean: \(verification.problems.first!)", code: ExitStatus.damaged.rawValue) }
    }
}
