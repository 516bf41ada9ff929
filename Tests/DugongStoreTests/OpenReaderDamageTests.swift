import Dugong
@testable import DugongStore
import Foundation
import Glibc
import Synchronization
import Testing

/// Random damage to the files of a store that a reader holds open: its segments mapped, its
/// index built, and in one trial in two its frames already decoded once. The damage is the same
/// as for closed stores (a write through the file's name reaches the reader's maps: a segment
/// cut under them reads past its end). Then the reader refreshes and reads everything again,
/// as a follower does. For each one: nothing it returns is a wrong event, out of order, or a
/// part of what it had without an error; every error is typed; nothing crashes. `verify` is
/// not asked here: an open reader's maps may hold what the files no longer do (a removed file
/// stays readable through them), which is the store it opened. `DUGONG_OPEN_READER_DAMAGE_TRIALS`
/// sets the count (long mode).
@Suite("Damage under an open reader")
struct OpenReaderDamageTests {
    static let trials = Int(ProcessInfo.processInfo.environment["DUGONG_OPEN_READER_DAMAGE_TRIALS"] ?? "") ?? 300

    @Test func damageUnderAnOpenReaderNeverMakesItReturnAWrongEvent() async throws {
        let templates = try await (0..<6).asyncMap { try await DamageTests.makeTemplate(shape: $0) }
        defer { for template in templates { template.directory.remove() } }
        var failures: [String] = []
        var errors = 0
        var unnoticed = 0
        let only = Int(ProcessInfo.processInfo.environment["DUGONG_OPEN_READER_DAMAGE_TRIAL"] ?? "")
        for trial in 0..<Self.trials where only == nil || only == trial {
            let (description, problems, threw) = try await onOwnThread { try Self.run(trial: trial, templates: templates) }
            if only != nil { print("trial \(trial): \(description): \(problems)") }
            if threw { errors += 1 } else { unnoticed += 1 }
            if !problems.isEmpty {
                failures.append("trial \(trial) (\(description)): \(problems.joined(separator: "; "))")
                if failures.count >= 5 { break }
            }
        }
        print("damage under an open reader: \(Self.trials) trials, \(errors) ended in a typed error, \(unnoticed) read everything it had, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// One trial: what was damaged, what went wrong, whether a read threw.
    static func run(trial: Int, templates: [DamageTests.Template]) throws -> (String, [String], Bool) {
        var random = SeededRandom(seed: UInt64(trial) &* 0x2545_F491 &+ 99)
        let template = templates[trial % templates.count]
        let kind = DamageTests.Damage.allCases.randomElement(using: &random)!
        let directory = TemporaryDirectory("open-reader-damage")
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: template.directory.path, toPath: directory.path)
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = Bool.random(using: &random)
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        let warm = Bool.random(using: &random)
        if warm {
            // Decoded once: later reads may take frames from the reader's cache.
            guard try log.readAll(maxCount: 10_000) == template.events else { return ("no damage", ["the undamaged store read back wrong"], false) }
            for stream in template.streams.keys { _ = try log.read(stream: stream) }
        }
        let others = templates.filter { $0.directory.path != template.directory.path }
        let description = try DamageTests.damage(directory, kind, template: template, others: others, using: &random)
            + (warm ? ", the reader's frames decoded before" : "")
        var failures: [String] = []
        var threw = false
        /// Runs a read; a typed error is an answer, any other is a failure.
        func attempt<T>(_ what: String, _ read: () throws -> T) -> T? {
            do {
                return try read()
            } catch is StoreError {
                threw = true
            } catch {
                failures.append("\(what) threw an untyped error: \(error)")
            }
            return nil
        }
        _ = attempt("refresh") { try log.refresh() }
        let byPosition = Dictionary(template.events.map { ($0.position, $0) }, uniquingKeysWith: { a, _ in a })
        var seen: [StoredEvent] = []
        let readAllCompleted = attempt("read-all") { () throws -> Bool in
            var next: UInt64 = 0
            while true {
                let batch = try log.readAll(from: next, maxCount: 64)
                guard let last = batch.last else { return true }
                seen += batch
                next = last.position + 1
            }
        } ?? false
        for event in seen where byPosition[event.position] != event {
            failures.append("read-all returned a wrong event at position \(event.position): \(event.stream) v\(event.version)")
        }
        if zip(seen, seen.dropFirst()).contains(where: { $0.position >= $1.position }) {
            failures.append("read-all returned events out of order or twice")
        }
        if readAllCompleted, seen.count != template.events.count {
            failures.append("read-all ended without an error after \(seen.count) of the \(template.events.count) events the reader had")
        }
        var lent: [StoredEvent] = []
        _ = attempt("the lending read") { () throws -> Void in
            var from: UInt64 = 0
            while true {
                let after = try log.forEachEvent(from: from, maxCount: 64) { lent.append($0.stored) }
                if after == from { return }
                from = after
            }
        }
        for event in lent where byPosition[event.position] != event {
            failures.append("the lending read lent a wrong event at position \(event.position)")
        }
        failures += DamageTests.salvageFailures(log, template: template, byPosition: byPosition)
        for (stream, expected) in template.streams.sorted(by: { $0.key < $1.key }) {
            if let events = attempt("read \(stream)", { try log.read(stream: stream) }), events != expected {
                failures.append(events.allSatisfy({ expected.contains($0) })
                    ? "read \(stream) returned \(events.count) of its \(expected.count) events without an error"
                    : "read \(stream) returned events it does not hold")
            }
            var lentOfStream: [StoredEvent] = []
            if attempt("the lending read of \(stream)", { try log.forEachEvent(in: stream) { lentOfStream.append($0.stored) } }) != nil,
                lentOfStream != expected {
                failures.append("the lending read of \(stream) lent other events than its \(expected.count) (\(lentOfStream.count)), without an error")
            }
            if let snapshot = attempt("the snapshot of \(stream)", { try log.latestSnapshot(of: stream) }),
                snapshot != template.snapshots[stream] ?? nil {
                failures.append(snapshot != nil ? "a wrong snapshot of \(stream)" : "the snapshot of \(stream) went missing without an error")
            }
        }
        _ = attempt("statistics") { try log.statistics() }
        return (description, failures, threw)
    }

    /// What the writer of a live round meant to append, by event id.
    struct Intended: Sendable {
        var stream: String
        var event: NewEvent
    }

    /// A writer appends (rolling small segments) while a follower refreshes and reads in a tight
    /// loop, and the store's files are damaged in place beside them at random moments: bits
    /// flipped, bytes and pages zeroed, bytes of one file written into another, a file cut
    /// short or removed. A follower that meets an error opens the store again and goes on from
    /// the position after the last event it read. For each round: every event a follower
    /// returns is one the writer appended, with its bytes, and at the position and version the
    /// writer acknowledged; positions only grow; no acknowledged position is passed over
    /// without an error; every error is typed; nothing crashes (a cut under a map reads past
    /// its file's end). A fresh reader after the writer closed is held to the same.
    /// `DUGONG_LIVE_DAMAGE_ROUNDS` sets the count (long mode).
    @Test func damageWhileAWriterAppendsNeverMakesAFollowerReadAWrongEvent() async throws {
        let rounds = Int(ProcessInfo.processInfo.environment["DUGONG_LIVE_DAMAGE_ROUNDS"] ?? "") ?? 20
        var failures: [String] = []
        var systemErrors: Set<String> = []
        var refusals: Set<String> = []
        var totals = (delivered: 0, acknowledged: 0, followerErrors: 0, writerErrors: 0, damages: 0)
        for round in 0..<rounds {
            let result = try await Self.liveRound(round)
            totals.delivered += result.delivered
            totals.acknowledged += result.acknowledged
            totals.followerErrors += result.followerErrors
            totals.writerErrors += result.writerErrors
            totals.damages += result.damages.count
            refusals.formUnion(result.writerRefusals.map { $0.replacing(/dugong-tests-[^\/]*/, with: "…").replacing(/[0-9]+/, with: "N") })
            systemErrors.formUnion(result.systemErrors.map { $0.replacing(/dugong-tests-[^\/]*/, with: "…") })
            if !result.failures.isEmpty {
                failures.append("round \(round) (\(result.damages.joined(separator: ", "))): \(result.failures.prefix(4).joined(separator: "; "))")
            }
        }
        print("damage beside a writer and a follower: \(rounds) rounds, \(totals.damages) damages, \(totals.acknowledged) events acknowledged, \(totals.delivered) read by the followers, \(totals.followerErrors) follower errors, \(totals.writerErrors) refused appends, \(failures.count) failing rounds")
        if !refusals.isEmpty { print("the writer's first refusals: \(refusals.sorted().joined(separator: "; "))") }
        if !systemErrors.isEmpty { print("the followers' system errors: \(systemErrors.sorted().joined(separator: "; "))") }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    struct LiveRound {
        var delivered = 0, acknowledged = 0, followerErrors = 0, writerErrors = 0
        var damages: [String] = []
        var failures: [String] = []
        var systemErrors: [String] = []
        /// The writer's first refusal (a damage it met, or what followed from it).
        var writerRefusals: [String] = []
    }

    static func liveRound(_ round: Int) async throws -> LiveRound {
        var random = SeededRandom(seed: UInt64(round) &* 0x9E37_79B9_7F4A_7C15 &+ 5)
        let directory = TemporaryDirectory("live-damage")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = [4096, 8192, 65536].randomElement(using: &random)!
        if Bool.random(using: &random) { options.durability = .unsafeNoSync }
        let writer = try EventLog.open(at: directory.path, options: options)
        let intended = FollowingTests.Shared<[UUID: Intended]>([:])
        let stop = FollowingTests.Shared(false)
        let path = directory.path
        let followerSeed = random.next(), damageSeed = random.next()

        // The follower: (position, event) in the order read, its typed errors, its failures.
        async let following = onOwnThread { () -> (events: [StoredEvent], errors: Int, failures: [String], systemErrors: [String]) in
            var events: [StoredEvent] = []
            var errors = 0
            var failures: [String] = []
            var systemErrors: [String] = []
            var random = SeededRandom(seed: followerSeed)
            var next: UInt64 = 0
            var readOnly = EventLog.Options()
            readOnly.readOnly = true
            while !stop.withLock({ $0 }) {
                readOnly.useIndexFile = Bool.random(using: &random)
                do {
                    let log = try EventLog.open(at: path, options: readOnly)
                    defer { log.close() }
                    while !stop.withLock({ $0 }) {
                        try log.refresh()
                        let batch = Bool.random(using: &random)
                            ? try log.readAll(from: next, maxCount: 64)
                            : try { () throws -> [StoredEvent] in
                                var lent: [StoredEvent] = []
                                _ = try log.forEachEvent(from: next, maxCount: 64) { lent.append($0.stored) }
                                return lent
                            }()
                        events += batch
                        if let last = batch.last { next = last.position + 1 } else { usleep(200) }
                    }
                } catch is StoreError {
                    errors += 1
                    usleep(500)
                } catch let error as SystemError {
                    // Typed (a system call's error, with the file): counted, and shown. A file
                    // that is missing is damage to name, not a failed call (a reader opened
                    // the head, the manifest or a segment after asking whether it was there,
                    // and a file removed between the two made a SystemError).
                    errors += 1
                    systemErrors.append("\(error)")
                    if error.code == ENOENT { failures.append("the follower met a missing file as a failed call: \(error)") }
                    usleep(500)
                } catch {
                    failures.append("the follower met an untyped error: \(error)")
                    usleep(500)
                }
            }
            return (events, errors, failures, systemErrors)
        }

        // The damage, in place, at random moments while the writer appends.
        async let damaging = onOwnThread { () -> [String] in
            var random = SeededRandom(seed: damageSeed)
            var done: [String] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                usleep(UInt32.random(in: 1_000...40_000, using: &random))
                if stop.withLock({ $0 }) { break }
                if let damage = Self.damageInPlace(path, using: &random) { done.append(damage) }
            }
            return done
        }

        var result = LiveRound()
        var acknowledged: [UUID: (position: UInt64, version: Int)] = [:]
        for commit in 0..<400 {
            let stream = "s/\(Int.random(in: 0..<6, using: &random))"
            let events = (0..<Int.random(in: 1...3, using: &random)).map { index in
                NewEvent(
                    type: ["Opened", "Deposited", "Withdrawn"][index], timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(commit)),
                    data: Data((0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 97...102, using: &random) }),
                    metadata: Data("c\(commit)".utf8))
            }
            intended.withLock { for event in events { $0[event.id] = Intended(stream: stream, event: event) } }
            do {
                let written = try await writer.append(events, to: stream)
                for (offset, event) in events.enumerated() {
                    acknowledged[event.id] = (written.firstPosition + UInt64(offset), written.firstVersion + offset)
                }
            } catch {
                result.writerErrors += 1
                if result.writerErrors == 1 { result.writerRefusals.append("\(error)") }
                if "\(error)".components(separatedBy: "the store failed").count > 2 {
                    result.failures.append("the writer's refusal says that the store failed more than once: \(error)")
                }
            }
            if commit % 50 == 49 { try await Task.sleep(for: .milliseconds(2)) }
        }
        result.damages = try await damaging
        writer.close()
        try await Task.sleep(for: .milliseconds(20))
        stop.withLock { $0 = true }
        let follower = try await following
        result.acknowledged = acknowledged.count
        result.delivered = follower.events.count
        result.followerErrors = follower.errors
        result.failures = follower.failures
        result.systemErrors = follower.systemErrors

