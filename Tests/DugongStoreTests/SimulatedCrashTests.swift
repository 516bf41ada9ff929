import Dugong
@testable import DugongStore
import Foundation
import Synchronization
import Testing

/// Power cuts and failing system calls (syncs, writes, a full disk, renames and unlinks; and short
/// writes) on a simulated disk, checked against a model of what was
/// acknowledged (and of what a reader following the log beside the writers was served). `DUGONG_SIMULATED_CRASHES` sets the number of seeds (the long mode); CI runs
/// a few hundred. A failure names its seed and prints the disk's operation trace.
@Suite("Simulated disk: power cuts and failing calls")
struct SimulatedCrashTests {
    /// What the store must hold: every acknowledged event, and nothing that was never appended.
    struct Model {
        struct Expected: Equatable {
            var stream: String
            var id: UUID
            var type: String
            var timestamp: Int64
            var data: Data
            var metadata: Data
        }

        /// Events acknowledged (or found durable by a later open), by position.
        var durable: [UInt64: (Expected, version: Int)] = [:]
        /// Every event ever submitted, by id.
        var attempted: [UUID: Expected] = [:]

        /// Reads the whole log and compares it with the model: acknowledged events missing or
        /// changed, events never appended, versions with gaps (each problem begins with `who`).
        func compare(_ log: EventLog, who: String) throws -> (problems: [String], events: [StoredEvent], versions: [String: Int]) {
            var problems: [String] = []
            var all: [StoredEvent] = []
            var next: UInt64 = 0
            while true {
                let batch = try log.readAll(from: next, maxCount: 4096)
                guard let last = batch.last else { break }
                all += batch
                next = last.position + 1
            }
            let byPosition = Dictionary(all.map { ($0.position, $0) }, uniquingKeysWith: { first, _ in first })
            let missing = durable.keys.filter { byPosition[$0] == nil }.sorted()
            if let first = missing.first, let (expected, version) = durable[first] {
                problems.append("\(who)acknowledged event at position \(first) (\(expected.stream) v\(version)) is missing, and \(missing.count - 1) more; \(all.count) events read, through position \(all.last.map { "\($0.position)" } ?? "none")")
            }
            for (position, (expected, version)) in durable {
                guard let event = byPosition[position] else { continue }
                if Self.expected(event) != expected || event.version != version {
                    problems.append("\(who)position \(position) holds \(event.stream) v\(event.version), acknowledged \(expected.stream) v\(version)")
                }
            }
            var versions: [String: Int] = [:]
            for event in all {
                if attempted[event.id] != Self.expected(event) {
                    problems.append("\(who)position \(event.position) holds an event that was never appended (\(event.stream) v\(event.version))")
                }
                let expectedVersion = (versions[event.stream] ?? 0) + 1
                if event.version != expectedVersion {
                    problems.append("\(who)\(event.stream) has version \(event.version) where \(expectedVersion) was expected")
                }
                versions[event.stream] = event.version
            }
            return (problems, all, versions)
        }

        /// Checks the store against the model; then everything it holds counts as durable (a
        /// writable open made it so).
        mutating func check(_ log: EventLog, seed: UInt64, round: Int) throws -> [String] {
            var (problems, all, _) = try compare(log, who: "")
            for event in all { durable[event.position] = (Self.expected(event), event.version) }
            if !log.recovery.corruptions.isEmpty { problems.append("recovery found damage: \(log.recovery.corruptions)") }
            let report = try log.verify()
            if !report.isClean { problems.append("verify: \(report.problems)") }
            return problems.map { "seed \(seed) round \(round): \($0)" }
        }

        /// Checks what a read-only open (no writer, no recovery written) serves right after a
        /// cut: every acknowledged event, nothing never appended, versions without gaps, and
        /// each stream whole to a stream read. What it serves beyond them must survive as
        /// acknowledged events do (a reader acted on it), unless a sync failed since the last
        /// writable open (`servedMustSurvive` false): the failed batch's pages may read as
        /// written and never reach the disk (FORMAT.md §8).
        mutating func checkReadOnly(at path: String, seed: UInt64, round: Int, servedMustSurvive: Bool = true) throws -> [String] {
            var options = EventLog.Options()
            options.readOnly = true
            let log: EventLog
            do {
                log = try EventLog.open(at: path, options: options)
            } catch StoreError.notFound where durable.isEmpty {
                return []
            }
            defer { log.close() }
            var (problems, all, versions) = try compare(log, who: "a read-only open after the cut: ")
            if servedMustSurvive {
                for event in all { durable[event.position] = (Self.expected(event), event.version) }
            }
            for (stream, version) in versions {
                let read = try log.read(stream: stream)
                if read.count != version || read.last?.version != version {
                    problems.append("a read-only open: a read of \(stream) returns \(read.count) events, the log holds \(version)")
                }
            }
            if !log.recovery.corruptions.isEmpty { problems.append("a read-only open found damage: \(log.recovery.corruptions)") }
            return problems.map { "seed \(seed) round \(round): \($0)" }
        }

