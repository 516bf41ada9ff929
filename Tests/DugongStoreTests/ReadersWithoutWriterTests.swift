import Dugong
@testable import DugongStore
import Foundation
import Testing
import Synchronization

/// Readers when no writer holds the store and the head file is older than what was
/// acknowledged (a power cut takes head records: they are written without a sync). FORMAT.md §8,
/// Readers, "No writer present".
@Suite("Readers without a writer")
struct ReadersWithoutWriterTests {
    /// A store of several 16 KiB segments (the later ones begin with a dictionary frame) whose
    /// head file is put back to what it was after the first commits: it names the first segment.
    static func storeWithAnOldHead(_ directory: TemporaryDirectory) async throws -> (events: Int, head: Data) {
        let writer = try Fixture.open(directory, segmentSize: 16 << 10, useIndexFile: false)
        try await writer.append(Fixture.events(5, size: 200), to: "s/0")
        let head = try Data(contentsOf: URL(fileURLWithPath: directory.file(Layout.headName)))
        for round in 1..<40 { try await writer.append(Fixture.events(5, size: 200), to: "s/\(round % 4)") }
        #expect(writer.segmentNames.count >= 3)
        writer.close()
        try head.write(to: URL(fileURLWithPath: directory.file(Layout.headName)))
        Fixture.untilTheWriterIsGone(directory)
        return (200, head)
    }

    /// A subscription to `reader` from the start, counting what it delivers.
    static func counting(_ reader: EventLog) -> Task<Int, any Error> {
        Task {
            var delivered = 0
            for try await _ in reader.subscribe() { delivered += 1 }
            return delivered
        }
    }

    /// Expects `subscription` to end within 20 s with a store error whose text holds `naming`.
    static func expectEnds(_ subscription: Task<Int, any Error>, naming: String, _ label: String) async {
        let ended = Task {
            try await Task.sleep(for: .seconds(20))
            subscription.cancel()
        }
        defer { ended.cancel() }
        do {
            let delivered = try await subscription.value
            Issue.record("\(label): the subscription ended without an error after \(delivered) events")
        } catch let error as StoreError {
            #expect("\(error)".contains(naming), "\(label): \(error)")
        } catch is CancellationError {
            Issue.record("\(label): the subscription still waited, silent, 20 s after the damage")
        } catch {
            Issue.record("\(label): \(error)")
        }
    }

    /// As the tool opens a store for reading (no index file was saved: the writer used none).
    static func readOnly() -> EventLog.Options { InspectionTests.readOnly() }

    // Found by review: a follower opened beside a writer, then the segment was cut under the
    // writer (which failed and went): a fresh reader finds the cut, the follower went on
    // waiting at the end, silent, for ever.
    @Test(arguments: [-50, 1000], [false, true])
    func aFollowerFindsASegmentCutUnderTheWriterOnceTheWriterIsGone(cutAfterTheFrames: Int, reopened: Bool) async throws {
        let directory = TemporaryDirectory("cut-under-writer")
        defer { directory.remove() }
        var writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
        for round in 0..<10 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)") }
        if reopened {
            // (As the tool's commands do: each closes the store, the next one opens it again.)
            writer.close()
            writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
        }
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        #expect(try reader.readAll().count == 20)
        let segment = directory.file("00000000000000000000.dseg")
        #expect(truncate(segment, off_t(try Fixture.endOfFrames(of: segment) + cutAfterTheFrames)) == 0)
        await #expect(throws: StoreError.self) { try await writer.append(Fixture.events(1), to: "s/new") }
        writer.close()
        let fresh = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { fresh.close() }
        #expect(!fresh.damageFoundAtOpen.isEmpty)
        do {
            // (A refresh while the closed writer's lock is still let go sees a writer there and
            // waits for it, as it should: the next ones look.)
            for _ in 0..<100 where reader.damageFoundAtOpen.isEmpty {
                _ = try reader.refresh()
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(reader.damageFoundAtOpen.map(\.reason) == fresh.damageFoundAtOpen.map(\.reason))
        } catch {
            // A cut through frames the follower had served: the store now ends before what it
            // saw, which the refresh says. (Not a cut past the frames: nothing served was lost.)
            #expect(cutAfterTheFrames < 0 && error is StoreError, "\(error)")
        }
    }

