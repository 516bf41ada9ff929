import Dugong
@testable import DugongStore
import Foundation
import Synchronization
import Testing

/// The writer decides appends in the order they were sent, whatever batches they fall into and
/// whichever batch is still in flight when they are decided. So a plain sequential model of
/// streams predicts every answer exactly: each commit's versions and positions, each recognized
/// retry (at the positions of the events it repeats), each refusal and its actual version.
/// Thousands of random sends (new appends, retries of earlier ones with the same or another
/// expectation, atomic calls over several streams), with syncs held for random times so that
/// batches are decided on top of ones in flight; then every stream is read and compared, before
/// and after a reopen. `DUGONG_DECISION_SENDS` sets the sends per seed (CI: 1,500 × 4 seeds).
@Suite("Writer decisions against a sequential model")
struct DecisionModelTests {
    /// What an atomic call must come to.
    enum Outcome: Equatable, CustomStringConvertible {
        case commits([Commit])
        case wrongExpectedVersion(stream: String, actual: Int)
        case partialDuplicate(stream: String, stored: Int, appended: Int)
        case unexpected(String)

        init(_ result: Result<[Commit], StoreError>) {
            switch result {
            case .success(let commits): self = .commits(commits)
            case .failure(.wrongExpectedVersion(let stream, _, let actual)): self = .wrongExpectedVersion(stream: stream, actual: actual)
            case .failure(.partialDuplicate(let stream, let stored, let appended)):
                self = .partialDuplicate(stream: stream, stored: stored, appended: appended)
            case .failure(let error): self = .unexpected("\(error)")
            }
        }

        var description: String {
            switch self {
            case .commits(let commits):
                "commits " + commits.map { "\($0.stream) v\($0.firstVersion)-\($0.lastVersion) @\($0.firstPosition)-\($0.lastPosition)\($0.wasDuplicate ? " dup" : "") at v\($0.streamVersion)" }.joined(separator: ", ")
            case .wrongExpectedVersion(let stream, let actual): "wrong expected version on \(stream), actual \(actual)"
            case .partialDuplicate(let stream, let stored, let appended): "partial duplicate on \(stream): \(stored) of \(appended)"
            case .unexpected(let error): "unexpected: \(error)"
            }
        }
    }

    /// The store as the sends so far leave it, applied one call at a time.
    struct Model {
        struct Stream {
            var ids: [UUID] = []
            var positions: [UInt64] = []
        }

        var streams: [String: Stream] = [:]
        var nextPosition: UInt64 = 0

        func version(of stream: String) -> Int { streams[stream]?.ids.count ?? 0 }

        /// Applies a call (all of it or none) and says what it comes to: the rules of
        /// `EventLog.send`'s documentation, one append after the other.
        mutating func apply(_ appends: [EventLog.Append]) -> Outcome {
            var trial = streams
            var position = nextPosition
            var commits: [Commit] = []
            for append in appends {
                let stream = trial[append.stream] ?? Stream()
                let current = stream.ids.count
                let count = append.events.count
                var base: Int?
                switch append.expected {
                case .exact(let version) where version < current: base = version
                case .noStream where current > 0: base = 0
                case .any, .streamExists:
                    if current >= count, stream.ids.last == append.events.last?.id { base = current - count }
                default: break
                }
                if let base {
                    var matched = 0
                    for (offset, event) in append.events.enumerated() where base + 1 + offset <= current {
                        guard stream.ids[base + offset] == event.id else { break }
                        matched += 1
                    }
                    if matched == count {
                        // (Also events an earlier append of this call accepted.)
                        commits.append(Commit(
                            stream: append.stream, firstVersion: base + 1, lastVersion: base + count,
                            firstPosition: stream.positions[base], lastPosition: stream.positions[base + count - 1], wasDuplicate: true,
                            streamVersion: current))
                        continue
                    }
                    if matched > 0, append.expected != .any, append.expected != .streamExists {
                        return .partialDuplicate(stream: append.stream, stored: matched, appended: count)
                    }
                }
                guard append.expected.isSatisfied(byVersion: current) else {
                    return .wrongExpectedVersion(stream: append.stream, actual: current)
                }
                var changed = stream
                changed.ids += append.events.map(\.id)
                changed.positions += (position..<position + UInt64(count)).map { $0 }
                trial[append.stream] = changed
                commits.append(Commit(
                    stream: append.stream, firstVersion: current + 1, lastVersion: current + count,
                    firstPosition: position, lastPosition: position + UInt64(count) - 1, wasDuplicate: false,
                    streamVersion: current + count))
                position += UInt64(count)
            }
            streams = trial
            nextPosition = position
            return .commits(commits)
        }
    }