        static func expected(_ event: StoredEvent) -> Expected {
            Expected(
                stream: event.stream, id: event.id, type: event.type, timestamp: event.timestampMilliseconds,
                data: event.data, metadata: event.metadata)
        }
    }

    static let crashes = Int(ProcessInfo.processInfo.environment["DUGONG_SIMULATED_CRASHES"] ?? "") ?? 200
    static let firstSeed = UInt64(ProcessInfo.processInfo.environment["DUGONG_SIMULATION_SEED"] ?? "") ?? 1

    @Test func powerCutsAndFailingSyncsLoseNoAcknowledgedEvent() async throws {
        var failures: [String] = []
        var acknowledged = 0
        var cuts = 0
        var failedSyncs = 0
        var compactions = 0
        var failedCompactions = 0
        var failedOpens = 0
        var eventsFollowed = 0
        var readOnlyChecks = 0
        var headsLost = 0
        var injected: [String: Int] = [:]
        for seed in Self.firstSeed..<(Self.firstSeed + UInt64(Self.crashes)) {
            let outcome = await Self.run(seed: seed)
            acknowledged += outcome.acknowledged
            cuts += outcome.cuts
            failedSyncs += outcome.failedSyncs
            compactions += outcome.compactions
            failedCompactions += outcome.failedCompactions
            failedOpens += outcome.failedOpens
            eventsFollowed += outcome.eventsFollowed
            readOnlyChecks += outcome.readOnlyChecks
            headsLost += outcome.headsLost
            injected.merge(outcome.injected, uniquingKeysWith: +)
            if !outcome.problems.isEmpty {
                failures.append((outcome.problems.prefix(5) + ["trace (last 60 operations):"] + outcome.trace.suffix(60)).joined(separator: "\n"))
                if failures.count >= 3 { break }
            }
        }
        print("simulated disk: \(Self.crashes) seeds, \(cuts) power cuts, \(failedSyncs) rounds with failing calls, \(compactions) compactions after a cut (\(failedCompactions) stopped by a failing call), \(failedOpens) opens stopped by a failing call, \(acknowledged) events acknowledged, \(eventsFollowed) events read by a reader beside the writers, \(readOnlyChecks) read-only opens with no writer checked, \(headsLost) head files lost, \(failures.count) failing seeds; faults injected: \(injected.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n\n"))")
        if Self.crashes >= 100 {
            #expect(eventsFollowed > 0, "the readers beside the writers read nothing")
            #expect(readOnlyChecks > 0, "no read-only open without a writer was checked")
            #expect(headsLost > 0, "no head file was lost")
            for kind in ["failed sync", "failed write", "short write", "full disk", "failed rename or unlink"] {
                #expect(injected[kind, default: 0] > 0, "no \(kind) was injected")
            }
        }
        #expect(cuts >= Self.crashes, "every seed cuts the power at least once")
    }

    struct Outcome {
        var problems: [String] = []
        var trace: [String] = []
        var acknowledged = 0
        var cuts = 0
        var failedSyncs = 0
        var compactions = 0
        var failedCompactions = 0
        var failedOpens = 0
        var eventsFollowed = 0
        var readOnlyChecks = 0
        var headsLost = 0
        var injected: [String: Int] = [:]
        var phase = ""
    }

    /// One seed: a few rounds of concurrent appends until the power is cut (or a sync fails),
    /// each followed by a reopen checked against the model (after one cut in three, by an
    /// offline compaction first, itself cut in one case in two, and with failing syncs in one
    /// case in four: it stops, and the store goes on in the same boot). One seed in four starts from a copy
    /// of the format version 3 fixture (its first write starts a segment of the current version:
    /// power cuts around that roll, and recovery of a store of two versions).
    static func run(seed: UInt64) async -> Outcome {
        let directory = TemporaryDirectory("simulated")
        var outcome = Outcome()
        var model = Model()
        if seed % 4 == 0 {
            do {
                try FileManager.default.copyItem(
                    atPath: OlderVersionStoreTests.fixtures.appendingPathComponent("v3-store").path, toPath: directory.path)
                // What it holds, read before the disk is attached (read-only: nothing written).
                var options = EventLog.Options()
                options.readOnly = true
                let log = try EventLog.open(at: directory.path, options: options)
                defer { log.close() }
                for event in try log.readAll(from: 0, maxCount: 10_000) {
                    model.attempted[event.id] = Model.expected(event)
                    model.durable[event.position] = (Model.expected(event), event.version)
                }
            } catch {
                outcome.problems.append("seed \(seed): the version 3 fixture could not be set up: \(error)")
                directory.remove()
                return outcome
            }
        } else {
            try? FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        }
        let disk = SimulatedDisk(root: directory.path, seed: seed)
        defer {
            disk.unregister()
            directory.remove()
        }
        do {
            try await run(seed: seed, in: directory, on: disk, model: model, outcome: &outcome)
        } catch {
            outcome.problems.append("seed \(seed), while \(outcome.phase): \(error)")
        }
        outcome.trace = disk.trace
        outcome.injected = disk.injectedFaults
        if !outcome.problems.isEmpty, let keep = ProcessInfo.processInfo.environment["DUGONG_KEEP_FAILED_STORE"] {
            // For a look at what the disk kept (the directory is removed otherwise).
            try? FileManager.default.copyItem(atPath: directory.path, toPath: keep + "/seed-\(seed)")
            try? outcome.trace.joined(separator: "\n").write(toFile: keep + "/seed-\(seed).trace", atomically: false, encoding: .utf8)
        }
        return outcome
    }

    static func run(
        seed: UInt64, in directory: TemporaryDirectory, on disk: SimulatedDisk, model: Model, outcome: inout Outcome
    ) async throws {
        var random = SeededRandom(seed: seed &* 0x2545_F491_4F6C_DD1D)
        var model = model
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = [4096, 16 << 10, 64 << 10].randomElement(using: &random)!
        options.targetFrameSize = [1024, 4096, 1 << 20].randomElement(using: &random)!
        options.useIndexFile = Bool.random(using: &random)
        let rounds = Int.random(in: 2...4, using: &random)
        for round in 0..<rounds {
            if round > 0 && Int.random(in: 0..<5, using: &random) == 0 {
                // The power fails again while the store recovers.
                disk.crash(atOperation: disk.operationCount + Int.random(in: 1...12, using: &random))
            }
            outcome.phase = "opening in round \(round)"
            // One open in five meets failing calls too (its recovery writes, syncs, renames and
            // removes): it fails or succeeds; either way the next open must find every
            // acknowledged event.
            let failingOpen = round > 0 && Int.random(in: 0..<5, using: &random) == 0
            if failingOpen { disk.setFaults(Self.faults(failing: true, using: &random).scaled(by: 4)) }
            var log: EventLog
            do {
                log = try EventLog.open(at: directory.path, options: options)
                disk.setFaults(SimulatedDisk.Faults())
            } catch where disk.hasCrashed {
                disk.setFaults(SimulatedDisk.Faults())
                try disk.materializeCrash()
                outcome.cuts += 1
                continue
            } catch where failingOpen {
                disk.setFaults(SimulatedDisk.Faults())
                outcome.failedOpens += 1
                continue
            }
            defer { log.close() }
            if try Self.cutDuringOpen(of: log, on: disk, &outcome) { continue }
            disk.crash(atOperation: Int.max)
            outcome.phase = "checking round \(round)"
            outcome.problems += try model.check(log, seed: seed, round: round)
            guard outcome.problems.isEmpty else {
                log.close()
                break
            }
            let headLost = Int.random(in: 0..<4, using: &random) == 0
            if headLost {
                // The head file is lost (a clean close first: it is then the only thing
                // missing). The writer that opens it next starts a new one, and in one case in
                // two the power fails while it does; every acknowledged event stays, and the
                // power cuts of this round meet a head file that began afresh.
                outcome.phase = "opening without the head file in round \(round)"
                log.close()
                try disk.remove(directory.path + "/" + Layout.headName)
                try disk.synchronizeDirectory(directory.path)
                outcome.headsLost += 1
                if Bool.random(using: &random) { disk.crash(atOperation: disk.operationCount + Int.random(in: 1...10, using: &random)) }
                do {
                    log = try EventLog.open(at: directory.path, options: options)
                } catch where disk.hasCrashed {
                    try disk.materializeCrash()
                    outcome.cuts += 1
                    continue
                }
                if try Self.cutDuringOpen(of: log, on: disk, &outcome) { continue }
                disk.crash(atOperation: Int.max)
                outcome.problems += try model.check(log, seed: seed, round: round)
                guard outcome.problems.isEmpty else {
                    log.close()
                    break
                }
            }
            // One round in four after the first meets failing system calls (each kind on or
            // off): the store stops at the first, and is reopened in the same boot. Short writes
            // (not failures) come in any round.
            let failSyncs = round > 0 && Int.random(in: 0..<4, using: &random) == 0
            disk.setFaults(Self.faults(failing: failSyncs, using: &random))
            // (Soon after a new head file: its first records are the ones a cut can lose.)
            disk.crash(atOperation: disk.operationCount + Int.random(in: 1...(headLost ? 20 : 400), using: &random))
            outcome.phase = "appending in round \(round)"
            let writers = Int.random(in: 1...4, using: &random)
            // Some commits are sent again once acknowledged, with the version they were written
            // after: a retry, decided while other writers' batches may be in flight, must be
            // recognized as the same commit, at the same positions.
            let plans = (0..<writers).map { writer in
                (0..<Int.random(in: 5...40, using: &random)).map { _ in
                    let (stream, events) = Self.commit(stream: "s/\(Int.random(in: 0..<5, using: &random))", writer: writer, using: &random)
                    return (stream, events, retried: Int.random(in: 0..<4, using: &random) == 0)
                }
            }
            for plan in plans {
                for (stream, events, _) in plan {
                    for event in events { model.attempted[event.id] = Self.expected(event, in: stream) }
                }
            }
            // In one round in two a reader in the same process (read-only, no lock) follows the
            // log while the writers append and the disk fails: whatever it reads must be an
            // event that was appended, byte for byte, in gapless log order; it stops at the first
            // error, which must be typed.
            let attempted = model.attempted
            let writersLeft = Countdown(Bool.random(using: &random) ? writers : 0)
            let eventsFollowed = Tally()
            let readerPath = directory.path
            let writer = log
            let (results, retryProblems) = await withTaskGroup(of: ([(String, [NewEvent], Commit)], [String]).self) { group in
                if !writersLeft.isDone {
                    group.addTask {
                        var options = EventLog.Options()
                        options.readOnly = true
                        let (problems, read) = Self.follow(readerPath, options: options, attempted: attempted) { writersLeft.isDone }
                        eventsFollowed.add(read)
                        return ([], problems.map { "the reader beside the writers: \($0)" })
                    }
                }
                for plan in plans {
                    group.addTask {
                        defer { writersLeft.countDown() }
                        var done: [(String, [NewEvent], Commit)] = []
                        var problems: [String] = []
                        for (stream, events, retried) in plan {
                            do {
                                let commit = try await writer.append(events, to: stream)
                                done.append((stream, events, commit))
                                guard retried else { continue }
                                let again = try await writer.append(events, to: stream, expecting: .exact(commit.firstVersion - 1))
                                if !again.wasDuplicate || again.firstPosition != commit.firstPosition || again.lastPosition != commit.lastPosition {
                                    problems.append("a retry of \(stream) v\(commit.firstVersion)...v\(commit.lastVersion) was not the same commit: \(again)")
                                }
                            } catch StoreError.failed, StoreError.closed {
                                break  // the disk is gone or the store failed: stop this writer
                            } catch {
                                problems.append("an append to \(stream) failed: \(error)")
                                break
                            }
                        }
                        return (done, problems)
                    }
                }
                var all: [(String, [NewEvent], Commit)] = []
                var problems: [String] = []
                for await (done, found) in group {
                    all += done
                    problems += found
                }
                return (all, problems)
            }
            outcome.problems += retryProblems.map { "seed \(seed) round \(round): \($0)" }
            // What a reader was served was durable (readers stop at the head's durable end,
            // which the writer records after each sync): it must survive the cuts as
            // acknowledged events do.
            outcome.eventsFollowed += eventsFollowed.events.count
            for (position, seen) in eventsFollowed.events { model.durable[position] = seen }
            for (stream, events, commit) in results {
                outcome.acknowledged += events.count
                for (offset, event) in events.enumerated() {
                    model.durable[commit.firstPosition + UInt64(offset)] = (Self.expected(event, in: stream), commit.firstVersion + offset)
                }
            }
            outcome.phase = "closing in round \(round)"
            if Bool.random(using: &random) { log.close() }  // a clean close, then the cut
            if disk.hasCrashed || !failSyncs {
                disk.crash(atOperation: disk.operationCount + 1)
                log.close()
                try disk.materializeCrash()
                outcome.cuts += 1
                disk.setFaults(SimulatedDisk.Faults())
                // In one cut in two a read-only open (a `dugong export`, a follower starting)
                // comes first: with no writer to recover the store, it must serve every
                // acknowledged event (the head record naming them may not have survived the cut).
                if Bool.random(using: &random) {
                    outcome.phase = "reading without a writer after the cut in round \(round)"
                    outcome.readOnlyChecks += 1
                    outcome.problems += try model.checkReadOnly(at: directory.path, seed: seed, round: round)
                    guard outcome.problems.isEmpty else { break }
                }
                if Int.random(in: 0..<3, using: &random) == 0 {
                    // The next thing run after the cut is an offline compaction (no writable
                    // open first: the head may be older than what was acknowledged); in one
                    // case in two the power fails during it too.
                    outcome.phase = "compacting after the cut in round \(round)"
                    let cutsCompaction = Bool.random(using: &random)
                    let failsSyncs = !cutsCompaction && Bool.random(using: &random)
                    var faults = Self.faults(failing: failsSyncs, using: &random)
                    if failsSyncs { faults.failingSync = 0.25 }
                    disk.setFaults(faults)
                    disk.crash(atOperation: cutsCompaction ? disk.operationCount + Int.random(in: 1...60, using: &random) : Int.max)
                    do {
                        _ = try EventLog.compact(at: directory.path, options: options)
                    } catch where disk.hasCrashed {
                    } catch where failsSyncs {
                        outcome.failedCompactions += 1
                    }
                    disk.setFaults(SimulatedDisk.Faults())
                    try Self.settleCut(on: disk, &outcome)
                    outcome.compactions += 1
                }
            } else {
                // A sync failed: the store stopped; it is reopened in the same boot (the page
                // cache still holds what never reached the disk). In one case in two a reader
                // comes first: it must serve every acknowledged event.
                log.close()
                // (The round's planned cut may come during that close, which writes the index
                // and syncs: the disk is dead then, and the cut is made before anything reads.
                // Seed 17247 of a long run read the dead disk: EIO, the harness's slip.)
                try Self.settleCut(on: disk, &outcome)
                outcome.failedSyncs += 1
                disk.setFaults(SimulatedDisk.Faults())
                if Bool.random(using: &random) {
                    outcome.phase = "reading without a writer after a failed call in round \(round)"
                    outcome.readOnlyChecks += 1
                    outcome.problems += try model.checkReadOnly(at: directory.path, seed: seed, round: round, servedMustSurvive: false)
                    guard outcome.problems.isEmpty else { break }
                }
            }
            disk.setFaults(SimulatedDisk.Faults())
        }
        try Self.settleCut(on: disk, &outcome)
        if outcome.problems.isEmpty {
            outcome.phase = "the final check"
            let log = try EventLog.open(at: directory.path, options: options)
            outcome.problems += try model.check(log, seed: seed, round: rounds)
            log.close()
        }
    }

    /// Whether the power failed in a step of an open that does not report it (best effort):
    /// then the store is closed and the cut materialized.
    static func cutDuringOpen(of log: EventLog, on disk: SimulatedDisk, _ outcome: inout Outcome) throws -> Bool {
        guard disk.hasCrashed else { return false }
        log.close()
        try disk.materializeCrash()
        outcome.cuts += 1
        return true
    }

    /// The faults of a round: with `failing`, failing syncs and each other kind of failing call
    /// (a write, a full disk, a rename or unlink) on or off; short writes in one round in two.
    static func faults(failing: Bool, using random: inout SeededRandom) -> SimulatedDisk.Faults {
        var faults = SimulatedDisk.Faults()
        faults.shortWrite = Bool.random(using: &random) ? 0.2 : 0
        guard failing else { return faults }
        faults.failingSync = 0.05
        if Bool.random(using: &random) { faults.failingWrite = 0.02 }
        if Bool.random(using: &random) { faults.fullDisk = 0.05 }
        if Bool.random(using: &random) { faults.failingDirectoryChange = 0.1 }
        return faults
    }

    /// A sum kept by concurrent tasks.
    final class Tally: Sendable {
        private let seen = Mutex<[UInt64: (Model.Expected, version: Int)]>([:])
        func add(_ events: [UInt64: (Model.Expected, version: Int)]) { seen.withLock { $0.merge(events) { first, _ in first } } }
        var events: [UInt64: (Model.Expected, version: Int)] { seen.withLock { $0 } }
    }

    /// A count shared by concurrent tasks.
    final class Countdown: Sendable {
        private let count: Mutex<Int>
        init(_ count: Int) { self.count = Mutex(count) }
        func countDown() { count.withLock { $0 = max(0, $0 - 1) } }
        var isDone: Bool { count.withLock { $0 == 0 } }
    }

    /// Reads the log at `path` as a follower does (refresh, then what is new) until `done` says
    /// so or a read fails; what it finds against the events ever appended.
    static func follow(
        _ path: String, options: EventLog.Options, attempted: [UUID: Model.Expected], done: () -> Bool
    ) -> (problems: [String], eventsRead: [UInt64: (Model.Expected, version: Int)]) {
        var problems: [String] = []
        var read: [UInt64: (Model.Expected, version: Int)] = [:]
        let reader: EventLog
        do {
            reader = try EventLog.open(at: path, options: options)
        } catch is StoreError {
            return ([], [:])
        } catch is SystemError {
            return ([], [:])
        } catch {
            return (["the open threw an untyped error: \(error)"], [:])
        }
        defer { reader.close() }
        var next: UInt64 = 0
        var rounds = 0
        while problems.isEmpty, rounds < 10_000 {
            rounds += 1
            let finished = done()
            do {
                _ = try reader.refresh()
                next = try reader.forEachEvent(from: next, maxCount: 512) { event in
                    if event.position != next { problems.append("read position \(event.position) after \(next)") }
                    let stored = event.stored
                    if attempted[stored.id] != Model.expected(stored) {
                        problems.append("position \(stored.position) read as an event never appended (\(stored.stream) v\(stored.version))")
                    }
                    next = stored.position + 1
                    read[stored.position] = (Model.expected(stored), stored.version)
                }
            } catch is StoreError {
                break
            } catch is SystemError {
                break
            } catch {
                problems.append("a read threw an untyped error: \(error)")
            }
            if finished { break }
        }
        return (problems, read)
    }

    /// A power cut that happened becomes what the disk keeps (and is counted); no cut is planned
    /// after it.
    static func settleCut(on disk: SimulatedDisk, _ outcome: inout Outcome) throws {
        if disk.hasCrashed {
            try disk.materializeCrash()
            outcome.cuts += 1
        }
        disk.crash(atOperation: Int.max)
    }

        static func commit(stream: String, writer: Int, using random: inout SeededRandom) -> (String, [NewEvent]) {
        let events = (0..<Int.random(in: 1...5, using: &random)).map { _ -> NewEvent in
            let size = [0, 20, 150, 700].randomElement(using: &random)!
            let noise = (0..<size).map { _ in UInt8.random(in: 97...122, using: &random) }
            var id = UUID().uuid
            withUnsafeMutableBytes(of: &id) { bytes in for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255, using: &random) } }
            return NewEvent(
                id: UUID(uuid: id), type: "T\(writer)", timestamp: Date(millisecondsSince1970: Int64.random(in: 0...1 << 40, using: &random)),
                data: Data(#"{"w":\#(writer),"x":""#.utf8) + Data(noise) + Data(#""}"#.utf8), metadata: Data())
        }
        return (stream, events)
    }

    static func expected(_ event: NewEvent, in stream: String) -> Model.Expected {
        Model.Expected(
            stream: stream, id: event.id, type: event.type, timestamp: event.timestamp.millisecondsSince1970, data: event.data,
            metadata: event.metadata)
    }
}
