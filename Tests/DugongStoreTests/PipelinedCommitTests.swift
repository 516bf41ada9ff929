import Dugong
@testable import DugongStore
import Foundation
import Synchronization
import Testing

/// The writer decides and compresses the next batch while the one before it syncs. These tests
/// hold a sync open (the fault hook runs on the syncer) and send commits meanwhile: they are
/// decided on top of the batch in flight, and none of their results, not even a duplicate's or
/// a refusal's, reaches its caller before that batch is durable.
@Suite("Pipelined commits")
struct PipelinedCommitTests {
    /// Holds the first batch's sync and sends commits around it, from the writer's and the
    /// syncer's threads (not from the tests' cooperative threads, which other tests may keep
    /// busy): commits sent as the first batch is written find the writer with more queued, so
    /// it hands that batch to the syncer and decides them while the sync is held; then the sync
    /// passes or fails.
    final class HeldSync: Sendable {
        struct Step: Sendable {
            /// `.write`: as the first batch is written; `.sync`: while its sync is held.
            var at: EventLog.FaultPoint
            var send: [EventLog.Append]
            /// How long the writer gets after the send, in seconds.
            var pause: Double = 0
        }

        private let state = Mutex<(armed: Set<EventLog.FaultPoint>, log: EventLog?, sent: [SentCommit], problem: String?)>(
            ([.write, .sync], nil, [], nil))
        private let steps: [Step]
        private let failing: Bool

        init(steps: [Step], failing: Bool) {
            self.steps = steps
            self.failing = failing
        }

        /// Opens the store with the hook in place.
        func open(_ directory: TemporaryDirectory) throws -> EventLog {
            var options = EventLog.Options(createIfMissing: true)
            options.faults = { try self.hook($0) }
            let log = try EventLog.open(at: directory.path, options: options)
            state.withLock { $0.log = log }
            return log
        }

        private func hook(_ point: EventLog.FaultPoint) throws {
            let log = state.withLock { state -> EventLog? in
                guard let log = state.log, state.armed.remove(point) != nil else { return nil }
                return log
            }
            guard let log else { return }
            for step in steps where step.at == point {
                do {
                    let sent = try log.send(step.send)
                    state.withLock { $0.sent.append(sent) }
                } catch {
                    state.withLock { $0.problem = "\(error)" }
                }
                Thread.sleep(forTimeInterval: step.pause)
            }
            guard point == .sync else { return }
            Thread.sleep(forTimeInterval: 0.3)  // the writer decides what was sent meanwhile
            if failing { throw FailureTests.InjectedFailure() }
        }

        /// What was sent around the held sync, in order (ask after the held commit's answer).
        func sent() throws -> [SentCommit] {
            let (sent, problem) = state.withLock { ($0.sent, $0.problem) }
            if let problem { throw Problem(description: problem) }
            return sent
        }

        struct Problem: Error, CustomStringConvertible { let description: String }
    }

