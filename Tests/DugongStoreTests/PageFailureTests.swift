import Dugong
import Foundation
import Synchronization
import Testing

@testable import DugongStore

/// Pages the disk fails, at random: the class of faults where a mapped page of a segment cannot
/// be read (an I/O error; the map shows zeros there, ``MappedRegion/hadUnreadablePage``). The
/// simulated disk (``PageFailures``) fails pages of live maps between operations, and pages of
/// new maps as they are made (an open's scan, a refresh's, a compaction's). Whatever fails,
/// what must hold: every operation either does what it says, with the acknowledged events'
/// exact bytes and order, or throws the I/O error; never damage reported (the files are whole),
/// never other events, never a crash; and once the disk reads again (a new process: new maps),
/// every acknowledged event is there and the store verifies clean.
@Suite("Pages the disk fails, at random")
struct PageFailureTests {
    /// An acknowledged event: where it was put, and what was appended.
    struct Acknowledged {
        var stream: String
        var version: Int
        var position: UInt64
        var event: NewEvent

        func isStored(as stored: StoredEvent) -> Bool {
            stored.stream == stream && stored.version == version && stored.position == position && stored.id == event.id
                && stored.type == event.type && stored.timestamp == event.timestamp && stored.data == event.data
                && stored.metadata == event.metadata
        }
    }

    /// The disk failing pages of live maps from a thread of its own, every few hundred
    /// microseconds, at most 40 times.
    final class FailingThread: Sendable {
        let count = Atomic<Int>(0)
        private let stopping = Atomic<Bool>(false)
        private let stopped = Atomic<Bool>(true)
        private let pausing = Atomic<Bool>(false)
        private let paused = Atomic<Bool>(false)

        func start(under directory: String, seed: UInt64) {
            stopped.store(false, ordering: .releasing)
            Thread { [self] in
                var random = SeededRandom(seed: seed)
                while !stopping.load(ordering: .acquiring), count.load(ordering: .relaxed) < 40 {
                    usleep(UInt32(100 + random.below(900)))
                    // Acknowledged only here, after the failure before it is done.
                    if pausing.load(ordering: .acquiring) {
                        paused.store(true, ordering: .releasing)
                        continue
                    }
                    if PageFailures.failPage(under: directory, choice: random.below(1 << 20)) != nil { count.add(1, ordering: .relaxed) }
                }
                stopped.store(true, ordering: .releasing)
            }.start()
        }

        /// Holds the thread's failures until ``resume()``; returns once none is under way.
        func pause() {
            paused.store(false, ordering: .releasing)
            pausing.store(true, ordering: .releasing)
            while !paused.load(ordering: .acquiring), !stopped.load(ordering: .acquiring) { usleep(100) }
        }

        func resume() { pausing.store(false, ordering: .releasing) }

        /// Stops the thread and waits until it has.
        func stop() {
            stopping.store(true, ordering: .releasing)
            while !stopped.load(ordering: .acquiring) { usleep(100) }
        }
    }

    /// Whether `error` is what a failed page must give: the I/O error, as itself or as the reason
    /// a writer stopped.
    static func isReadError(_ error: any Error) -> Bool {
        if let error = error as? SystemError { return error.code == EIO }
        if case .failed(let reason) = error as? StoreError { return reason.contains("(errno \(EIO))") }
        return false
    }

    /// `events` are `model`'s first events in order (a reader's view is a prefix of the log).
    static func arePrefix(_ events: [StoredEvent], of model: [Acknowledged]) -> Bool {
        events.count <= model.count && zip(events, model).allSatisfy { $1.isStored(as: $0) }
    }

    /// `events` are the first events of `stream` in `model`, in order.
    static func arePrefix(_ events: [StoredEvent], ofStream stream: String, in model: [Acknowledged]) -> Bool {
        arePrefix(events, of: model.filter { $0.stream == stream })
    }