    // The same after a clean close, the cut reaching the frames before the recorded end:
    // nothing new was written, and the follower's look found "nothing new" and never looked
    // at the file's size. (A cut past the recorded end is found by `verify` and writable opens:
    // a reader trusts a clean close's record that nothing follows.)
    @Test func aFollowerFindsASegmentCutAfterACleanClose() async throws {
        let directory = TemporaryDirectory("cut-after-close")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
        for round in 0..<10 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)") }
        writer.close()
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        #expect(try reader.readAll().count == 20 && reader.damageFoundAtOpen.isEmpty)
        let segment = directory.file("00000000000000000000.dseg")
        let closeMarker = try #require(try Fixture.frameOffsets(of: segment).last)
        #expect(truncate(segment, off_t(closeMarker + 10)) == 0)
        _ = try reader.refresh()
        #expect(reader.damageFoundAtOpen.contains { $0.reason.contains("before the durable end") }, "\(reader.damageFoundAtOpen)")
    }

    // Left by session 31 (the CLI's follower was fixed then, the library's not): a
    // subscription, or a projection's wait, on a store damaged in what it had delivered waited
    // for ever, silent, where a fresh reader reports the damage.
    @Test(arguments: ["cut through the close marker", "cut to the header", "an older copy put back"])
    func aSubscriptionEndsWithTheDamageFoundWhileItWaits(_ damage: String) async throws {
        let directory = TemporaryDirectory("subscription-damage")
        defer { directory.remove() }
        let segment = directory.file("00000000000000000000.dseg")
        var older: Data?
        for round in 0..<5 {
            let writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
            try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)")
            writer.close()
            if round == 2 { older = try Data(contentsOf: URL(fileURLWithPath: segment)) }
        }
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        let subscription = Self.counting(reader)
        try await Task.sleep(for: .milliseconds(200))
        switch damage {
        case "cut through the close marker": #expect(truncate(segment, off_t(try Fixture.endOfFrames(of: segment) - 10)) == 0)
        case "cut to the header": #expect(truncate(segment, 128) == 0)
        default: try #require(older).write(to: URL(fileURLWithPath: segment))
        }
        let fresh = try EventLog.open(at: directory.path, options: Self.readOnly())
        let found = fresh.damageFoundAtOpen
        fresh.close()
        #expect(!found.isEmpty)
        await Self.expectEnds(subscription, naming: "00000000000000000000.dseg at offset", damage)
        // A wait begun afterwards says so too (helper 60's F3: each wait compared with the
        // damage known when it began, so damage another refresh found was never told): the
        // damage was found since the store was opened, whichever refresh found it.
        let waiter = Task { try await reader.waitForEvents(after: 1_000) }
        let stop = Task {
            try await Task.sleep(for: .seconds(5))
            waiter.cancel()
        }
        defer { stop.cancel() }
        await #expect(throws: StoreError.self, "\(damage): a later wait") { try await waiter.value }
    }

    // Found by a black-box run (helper 61): a follower never looked again at the segments
    // before the newest, so one removed or cut under it went unseen (`read-all --follow` waited
    // on, or went on following a live writer), where a fresh reader reports it. A refresh now
    // looks at them once a second.
    @Test(arguments: ["removed", "cut"], [false, true])
    func aSubscriptionEndsWhenASegmentBeforeTheNewestIsCutOrRemoved(_ damage: String, besideAWriter: Bool) async throws {
        let directory = TemporaryDirectory("older-segment-damage")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
        defer { writer.close() }
        for round in 0..<40 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)") }
        if !besideAWriter {
            writer.close()
            Fixture.untilTheWriterIsGone(directory)
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        try #require(segments.count >= 3, "\(segments)")
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        let subscription = Self.counting(reader)
        try await Task.sleep(for: .milliseconds(300))
        let first = directory.file(segments[0])
        if damage == "removed" {
            try FileManager.default.removeItem(atPath: first)
        } else {
            #expect(truncate(first, 1000) == 0)
        }
        // (Beside a writer, the follower has new events to follow after the damage.)
        if besideAWriter { try await writer.append(Fixture.events(1), to: "s/after") }
        await Self.expectEnds(subscription, naming: segments[0], "\(damage), beside a writer: \(besideAWriter)")
    }

    // In a store of more segments than a refresh looks at each second, the looks take them in
    // turn: the damaged one is found at a later look.
    @Test func theLooksAtOlderSegmentsTakeThemInTurn() async throws {
        let directory = TemporaryDirectory("older-segments-in-turn")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
            for round in 0..<40 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)") }
            writer.close()
        }
        Fixture.untilTheWriterIsGone(directory)
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        try #require(segments.count >= 4, "\(segments)")
        var options = Self.readOnly()
        options.olderSegmentsPerLook = 1
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        let subscription = Self.counting(reader)
        try await Task.sleep(for: .milliseconds(300))
        try FileManager.default.removeItem(atPath: directory.file(segments[2]))
        await Self.expectEnds(subscription, naming: segments[2], "one segment a look")
    }

    // Found by review (helper 60): damage known when a subscription began was thrown as new
    // once a scan again described it, its reason naming the durable end as it was then.
    @Test func aSubscriptionTakesDamageItKnewForKnownWhenAScanDescribesItAnew() async throws {
        let directory = TemporaryDirectory("subscription-known-damage")
        defer { directory.remove() }
        let segment = directory.file("00000000000000000000.dseg")
        // Writers that fail (an injected failed sync) and go without a clean close: a reader
        // opening after them scans the segment.
        let armed = Mutex(false)
        var options = EventLog.Options(createIfMissing: true)
        options.useIndexFile = false
        options.faults = { point in
            if point == .sync, armed.withLock({ $0 }) { throw FailureTests.InjectedFailure() }
        }
        func appendThenFail(_ writer: EventLog) async throws {
            armed.withLock { $0 = true }
            await #expect(throws: StoreError.self) { try await writer.append(Fixture.events(1), to: "s/failed") }
            writer.close()
            armed.withLock { $0 = false }
        }
        do {
            let writer = try EventLog.open(at: directory.path, options: options)
            for round in 0..<6 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 3)") }
            try await appendThenFail(writer)
        }
        // A byte of the third frame changed: its checksum fails, before the durable end.
        let third = try Fixture.frameOffsets(of: segment)[2]
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        try handle.seek(toOffset: UInt64(third + 60))
        let byte = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: UInt64(third + 60))
        try handle.write(contentsOf: [byte ^ 0xFF])
        try handle.close()
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        let known = reader.damageFoundAtOpen
        #expect(known.count == 1 && known[0].reason.contains("durable end"), "\(known)")
        let subscription = Task {
            var delivered = 0
            for try await _ in reader.subscribe(from: reader.headPosition) { delivered += 1 }
            return delivered
        }
        // A writer despite the damage appends (the durable end moves on), then fails and goes
        // without a clean close: the reader's next look scans the segment again.
        options.acceptWritesDespiteDamage = true
        let writer = try EventLog.open(at: directory.path, options: options)
        try await writer.append(Fixture.events(1), to: "s/new")
        try await appendThenFail(writer)
        for _ in 0..<100 where reader.damageFoundAtOpen.map(\.reason) == known.map(\.reason) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(reader.damageFoundAtOpen.map(\.reason) != known.map(\.reason), "the scan again describes the damage anew")
        #expect(reader.damageFoundAtOpen.count == 1 && reader.damageFoundAtOpen[0].isAmong(known))
        try await Task.sleep(for: .milliseconds(200))
        subscription.cancel()
        do {
            let delivered = try await subscription.value
            Issue.record("the subscription ended after \(delivered) events")
        } catch is CancellationError {
            // Still following when cancelled: nothing new was damaged.
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func aReaderServesEveryAcknowledgedEventPastAnOldHead() async throws {
        let directory = TemporaryDirectory("no-writer")
        defer { directory.remove() }
        let (events, _) = try await Self.storeWithAnOldHead(directory)
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        #expect(try reader.readAll(from: 0, maxCount: 1000).count == events)
        #expect(try reader.read(stream: "s/3").count == 50)
        // Nothing new: the follower does not scan the store again at every look.
        #expect(try reader.refresh() == 0)
        #expect(try reader.refresh() == 0)
    }

    // Found by a review: when a writer appeared between the reader's two looks at the lock, the
    // reader scanned the same segments again, registered their dictionaries a second time and
    // trapped. Now the files are opened again (the writer's head read); on the last attempt it
    // scans the same segments again, serving only what the old head records, without trapping.
    @Test(arguments: [false, true])
    func aWriterThatAppearsDuringTheScanMakesTheReaderLookAgain(lastAttempt: Bool) async throws {
        let directory = TemporaryDirectory("no-writer-race")
        defer { directory.remove() }
        _ = try await Self.storeWithAnOldHead(directory)
        for appears in ["holding the lock", "rewriting the head"] {
            let set = try SegmentSet.openForReading(directory: directory.path)
            var context = set.context
            context.lastFileSize = try set.segments.last?.file.size()
            var scans = 0
            var lock: StoreLock?
            let scanned = try EventLog.scanForReading(set.segments, context: context, in: directory.path, lastAttempt: lastAttempt) { context in
                scans += 1
                if scans == 1 {
                    if appears == "holding the lock" {
                        lock = try? StoreLock.take(in: directory.path)
                        try? lock?.markWriter()
                    } else {
                        // A writer came and went: its open wrote a head record of a new sequence.
                        var record = context.head!
                        record.sequence += 1
                        try? HeadFile(directory: directory.path).write(record, durably: true)
                    }
                }
                return Recovery.scan(set.segments, context: context)
            }
            withExtendedLifetime(lock) {}
            lock = nil
            guard lastAttempt else {
                #expect(scanned == nil && scans == 1, "\(appears): the caller opens the files again")
                continue
            }
            let (result, withoutWriter) = try #require(scanned)
            #expect(scans == 2, "\(appears)")
            #expect(!withoutWriter, "\(appears)")
            // The old head names the first segment: the sealed ones are served, nothing of the newest.
            #expect(result.index.nextPosition == set.segments.last!.header.firstPosition, "\(appears): only what the old head records")
            #expect(result.index.nextPosition < 200)
        }
    }

    // Found by a black-box test: past an old head (or without one), with no writer, a damaged
    // frame followed by later batches was taken for a write in progress: reads stopped there
    // with no error, leaving out acknowledged events. It is damage, as a writable open finds.
    @Test(arguments: ["an old head", "no head", "an old head, a frame zeroed"])
    func damagePastTheHeadIsDamageWithoutAWriter(head: String) async throws {
        let directory = TemporaryDirectory("no-writer-damage")
        defer { directory.remove() }
        _ = try await Self.storeWithAnOldHead(directory)
        if head == "no head" { try FileManager.default.removeItem(atPath: directory.file(Layout.headName)) }
        let newest = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.max()!
        let frames = try Fixture.frameOffsets(of: directory.file(newest))
        #expect(frames.count >= 4)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory.file(newest)))
        if head.hasSuffix("zeroed") {
            // The first frame past the old head's end (the newest segment's first) reads as
            // zeros, frames of later batches after it: damage, not the end of the log.
            try handle.seek(toOffset: UInt64(frames[0]))
            try handle.write(contentsOf: Data(count: frames[1] - frames[0]))
        } else {
            try handle.seek(toOffset: UInt64(frames[2] + 45))
            let byte = try handle.read(upToCount: 1)!
            try handle.seek(toOffset: UInt64(frames[2] + 45))
            try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
        }
        try handle.close()
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        #expect(!reader.recovery.corruptions.isEmpty, "\(head)")
        #expect(throws: StoreError.self, "\(head): a stream with events after the damage") { try reader.read(stream: "s/3") }
        // A writable open finds the same.
        var options = EventLog.Options()
        options.useIndexFile = false
        let writer = try EventLog.open(at: directory.path, options: options)
        #expect(!writer.recovery.corruptions.isEmpty)
        writer.close()
    }

    // A follower opened while the writer was there (it served what the head records), then
    // the writer went without closing: its refreshes look at the tail as a fresh reader does,
    // and it then serves what a reader opened afresh serves. Found in review: past a zeroed
    // frame at the head's end a refresh took the zeros for the end of the log and served stream
    // reads without the damage error a fresh reader gives, until the reader was opened again.
    @Test(arguments: ["intact", "the first frame past the head zeroed"])
    func aFollowerLooksAtTheTailOnceTheWriterIsGone(tail: String) async throws {
        let directory = TemporaryDirectory("no-writer-follower")
        defer { directory.remove() }
        let (events, _) = try await Self.storeWithAnOldHead(directory)
        if tail != "intact" {
            let newest = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.max()!
            let frames = try Fixture.frameOffsets(of: directory.file(newest))
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory.file(newest)))
            try handle.seek(toOffset: UInt64(frames[0]))
            try handle.write(contentsOf: Data(count: frames[1] - frames[0]))
            try handle.close()
        }
        // A writer holds the store (its mark set): the reader serves what the old head records.
        var lock: StoreLock? = try StoreLock.take(in: directory.path)
        try lock!.markWriter()
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        let served = try reader.readAll(from: 0, maxCount: 1000).count
        #expect(served < events)
        #expect(try reader.refresh() == 0, "\(tail): the writer is there, nothing recorded since")
        withExtendedLifetime(lock) {}
        lock = nil  // the writer is gone (killed: no clean close, its last head records lost)
        Fixture.untilTheWriterIsGone(directory)
        _ = try reader.refresh()
        let fresh = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { fresh.close() }
        /// What a read returns, or that it threw.
        func outcome(_ read: () throws -> [StoredEvent]) -> Result<[StoredEvent], StoreError> {
            Result { () throws(StoreError) in
                do { return try read() } catch let error as StoreError { throw error } catch { Issue.record("\(error)"); return [] }
            }
        }
        #expect(try reader.readAll(from: 0, maxCount: 1000) == fresh.readAll(from: 0, maxCount: 1000), "\(tail)")
        for stream in (0..<4).map({ "s/\($0)" }) {
            let followed = outcome { try reader.read(stream: stream) }
            let opened = outcome { try fresh.read(stream: stream) }
            switch (followed, opened) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(tail), \(stream)")
            case (.failure, .failure): break
            default: Issue.record("\(tail), \(stream): the follower's read \(followed), a fresh reader's \(opened)")
            }
        }
        if tail == "intact" {
            #expect(try reader.readAll(from: 0, maxCount: 1000).count == events)
        } else {
            #expect(throws: StoreError.self, "\(tail): a stream read meets the damage") { try reader.read(stream: "s/3") }
        }
        // Nothing new after that: later looks do not scan the store again.
        #expect(try reader.refresh() == 0)
    }

    // A writer that opens afterwards keeps what the reader served, and a reader opened with the
    // writer present serves only what the head records until the writer records more.
    @Test func whatAReaderServedWithoutAWriterTheNextWriterKeeps() async throws {
        let directory = TemporaryDirectory("no-writer-then-writer")
        defer { directory.remove() }
        let (events, _) = try await Self.storeWithAnOldHead(directory)
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        let served = try reader.readAll(from: 0, maxCount: 1000)
        #expect(served.count == events)
        let writer = try Fixture.open(directory, segmentSize: 16 << 10, useIndexFile: false)
        #expect(try writer.readAll(from: 0, maxCount: 1000) == served)
        try await writer.append(Fixture.events(1), to: "after")
        #expect(try reader.refresh() == 1)
        #expect(try reader.readAll(from: UInt64(events), maxCount: 10).map(\.stream) == ["after"])
        writer.close()
    }
}
