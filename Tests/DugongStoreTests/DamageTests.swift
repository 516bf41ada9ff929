import Dugong
@testable import DugongStore
import Foundation
import Testing

/// Random damage to closed stores: bit flips, zeroed ranges and pages, misdirected writes (bytes
/// copied from elsewhere in the store), replayed files (an older version put back), lost files
/// (one, several, or all but the head), truncated files, appended garbage, in every file the store owns. For each one: nothing read
/// is ever a wrong event; a read either returns exactly what was stored or throws a typed
/// error; `verify` reports a problem whenever a byte of a segment, the manifest or the head
/// changed, and when it says clean every read returns everything; a writable open of a
/// damaged store changes none of its bytes. `DUGONG_DAMAGE_TRIALS` sets the count (long mode).
@Suite("Damage to closed stores")
struct DamageTests {
    static let trials = Int(ProcessInfo.processInfo.environment["DUGONG_DAMAGE_TRIALS"] ?? "") ?? 300

    /// A store and what it holds.
    struct Template {
        let directory: TemporaryDirectory
        /// The files before the last round of appends (for replayed writes).
        let older: [String: Data]
        let events: [StoredEvent]
        let streams: [String: [StoredEvent]]
        let snapshots: [String: StoredSnapshot?]
        /// Every event after a compaction of the undamaged store.
        var compacted: [StoredEvent] = []
        /// A compaction came between `older` and the last files.
        var compactedBetween = false
    }

    /// The events of a copy of `directory` compacted.
    static func compactedEvents(of directory: TemporaryDirectory) throws -> [StoredEvent] {
        let copy = TemporaryDirectory("damage-template-compacted")
        defer { copy.remove() }
        try FileManager.default.copyItem(atPath: directory.path, toPath: copy.path)
        _ = try EventLog.compact(at: copy.path)
        var options = EventLog.Options()
        options.readOnly = true
        let log = try EventLog.open(at: copy.path, options: options)
        defer { log.close() }
        return try log.readAll(maxCount: 10_000)
    }