    /// Every event from `position` on, page after page until one is empty, as the pages of
    /// ``EventLog/readAll(from:maxCount:)`` are meant to be read (a page ends before a frame
    /// that cannot be read; the next one throws).
    static func readEverything(_ log: EventLog, from position: Int = 0) throws -> [StoredEvent] {
        var events: [StoredEvent] = []
        while true {
            let page = try log.readAll(from: UInt64(position + events.count), maxCount: 64)
            if page.isEmpty { return events }
            events += page
        }
    }

    /// `stream`'s events, read with ``EventLog/read(stream:from:maxCount:direction:)`` or lent by
    /// ``EventLog/forEachEvent(in:from:maxCount:direction:_:)`` and copied.
    static func readStream(_ stream: String, of log: EventLog, lending: Bool) throws -> [StoredEvent] {
        guard lending else { return try log.read(stream: stream) }
        var events: [StoredEvent] = []
        try log.forEachEvent(in: stream) { events.append($0.stored) }
        return events
    }

    @Test func everyOperationReadsTheTruthOrSaysTheDiskFailed() async throws {
        let histories = ProcessInfo.processInfo.environment["DUGONG_PAGE_FAILURE_HISTORIES"].flatMap(Int.init) ?? 150
        var outcomes = (succeeded: 0, readErrors: 0, pagesFailed: 0)
        for seed in 0..<UInt64(histories) {
            let counts = try await Self.run(seed: seed)
            outcomes.succeeded += counts.succeeded
            outcomes.readErrors += counts.readErrors
            outcomes.pagesFailed += counts.pagesFailed
        }
        // The faults were met, and most operations still went through.
        #expect(outcomes.pagesFailed > histories * 3 && outcomes.readErrors > histories, "\(outcomes)")
        #expect(outcomes.succeeded > outcomes.readErrors, "\(outcomes)")
    }

    /// Runs `body` with a new directory whose maps ``PageFailures`` lists, and removes it.
    static func withWatchedDirectory(_ label: String, _ body: (TemporaryDirectory) async throws -> Void) async throws {
        let directory = TemporaryDirectory(label)
        PageFailures.watch(directory.path)
        defer {
            PageFailures.stopWatching(directory.path)
            directory.remove()
        }
        try await body(directory)
    }

    /// A writer keeps its segments open; one whose page failed is mapped anew for the next read,
    /// so its reads work again once the disk gives the page: a sealed segment, and the one it
    /// writes (through either map, to the same file).
    @Test func aWriterReadsASegmentAgainOnceTheDiskGivesItsPage() async throws {
        try await Self.withWatchedDirectory("page-failure-writer") { directory in
            var log = try Fixture.open(directory, segmentSize: 4096)
            defer { log.close() }
            for commit in 0..<12 { try await log.append(Fixture.events(2, size: 600), to: "s/\(commit % 3)") }
            let segments = log.segmentNames
            #expect(segments.count >= 3, "\(segments)")
            let all = try Self.readEverything(log)
            #expect(all.count == 24)

            // The first segment's first page (its header and first frames, stream s/0's first events).
            log.dropCaches()
            #expect(PageFailures.failPage(of: directory.file(segments[0]), at: 0) == 1)
            #expect(try log.read(stream: "s/0") == all.filter { $0.stream == "s/0" }, "read through a new map")
            #expect(try Self.readEverything(log) == all)
            #expect(try log.verify().isClean)

            // The segment being written: mapped anew for the next read too, and written on
            // through either map (appends before and after that read).
            log.dropCaches()
            let active = log.segmentNames.last!
            #expect(PageFailures.failPage(of: directory.file(active), at: 0) == 1)
            let more = Fixture.events(1, size: 300)
            let commit = try await log.append(more, to: "s/1")
            #expect(log.segmentNames.last == active, "still the segment whose page failed")
            var expected = all + (try log.read(stream: "s/1", from: commit.firstVersion))
            #expect(try Self.readEverything(log) == expected)
            for number in 0..<6 {
                let commit = try await log.append(Fixture.events(2, size: 600), to: "s/\(number % 3)")
                expected += try log.read(stream: "s/\(number % 3)", from: commit.firstVersion)
            }
            #expect(try Self.readEverything(log) == expected)
            #expect(expected.count == 37)
            #expect(try log.verify().isClean)
            log.close()
            log = try Fixture.open(directory, segmentSize: 4096)
            #expect(try Self.readEverything(log) == expected)
            #expect(try log.verify().isClean)
        }
    }