    @Test func commitsSentWhileABatchSyncsAreDecidedOnTopOfIt() async throws {
        let directory = TemporaryDirectory("pipelined")
        defer { directory.remove() }
        let first = Fixture.events(1)
        let second = Fixture.events(1)
        // Decided while the first commit's sync is held: the index does not have it yet, only
        // the batch in flight does.
        let held = HeldSync(
            steps: [
                .init(at: .write, send: [.init(stream: "s", events: second, expected: .exact(1))]),
                .init(at: .write, send: [.init(stream: "s", events: first, expected: .noStream)]),
                .init(at: .write, send: [.init(stream: "s", events: Fixture.events(1), expected: .exact(0))]),
            ], failing: false)
        let log = try held.open(directory)
        defer { log.close() }
        let written = try await log.send([.init(stream: "s", events: first, expected: .noStream)]).commits()[0]
        #expect(written.firstVersion == 1 && !written.wasDuplicate)
        let sent = try held.sent()
        try #require(sent.count == 3)
        let appended = try await sent[0].commits()[0]
        #expect(appended.firstVersion == 2 && appended.firstPosition == written.lastPosition + 1)
        let duplicate = try await sent[1].commits()[0]
        #expect(duplicate.wasDuplicate && duplicate.firstPosition == written.firstPosition && duplicate.lastVersion == 1)
        await #expect {
            try await sent[2].commits()
        } throws: { error in
            guard case .wrongExpectedVersion(_, _, let actual) = error as? StoreError else { return false }
            return actual == 2
        }
        #expect(try log.read(stream: "s").map(\.id) == [first[0].id, second[0].id])
    }

    /// Commits decided in one batch see each other's events: a retry is a duplicate at the
    /// positions the batch gave them. A refused atomic call leaves nothing behind: its accepted
    /// appends are forgotten, so that the same events sent again are written, not taken for a
    /// duplicate of events that were never written.
    @Test func aRefusedCallLeavesNothingForTheRestOfItsBatch() async throws {
        let directory = TemporaryDirectory("pipelined-refused")
        defer { directory.remove() }
        let refused = Fixture.events(2)
        let kept = Fixture.events(1)
        let held = HeldSync(
            steps: [
                .init(at: .write, send: [
                    .init(stream: "a", events: refused, expected: .noStream),
                    .init(stream: "b", events: Fixture.events(1), expected: .exact(5)),
                ]),
                .init(at: .write, send: [.init(stream: "a", events: refused, expected: .exact(0))]),
                .init(at: .write, send: [.init(stream: "c", events: kept, expected: .noStream)]),
                .init(at: .write, send: [.init(stream: "c", events: kept, expected: .exact(0))]),
            ], failing: false)
        let log = try held.open(directory)
        defer { log.close() }
        _ = try await log.send([.init(stream: "first", events: Fixture.events(1))]).commits()
        let sent = try held.sent()
        try #require(sent.count == 4)
        await #expect {
            try await sent[0].commits()
        } throws: { error in
            guard case .wrongExpectedVersion(let stream, _, let actual) = error as? StoreError else { return false }
            return stream == "b" && actual == 0
        }
        let resent = try await sent[1].commits()[0]
        #expect(!resent.wasDuplicate && resent.firstVersion == 1 && resent.lastVersion == 2)
        #expect(try log.read(stream: "a").map(\.id) == refused.map(\.id))
        let original = try await sent[2].commits()[0]
        let retry = try await sent[3].commits()[0]
        #expect(!original.wasDuplicate && retry.wasDuplicate)
        #expect(retry.firstPosition == original.firstPosition && retry.lastVersion == 1)
        #expect(try log.read(stream: "c").map(\.id) == kept.map(\.id))
        #expect(try log.read(stream: "b").isEmpty)
    }

    @Test func aFailedSyncFailsEverythingDecidedOnTopOfIt() async throws {
        let directory = TemporaryDirectory("pipelined-failure")
        defer { directory.remove() }
        let first = Fixture.events(1)
        // First a batch of its own that writes nothing: a duplicate of the commit in flight. Were
        // it answered at once, its caller would hold an acknowledgement of events never durable.
        let held = HeldSync(
            steps: [
                .init(at: .write, send: [.init(stream: "s", events: first, expected: .noStream)]),
                .init(at: .sync, send: [.init(stream: "s", events: Fixture.events(1), expected: .exact(1))], pause: 0.1),
            ], failing: true)
        let log = try held.open(directory)
        let firstCommit = try log.send([.init(stream: "s", events: first, expected: .noStream)])
        await #expect {
            try await firstCommit.commits()
        } throws: { error in
            guard case .failed(let reason) = error as? StoreError else { return false }
            return reason.contains("InjectedFailure")
        }
        let sent = try held.sent()
        try #require(sent.count == 2)
        for commit in sent {
            await #expect {
                try await commit.commits()
            } throws: { error in
                guard case .failed(let reason) = error as? StoreError else { return false }
                return reason.contains("InjectedFailure")
            }
        }
        log.close()
        // Reopened, the store has the first commit or nothing (never acknowledged either way),
        // and nothing decided on top of it.
        let reopened = try EventLog.open(at: directory.path)
        defer { reopened.close() }
        let events = try reopened.read(stream: "s")
        #expect(events.isEmpty || events.map(\.id) == [first[0].id])
    }
}