        let acknowledgedPositions = Set(acknowledged.values.map(\.position))
        let everything = intended.withLock { $0 }
        /// The failures of a sequence of events a reader returned, in order, from position 0.
        func failures(of events: [StoredEvent], by reader: String) -> [String] {
            var failures: [String] = []
            var expectedNext: UInt64 = 0
            for event in events {
                guard let meant = everything[event.id] else {
                    failures.append("\(reader) returned an event the writer never appended, at position \(event.position)")
                    continue
                }
                if event.stream != meant.stream || event.type != meant.event.type || event.data != meant.event.data
                    || event.metadata != meant.event.metadata || event.timestamp != meant.event.timestamp || event.id != meant.event.id {
                    failures.append("\(reader) returned a wrong event at position \(event.position)")
                }
                if let acked = acknowledged[event.id], acked.position != event.position || acked.version != event.version {
                    failures.append("\(reader) returned \(event.stream) v\(event.version) at \(event.position); it was acknowledged as v\(acked.version) at \(acked.position)")
                }
                if event.position < expectedNext {
                    failures.append("\(reader) returned position \(event.position) after \(expectedNext - 1)")
                } else if let passed = (expectedNext..<event.position).first(where: acknowledgedPositions.contains) {
                    failures.append("\(reader) passed over acknowledged position \(passed) without an error (it went on at \(event.position))")
                }
                expectedNext = event.position + 1
            }
            return failures
        }
        result.failures += failures(of: follower.events, by: "the follower")