    static func makeTemplate(shape: Int) async throws -> Template {
        let directory = TemporaryDirectory("damage-template")
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = [4096, 8192, 1 << 20][shape % 3]
        var log = try EventLog.open(at: directory.path, options: options)
        for round in 0..<40 {
            try await log.append(Fixture.events(1 + round % 3, size: round % 4 == 0 ? 120 : 10), to: "s/\(round % 5)")
            if round == 20 { try await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: 3, data: Data("snap".utf8))) }
            if round == 25 { try await log.delete(stream: "s/4") }
            if round == 30 { try await log.truncate(stream: "s/2", before: 4) }
        }
        log.close()
        if shape % 2 == 1 { _ = try EventLog.compact(at: directory.path, options: options) }
        var older: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            older[name] = try Data(contentsOf: URL(fileURLWithPath: directory.file(name)))
        }
        log = try EventLog.open(at: directory.path, options: options)
        // In the smallest segments the last rounds roll to new segments, and in one shape a
        // compaction comes between them: files put back from before then meet newer ones of
        // other names (FORMAT.md §3a, §10).
        for round in 0..<10 {
            if shape == 3 && round == 5 {
                log.close()
                _ = try EventLog.compact(at: directory.path, options: options)
                log = try EventLog.open(at: directory.path, options: options)
            }
            try await log.append(Fixture.events(2, size: shape % 3 == 0 ? 300 : 30), to: "s/\(round % 6)")
        }
        let events = try log.readAll(maxCount: 10_000)
        var streams: [String: [StoredEvent]] = [:]
        var snapshots: [String: StoredSnapshot?] = [:]
        for stream in (0..<6).map({ "s/\($0)" }) {
            streams[stream] = try log.read(stream: stream)
            snapshots[stream] = try log.latestSnapshot(of: stream)
        }
        guard shape >= 4 else {
            log.close()
            var template = Template(directory: directory, older: older, events: events, streams: streams, snapshots: snapshots)
            template.compacted = try compactedEvents(of: directory)
            template.compactedBetween = shape == 3
            return template
        }
        // The files as a writer that stops without closing leaves them (killed, or the power
        // failed; every append was synced): no close marker, no saved index.
        let unclean = TemporaryDirectory("damage-template-unclean")
        try FileManager.default.createDirectory(atPath: unclean.path, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name != "dugong.lock" {
            try FileManager.default.copyItem(atPath: directory.file(name), toPath: unclean.file(name))
        }
        log.close()
        directory.remove()
        var template = Template(directory: unclean, older: older, events: events, streams: streams, snapshots: snapshots)
        template.compacted = try compactedEvents(of: unclean)
        template.compactedBetween = shape == 3
        return template
    }

    enum Damage: CaseIterable {
        case bitFlip, zeroRange, zeroPage, misdirected, replayed, lostFile, lostFiles, truncated, garbageAppended
        /// A file of another store put in (in place of this store's file of that name, or beside).
        case foreignFile
        /// A segment zeroed from a frame's start to its end, its size kept (nothing but what
        /// records where the frames end can tell); in one case in two the head file is lost too.
        case zeroedFromAFrame
        /// A backup of the files of the moment before the last round of appends restored, with
        /// one newer file that tells the log went further left beside it (a partial restore, an
        /// rsync without --delete).
        case filesFromAnEarlierMoment
        /// Two of the others at once.
        case twoDamages
    }

    @Test func everyDamageIsDetectedAndNoWrongEventIsReturned() async throws {
        let templates = try await (0..<6).asyncMap { try await Self.makeTemplate(shape: $0) }
        defer { for template in templates { template.directory.remove() } }
        var failures: [String] = []
        var detected = 0
        var harmless = 0
        var nothingLeft = 0
        let only = Int(ProcessInfo.processInfo.environment["DUGONG_DAMAGE_TRIAL"] ?? "")
        for trial in 0..<Self.trials where only == nil || only == trial {
            // Each trial is synchronous work: on a thread of its own, not a cooperative one.
            let (description, problems) = try await onOwnThread { try Self.run(trial: trial, templates: templates, only: only) }
            if description.hasSuffix(Self.nothingLeftMark) {
                nothingLeft += 1
            } else if problems.failures.isEmpty {
                if problems.detected { detected += 1 } else { harmless += 1 }
            } else {
                failures.append("trial \(trial) (\(description)): \(problems.failures.joined(separator: "; "))")
                if failures.count >= 5 { break }
            }
        }
        print("damage: \(Self.trials) trials, \(detected) detected, \(harmless) changed nothing the store reads, \(nothingLeft) left nothing that tells a store was there, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// One trial: a copy of a template, damaged at random and checked; what was done and what
    /// the check found.
    static func run(trial: Int, templates: [Template], only: Int?) throws -> (description: String, problems: (failures: [String], detected: Bool)) {
        var random = SeededRandom(seed: UInt64(trial) &* 0x9E37_79B9 &+ 17)
        let template = templates[trial % templates.count]
        // DUGONG_DAMAGE_KIND=name: that kind only (by hand, to study one).
        let only = ProcessInfo.processInfo.environment["DUGONG_DAMAGE_KIND"].flatMap { name in Damage.allCases.first { "\($0)" == name } }
        let kind = only ?? Damage.allCases.randomElement(using: &random)!
        let directory = TemporaryDirectory("damage")
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: template.directory.path, toPath: directory.path)
        let others = templates.filter { $0.directory.path != template.directory.path }
        let description = try Self.damage(directory, kind, template: template, others: others, using: &random)
        if try Self.leavesNothingThatTells(directory) { return (description + nothingLeftMark, ([], false)) }
        if only != nil {
            // As damaged, before the checks (their compaction changes it).
            print("trial \(trial): \(description), template \(template.directory.path), copy \(directory.path)")
            _ = try? FileManager.default.copyItem(atPath: directory.path, toPath: "/tmp/damage-trial")
            _ = try? FileManager.default.copyItem(atPath: template.directory.path, toPath: "/tmp/damage-template")
        }
        var problems = try Self.check(directory, template: template)
        problems.failures += try Self.compactionFailures(directory, template: template)
        return (description, problems)
    }

    /// Applies one damage; returns what it did.
    static func damage(
        _ directory: TemporaryDirectory, _ kind: Damage, template: Template, others: [Template], using random: inout SeededRandom
    ) throws -> String {
        switch kind {
        case .twoDamages:
            let kinds = Damage.allCases.filter { $0 != .twoDamages }
            let first = try damage(directory, kinds.randomElement(using: &random)!, template: template, others: others, using: &random)
            let second = try damage(directory, kinds.randomElement(using: &random)!, template: template, others: others, using: &random)
            return first + " and " + second
        case .foreignFile:
            guard let other = others.randomElement(using: &random) else { return "nothing" }
            // Not the head: another store's intact head record reads as an older hint about a
            // segment this store no longer holds (what a crash after a compaction leaves), a
            // hint that only ever trails the log; nothing in it tells the stores apart.
            let names = try FileManager.default.contentsOfDirectory(atPath: other.directory.path)
                .filter { $0 != "dugong.lock" && $0 != "dugong.head" }.sorted()
            guard let name = names.randomElement(using: &random) else { return "nothing" }
            let target = directory.file(name)
            let existed = FileManager.default.fileExists(atPath: target)
            if existed { try FileManager.default.removeItem(atPath: target) }
            try FileManager.default.copyItem(atPath: other.directory.file(name), toPath: target)
            return "\(name) of another store put \(existed ? "in place of this one's" : "beside this store's files")"
        case .filesFromAnEarlierMoment:
            // A backup of the moment before the last round of appends restored (every file that
            // differs put back as it was then, or removed if it was not there), with one newer
            // file left beside it that says, by FORMAT.md's rules, that the log went further: the
            // head; the index file, when no compaction came between (its segments are then the
            // backup's); or a segment the backup's manifest does not list holding events past the
            // backup's end (§3a). Any other mix may be a state a crash leaves: nothing tells.
            let now = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)).subtracting(["dugong.lock"])
            let differing = now.union(template.older.keys).subtracting(["dugong.lock"]).sorted().filter { name in
                template.older[name] != (now.contains(name) ? try? Data(contentsOf: URL(fileURLWithPath: directory.file(name))) : nil)
            }
            let backup = TemporaryDirectory("damage-backup")
            defer { backup.remove() }
            try FileManager.default.createDirectory(atPath: backup.path, withIntermediateDirectories: true)
            for (name, bytes) in template.older where name != "dugong.lock" { try bytes.write(to: URL(fileURLWithPath: backup.file(name))) }
            guard let backupEnd = try StoreFiles.readHead(in: backup.path)?.nextPosition else { return "nothing (the backup has no head)" }
            var witnesses: [String] = []
            if now.contains("dugong.head"), let head = try StoreFiles.readHead(in: directory.path), head.nextPosition > backupEnd {
                witnesses.append("dugong.head")
            }
            if now.contains("dugong.index"), !template.compactedBetween, let index = try IndexFile.summary(in: directory.path), index.nextPosition > backupEnd {
                witnesses.append("dugong.index")
            }
            for name in now where name.hasSuffix(".dseg") && template.older[name] == nil {
                if let end = Recovery.eventsEnd(of: try Segment.open(directory: directory.path, name: name, writable: false)), end > backupEnd {
                    witnesses.append(name)
                }
            }
            guard let witness = witnesses.sorted().randomElement(using: &random) else { return "nothing (no newer file tells)" }
            let putBack = differing.filter { $0 != witness }
            for name in putBack {
                if let old = template.older[name] {
                    try old.write(to: URL(fileURLWithPath: directory.file(name)))
                } else {
                    try FileManager.default.removeItem(atPath: directory.file(name))
                }
            }
            return "a backup restored (\(putBack.joined(separator: ", ")) as before the last appends) beside the newer \(witness)"
        case .zeroedFromAFrame:
            let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
            guard let name = segments.randomElement(using: &random),
                let start = try Fixture.frameOffsets(of: directory.file(name)).randomElement(using: &random)
            else { return "nothing (no frame)" }
            let url = URL(fileURLWithPath: directory.file(name))
            var bytes = [UInt8](try Data(contentsOf: url))
            bytes.replaceSubrange(start..<bytes.count, with: repeatElement(0, count: bytes.count - start))
            try Data(bytes).write(to: url)
            let headLost = Bool.random(using: &random) && FileManager.default.fileExists(atPath: directory.file("dugong.head"))
            if headLost { try FileManager.default.removeItem(atPath: directory.file("dugong.head")) }
            return "\(name) zeroed from the frame at \(start)\(headLost ? ", the head file lost" : "")"
        default:
            break
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != "dugong.lock" }.sorted()
        let name = names.randomElement(using: &random)!
        let url = URL(fileURLWithPath: directory.file(name))
        var bytes = [UInt8](try Data(contentsOf: url))
        switch kind {
        case .bitFlip where !bytes.isEmpty:
            let offset = Int.random(in: 0..<bytes.count, using: &random)
            bytes[offset] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            try Data(bytes).write(to: url)
            return "bit flip in \(name) at \(offset)"
        case .zeroRange where !bytes.isEmpty:
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let end = min(bytes.count, start + Int.random(in: 1...600, using: &random))
            bytes.replaceSubrange(start..<end, with: repeatElement(0, count: end - start))
            try Data(bytes).write(to: url)
            return "zeros in \(name) at \(start)..<\(end)"
        case .zeroPage where bytes.count > 0:
            let page = Int.random(in: 0...(bytes.count - 1) / 4096, using: &random) * 4096
            let end = min(bytes.count, page + 4096)
            bytes.replaceSubrange(page..<end, with: repeatElement(0, count: end - page))
            try Data(bytes).write(to: url)
            return "zeroed page of \(name) at \(page)"
        case .misdirected:
            let source = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.file(names.randomElement(using: &random)!))))
            guard !source.isEmpty, !bytes.isEmpty else { return "nothing" }
            let length = min([64, 512, 4096].randomElement(using: &random)!, source.count, bytes.count)
            let from = Int.random(in: 0...(source.count - length), using: &random)
            let to = Int.random(in: 0...(bytes.count - length), using: &random)
            bytes.replaceSubrange(to..<to + length, with: source[from..<from + length])
            try Data(bytes).write(to: url)
            return "\(length) bytes misdirected into \(name) at \(to)"
        case .replayed:
            // An older intact head record is what a power cut leaves (head writes are synced
            // only at a clean close): a hint that is older, not damage. Not a damage to detect.
            guard let old = template.older[name], name != "dugong.head" else { return "nothing (no older \(name))" }
            try old.write(to: url)
            return "older \(name) put back"
        case .lostFile:
            try FileManager.default.removeItem(at: url)
            return "\(name) lost"
        case .lostFiles where names.count >= 3:
            // Several at once, never all (a directory that lost every file is an empty one:
            // nothing can tell); in one case in three, every file but the head or the index.
            let kept = Bool.random(using: &random) ? "dugong.head" : "dugong.index"
            let lost = Int.random(in: 0..<3, using: &random) == 0 && names.contains(kept)
                ? names.filter { $0 != kept }
                : Array(names.shuffled(using: &random).prefix(Int.random(in: 2...names.count - 1, using: &random)))
            for name in lost { try FileManager.default.removeItem(atPath: directory.file(name)) }
            return "\(lost.sorted().joined(separator: ", ")) lost"
        case .truncated:
            let size = Int.random(in: 0..<max(bytes.count, 1), using: &random)
            try Data(bytes.prefix(size)).write(to: url)
            return "\(name) truncated to \(size)"
        case .garbageAppended:
            try Data(bytes + (0..<Int.random(in: 1...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }).write(to: url)
            return "garbage appended to \(name)"
        default:
            return "nothing"
        }
    }

    /// Reads everything back as each command would, then verifies, then opens for writing.
    static func check(_ directory: TemporaryDirectory, template: Template) throws -> (failures: [String], detected: Bool) {
        var failures: [String] = []
        var errors = 0
        var complete = true
        let covered = try Self.coveredBytes(directory)
        let pristine = try Self.coveredBytes(template.directory)
        var options = EventLog.Options()
        options.readOnly = true
        for useIndex in [true, false] {
            options.useIndexFile = useIndex
            let log: EventLog
            do {
                log = try EventLog.open(at: directory.path, options: options)
            } catch is StoreError {
                errors += 1
                complete = false
                continue
            } catch {
                failures.append("open threw an untyped error: \(error)")
                continue
            }
            defer { log.close() }
            // read-all / export
            var next: UInt64 = 0
            var seen: [StoredEvent] = []
            var readAllFailed = false
            do {
                while true {
                    let batch = try log.readAll(from: next, maxCount: 64)
                    guard let last = batch.last else { break }
                    seen += batch
                    next = last.position + 1
                }
            } catch is StoreError {
                errors += 1
                readAllFailed = true
            }
            // The lending read lends exactly what read-all returned, and fails where it failed.
            var lent: [StoredEvent] = []
            var lendingFailed = false
            do {
                var from: UInt64 = 0
                while true {
                    let after = try log.forEachEvent(from: from, maxCount: 64) { lent.append($0.stored) }
                    if after == from { break }
                    from = after
                }
            } catch is StoreError {
                lendingFailed = true
            }
            if lent != seen || lendingFailed != readAllFailed {
                failures.append("the lending read lent \(lent.count) events (failed: \(lendingFailed)), read-all returned \(seen.count) (failed: \(readAllFailed))")
            }
            let byPosition = Dictionary(template.events.map { ($0.position, $0) }, uniquingKeysWith: { a, _ in a })
            for event in seen where byPosition[event.position] != event {
                failures.append("read-all returned a wrong event at position \(event.position): \(event.stream) v\(event.version)")
            }
            failures += salvageFailures(log, template: template, byPosition: byPosition)
            if seen != template.events { complete = false }
            // read (every stream), snapshots, stats
            for (stream, expected) in template.streams {
                var read: [StoredEvent]?
                do {
                    let events = try log.read(stream: stream)
                    read = events
                    if events != expected {
                        // Without an error, a read returns the stream as it is: not a part of it
                        // (damage may have held its later events, or a record hiding some).
                        complete = false
                        failures.append(events.allSatisfy({ expected.contains($0) })
                            ? "read \(stream) returned \(events.count) of its \(expected.count) events without an error"
                            : "read \(stream) returned events it does not hold")
                    }
                } catch is StoreError {
                    errors += 1
                    complete = false
                }
                var lentOfStream: [StoredEvent] = []
                let lendingCompleted = (try? log.forEachEvent(in: stream) { lentOfStream.append($0.stored) }) != nil
                if lendingCompleted != (read != nil) || (read != nil && lentOfStream != read) {
                    failures.append("the lending read of \(stream) differs from read (\(lentOfStream.count) events lent, \(read?.count ?? -1) read)")
                }
                do {
                    let snapshot = try log.latestSnapshot(of: stream)
                    if snapshot != template.snapshots[stream] ?? nil {
                        complete = false
                        failures.append(snapshot != nil ? "a wrong snapshot of \(stream)" : "the snapshot of \(stream) went missing without an error")
                    }
                } catch is StoreError {
                    errors += 1
                    complete = false
                }
            }
            _ = try? log.statistics()
            if !useIndex {
                let report = try log.verify()
                if report.isClean && !complete { failures.append("verify is clean but reads did not return everything") }
                // (A file the store does not list, put beside its files, is not part of it: a
                // reader ignores it, FORMAT.md §3a.)
                // (Nor are bytes after a store's last valid frame that verification calls a torn
                // tail: a writer that did not close may have left them; they were never acknowledged.)
                var compared = covered.filter { pristine[$0.key] != nil }
                var expected = pristine
                // (Nor is an older intact head of this store: what a power cut leaves, a hint that
                // trails the log. Files put back from an earlier moment may include it.)
                if let head = template.older["dugong.head"], compared["dugong.head"] == [UInt8](head) {
                    compared["dugong.head"] = nil
                    expected["dugong.head"] = nil
                }
                for torn in report.warnings where torn.kind == .tornTail {
                    compared[torn.segment] = compared[torn.segment].map { Array($0.prefix(torn.offset)) }
                    expected[torn.segment] = expected[torn.segment].map { Array($0.prefix(torn.offset)) }
                }
                if report.isClean && compared != expected {
                    failures.append("verify is clean but a covered byte changed")
                }
                if !report.isClean { errors += 1 }
            }
        }
        if !complete && errors == 0 { failures.append("events went missing without an error") }
        // A writable open of a damaged store changes none of the bytes verification covers; one
        // that takes writes never gives an acknowledged position or version again (that would
        // hide lost events for ever: a cut at a frame's end with the head file lost did).
        do {
            var writable = EventLog.Options()
            writable.segmentSize = 4096
            let sizes = try Self.fileSizes(directory)
            let log = try EventLog.open(at: directory.path, options: writable)
            let damaged = !log.recovery.corruptions.isEmpty
            if !damaged {
                let next = template.events.last.map { $0.position + 1 } ?? 0
                if log.headPosition < next {
                    failures.append("a writer took writes at position \(log.headPosition), before \(next): acknowledged positions would be given again")
                }
                for (stream, expected) in template.streams {
                    guard let last = expected.last?.version else { continue }
                    let version = (try? log.info(stream: stream))??.version ?? 0
                    if version < last {
                        failures.append("a writer took writes with \(stream) at version \(version), before \(last): acknowledged versions would be given again")
                    }
                }
            }
            log.close()
            let after = try Self.coveredBytes(directory)
            // Not even grown: a writer extends its segment only once the store is whole (a
            // segment cut short, extended, read as a frame that fails its checksum).
            let changed = covered.filter { name, before in after[name] != before }
                .merging(try Self.fileSizes(directory).filter { sizes[$0.key] != $0.value }.mapValues { _ in [] }) { a, _ in a }
            if damaged, !changed.isEmpty {
                failures.append("a writable open changed a damaged store: \(changed.keys.sorted())")
            }
        } catch is StoreError {
            // Refused: fine.
        } catch {
            failures.append("a writable open threw an untyped error: \(error)")
        }
        return (failures, errors > 0)
    }

    /// A compaction of the damaged store (after the checks, which change nothing in it) refuses
    /// with a typed error, or leaves exactly what a compaction of the undamaged store leaves: it
    /// never rewrites damage into a store that reads as whole.
    static func compactionFailures(_ directory: TemporaryDirectory, template: Template) throws -> [String] {
        do {
            _ = try EventLog.compact(at: directory.path)
        } catch is StoreError {
            return []
        } catch {
            return ["a compaction threw an untyped error: \(error)"]
        }
        var options = EventLog.Options()
        options.readOnly = true
        do {
            let log = try EventLog.open(at: directory.path, options: options)
            defer { log.close() }
            let events = try log.readAll(maxCount: 10_000)
            guard events != template.compacted else { return [] }
            let wrong = events.filter { !template.compacted.contains($0) }.count
            return ["a compaction went ahead and left \(events.count) events, not the \(template.compacted.count) a compaction of the undamaged store leaves (\(wrong) of them not among those)"]
        } catch is StoreError {
            return ["a compaction went ahead and left a store that does not read"]
        }
    }

    /// Reading while stepping over damage (`export --skip-damage`) returns only stored events,
    /// in log order, each once; every position it does not return lies in a region it names
    /// (when the damage tells which positions it held); on an undamaged store it returns all.
    static func salvageFailures(_ log: EventLog, template: Template, byPosition: [UInt64: StoredEvent]) -> [String] {
        var failures: [String] = []
        var salvaged: [StoredEvent] = []
        var skipped: [DamagedRegion] = []
        var next: UInt64 = 0
        do {
            while true {
                let page = try log.readAllSkippingDamage(from: next, maxCount: 50)
                salvaged += page.events
                skipped += page.skipped
                guard page.next > next || !page.events.isEmpty else { break }
                next = page.next
            }
        } catch {
            return ["reading past damage threw: \(error)"]
        }
        for event in salvaged where byPosition[event.position] != event {
            failures.append("reading past damage returned a wrong event at position \(event.position)")
        }
        if zip(salvaged, salvaged.dropFirst()).contains(where: { $0.position >= $1.position }) {
            failures.append("reading past damage returned events out of order or twice")
        }
        let damage = log.damageFoundAtOpen
        if damage.isEmpty, skipped.isEmpty, salvaged != template.events, log.verifyIsClean {
            failures.append("reading past damage of a clean store did not return everything")
        }
        if !damage.contains(where: { $0.positions.isEmpty }) {
            let returned = Set(salvaged.map(\.position))
            let named = (skipped + damage).map(\.positions)
            let unaccounted = template.events.map(\.position).filter { position in
                position < log.headPosition && !returned.contains(position) && !named.contains { $0.contains(position) }
            }
            if let first = unaccounted.first {
                failures.append("reading past damage left out \(unaccounted.count) position(s) it did not name, first \(first)")
            }
        }
        return failures
    }

    /// The bytes of the files verification covers (segments, manifest, head), by name.
    static let nothingLeftMark = " (nothing left tells that a store was there)"

    /// Whether the damage left a directory nothing in which tells that a store was there (no
    /// manifest, no segment, no index file, no head record of events): it is an empty directory,
    /// as a store whose creation never finished is (FORMAT.md §1). Every file of the store lost
    /// is not damage anything can detect.
    static func leavesNothingThatTells(_ directory: TemporaryDirectory) throws -> Bool {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        guard !names.contains(where: { $0.hasSuffix(".dseg") || $0 == "dugong.manifest" || $0 == "dugong.index" }) else { return false }
        return ((try? StoreFiles.readHead(in: directory.path))?.nextPosition ?? 0) == 0
    }

    /// The size of each segment file.
    static func fileSizes(_ directory: TemporaryDirectory) throws -> [String: Int] {
        var sizes: [String: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".dseg") {
            sizes[name] = try FileManager.default.attributesOfItem(atPath: directory.file(name))[.size] as? Int
        }
        return sizes
    }

    static func coveredBytes(_ directory: TemporaryDirectory) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path)
        where name.hasSuffix(".dseg") || name == "dugong.manifest" || name == "dugong.head" {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.file(name))))
            if name.hasSuffix(".dseg") {
                // A segment reads as zeros up to its capacity: trailing zeros are not content.
                while bytes.count > 128, bytes.last == 0 { bytes.removeLast() }
            }
            files[name] = bytes
        }
        return files
    }
}