    /// Events lent from a frame stored uncompressed come from a copy made before the frame's
    /// checks ended, not from the map: a page that fails while they are lent does not show them
    /// zeros (`readAll` returned such events, ids and data of zeros, with no error).
    @Test func eventsLentFromAnUncompressedFrameAreNotReadFromTheMap() async throws {
        try await Self.withWatchedDirectory("page-failure-lending") { directory in
            let log = try Fixture.open(directory)
            defer { log.close() }
            var random = SeededRandom(seed: 5)
            let events = (0..<4).map { _ in NewEvent(type: "Noise", data: Data((0..<500).map { _ in UInt8(truncatingIfNeeded: random.next()) })) }
            try await log.append(events, to: "noise")
            let all = try log.readAll()
            #expect(all.map(\.data) == events.map(\.data))
            log.dropCaches()
            var seen: [StoredEvent] = []
            try log.forEachEvent(from: 0) { event in
                // The frame's page fails once the first event is lent (the checks are over by then).
                if seen.isEmpty { #expect(PageFailures.failPage(of: directory.file(log.segmentNames[0]), at: 0) == 1) }
                seen.append(event.stored)
            }
            #expect(seen == all)
        }
    }

    /// A reader whose refresh met a failed page while it scanned new frames (its index may then
    /// hold damage that is only zeros) throws the I/O error rather than that damage, and its
    /// next read refreshes first: once the disk gives the page, reads and a subscription go on,
    /// also after a compaction removed the file of that page (the reader compares what it
    /// served with the new files through a new map of the old one).
    @Test(arguments: [false, true])
    func aReaderWhoseRefreshMetAFailedPageReadsAgainOnceTheDiskGivesIt(compacting: Bool) async throws {
        try await Self.withWatchedDirectory("page-failure-refresh") { directory in
            let writer = try Fixture.open(directory)
            defer { writer.close() }
            try await writer.append(Fixture.events(1), to: "first")
            var options = InspectionTests.readOnly()
            let segment = directory.file(writer.segmentNames[0])
            // Once: the page after the first (where the next commit's frame goes on) fails as the
            // refresh is about to scan it.
            let failed = Mutex(0)
            options.incrementalScanHook = {
                failed.withLock { count in
                    if count == 0 { count = PageFailures.failPage(of: segment, at: 4096) }
                }
            }
            let reader = try EventLog.open(at: directory.path, options: options)
            defer { reader.close() }
            var random = SeededRandom(seed: 9)
            let large = (0..<3).map { _ in NewEvent(type: "Noise", data: Data((0..<3000).map { _ in UInt8(truncatingIfNeeded: random.next()) })) }
            try await writer.append(large, to: "noise")
            #expect {
                try reader.refresh()
            } throws: { error in
                (error as? SystemError)?.code == EIO
            }
            // What the refresh added may rest on zeros: the figures are those from before it.
            #expect(reader.headPosition == 1 && reader.eventCount == 1 && reader.damageFoundAtOpen.isEmpty)
            let failures = failed.withLock { $0 }
            #expect(failures == 2, "the page failed in the writer's map and the reader's, during the refresh's scan")
            if compacting {
                writer.close()
                _ = try EventLog.compact(at: directory.path)
                #expect(!FileManager.default.fileExists(atPath: segment))
            }
            // The disk gives the page again (a new map reads the file): the next read maps anew.
            let all = try Self.readEverything(reader)
            #expect(reader.headPosition == 4 && reader.eventCount == 4)
            #expect(all.map(\.data) == [Fixture.events(1)[0].data] + large.map(\.data))
            var seen = 0
            for try await event in reader.subscribe(from: 0) {
                seen += 1
                if event.position == 3 { break }
            }
            #expect(seen == 4)
            #expect(try reader.verify().isClean)
        }
    }

