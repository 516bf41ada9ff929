import Dugong
@testable import DugongStore
import Foundation
import Testing

@Suite("Concurrent appenders, group commit and the live tail")
struct ConcurrencyTests {
    @Test func manyAppendersLoseAndDuplicateNothing() async throws {
        let directory = TemporaryDirectory("many")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 8192)
        let appends = (0..<300).map { index in (stream: "s/\(index % 12)", events: Fixture.events(1 + index % 3, size: 30)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for append in appends {
                group.addTask { try await log.append(append.events, to: append.stream, expecting: .any) }
            }
            try await group.waitForAll()
        }
        let check = { (log: EventLog) throws in
            let all = try log.readAll(maxCount: 10_000)
            let sent = appends.flatMap(\.events)
            #expect(all.count == sent.count)
            #expect(all.map(\.position) == Array(0..<UInt64(sent.count)), "positions are gapless")
            #expect(Set(all.map(\.id)) == Set(sent.map(\.id)), "no event lost or duplicated")
            for stream in Set(appends.map(\.stream)) {
                let events = try log.read(stream: stream)
                #expect(events.map(\.version) == Array(1...events.count), "\(stream): versions contiguous")
                #expect(events.map(\.position) == events.map(\.position).sorted())
                // Each commit's events are contiguous in the stream and in the log.
                for append in appends where append.stream == stream {
                    let ids = append.events.map(\.id)
                    let start = try #require(events.firstIndex { $0.id == ids[0] })
                    #expect(events[start..<start + ids.count].map(\.id) == ids)
                    #expect(events[start + ids.count - 1].endsCommit)
                }
            }
        }
        try check(log)
        #expect(log.segmentNames.count > 1)
        log.close()
        let reopened = try Fixture.open(directory, segmentSize: 8192)
        defer { reopened.close() }
        try check(reopened)
    }

    @Test func exactlyOneAppenderWinsEachVersion() async throws {
        let directory = TemporaryDirectory("race")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let writers = 40
        let wins = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<writers {
                group.addTask {
                    let event = Fixture.events(1)
                    var attempts = 0
                    while true {
                        attempts += 1
                        let version = try log.info(stream: "race/1")?.version ?? 0
                        do {
                            try await log.append(event, to: "race/1", expecting: .exact(version))
                            return [version]
                        } catch StoreError.wrongExpectedVersion {
                            precondition(attempts < 10_000)
                        }
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(wins.sorted() == Array(0..<writers), "each expected version won exactly once")
        #expect(try log.read(stream: "race/1").map(\.version) == Array(1...writers))
    }

    /// `send` is a pipeline: commits sent before the first is acknowledged are written in the
    /// order sent (each one's expected version relies on the one before), a refused one does
    /// not stop the next, and a commit awaited after it landed still reports it.
    @Test func sentCommitsAreWrittenInTheOrderSent() async throws {
        let directory = TemporaryDirectory("send")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        var sent: [SentCommit] = []
        for round in 0..<50 {
            let appends = (0..<10).map { stream in
                EventLog.Append(stream: "s/\(stream)", events: Fixture.events(2, size: 20), expected: .exact(round * 2))
            }
            sent.append(try log.send(appends))
        }
        let refused = try log.send([EventLog.Append(stream: "s/0", events: Fixture.events(1, size: 20), expected: .exact(3))])
        let after = try log.send([EventLog.Append(stream: "s/0", events: Fixture.events(1, size: 20), expected: .exact(100))])
        try await Task.sleep(for: .milliseconds(50))
        var nextPosition: UInt64 = 0
        for (round, commit) in sent.enumerated() {
            let commits = try await commit.commits()
            #expect(commits.map(\.firstVersion) == Array(repeating: round * 2 + 1, count: 10))
            #expect(commits.first?.firstPosition == nextPosition, "round \(round) follows the one sent before it")
            nextPosition = commits.last!.lastPosition + 1
        }
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "s/0", expected: .exact(3), actual: 100)) {
            try await refused.commits()
        }
        #expect(try await after.commits().first?.firstVersion == 101)
        #expect(throws: StoreError.self) { try log.send([]) }
    }

    @Test func concurrentSingleEventAppendsShareFrames() async throws {
        let directory = TemporaryDirectory("group")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<64 {
                group.addTask { try await log.append(Fixture.events(1), to: "w/\(index)", expecting: .noStream) }
            }
            try await group.waitForAll()
        }
        log.close()
        let frames = try Fixture.frameOffsets(of: directory.file("00000000000000000000.dseg")).count
        #expect(frames < 64, "64 concurrent appends were written in \(frames) frames")
    }

    @Test func theLiveTailDeliversNewEventsInOrder() async throws {
        let directory = TemporaryDirectory("tail")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        try await log.append(Fixture.events(5), to: "t/1")
        let reader = Task {
            var seen: [StoredEvent] = []
            for try await event in log.subscribe(from: 2) {
                seen.append(event)
                if seen.count == 23 { break }
            }
            return seen
        }
        for round in 0..<10 {
            try await log.append(Fixture.events(2), to: "t/\(round % 3)")
        }
        let seen = try await reader.value
        #expect(seen.map(\.position) == Array(2..<25))
        #expect(seen == (try log.readAll(from: 2)))

        // A subscription waiting at the head ends when the store closes.
        let waiting = Task {
            var count = 0
            for try await _ in log.subscribe(from: log.headPosition) { count += 1 }
            return count
        }
        try await Task.sleep(for: .milliseconds(50))
        log.close()
        #expect(try await waiting.value == 0)
    }

    @Test func cancellingASubscriptionStopsIt() async throws {
        let directory = TemporaryDirectory("cancel")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let waiting = Task {
            for try await _ in log.subscribe(from: 0) {}
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }
}