/// Found by an independent writer of FORMAT.md: damage and frames that the log's order had to
/// notice but did not.
@Suite("Damage that holds no positions")
struct PositionlessDamageTests {
    /// Every event a read in log order returns, until it throws (`nil` error: it reached the end).
    static func readAll(_ log: EventLog) -> (events: [StoredEvent], error: (any Error)?) {
        var events: [StoredEvent] = []
        var position: UInt64 = 0
        do {
            while true {
                let page = try log.readAll(from: position, maxCount: 3)
                guard let last = page.last else { return (events, nil) }
                events += page
                position = last.position + 1
            }
        } catch {
            return (events, error)
        }
    }

    // A damaged frame of lifecycle records (a truncation, a tombstone) held no positions: a read
    // in log order went past it and returned, with no error, the events it had hidden.
    @Test func aDamagedFrameOfLifecycleRecordsStopsAReadInLogOrder() async throws {
        let directory = TemporaryDirectory("positionless")
        defer { directory.remove() }
        var log = try Fixture.open(directory, useIndexFile: false)
        try await log.append(Fixture.events(2, size: 40), to: "a/1")
        try await log.append(Fixture.events(1, size: 40), to: "b/1")
        let segment = directory.path + "/00000000000000000000.dseg"
        let before = try Set(Fixture.frameOffsets(of: segment))
        try await log.truncate(stream: "a/1", before: 3)
        try await log.tombstone(stream: "b/1")
        let lifecycle = try Fixture.frameOffsets(of: segment).filter { !before.contains($0) }
        try #require(!lifecycle.isEmpty)
        try await log.append(Fixture.events(2, size: 40), to: "c/1")
        log.close()
        // One byte of the first lifecycle frame's payload: its checksum no longer holds.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        try handle.seek(toOffset: UInt64(lifecycle[0] + 41))
        let byte = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: UInt64(lifecycle[0] + 41))
        try handle.write(contentsOf: Data([byte ^ 0x5A]))
        try handle.close()
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = false
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        let (events, error) = Self.readAll(log)
        #expect(error != nil, "a read in log order reached the end past the damage: \(events.map(\.stream))")
        #expect(events.allSatisfy { $0.position < 3 }, "returned events after the damage: \(events.map(\.position))")
        #expect(!(try log.verify().isClean))
    }

    // From a review: a follower at the head waited for ever when the damage there held no
    // positions (its wait looked for positions after it); the salvaging read did not report it.
    @Test func aFollowerAtPositionlessDamageWakesAndSalvageReportsIt() async throws {
        let directory = TemporaryDirectory("positionless-end")
        defer { directory.remove() }
        let log = try Fixture.open(directory, useIndexFile: false)
        try await log.append(Fixture.events(2, size: 40), to: "a/1")
        try await log.truncate(stream: "a/1", before: 2)
        log.close()
        let segment = directory.path + "/00000000000000000000.dseg"
        let frames = try Fixture.frameOffsets(of: segment)
        // The truncation's frame: the one before the close marker (the last frame).
        let lifecycle = frames[frames.count - 2]
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        try handle.seek(toOffset: UInt64(lifecycle + 41))
        let byte = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: UInt64(lifecycle + 41))
        try handle.write(contentsOf: Data([byte ^ 0x5A]))
        try handle.close()
        try? FileManager.default.removeItem(atPath: directory.path + "/dugong.index")
        let reader = try Self.scanned(directory)
        defer { reader.close() }
        let head = reader.headPosition
        #expect(throws: StoreError.self) { _ = try reader.readAll(from: head, maxCount: 10) }
        let woke = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do { try await reader.waitForEvents(after: head) } catch {}
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(woke, "the wait at the damage never returned")
        let salvaged = try reader.readAllSkippingDamage(from: 0, maxCount: 100)
        #expect(!salvaged.skipped.isEmpty, "the salvage did not report the damage")
    }

    /// Opens `directory` read-only, scanning every frame (no saved index).
    static func scanned(_ directory: TemporaryDirectory) throws -> EventLog {
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = false
        return try EventLog.open(at: directory.path, options: options)
    }

    // Found by a black-box review of format version 5: the search for the next valid frame
    // after damage (FORMAT.md §8) kept its own list of the flags a frame may have, without the
    // LZ4 flag, and passed over every LZ4 block: one damaged byte in a store of small commits
    // lost every later event (to salvage; after an unclean stop, as a torn tail, which the next
    // writer overwrote). Each kind of frame after one damaged frame is found again.
    @Test(arguments: [Codec.lz4, .zstandard, nil])
    func aDamagedFrameLosesOnlyItsOwnEvents(kind: Codec?) async throws {
        let directory = TemporaryDirectory("one-damaged-frame")
        defer { directory.remove() }
        let log = try Fixture.open(directory, useIndexFile: false)
        // Over 4 KiB of payload first (the segment's dictionary comes from it), then one-event
        // commits of the kind: like the events before (LZ4 blocks), over 512 bytes (Zstandard
        // frames), or incompressible (stored as is).
        try await log.append(Fixture.events(80), to: "first")
        let size = switch kind { case .lz4: 0; case .zstandard: 0; default: 300 }
        for index in 0..<40 {
            var event = Fixture.events(1, size: size)[0]
            if kind == .zstandard { event.data = Data((#"{"amount":\#(index),"note":"# + String(repeating: "deposit ", count: 80) + "\"}").utf8) }
            try await log.append([event], to: "s/\(index % 4)")
        }
        log.close()
        let segment = directory.path + "/" + (try FileManager.default.contentsOfDirectory(atPath: directory.path).first { $0.hasSuffix(".dseg") }!)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        let frames = try Fixture.eventFrameOffsets(of: segment).dropFirst()  // the 80-event commit's frame
        try #require(frames.count == 40)
        let kinds = frames.map { offset in bytes[offset + 12] & 0x01 == 0 ? nil : bytes[offset + 12] & 0x10 != 0 ? Codec.lz4 : .zstandard }
        #expect(kinds.filter { $0 == kind }.count >= 35, "\(kinds)")
        let damaged = frames[frames.startIndex + 10]
        bytes[damaged + 45] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let reader = try Self.scanned(directory)
        defer { reader.close() }
        let read = try reader.readAllSkippingDamage(from: 0, maxCount: 1_000)
        #expect(read.events.count == 119, "\(read.skipped)")
        #expect(read.skipped.count == 1 && read.skipped.first?.positions == 90..<91, "\(read.skipped)")
        // The frame, at its offset (and the saved index, which lists it, as not matching).
        let problems = try reader.verify().problems.map(\.description).filter { !$0.contains("index-mismatch") }
        #expect(problems.count == 1 && problems[0].contains("offset \(damaged): damaged-frame"), "\(problems)")
    }

    /// Random single-frame damage: one byte changed anywhere in one event frame (header or
    /// payload) of a closed store of every kind of frame (LZ4 blocks and Zstandard frames, with
    /// and without the dictionary, stored as is, one and many events, several segments). A read
    /// that steps over damage must then return every other event, and report exactly that
    /// frame's positions: the search for the next valid frame must find the frame after it,
    /// whatever kind it is. (That search once skipped every LZ4 block; the closed-store test
    /// above only checks that nothing wrong is read.) `DUGONG_FRAME_DAMAGE_TRIALS` sets the
    /// count (long mode).
    @Test func oneDamagedFrameLosesOnlyItsOwnEventsWhateverTheFramesAround() async throws {
        let trials = Int(ProcessInfo.processInfo.environment["DUGONG_FRAME_DAMAGE_TRIALS"] ?? "") ?? 120
        let template = TemporaryDirectory("frame-damage-template")
        defer { template.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 32 << 10
        let log = try EventLog.open(at: template.path, options: options)
        var random = SeededRandom(seed: 0xF4A3E)
        for round in 0..<160 {
            let events: [NewEvent] = switch random.below(5) {
            case 0: Fixture.events(1)  // an LZ4 block, mostly
            case 1: Fixture.events(2, size: 40)
            case 2: Fixture.events(1 + random.below(3), size: 260)  // incompressible: stored as is
            case 3: Fixture.events(100)  // a Zstandard frame
            default: [NewEvent(type: "Note", data: Data(String(repeating: "deposit \(round) ", count: 60).utf8))]  // over 512 bytes
            }
            try await log.append(events, to: "s/\(round % 7)")
        }
        log.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: template.path).filter { $0.hasSuffix(".dseg") }.sorted()
        // Every event frame: its file, offset, length and positions (FORMAT.md §4).
        var frames: [(file: String, offset: Int, length: Int, positions: Range<UInt64>, flags: UInt8)] = []
        for name in segments {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: template.file(name))))
            for offset in try Fixture.eventFrameOffsets(of: template.file(name)) {
                func integer(_ at: Int, _ size: Int) -> UInt64 { (0..<size).reduce(0) { $0 | UInt64(bytes[offset + at + $1]) << (8 * $1) } }
                let first = integer(16, 8)
                frames.append((name, offset, Fixture.frameHeaderSize + Int(integer(4, 4)), first..<(first + integer(24, 4)), bytes[offset + 12]))
            }
        }
        #expect(segments.count >= 3)
        #expect(frames.contains { $0.flags & 0x13 == 0x13 } && frames.contains { $0.flags & 0x11 == 0x01 } && frames.contains { $0.flags & 1 == 0 })
        let all = try Self.readSkippingDamage(template, useIndexFile: false).events
        var failures: [String] = []
        for trial in 0..<trials {
            let frame = frames[random.below(frames.count)]
            let at = frame.offset + random.below(frame.length)
            let useIndexFile = random.below(2) == 0
            let directory = TemporaryDirectory("frame-damage")
            defer { directory.remove() }
            try FileManager.default.copyItem(atPath: template.path, toPath: directory.path)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.file(frame.file))))
            bytes[at] ^= UInt8(1 + random.below(255))
            try Data(bytes).write(to: URL(fileURLWithPath: directory.file(frame.file)))
            let read = try Self.readSkippingDamage(directory, useIndexFile: useIndexFile)
            let expected = all.filter { !frame.positions.contains($0.position) }
            let what = "trial \(trial): \(frame.file) frame at \(frame.offset) (flags \(frame.flags)), byte \(at), index file \(useIndexFile)"
            if read.events != expected {
                failures.append("\(what): \(read.events.count) events read, \(expected.count) expected; skipped \(read.skipped)")
            } else if !read.skipped.contains(where: { $0.positions == frame.positions }) {
                failures.append("\(what): skipped \(read.skipped), not positions \(frame.positions)")
            }
            if failures.count >= 5 { break }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    // Found by a black-box review: a file under a segment's name that the manifest does not list
    // and whose header cannot be read is left alone by the open (an interrupted compaction
    // leaves such files; so may damage to a segment that held events), and the next roll to
    // that name renamed a new segment over it. The writer takes the next free generation now.
    @Test func aRollNeverReplacesAFileTheOpenLeftAlone() async throws {
        let directory = TemporaryDirectory("in-the-way")
        defer { directory.remove() }
        var log = try Fixture.open(directory, segmentSize: 4096)
        log.close()
        // A file in the way of every roll the appends below make: some bytes, no header.
        var inTheWay: [String: Data] = [:]
        for position in 1...150 {
            let name = Layout.SegmentName(firstPosition: UInt64(position), generation: 0).fileName
            let bytes = Data((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ position) })
            try bytes.write(to: URL(fileURLWithPath: directory.file(name)))
            inTheWay[name] = bytes
        }
        log = try Fixture.open(directory, segmentSize: 4096)
        for index in 0..<120 { try await log.append(Fixture.events(1, size: 100), to: "s/\(index % 3)") }
        let written = try log.readAll(maxCount: 1_000)
        log.close()
        for (name, bytes) in inTheWay {
            #expect(try Data(contentsOf: URL(fileURLWithPath: directory.file(name))) == bytes, "\(name)")
        }
        let reopened = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
        defer { reopened.close() }
        let reread = try reopened.readAll(maxCount: 1_000)
        #expect(written.count == 120 && reread == written)
        #expect(try reopened.statistics().segments.count >= 3)
        // Each is named, as a warning: it may be an interrupted compaction's, or damage.
        #expect(Set(reopened.recovery.unreadableFiles) == Set(inTheWay.keys))
        let warnings = try reopened.verify().warnings.filter { $0.kind == .unreadableFile }
        #expect(Set(warnings.map(\.segment)) == Set(inTheWay.keys))
    }

    // Found by a black-box review: a renamed newest segment was reported as a file "whose
    // header cannot be read", and the head that names it as "another store's". Each message
    // now says what it found: the header's own position against the name, and the head naming
    // the segment that is missing.
    @Test func aRenamedSegmentIsNamedForWhatItIs() async throws {
        let directory = TemporaryDirectory("renamed-segment")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        for index in 0..<40 { try await log.append(Fixture.events(1, size: 300), to: "s/\(index % 3)") }
        log.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let newest = try #require(segments.last)
        let renamed = Layout.SegmentName(firstPosition: 9_999, generation: 0).fileName
        try FileManager.default.moveItem(atPath: directory.file(newest), toPath: directory.file(renamed))
        var options = EventLog.Options()
        options.readOnly = true
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        let report = try reader.verify()
        #expect(!report.isClean)
        let warning = try #require(report.warnings.first { $0.kind == .unreadableFile })
        #expect(warning.segment == renamed && warning.message.contains("header says first position") && warning.message.contains("file name says 9999"), "\(warning.message)")
        #expect(report.problems.contains { $0.message.contains("\(newest) listed in the manifest is missing") }, "\(report.problems)")
        #expect(report.problems.allSatisfy { !$0.message.contains("another store's") }, "\(report.problems)")
    }

    // Found by a black-box review: event data can hold plausible frame headers, each claiming
    // megabytes; after damage the search for the next valid frame (FORMAT.md §8) checked the
    // checksum over each one's claimed bytes (one 7 MB event of such headers after a damaged
    // byte: `verify` took 28 s; in a 64 MiB segment it would take hours). It now costs about
    // the bytes it searches, whatever the candidates claim.
    @Test func theSearchAfterDamageCostsAboutTheBytesItSearches() {
        let salt: UInt64 = 0xABC_DEF1
        let size = 1 << 20
        var random = SeededRandom(seed: 9)
        var bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) | 1 }
        var candidates = 0
        for at in stride(from: 0, to: size - 70_000, by: 400) {
            let claimed = UInt32(size - 70_000 - at)
            for (index, byte) in withUnsafeBytes(of: claimed.littleEndian, Array.init).enumerated() {
                bytes[at + 4 + index] = byte
                bytes[at + 8 + index] = byte
            }
            (bytes[at + 12], bytes[at + 13], bytes[at + 14], bytes[at + 15]) = (Layout.frameEndsBatch, 0, 0, 0)
            // Every other field plausible too: first position and batch 2^40, one event, one record.
            let fields = withUnsafeBytes(of: (UInt64(1 << 40).littleEndian, UInt32(1).littleEndian, UInt32(1).littleEndian, UInt64(1 << 40).littleEndian)) {
                Array($0)
            }
            bytes.replaceSubrange((at + 16)..<(at + 40), with: fields)
            candidates += 1
        }
        var builder = FrameBuilder(nextPosition: 0)
        builder.append(StoredEvent(
            stream: "s", version: 1, position: 0, id: UUID(), type: "T", timestampMilliseconds: 0, data: Data("{}".utf8),
            metadata: Data(), endsCommit: true))
        let realAt = size - 60_000
        let real = builder.sealed(formatVersion: Layout.formatVersion).encoded(salt: salt, offset: realAt)
        bytes.replaceSubrange(realAt..<(realAt + real.count), with: real)
        var hashed = 0
        let found = bytes.withUnsafeBytes { Recovery.resynchronize($0, after: 0, salt: salt, hashed: &hashed) }
        #expect(found?.0 == realAt)
        #expect(hashed < 16 * size, "\(hashed) bytes hashed for \(candidates) candidates in \(size) bytes")
    }

    // FORMAT.md §3a, as a black-box review read it: with the manifest, the head and the index
    // file all lost, nothing contradicts a chain of segments, and it is read, as damage.
    @Test func aChainOfSegmentsWithNothingElseLeftIsReadAsDamage() async throws {
        let directory = TemporaryDirectory("chain-alone")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        for index in 0..<60 { try await log.append(Fixture.events(1, size: 100), to: "s/\(index % 3)") }
        let written = try log.readAll(maxCount: 1_000)
        log.close()
        for name in [Layout.manifestName, Layout.headName, Layout.indexName] { try FileManager.default.removeItem(atPath: directory.file(name)) }
        let reader = try Self.scanned(directory)
        #expect(try reader.statistics().segments.count >= 3)
        #expect(!reader.recovery.corruptions.isEmpty)
        #expect(try Self.readSkippingDamage(directory, useIndexFile: false).events == written)
        reader.close()
        let writer = try EventLog.open(at: directory.path)
        defer { writer.close() }
        await #expect(throws: StoreError.self) { try await writer.append(Fixture.events(1), to: "s/0") }
    }

    /// Every event of the store at `directory` a read that steps over damage returns, and the
    /// damage it stepped over.
    static func readSkippingDamage(_ directory: TemporaryDirectory, useIndexFile: Bool) throws -> (events: [StoredEvent], skipped: [DamagedRegion]) {
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = useIndexFile
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        var events: [StoredEvent] = []
        var skipped: [DamagedRegion] = []
        var next: UInt64 = 0
        while true {
            let read = try log.readAllSkippingDamage(from: next, maxCount: 1_000)
            events += read.events
            skipped += read.skipped.filter { region in !skipped.contains { $0.isAmong([region]) } }
            if read.next == next { break }
            next = read.next
        }
        return (events, skipped)
    }

    // Batch numbers go up by one (FORMAT §4); a skipped number was accepted.
    @Test func aSkippedBatchNumberIsDamage() async throws {
        let directory = TemporaryDirectory("skipped-batch")
        defer { directory.remove() }
        let log = try Fixture.open(directory, useIndexFile: false)
        for round in 0..<3 { try await log.append(Fixture.events(1, size: 40), to: "s/\(round)") }
        log.close()
        let segment = directory.path + "/00000000000000000000.dseg"
        let last = try #require(try Fixture.frameOffsets(of: segment).last)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        let salt = bytes[40..<48].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var batch = bytes[(last + 32)..<(last + 40)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        batch += 1
        for index in 0..<8 { bytes[last + 32 + index] = UInt8(truncatingIfNeeded: batch >> (8 * index)) }
        let stored = Int(bytes[last + 4]) | Int(bytes[last + 5]) << 8 | Int(bytes[last + 6]) << 16 | Int(bytes[last + 7]) << 24
        let checksum = bytes[(last + 4)..<(last + 40 + stored)].withUnsafeBytes { FrameHeader.checksum(salt: salt, offset: last, covering: $0) }
        for index in 0..<4 { bytes[last + index] = UInt8(truncatingIfNeeded: checksum >> (8 * index)) }
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        try? FileManager.default.removeItem(atPath: directory.path + "/dugong.index")
        let reader = try Self.scanned(directory)
        defer { reader.close() }
        let report = try reader.verify()
        #expect(report.problems.contains { $0.description.contains("follows the end of batch") }, "\(report.problems)")
    }

    // Found by a black-box review: damage of the manifest or the index was "corruption in
    // segment dugong.manifest".
    @Test func damageNamesTheFileAsWhatItIs() {
        #expect("\(StoreError.corruption(segment: "dugong.manifest", offset: 0, reason: "x"))" == "corruption in dugong.manifest at offset 0: x")
        #expect(
            "\(StoreError.corruption(segment: "00000000000000000000.dseg", offset: 128, reason: "x"))"
                == "corruption in segment 00000000000000000000.dseg at offset 128: x")
    }

    // Found by a black-box review: one damaged byte in a segment's version field made every
    // command refuse the store as "another format" (66): nothing verified or copied out. A
    // version the header's checksum does not confirm is damage; one it confirms is a format.
    @Test func aVersionFieldTheChecksumDoesNotConfirmIsDamage() async throws {
        let directory = TemporaryDirectory("version-byte")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 16384, useIndexFile: false)
        for round in 0..<30 { try await log.append(Fixture.events(10, size: 200), to: "s/\(round % 3)") }
        log.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        try #require(names.count >= 3)
        let path = directory.path + "/" + names[1]
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let pristine = bytes
        for version: UInt16 in [90, 6, 0] {
            bytes[8] = UInt8(truncatingIfNeeded: version)
            bytes[9] = UInt8(truncatingIfNeeded: version >> 8)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let reader = try Self.scanned(directory)
            let problems = try reader.verify().problems.map(\.description)
            reader.close()
            #expect(problems.contains { $0.contains(names[1]) && $0.contains("version field says \(version)") }, "\(version): \(problems)")
            var options = EventLog.Options()
            options.useIndexFile = false
            let writable = try EventLog.open(at: directory.path, options: options)
            #expect(!writable.recovery.corruptions.isEmpty)
            await #expect(throws: StoreError.self) { try await writable.append(Fixture.events(1, size: 10), to: "s/0") }
            writable.close()
        }
        // The same version with the checksum made to hold: a segment of another format.
        let checksum = Checksum.mask(bytes.withUnsafeBytes { Checksum.crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<124])) })
        for index in 0..<4 { bytes[124 + index] = UInt8(truncatingIfNeeded: checksum >> (8 * index)) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try Self.scanned(directory)
        } throws: { error in
            if case StoreError.unsupportedFormat(let segment, 0) = error { return segment == names[1] }
            return false
        }
        try Data(pristine).write(to: URL(fileURLWithPath: path))
        let restored = try Self.scanned(directory)
        defer { restored.close() }
        #expect(try restored.verify().isClean)
    }

    // Found by a black-box review: a writable open extended its last segment to its capacity
    // before the scan found the damage, so a segment cut short grew (6,000 bytes to 64 MiB) and
    // its cut frame then read as a checksum mismatch, where README says a damaged store is not
    // changed.
    @Test func aWritableOpenOfASegmentCutShortLeavesItsSize() async throws {
        let directory = TemporaryDirectory("cut-segment")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 1 << 20, useIndexFile: false)
        for round in 0..<40 { try await log.append(Fixture.events(5, size: 200), to: "s/\(round)") }
        log.close()
        let segment = directory.path + "/00000000000000000000.dseg"
        let frames = try Fixture.frameOffsets(of: segment)
        let cut = frames[frames.count / 2] + 50  // (acknowledged events are cut off)
        #expect(truncate(segment, off_t(cut)) == 0)
        let before = try Self.scanned(directory)
        let found = try before.verify().problems.map(\.description)
        before.close()
        #expect(!found.isEmpty, "a segment cut short is damage")
        var options = EventLog.Options()
        options.useIndexFile = false
        let writable = try EventLog.open(at: directory.path, options: options)
        #expect(!writable.recovery.corruptions.isEmpty)
        writable.close()
        #expect(try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int == cut, "the damaged segment was extended")
        let after = try Self.scanned(directory)
        defer { after.close() }
        #expect(try after.verify().problems.map(\.description) == found)
    }

    // Found by a black-box review (a double fault): a writer stopped without closing (killed, or
    // the power failed), then the newest segment was cut at a frame boundary and the head file
    // was lost, or left older than the cut (head records are not synced). Nothing in the frames
    // that remain tells that cut from their clean end: a writable open appended after them and
    // gave the lost events' positions again, and verification named only the head. A writer
    // keeps its newest segment at its capacity, so a shorter one holding frames was cut.
    @Test(arguments: [true, false]) func aNewestSegmentCutAfterAnUncleanStopIsDamage(headLost: Bool) async throws {
        let copy = TemporaryDirectory("unclean-cut")
        defer { copy.remove() }
        let (segment, frames) = try await Self.storeLeftByAWriterThatNeverClosed(in: copy)
        if headLost {
            try FileManager.default.removeItem(atPath: copy.file("dugong.head"))
        } else {
            try Fixture.simulateCrash(copy, durableEnd: frames[3], nextPosition: 6)
        }
        try await Self.expectCutIsDamage(copy, segment: segment, at: frames[6], eventsLeft: 12)
    }

    // Found by a black-box review (a double fault): a writer stopped without closing, the head
    // file was lost or damaged, and the newest segment's last frames were zeroed from a frame's
    // start (its size kept). The frames left end as a crash leaves them: a writable open took
    // them for the log's end, appended and gave the lost events' positions again. Without the
    // head nothing tells that from a crash, so frames not followed by a clean close's marker are
    // damage then, zeroed or not (a clean close's store with its head lost opens writable:
    // IntegrityTests' aWriterStartingANewHeadFileFillsBothSlots).
    // (A black-box review added: every frame zeroed, the segment left at its size; and another
    // store's intact head put in place, which names none of the segments.)
    @Test(arguments: ["missing", "damaged", "another store's"], ["zeroed at a frame boundary", "zeroed from its header", "as written"])
    func framesWithoutACleanCloseAndNoHeadToSayWhereTheyEndedAreDamage(head: String, tail: String) async throws {
        // (Not told apart, README "What no check can tell": a head about no segment of the set,
        // beside a newest segment without frames, is what a compaction's switch leaves when the
        // power fails before it writes the head, and the next writer's open extended the segment.)
        if head == "another store's", tail == "zeroed from its header" { return }
        let copy = TemporaryDirectory("unclean-headless")
        defer { copy.remove() }
        let (segment, frames) = try await Self.storeLeftByAWriterThatNeverClosed(in: copy)
        switch head {
        case "missing":
            try FileManager.default.removeItem(atPath: copy.file("dugong.head"))
        case "damaged":
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: copy.file("dugong.head")))
            try handle.seek(toOffset: 20)
            try handle.write(contentsOf: Data([0xA5]))
            try handle.close()
        default:
            let other = TemporaryDirectory("other-head")
            defer { other.remove() }
            let log = try Fixture.open(other, segmentSize: 1 << 16, useIndexFile: false)
            try await log.append(Fixture.events(2, size: 100), to: "s/0")
            log.close()
            try FileManager.default.removeItem(atPath: copy.file("dugong.head"))
            try FileManager.default.copyItem(atPath: other.file("dugong.head"), toPath: copy.file("dugong.head"))
        }
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        if tail != "as written" {
            let start = tail == "zeroed from its header" ? 128 : frames[6]
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
            try handle.seek(toOffset: UInt64(start))
            try handle.write(contentsOf: Data(count: size - start))
            try handle.close()
        }
        let before = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        // A reader with no writer present finds it at open, and serves what is there.
        let scanned = try Self.scanned(copy)
        #expect(scanned.recovery.corruptions.contains { "\($0)".contains("without the marker of a clean close") })
        let found = try scanned.verify().problems.map(\.description)
        #expect(scanned.eventCount == ["as written": 20, "zeroed at a frame boundary": 12, "zeroed from its header": 0][tail])
        scanned.close()
        #expect(found.contains { $0.contains("without the marker of a clean close") }, "\(found)")
        #expect(found.contains { $0.contains(head == "another store's" ? "names none of the store's segments" : "is missing or damaged") }, "\(found)")
        try await Self.expectTakesNoWrites(copy)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))) == before, "the segment was changed")
    }

    // Found by the random damage trials: with the manifest lost, another store's segment put in
    // place of a one-segment store's read as the store (one log, nothing broken): its events were
    // returned as this store's. The head names a segment that none of the files is.
    // (The long damage trials found the same with the head lost too: the index file a clean
    // close saved names the store's segments then.)
    @Test(arguments: ["the head", "the index file"]) func anotherStoresSegmentInPlaceOfALostManifestsIsNotRead(vouching: String) async throws {
        let mine = TemporaryDirectory("mine")
        let other = TemporaryDirectory("other")
        defer {
            mine.remove()
            other.remove()
        }
        for directory in [mine, other] {
            let log = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: vouching == "the index file")
            try await log.append(Fixture.events(3, size: 50), to: "s/1")
            log.close()
        }
        let segment = "00000000000000000000.dseg"
        try FileManager.default.removeItem(atPath: mine.file(segment))
        try FileManager.default.copyItem(atPath: other.file(segment), toPath: mine.file(segment))
        try FileManager.default.removeItem(atPath: mine.file("dugong.manifest"))
        try FileManager.default.removeItem(atPath: mine.file(vouching == "the head" ? "dugong.index" : "dugong.head"))
        let reader = try Self.scanned(mine)
        #expect(reader.recovery.corruptions.contains { "\($0)".contains("none of the segment files found is") }, "\(reader.recovery.corruptions)")
        #expect(((try? reader.readAll()) ?? []).isEmpty, "another store's events were read")
        #expect(throws: StoreError.self) { try reader.read(stream: "s/1") }
        #expect(try !reader.verify().isClean)
        reader.close()
        try await Self.expectTakesNoWrites(mine)
    }

    /// In `copy`: the files of a one-segment store (64 KiB) as a writer that never closed
    /// leaves them, after 10 commits of 2 events (every append synced; no close marker, no
    /// saved index). - Returns: its segment's path and the offsets of its 10 frames.
    static func storeLeftByAWriterThatNeverClosed(in copy: TemporaryDirectory) async throws -> (segment: String, frames: [Int]) {
        let source = TemporaryDirectory("unclean-source")
        defer { source.remove() }
        let writer = try Fixture.open(source, segmentSize: 1 << 16, useIndexFile: false)
        for round in 0..<10 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round)") }
        try FileManager.default.createDirectory(atPath: copy.path, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name != "dugong.lock" {
            try FileManager.default.copyItem(atPath: source.file(name), toPath: copy.file(name))
        }
        writer.close()
        let segment = copy.file("00000000000000000000.dseg")
        let frames = try Fixture.frameOffsets(of: segment)
        #expect(frames.count == 10, "one frame per commit, no close marker")
        return (segment, frames)
    }

    /// Opens `directory` for writing and expects damage found and no write taken.
    /// Expects a read-only open of `directory`, with the index file and without, to find
    /// damage whose description holds `words`, and a read of `stream` to throw.
    static func expectOpensFindDamage(in directory: TemporaryDirectory, saying words: String, refusingToRead stream: String) throws {
        for useIndexFile in [true, false] {
            var options = EventLog.Options()
            options.readOnly = true
            options.useIndexFile = useIndexFile
            let reader = try EventLog.open(at: directory.path, options: options)
            defer { reader.close() }
            let damage = reader.recovery.corruptions.map(\.description)
            #expect(damage.contains { $0.contains(words) }, "\(damage)")
            #expect(throws: StoreError.self) { try reader.read(stream: stream) }
        }
    }

    static func expectTakesNoWrites(_ directory: TemporaryDirectory) async throws {
        var options = EventLog.Options()
        options.useIndexFile = false
        let writable = try EventLog.open(at: directory.path, options: options)
        #expect(!writable.recovery.corruptions.isEmpty)
        await #expect(throws: StoreError.self) { try await writable.append(Fixture.events(1), to: "s/new") }
        writable.close()
    }

    /// Cuts `segment` at `cut`, then expects the cut named as damage by `verify`, the events
    /// before it read, a writable open that takes no writes, and the file's size unchanged.
    static func expectCutIsDamage(_ directory: TemporaryDirectory, segment: String, at cut: Int, eventsLeft: Int) async throws {
        #expect(truncate(segment, off_t(cut)) == 0)
        let scanned = try Self.scanned(directory)
        let found = try scanned.verify().problems.map(\.description)
        #expect(scanned.eventCount == eventsLeft)
        scanned.close()
        #expect(found.contains { $0.contains("ends at \(cut), short of its capacity") }, "\(found)")
        try await Self.expectTakesNoWrites(directory)
        #expect(try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int == cut, "the cut segment was extended")
    }

    // Found by a black-box review: `dugong verify` beside an application's first commit after a
    // compaction reported "the segment file ends at 4096, short of its capacity: it was cut"
    // (1 run in ~700). The compaction left the newest segment as its header alone; the writer
    // extends it to its capacity before its first frame, and `posix_fallocate` grows the size a
    // chunk at a time, so the reader found it part way. A power cut may leave it so too (the
    // simulated disk now leaves unsynced extensions part way). Such a file lost nothing; with a
    // frame or a nonzero byte after the header, or a head that says frames were durable there,
    // a short newest segment is still a cut.
    @Test(arguments: ["part way", "a byte after the header", "the head says frames were durable"])
    func aHeaderAloneFoundPartWayToItsCapacityIsNoCut(_ variant: String) async throws {
        let directory = TemporaryDirectory("header-extension")
        defer { directory.remove() }
        var options = EventLog.Options()
        options.segmentSize = 1 << 16
        options.useIndexFile = false
        let writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
        try await writer.append(Fixture.events(3, size: 100), to: "s/0")
        writer.close()
        _ = try EventLog.compact(at: directory.path, options: options)
        let compacted = try Self.scanned(directory)
        let path = directory.file(compacted.segmentNames.last!)
        compacted.close()
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == Fixture.headerSize, "the header alone")
        var events = 3
        if variant == "the head says frames were durable" {
            // A writer's commit there, acknowledged (the head says where its frames end); then
            // everything after the header gone: the commit is missing.
            let later = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
            try await later.append(Fixture.events(2, size: 100), to: "s/1")
            later.close()
            #expect(try #require(try StoreFiles.readHead(in: directory.path)).durableEnd > UInt64(Fixture.headerSize))
            #expect(truncate(path, off_t(Fixture.headerSize)) == 0)
            events = 5
        }
        #expect(truncate(path, 4096) == 0)  // part way to 65,536: zeros after the header
        if variant == "a byte after the header" {
            let file = try #require(FileHandle(forWritingAtPath: path))
            try file.seek(toOffset: 3000)
            try file.write(contentsOf: [0x5A])
            try file.close()
        }
        let reader = try Self.scanned(directory)
        let problems = try reader.verify().problems.map(\.description)
        let read = reader.eventCount
        reader.close()
        guard variant == "part way" else {
            #expect(problems.contains { $0.contains("ends at 4096, short of its capacity") }, "\(problems)")
            #expect(read == 3, "of \(events)")
            try await Self.expectTakesNoWrites(directory)
            return
        }
        #expect(problems.isEmpty, "\(problems)")
        #expect(read == 3)
        // The next writer finishes the extension and appends.
        let next = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
        #expect(next.recovery.corruptions.isEmpty, "\(next.recovery.corruptions)")
        try await next.append(Fixture.events(1), to: "s/2")
        next.close()
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == 1 << 16)
        let after = try Self.scanned(directory)
        #expect(try after.verify().isClean)
        #expect(after.eventCount == 4)
        after.close()
    }

    // Found by a black-box review: an older copy of the head file put back (a clean close's,
    // or one from before a roll), and the newest segment cut where that head says its frames
    // end, or a rolled segment cut to its header. The head looked true and nothing read as lost:
    // a clean close keeps the size, and a roll makes its segment at its capacity.
    @Test(arguments: ["clean close", "roll"]) func aNewestSegmentCutWhereAnOlderHeadSaysItEndsIsDamage(_ older: String) async throws {
        let directory = TemporaryDirectory("older-head-cut")
        defer { directory.remove() }
        var writer = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
        try await writer.append(Fixture.events(2, size: 100), to: "s/0")
        if older == "clean close" { writer.close() }
        let olderHead = try Data(contentsOf: URL(fileURLWithPath: directory.file("dugong.head")))
        if older == "clean close" { writer = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false) }
        var round = 1
        while older == "roll" ? writer.segmentNames.count < 2 : round < 4 {
            try await writer.append(Fixture.events(2, size: 300), to: "s/\(round % 3)")
            round += 1
        }
        let names = writer.segmentNames
        writer.close()
        try olderHead.write(to: URL(fileURLWithPath: directory.file("dugong.head")))
        try? FileManager.default.removeItem(atPath: directory.file("dugong.index"))
        let segment = directory.file(names.last!)
        let recorded = try #require(try StoreFiles.readHead(in: directory.path))
        #expect(recorded.cleanClose == (older == "clean close"))
        // Left before the cut: the first segment's events (a roll), the first commit (a clean close).
        try await Self.expectCutIsDamage(
            directory, segment: segment, at: older == "roll" ? Fixture.headerSize : Int(recorded.durableEnd),
            eventsLeft: older == "roll" ? 2 * (round - 1) : 2)
    }

    // Found by a black-box review: the newest segment and the head both put back from an
    // earlier copy (a backup of single files) agree with each other: reads and `verify` exited
    // 0 without the events acknowledged since, and the next append gave their versions to
    // other events. The index file the last clean close saved says the log went further.
    @Test func aSegmentAndTheHeadPutBackTogetherFromAnEarlierCopyAreDamage() async throws {
        let directory = TemporaryDirectory("rolled-back")
        defer { directory.remove() }
        var writer = try Fixture.open(directory)
        try await writer.append(Fixture.events(3), to: "s/0")
        writer.close()
        let segment = directory.file(writer.segmentNames.last!)
        let earlier = try [segment, directory.file("dugong.head")].map { ($0, try Data(contentsOf: URL(fileURLWithPath: $0))) }
        for _ in 0..<3 {
            writer = try Fixture.open(directory)
            try await writer.append(Fixture.events(1), to: "s/0")
            writer.close()  // saves the index: the log ends at position 6
        }
        for (path, bytes) in earlier { try bytes.write(to: URL(fileURLWithPath: path)) }
        // Read with the index (it does not agree with the head: the open scans) and without.
        try Self.expectOpensFindDamage(in: directory, saying: "records events up to position 5 in these segments", refusingToRead: "s/0")
        let scanned = try Self.scanned(directory)
        #expect(!(try scanned.verify().isClean))
        scanned.close()
        try await Self.expectTakesNoWrites(directory)
    }

    /// A copy of every file of `directory` (a backup), and a way to put it back.
    static func backup(_ directory: TemporaryDirectory) throws -> [String: Data] {
        Dictionary(uniqueKeysWithValues: try FileManager.default.contentsOfDirectory(atPath: directory.path).map {
            ($0, try Data(contentsOf: URL(fileURLWithPath: directory.file($0))))
        })
    }

    // Found by a black-box review: a backup put back, and the index file a later clean close
    // saved after the store had rolled to more segments. The index names this store's segments
    // and one more: it was taken for another store's ("saved before a change", a warning), and
    // reads, `verify` and the next append went on from the backup's end.
    @Test func anIndexFileOfMoreSegmentsThanTheStoreHoldsSaysEventsAreMissing() async throws {
        let directory = TemporaryDirectory("index-of-more")
        defer { directory.remove() }
        var writer = try Fixture.open(directory, segmentSize: 4096)
        try await writer.append(Fixture.events(4, size: 50), to: "s/0")
        writer.close()
        let backup = try Self.backup(directory)
        writer = try Fixture.open(directory, segmentSize: 4096)
        for index in 0..<40 { try await writer.append(Fixture.events(1, size: 300), to: "s/\(index % 3)") }
        #expect(writer.segmentNames.count > 1)
        writer.close()
        let laterIndex = try Data(contentsOf: URL(fileURLWithPath: directory.file("dugong.index")))
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) { try FileManager.default.removeItem(atPath: directory.file(name)) }
        for (name, bytes) in backup { try bytes.write(to: URL(fileURLWithPath: directory.file(name))) }
        try laterIndex.write(to: URL(fileURLWithPath: directory.file("dugong.index")))
        let scanned = try Self.scanned(directory)
        let report = try scanned.verify()
        #expect(report.problems.contains { $0.message.contains("records events up to position 43") && $0.message.contains("acknowledged events are missing") }, "\(report.problems)")
        #expect(!report.warnings.contains { $0.kind == .indexMismatch }, "not 'saved before a change': \(report.warnings)")
        #expect(throws: StoreError.self) { try scanned.read(stream: "s/0") }
        scanned.close()
        try await Self.expectTakesNoWrites(directory)
    }

    // Found by a black-box review: a fork. A backup restored and written to, then the original
    // store's newest segment (the same segment: the same salt) put back beside the copy's head,
    // manifest and index. Its frames end where the copy's did: reads and `verify` served the
    // original's events as the copy's, and the copy's acknowledged events vanished silently.
    // The index file the copy's last clean close saved records another last frame.
    @Test func aSegmentOfAnotherCopyPutBackBesideTheHeadOfTheLastCleanCloseIsDamage() async throws {
        let original = TemporaryDirectory("fork-original")
        let copy = TemporaryDirectory("fork-copy")
        defer {
            original.remove()
            copy.remove()
        }
        var writer = try Fixture.open(original)
        try await writer.append(Fixture.events(3, size: 40), to: "s/0")
        writer.close()
        try FileManager.default.copyItem(atPath: original.path, toPath: copy.path)
        for directory in [original, copy] {
            writer = try Fixture.open(directory)
            for _ in 0..<3 { try await writer.append(Fixture.events(1, size: 40), to: "s/0") }
            writer.close()
        }
        let segment = try #require(writer.segmentNames.last)
        try FileManager.default.removeItem(atPath: copy.file(segment))
        try FileManager.default.copyItem(atPath: original.file(segment), toPath: copy.file(segment))
        try Self.expectOpensFindDamage(in: copy, saying: "the segment is not the one the last clean close left", refusingToRead: "s/0")
        try await Self.expectTakesNoWrites(copy)
        // The original itself, with its own files, is clean.
        let scanned = try Self.scanned(original)
        #expect(try scanned.verify().isClean)
        scanned.close()
    }

    // Found by a black-box review: a backup put back over a compacted store that had grown
    // since, without removing the newer files (`cp -a backup/. store/`, rsync without
    // --delete). The compacted set's newest segment holds acknowledged events past the backup's
    // end; its header begins at the backup's end, not past it: it was taken for a compaction's
    // leftover, reads and `verify` went on from the backup, and the next writer removed the only
    // copy of those events. A leftover never holds events past the log's end: damage, kept.
    @Test func anUnlistedSegmentHoldingEventsPastTheLogsEndIsDamageAndKept() async throws {
        let directory = TemporaryDirectory("restored-over")
        defer { directory.remove() }
        var writer = try Fixture.open(directory, segmentSize: 8192)
        for index in 0..<12 { try await writer.append(Fixture.events(1, size: 200), to: "s/\(index % 3)") }
        writer.close()
        let backup = try Self.backup(directory)
        _ = try EventLog.compact(at: directory.path, options: CompactionTests.options)
        writer = try Fixture.open(directory, segmentSize: 8192)
        try await writer.append(Fixture.events(3, size: 50), to: "s/1")
        writer.close()
        let newer = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)).subtracting(backup.keys)
        #expect(!newer.isEmpty, "the compaction made segments of other names")
        for (name, bytes) in backup { try bytes.write(to: URL(fileURLWithPath: directory.file(name))) }
        try Self.expectOpensFindDamage(in: directory, saying: "which the manifest does not list, holds events up to position 14, past the log's end 12", refusingToRead: "s/1")
        try await Self.expectTakesNoWrites(directory)
        for name in newer { #expect(FileManager.default.fileExists(atPath: directory.file(name)), "\(name) kept") }
    }

    // Found by a black-box review (three faults at once): the manifest replaced by an older
    // copy, the segment after the ones it lists lost, and the head file lost. The segment after
    // that one, unlisted, was taken for what a compaction left: `verify` only warned of it, and
    // the next writer removed it with its acknowledged events. Frames that begin past the log's
    // end are damage; the file is kept.
    @Test func anUnlistedSegmentBeginningPastTheLogsEndIsDamageAndKept() async throws {
        let directory = TemporaryDirectory("unlisted-later")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
        try await writer.append(Fixture.events(2, size: 100), to: "s/0")
        let olderManifest = try Data(contentsOf: URL(fileURLWithPath: directory.file("dugong.manifest")))
        var round = 1
        while writer.segmentNames.count < 3 {
            try await writer.append(Fixture.events(2, size: 300), to: "s/\(round % 4)")
            round += 1
        }
        let names = writer.segmentNames
        writer.close()
        try olderManifest.write(to: URL(fileURLWithPath: directory.file("dugong.manifest")))
        try FileManager.default.removeItem(atPath: directory.file(names[1]))
        try FileManager.default.removeItem(atPath: directory.file("dugong.head"))
        try FileManager.default.removeItem(atPath: directory.file("dugong.index"))  // (it would tell)
        let reader = try Self.scanned(directory)
        let report = try reader.verify()
        reader.close()
        #expect(report.problems.contains { $0.segment == names[2] && $0.message.contains("past the log's end") }, "\(report.problems)")
        #expect(!report.warnings.contains { $0.kind == .leftoverFile }, "\(report.warnings)")
        try await Self.expectTakesNoWrites(directory)
        #expect(FileManager.default.fileExists(atPath: directory.file(names[2])), "the segment was removed")
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

extension EventLog {
    /// Whether `verify` finds nothing wrong.
    fileprivate var verifyIsClean: Bool { (try? verify().isClean) ?? false }
}
