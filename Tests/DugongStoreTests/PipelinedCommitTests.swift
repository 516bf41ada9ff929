import Dugong
@testable import DugongStore
import Foundation
import Synchronization
import Testing

/// The writer decides and compresses the next batch while the one before it syncs. These tests
/// hold a sync open (the fault hook blocks the syncer) and send commits meanwhile: they are
/// decided on top of the batch in flight, and none of their results, not even a duplicate's or
/// a refusal's, reaches its caller before that batch is durable.
@Suite("Pipelined commits")
struct PipelinedCommitTests {
    /// Blocks the first sync until released; then lets it pass, or fails it.
    final class HeldSync: Sendable {
        let entered = DispatchSemaphore(value: 0)
        let released = DispatchSemaphore(value: 0)
        private let state = Mutex((armed: true, fail: false))

        func hook(_ point: EventLog.FaultPoint) throws {
            guard point == .sync else { return }
            let armed = state.withLock { state in
                defer { state.armed = false }
                return state.armed
            }
            guard armed else { return }
            entered.signal()
            // Bounded: a test that never releases fails instead of hanging.
            guard released.wait(timeout: .now() + 30) == .success else { throw HeldTooLong() }
            if state.withLock({ $0.fail }) { throw FailureTests.InjectedFailure() }
        }

        /// Lets the held sync go on; it fails when `failing`.
        func release(failing: Bool) {
            state.withLock { $0.fail = failing }
            released.signal()
        }

        /// Waits (off the cooperative threads) until the first sync is held.
        func waitUntilHeld() async throws {
            let entered = self.entered
            let held = try await onOwnThread { entered.wait(timeout: .now() + 30) == .success }
            try #require(held, "the first sync was never reached")
        }

        struct HeldTooLong: Error {}
    }

    static func open(_ directory: TemporaryDirectory, _ held: HeldSync) throws -> EventLog {
        var options = EventLog.Options(createIfMissing: true)
        options.faults = { try held.hook($0) }
        return try EventLog.open(at: directory.path, options: options)
    }

    @Test func commitsSentWhileABatchSyncsAreDecidedOnTopOfIt() async throws {
        let directory = TemporaryDirectory("pipelined")
        defer { directory.remove() }
        let held = HeldSync()
        let log = try Self.open(directory, held)
        defer { log.close() }
        let first = Fixture.events(1)
        let second = Fixture.events(1)
        let firstCommit = try log.send([.init(stream: "s", events: first, expected: .noStream)])
        try await held.waitUntilHeld()
        // The index does not have the first commit yet: only the batch in flight does.
        let next = try log.send([.init(stream: "s", events: second, expected: .exact(1))])
        let retry = try log.send([.init(stream: "s", events: first, expected: .noStream)])
        let stale = try log.send([.init(stream: "s", events: Fixture.events(1), expected: .exact(0))])
        try await Task.sleep(for: .milliseconds(200))  // time for the writer to decide them
        held.release(failing: false)

        let written = try await firstCommit.commits()[0]
        #expect(written.firstVersion == 1 && !written.wasDuplicate)
        let appended = try await next.commits()[0]
        #expect(appended.firstVersion == 2 && appended.firstPosition == written.lastPosition + 1)
        let duplicate = try await retry.commits()[0]
        #expect(duplicate.wasDuplicate && duplicate.firstPosition == written.firstPosition && duplicate.lastVersion == 1)
        await #expect {
            try await stale.commits()
        } throws: { error in
            guard case .wrongExpectedVersion(_, _, let actual) = error as? StoreError else { return false }
            return actual == 2
        }
        #expect(try log.read(stream: "s").map(\.id) == [first[0].id, second[0].id])
    }

    @Test func aFailedSyncFailsEverythingDecidedOnTopOfIt() async throws {
        let directory = TemporaryDirectory("pipelined-failure")
        defer { directory.remove() }
        let held = HeldSync()
        let log = try Self.open(directory, held)
        let first = Fixture.events(1)
        let firstCommit = try log.send([.init(stream: "s", events: first, expected: .noStream)])
        try await held.waitUntilHeld()
        // A batch of its own that writes nothing: a duplicate of the commit in flight. Were it
        // answered at once, its caller would hold an acknowledgement of events never durable.
        let retry = try log.send([.init(stream: "s", events: first, expected: .noStream)])
        try await Task.sleep(for: .milliseconds(200))
        let onTop = try log.send([.init(stream: "s", events: Fixture.events(1), expected: .exact(1))])
        try await Task.sleep(for: .milliseconds(100))
        held.release(failing: true)

        for sent in [firstCommit, retry, onTop] {
            await #expect {
                try await sent.commits()
            } throws: { error in
                guard case .failed(let reason) = error as? StoreError else { return false }
                return reason.contains("InjectedFailure")
            }
        }
        log.close()
        // Reopened, the store has the first commit or nothing (never acknowledged either way),
        // and nothing decided on top of it that was not also written.
        let reopened = try EventLog.open(at: directory.path)
        defer { reopened.close() }
        let events = try reopened.read(stream: "s")
        #expect(events.isEmpty || events.map(\.id) == [first[0].id])
    }
}