    /// While the disk keeps failing a page (every new map of the file fails it again), every
    /// read that needs that segment throws the I/O error, through a writer and a reader, a
    /// salvage and a subscription too, and none reports damage; what needs no frame answers.
    /// Once the disk gives the page, the same stores read everything, and verify clean.
    @Test func whileTheDiskFailsAPageItsReadsSaySoAndNoneReportsDamage() async throws {
        let directory = TemporaryDirectory("page-failure-persistent")
        defer { directory.remove() }
        let failing = Mutex<String?>(nil)  // the file whose second page every new map fails
        PageFailures.watch(directory.path) { path, count in
            failing.withLock { $0 == path } && count > 4096 ? 4096 : nil
        }
        defer { PageFailures.stopWatching(directory.path) }
        let writer = try Fixture.open(directory)
        defer { writer.close() }
        var random = SeededRandom(seed: 11)
        for _ in 0..<10 {
            try await writer.append([NewEvent(type: "Noise", data: Data((0..<1000).map { _ in UInt8(truncatingIfNeeded: random.next()) }))], to: "noise")
        }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let all = try Self.readEverything(writer)
        #expect(all.count == 10)
        let segment = directory.file(writer.segmentNames[0])
        failing.withLock { $0 = segment }
        #expect(PageFailures.failPage(of: segment, at: 4096) == 2)
        func isReadError(_ error: any Error) -> Bool { (error as? SystemError)?.code == EIO && "\(error)".contains(segment) }
        for log in [writer, reader] {
            log.dropCaches()
            for _ in 0..<2 {
                #expect(performing: { try log.read(stream: "noise") }, throws: isReadError)
                #expect(performing: { try Self.readEverything(log) }, throws: isReadError)
                #expect(performing: { try log.verify() }, throws: isReadError)
                #expect(performing: { try log.readAllSkippingDamage(from: 0) }, throws: isReadError)
                #expect(try log.info(stream: "noise")?.version == 10)
                #expect(try log.streamNames() == ["noise"])
            }
        }
        await #expect(performing: {
            for try await _ in reader.subscribe(from: 0) {}
        }, throws: isReadError)

        failing.withLock { $0 = nil }
        for log in [writer, reader] {
            #expect(try Self.readEverything(log) == all)
            #expect(try log.read(stream: "noise") == all)
            #expect(try log.verify().isClean)
        }
    }

    static func run(seed: UInt64) async throws -> (succeeded: Int, readErrors: Int, pagesFailed: Int) {
        var random = SeededRandom(seed: seed &* 104_729 &+ 3)
        let directory = TemporaryDirectory("page-failures")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = [4096, 8192, 16384][random.below(3)]
        options.useIndexFile = random.below(2) == 0
        var readOnly = options
        readOnly.readOnly = true
        readOnly.createIfMissing = false
        var writer: EventLog? = try EventLog.open(at: directory.path, options: options)
        defer { writer?.close() }
        var reader = try EventLog.open(at: directory.path, options: readOnly)
        defer { reader.close() }

        // One new map in ten fails a page (a generator of its own: the writer's thread makes the
        // maps of the segments it rolls to).
        let mapFailures = Mutex((random: SeededRandom(seed: seed &+ 17), failed: 0, paused: false))
        PageFailures.watch(directory.path) { _, count in
            mapFailures.withLock { state in
                guard state.random.below(10) == 0, !state.paused else { return nil }
                state.failed += 1
                return state.random.below(count)
            }
        }
        defer { PageFailures.stopWatching(directory.path) }

        // In every other history the disk also fails pages while operations run (a thread of
        // its own, every few hundred microseconds at most 40 times): between a frame's checksum
        // and its decoding, in the middle of a scan.
        let failing = FailingThread()
        if seed % 2 == 1 { failing.start(under: directory.path, seed: seed &+ 29) }
        defer { failing.stop() }

        var model: [Acknowledged] = []
        var counts = (succeeded: 0, readErrors: 0, pagesFailed: 0)
        var step = 0
        /// Runs an operation; an error must be the failed page's.
        func attempt(_ what: String, _ body: () async throws -> Void) async {
            do {
                try await body()
                counts.succeeded += 1
            } catch {
                #expect(isReadError(error), "seed \(seed), step \(step), \(what): \(error)")
                counts.readErrors += 1
            }
        }
        /// Runs `body` again until it does not meet a failed page (at most 50 times).
        func settle<R>(_ what: String, _ body: () throws -> R) throws -> R {
            for _ in 0..<49 {
                do {
                    return try body()
                } catch {
                    #expect(isReadError(error), "seed \(seed), step \(step), \(what): \(error)")
                    counts.readErrors += 1
                }
            }
            return try body()
        }
        /// Opens the writer again (its scan may meet a failed page).
        func reopenWriter() throws {
            writer?.close()
            writer = nil
            writer = try settle("reopening the writer") { try EventLog.open(at: directory.path, options: options) }
        }
        /// An append that threw, found stored after all: its events join the model.
        func adopt(_ stored: [StoredEvent], stream: String, events: [NewEvent]) {
            #expect(stored.isEmpty || stored.count == events.count, "seed \(seed), step \(step): a commit is all or nothing")
            for (offset, event) in zip(stored, events).map({ $0 }).enumerated() {
                let expected = Acknowledged(
                    stream: stream, version: model.count(where: { $0.stream == stream }) + 1, position: UInt64(model.count), event: event.1)
                #expect(expected.isStored(as: event.0), "seed \(seed), step \(step): event \(offset) of a commit that threw")
                model.append(expected)
            }
        }
        let streams = (0..<5).map { "account-\($0)" }

        for current in 0..<48 {
            step = current
            guard let log = writer else { break }
            switch random.below(16) {
            case 0...3:
                let stream = streams[random.below(streams.count)]
                let count = 1 + random.below(4)
                let size = random.below(options.segmentSize / 3 / count)
                let compressible = random.below(2) == 0
                let events = (0..<count).map { _ in
                    NewEvent(
                        type: "Moved", timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(random.below(1 << 30))),
                        data: Data((0..<size).map { _ in compressible ? UInt8(97 + random.below(4)) : UInt8(truncatingIfNeeded: random.next()) }),
                        metadata: random.below(3) == 0 ? Data("{\"seed\":\(seed)}".utf8) : Data())
                }
                do {
                    let commit = try await log.append(events, to: stream)
                    #expect(commit.firstPosition == UInt64(model.count), "seed \(seed), step \(step): gapless positions")
                    for (offset, event) in events.enumerated() {
                        model.append(Acknowledged(stream: stream, version: commit.firstVersion + offset, position: commit.firstPosition + UInt64(offset), event: event))
                    }
                    counts.succeeded += 1
                } catch {
                    // Not acknowledged: after a reopen the commit is wholly there or not at all.
                    #expect(isReadError(error), "seed \(seed), step \(step), append: \(error)")
                    counts.readErrors += 1
                    // Reopened as often as it takes: each open maps the files anew.
                    let stored = try settle("reading back") {
                        writer?.close()
                        writer = try EventLog.open(at: directory.path, options: options)
                        return try readEverything(writer!, from: model.count)
                    }
                    adopt(stored, stream: stream, events: events)
                }
            case 4:
                let stream = streams[random.below(streams.count)]
                let lending = random.below(2) == 0
                await attempt("writer's stream read") {
                    let events = try readStream(stream, of: log, lending: lending)
                    #expect(events.count == model.count(where: { $0.stream == stream }) && arePrefix(events, ofStream: stream, in: model), "seed \(seed), step \(step): \(stream)")
                }
            case 5:
                let from = random.below(model.count + 1)
                await attempt("writer's read of everything") {
                    let events = try readEverything(log, from: from)
                    #expect(events.count == model.count - from && arePrefix(events, of: Array(model[from...])), "seed \(seed), step \(step)")
                }
            case 6:
                await attempt("refresh") { _ = try reader.refresh() }
                await attempt("reader's read of everything") {
                    let events = try readEverything(reader)
                    #expect(arePrefix(events, of: model), "seed \(seed), step \(step)")
                }
            case 7:
                let stream = streams[random.below(streams.count)]
                let lending = random.below(2) == 0
                await attempt("reader's stream read") {
                    let events = try readStream(stream, of: reader, lending: lending)
                    #expect(arePrefix(events, ofStream: stream, in: model), "seed \(seed), step \(step): \(stream)")
                }
            case 8, 9:
                if PageFailures.failPage(under: directory.path, choice: random.below(1 << 20)) != nil { counts.pagesFailed += 1 }
            case 10:
                try reopenWriter()
            case 11:
                writer?.close()
                writer = nil
                await attempt("compaction") { _ = try EventLog.compact(at: directory.path, options: options) }
                try reopenWriter()
            case 12:
                let which = random.below(2) == 0 ? log : reader
                await attempt("verification") {
                    let report = try which.verify()
                    #expect(report.isClean, "seed \(seed), step \(step): \(report)")
                }
            case 14:
                // The disk gives every page again for a moment: a reader's refresh maps anew
                // what failed and serves every acknowledged event; a writer's reads map anew
                // what failed, and read every acknowledged event.
                failing.pause()
                mapFailures.withLock { $0.paused = true }
                do {
                    _ = try reader.refresh()
                    let events = try readEverything(reader)
                    #expect(events.count == model.count && arePrefix(events, of: model), "seed \(seed), step \(step): \(events.count) of \(model.count)")
                } catch {
                    Issue.record("seed \(seed), step \(step): the reader after the disk healed: \(error)")
                }
                do {
                    let events = try readEverything(log)
                    #expect(events.count == model.count && arePrefix(events, of: model), "seed \(seed), step \(step)")
                } catch {
                    Issue.record("seed \(seed), step \(step): the writer after the disk healed: \(error)")
                }
                mapFailures.withLock { $0.paused = false }
                failing.resume()
            case 15:
                // Salvage (`dugong export --skip-damage`) through the writer or the reader: a
                // failed page is the disk's error, never damage to step over.
                let salvaging = random.below(2) == 0 ? log : reader
                await attempt("salvage") {
                    var events: [StoredEvent] = []
                    var position: UInt64 = 0
                    for _ in 0..<10_000 {
                        let page = try salvaging.readAllSkippingDamage(from: position, maxCount: 1 + random.below(64))
                        #expect(page.skipped.isEmpty, "seed \(seed), step \(step): salvage stepped over \(page.skipped)")
                        events += page.events
                        guard page.next > position else { break }
                        position = page.next
                    }
                    #expect(arePrefix(events, of: model), "seed \(seed), step \(step): salvage")
                    if salvaging === log {
                        #expect(events.count == model.count, "seed \(seed), step \(step): the writer salvaged \(events.count) of \(model.count)")
                    }
                }
            default:
                reader.close()
                reader = try settle("reopening the reader") { try EventLog.open(at: directory.path, options: readOnly) }
            }
        }
        failing.stop()
        counts.pagesFailed += mapFailures.withLock { $0.failed } + failing.count.load(ordering: .relaxed)

        // The disk reads again: maps made anew show the files, and they hold every acknowledged
        // event, and nothing else.
        writer?.close()
        writer = nil
        reader.close()
        PageFailures.stopWatching(directory.path)
        let fresh = try EventLog.open(at: directory.path, options: options)
        defer { fresh.close() }
        let all = try readEverything(fresh)
        #expect(all.count == model.count && arePrefix(all, of: model), "seed \(seed): \(all.count) events, \(model.count) acknowledged")
        let report = try fresh.verify()
        #expect(report.isClean, "seed \(seed): \(report)")
        return counts
    }
}