        // A fresh reader, after the writer closed.
        do {
            var readOnly = EventLog.Options()
            readOnly.readOnly = true
            let log = try EventLog.open(at: path, options: readOnly)
            defer { log.close() }
            var events: [StoredEvent] = []
            do {
                while true {
                    let batch = try log.readAll(from: events.last.map { $0.position + 1 } ?? 0, maxCount: 256)
                    guard !batch.isEmpty else { break }
                    events += batch
                }
            } catch is StoreError {}
            result.failures += failures(of: events, by: "a fresh reader")
        } catch is StoreError {
        } catch {
            result.failures.append("a fresh reader's open threw an untyped error: \(error)")
        }
        return result
    }

    /// One damage to a file of the store at `path`, written in place (the writer and the
    /// follower keep their files open): what it did, or nil when the file went away meanwhile.
    static func damageInPlace(_ path: String, using random: inout SeededRandom) -> String? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path).filter({ $0 != "dugong.lock" }).sorted(),
            let name = names.randomElement(using: &random),
            let bytes = try? FollowingTests.contents(path + "/" + name), !bytes.isEmpty
        else { return nil }
        let file = path + "/" + name
        func write(_ data: [UInt8], at offset: Int) -> Bool {
            let descriptor = Glibc.open(file, O_WRONLY)
            guard descriptor >= 0 else { return false }
            defer { Glibc.close(descriptor) }
            return data.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) } == data.count
        }
        switch Int.random(in: 0..<6, using: &random) {
        case 0:
            let offset = Int.random(in: 0..<bytes.count, using: &random)
            let flipped = bytes[offset] ^ (1 << UInt8.random(in: 0..<8, using: &random))
            return write([flipped], at: offset) ? "bit flip in \(name) at \(offset)" : nil
        case 1:
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let count = min(bytes.count - start, Int.random(in: 1...600, using: &random))
            return write([UInt8](repeating: 0, count: count), at: start) ? "zeros in \(name) at \(start)..<\(start + count)" : nil
        case 2:
            let page = Int.random(in: 0...(bytes.count - 1) / 4096, using: &random) * 4096
            let count = min(4096, bytes.count - page)
            return write([UInt8](repeating: 0, count: count), at: page) ? "zeroed page of \(name) at \(page)" : nil
        case 3:
            guard let source = try? FollowingTests.contents(path + "/" + names.randomElement(using: &random)!), !source.isEmpty else { return nil }
            let length = min([64, 512, 4096].randomElement(using: &random)!, source.count, bytes.count)
            let from = Int.random(in: 0...(source.count - length), using: &random)
            let to = Int.random(in: 0...(bytes.count - length), using: &random)
            return write(Array(source[from..<from + length]), at: to) ? "\(length) bytes misdirected into \(name) at \(to)" : nil
        case 4:
            let size = Int.random(in: 0..<bytes.count, using: &random)
            return Glibc.truncate(file, off_t(size)) == 0 ? "\(name) cut to \(size)" : nil
        default:
            return unlink(file) == 0 ? "\(name) removed" : nil
        }
    }
}