    /// Holds syncs for random short times (on the syncer's thread), so that the writer decides
    /// batches while the one before them is in flight.
    final class Delays: Sendable {
        private let random: Mutex<SeededRandom>
        init(seed: UInt64) { random = Mutex(SeededRandom(seed: seed ^ 0xD1CE)) }

        func hook(_ point: EventLog.FaultPoint) {
            guard point == .sync else { return }
            let micros = random.withLock { $0.next() % 4 == 0 ? 0 : $0.next() % 2_000 }
            if micros > 0 { usleep(UInt32(micros)) }
        }
    }

    static let sends = ProcessInfo.processInfo.environment["DUGONG_DECISION_SENDS"].flatMap(Int.init) ?? 1_500

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func everyAnswerIsTheSequentialModels(seed: UInt64) async throws {
        let directory = TemporaryDirectory("decision-model")
        defer { directory.remove() }
        let delays = Delays(seed: seed)
        var options = EventLog.Options(createIfMissing: true)
        options.faults = { delays.hook($0) }
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }  // also when an expectation throws (closing twice does nothing)
        var random = SeededRandom(seed: seed)
        var model = Model()
        var calls: [[EventLog.Append]] = []
        var pending: [(call: Int, predicted: Outcome, sent: SentCommit)] = []
        var checked = (commits: 0, duplicates: 0, refusals: 0)

        func check(_ entry: (call: Int, predicted: Outcome, sent: SentCommit)) async {
            let result: Result<[Commit], StoreError>
            do { result = .success(try await entry.sent.commits()) } catch { result = .failure(error) }
            let actual = Outcome(result)
            #expect(actual == entry.predicted, "call \(entry.call) (seed \(seed)): \(calls[entry.call])")
            switch actual {
            case .commits(let commits):
                checked.commits += 1
                checked.duplicates += commits.filter(\.wasDuplicate).count
            default: checked.refusals += 1
            }
        }

        for _ in 0..<Self.sends {
            let call = makeCall(&random, model: model, earlier: calls)
            let predicted = model.apply(call)
            let sent = try log.send(call)
            calls.append(call)
            pending.append((calls.count - 1, predicted, sent))
            // Now and then wait for what was sent, so that batches come in every size.
            if random.below(8) == 0 {
                for entry in pending { await check(entry) }
                pending.removeAll()
            }
        }
        for entry in pending { await check(entry) }
        #expect(checked.commits > Self.sends / 3 && checked.duplicates > 0 && checked.refusals > 0, "\(checked)")
        print("decisions (seed \(seed)): \(Self.sends) calls, \(checked.commits) committed (\(checked.duplicates) appends recognized as retries), \(checked.refusals) refused")

        try compare(log, with: model)
        log.close()
        let reopened = try EventLog.open(at: directory.path)
        defer { reopened.close() }
        try compare(reopened, with: model)
    }

    /// Every stream holds the model's events, at its versions and positions.
    private func compare(_ log: EventLog, with model: Model) throws {
        for (name, stream) in model.streams {
            let events = try log.read(stream: name)
            #expect(events.map(\.id) == stream.ids, "stream \(name)")
            #expect(events.map(\.position) == stream.positions, "stream \(name)")
            #expect(events.map(\.version) == Array(1...stream.ids.count), "stream \(name)")
        }
    }

    /// A random call: new appends with expectations right, stale or loose, or a retry of an
    /// earlier call as it was or with its expectation changed; one to three appends.
    private func makeCall(_ random: inout SeededRandom, model: Model, earlier: [[EventLog.Append]]) -> [EventLog.Append] {
        if !earlier.isEmpty, random.below(4) == 0 {
            // A retry of one of the last calls (retries come soon after), perhaps reworded.
            var call = earlier[earlier.count - 1 - random.below(min(earlier.count, 40))]
            if random.below(2) == 0 {
                for index in call.indices {
                    switch random.below(3) {
                    case 0: call[index].expected = .any
                    case 1: call[index].expected = .exact(max(model.version(of: call[index].stream) - call[index].events.count, 0))
                    default: break
                    }
                }
            }
            return call
        }
        let appends = random.below(5) == 0 ? 2 + random.below(2) : 1
        return (0..<appends).map { _ in
            let stream = "s\(random.below(5))"
            let version = model.version(of: stream)
            let expected: ExpectedVersion
            switch random.below(10) {
            case 0, 1, 2: expected = .any
            case 3, 4, 5: expected = .exact(version)
            case 6: expected = .exact(max(version + random.below(3) - 1, 0))
            case 7: expected = .noStream
            case 8: expected = .streamExists
            default: expected = .exact(random.below(version + 1))
            }
            return EventLog.Append(stream: stream, events: Fixture.events(1 + random.below(3)), expected: expected)
        }
    }
}

extension SeededRandom {
    /// A number from 0 up to `bound`, excluded.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
