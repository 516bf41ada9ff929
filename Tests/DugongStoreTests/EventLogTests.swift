import Dugong
@testable import DugongStore
import Foundation
import Testing

/// Helpers shared by the engine tests.
enum Fixture {
    /// `count` events; `size` adds that many incompressible characters to each.
    static func events(_ count: Int, type: String = "Deposited", size: Int = 0) -> [NewEvent] {
        (0..<count).map { index in
            let padding = String((0..<size).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
            return NewEvent(
                type: type, timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(index)),
                data: Data(#"{"amount":\#(index),"pad":"\#(padding)"}"#.utf8), metadata: Data(#"{"i":\#(index)}"#.utf8))
        }
    }

    /// Opens (creating) a store. `useIndexFile: false` makes the open scan every segment, as
    /// the recovery and damage tests need (the saved index would cover the damage they make).
    static func open(_ directory: TemporaryDirectory, segmentSize: Int = 64 << 20, useIndexFile: Bool = true) throws -> EventLog {
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = segmentSize
        options.useIndexFile = useIndexFile
        return try EventLog.open(at: directory.path, options: options)
    }

    /// The offsets of the frames of a segment file, read with nothing but FORMAT.md's rules:
    /// frames start at 128 (after the header) and follow each other; a zero length ends them.
    static func frameOffsets(of path: String) throws -> [Int] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var offsets: [Int] = []
        var offset = headerSize
        while offset + frameHeaderSize <= bytes.count {
            let length = Int(bytes[offset + 4]) | Int(bytes[offset + 5]) << 8 | Int(bytes[offset + 6]) << 16 | Int(bytes[offset + 7]) << 24
            if length == 0 { break }
            offsets.append(offset)
            offset += frameHeaderSize + length
        }
        return offsets
    }

    /// The offsets of the frames that hold events (not dictionaries, close markers, snapshots).
    static func eventFrameOffsets(of path: String) throws -> [Int] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try frameOffsets(of: path).filter { bytes[$0 + 24] != 0 }
    }

    /// FORMAT.md's segment and frame header sizes.
    static let headerSize = 128
    static let frameHeaderSize = 40

    static func endOfFrames(of path: String) throws -> Int {
        let offsets = try frameOffsets(of: path)
        guard let last = offsets.last else { return headerSize }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = Int(bytes[last + 4]) | Int(bytes[last + 5]) << 8 | Int(bytes[last + 6]) << 16 | Int(bytes[last + 7]) << 24
        return last + frameHeaderSize + length
    }

    /// Makes a closed store look like one whose writer died after its last sync: the head's
    /// newest record says the frames up to `durableEnd` (default: all of them) were synced, with
    /// no clean close. Only the last segment's frames after it can then be a torn write.
    static func simulateCrash(_ directory: TemporaryDirectory, durableEnd: Int? = nil, nextPosition: UInt64? = nil) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let last = directory.file(names.last!)
        let head = try #require(try StoreFiles.readHead(in: directory.path))
        let record = HeadRecord(
            sequence: head.sequence + 1, segmentSalt: try salt(of: last), durableEnd: UInt64(try durableEnd ?? endOfFrames(of: last)),
            nextPosition: nextPosition ?? head.nextPosition, nextBatch: head.nextBatch, cleanClose: false)
        try HeadFile(directory: directory.path).write(record, durably: false)
        // A crash leaves no index file: the writer that crashed removed it at its open.
        try? FileManager.default.removeItem(atPath: directory.file("dugong.index"))
        untilTheWriterIsGone(directory)
    }

    /// Waits until no writer's mark is left on a store whose writer closed. A child process that
    /// another test was spawning then holds the writer's descriptors, marks and all, until it
    /// starts its program (found by a CI run: a reader opened meanwhile saw a writer and served
    /// only what the head records). No new copy can be made once the writer's files are closed.
    static func untilTheWriterIsGone(_ directory: TemporaryDirectory) {
        for _ in 0..<500 where StoreLock.writerIsPresent(in: directory.path) { usleep(10_000) }
        #expect(!StoreLock.writerIsPresent(in: directory.path), "the writer's mark outlived it")
    }

    /// The salt in a segment file's header (offset 40).
    static func salt(of path: String) throws -> UInt64 {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[40 + $1]) << (8 * UInt64($1)) }
    }
}

@Suite("Event log: appends and reads")
struct EventLogTests {
    @Test func appendsAndReadsForwardBackwardAndAll() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let first = try await log.append(Fixture.events(3), to: "account/1", expecting: .noStream)
        #expect(first == Commit(stream: "account/1", firstVersion: 1, lastVersion: 3, firstPosition: 0, lastPosition: 2, wasDuplicate: false, streamVersion: 3))
        let other = try await log.append(Fixture.events(2), to: "account/2", expecting: .noStream)
        #expect(other.firstPosition == 3 && other.lastVersion == 2)
        try await log.append(Fixture.events(2), to: "account/1", expecting: .exact(3))

        let forward = try log.read(stream: "account/1")
        #expect(forward.map(\.version) == [1, 2, 3, 4, 5])
        #expect(forward.map(\.position) == [0, 1, 2, 5, 6])
        #expect(forward.map(\.endsCommit) == [false, false, true, false, true])
        #expect(try log.read(stream: "account/1", from: 4).map(\.version) == [4, 5])
        #expect(try log.read(stream: "account/1", from: 2, maxCount: 2).map(\.version) == [2, 3])
        #expect(try log.read(stream: "account/1", direction: .backward).map(\.version) == [5, 4, 3, 2, 1])
        #expect(try log.read(stream: "account/1", from: 3, maxCount: 2, direction: .backward).map(\.version) == [3, 2])
        #expect(try log.read(stream: "nobody").isEmpty)
        #expect(try log.readAll().map(\.position) == Array(0...6))
        #expect(try log.readAll(from: 4, maxCount: 2).map(\.position) == [4, 5])
        #expect(try log.streams(inCategory: "account") == ["account/1", "account/2"])
        #expect(log.headPosition == 7 && log.eventCount == 7)

        let stored = forward[0]
        let sent = Fixture.events(1)[0]
        #expect(stored.type == sent.type && stored.data == sent.data && stored.metadata == sent.metadata)
        #expect(stored.timestamp == sent.timestamp)
    }

    @Test func reopeningAfterCloseKeepsEverything() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var log = try Fixture.open(directory)
        for stream in 0..<20 {
            try await log.append(Fixture.events(7, size: 100), to: "s/\(stream)", expecting: .noStream)
        }
        try await log.saveSnapshot(StoredSnapshot(stream: "s/3", version: 7, data: Data("state".utf8)))
        try await log.delete(stream: "s/4")
        try await log.truncate(stream: "s/5", before: 6)
        try await log.tombstone(stream: "s/6")
        let before = try log.readAll(maxCount: 1000)
        log.close()

        log = try Fixture.open(directory)
        defer { log.close() }
        #expect(try log.readAll(maxCount: 1000) == before)
        #expect(try log.latestSnapshot(of: "s/3")?.data == Data("state".utf8))
        #expect(try log.read(stream: "s/4").isEmpty)
        #expect(try log.read(stream: "s/5").map(\.version) == [6, 7])
        #expect(try log.info(stream: "s/6")?.isTombstoned == true)
        #expect(log.recovery == EventLog.RecoveryReport(tornBytesDiscarded: 0, corruptions: []))
        let next = try await log.append(Fixture.events(1), to: "s/0", expecting: .exact(7))
        #expect(next.firstPosition == 140 && next.firstVersion == 8)
    }

    @Test func segmentsRollOverAtTheConfiguredSize() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var log = try Fixture.open(directory, segmentSize: 4096)
        for round in 0..<40 {
            try await log.append(Fixture.events(3, size: 200), to: "big/\(round % 4)")
        }
        let names = log.segmentNames
        #expect(names.count > 5)
        #expect(names.first == "00000000000000000000.dseg")
        let all = try log.readAll(maxCount: 1000)
        #expect(all.map(\.position) == Array(0..<120))
        log.close()
        for name in names {
            // Files never shrink (a reader may map them); a clean close punches a hole instead.
            let size = try FileManager.default.attributesOfItem(atPath: directory.file(name))[.size] as! Int
            #expect(size == 4096, "\(name) is \(size) bytes")
            if name == names.last {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.file(name))))
                #expect(bytes[(try Fixture.endOfFrames(of: directory.file(name)))...].allSatisfy { $0 == 0 })
            }
            let first = UInt64(name.prefix(20))!
            #expect(all.contains { $0.position == first }, "\(name) starts at an event")
        }
        log = try Fixture.open(directory, segmentSize: 4096)
        defer { log.close() }
        #expect(try log.readAll(maxCount: 1000) == all)
        #expect(try log.read(stream: "big/1").map(\.version) == Array(1...30))
        let active = try FileManager.default.attributesOfItem(atPath: directory.file(names.last!))[.size] as! Int
        #expect(active == 4096, "opening preallocates the active segment again")
    }

    @Test func aCommitLargerThanASegmentGetsASegmentOfItsOwn() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        defer { log.close() }
        let random = (0..<20_000).map { _ in UInt8.random(in: 0...255) }
        try await log.append([NewEvent(type: "Blob", data: Data(random))], to: "blob/1")
        try await log.append(Fixture.events(1), to: "blob/1")
        #expect(try log.read(stream: "blob/1").first?.data == Data(random))
        // The first segment held no event, so the blob's segment starts at the same position.
        #expect(log.segmentNames == ["00000000000000000000.dseg", "00000000000000000000-1.dseg", "00000000000000000001.dseg"])
        let blobSegment = try FileManager.default.attributesOfItem(atPath: directory.file("00000000000000000000-1.dseg"))[.size] as! Int
        #expect(blobSegment > 20_000)
    }

    @Test func snapshotsOnlySegmentsRollWithAGeneration() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var log = try Fixture.open(directory, segmentSize: 4096)
        let state = Data((0..<1500).map { _ in UInt8.random(in: 0...255) })
        for version in 1...6 {
            try await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: version, data: state))
        }
        #expect(log.segmentNames.contains("00000000000000000000-1.dseg"))
        log.close()
        log = try Fixture.open(directory, segmentSize: 4096)
        defer { log.close() }
        #expect(try log.latestSnapshot(of: "s/1")?.version == 6)
        try await log.append(Fixture.events(1), to: "s/1")
        #expect(try log.readAll().count == 1)
    }

    @Test func idempotentRetriesAndPartialDuplicates() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let events = Fixture.events(3)
        let first = try await log.append(events, to: "s/1", expecting: .noStream)
        for expected in [ExpectedVersion.noStream, .exact(0), .any, .streamExists] {
            let retry = try await log.append(events, to: "s/1", expecting: expected)
            #expect(retry.wasDuplicate && retry.firstPosition == first.firstPosition && retry.lastVersion == 3)
        }
        await #expect(throws: StoreError.partialDuplicate(stream: "s/1", storedCount: 3, appendedCount: 4)) {
            try await log.append(events + Fixture.events(1), to: "s/1", expecting: .exact(0))
        }
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "s/1", expected: .exact(0), actual: 3)) {
            try await log.append(Fixture.events(1), to: "s/1", expecting: .exact(0))
        }
        #expect(try log.read(stream: "s/1").map(\.id) == events.map(\.id))

        // README ("The storage engine"): after another append, `.any` looks at the last events
        // only, and writes the retry again; the first attempt's expected version finds it.
        try await log.append(Fixture.events(1), to: "s/1", expecting: .any)
        let exact = try await log.append(events, to: "s/1", expecting: .exact(0))
        #expect(exact.wasDuplicate && exact.lastVersion == 3)
        let any = try await log.append(events, to: "s/1", expecting: .any)
        #expect(!any.wasDuplicate && any.firstVersion == 5 && any.lastVersion == 7)
    }

    // A retry's commit says the stream's version as of the retry's decision. The adapter read
    // it after the commit, when appends decided after the retry (here sent right behind it, in
    // the same group commit) had moved it on: it reported 5 for a retry decided at 3.
    @Test func aRetryReportsTheVersionItWasDecidedAt() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let events = Fixture.events(3)
        try await log.append(events, to: "s/1", expecting: .noStream)
        let retry = try log.send([EventLog.Append(stream: "s/1", events: events, expected: .exact(0))])
        let later = try log.send([EventLog.Append(stream: "s/1", events: Fixture.events(2), expected: .exact(3))])
        let retried = try await retry.commits()[0]
        #expect(retried.wasDuplicate && retried.lastVersion == 3 && retried.streamVersion == 3)
        #expect(try await later.commits()[0].streamVersion == 5)
        // Within one call: a retry after an append to its stream sees that append.
        let call = try await log.append([
            EventLog.Append(stream: "s/1", events: Fixture.events(1), expected: .exact(5)),
            EventLog.Append(stream: "s/1", events: events, expected: .noStream),
        ])
        #expect(call.map(\.streamVersion) == [6, 6] && call.map(\.wasDuplicate) == [false, true])
    }

    @Test func expectedVersionsAreEnforced() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "s/1", expected: .streamExists, actual: 0)) {
            try await log.append(Fixture.events(1), to: "s/1", expecting: .streamExists)
        }
        try await log.append(Fixture.events(1), to: "s/1", expecting: .noStream)
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "s/1", expected: .noStream, actual: 1)) {
            try await log.append(Fixture.events(1), to: "s/1", expecting: .noStream)
        }
        await #expect(throws: StoreError.wrongExpectedVersion(stream: "s/1", expected: .exact(5), actual: 1)) {
            try await log.append(Fixture.events(1), to: "s/1", expecting: .exact(5))
        }
        try await log.append(Fixture.events(1), to: "s/1", expecting: .streamExists)
        try await log.append(Fixture.events(1), to: "s/1", expecting: .exact(2))
        #expect(try log.info(stream: "s/1")?.version == 3)
    }

    @Test func badInputIsRefusedAndWritesNothing() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.maximumEventSize = 1000
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        await #expect(throws: StoreError.eventTooLarge(stream: "s/1", index: 1, size: 1001, maximum: 1000)) {
            try await log.append(
                [NewEvent(type: "T", data: Data()), NewEvent(type: "T", data: Data(count: 1000), metadata: Data(count: 1))],
                to: "s/1")
        }
        // A snapshot over the limit says so (it said "event #1 of the append").
        await #expect(throws: StoreError.invalidArgument(
            "the snapshot of 's/1' at version 0 is 1001 bytes (data + metadata), over the maximum of 1000 (Options.maximumEventSize)")) {
            try await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: 0, data: Data(count: 1001)))
        }
        // Through the framework's adapter: the port's error, naming the stream.
        let stream = StreamID(origin: "o", aggregateType: "A", aggregateID: "1")
        let large = SerializedDomainEvent(
            origin: "o", aggregateType: "A", eventType: "T", version: 1, id: UUID(), aggregateID: "1",
            payload: Data(count: 1000), sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 0))
        await #expect {
            try await EventLogStore(log: log).append([large], to: stream, expecting: .noStream)
        } throws: { error in
            guard case .invalidAppend(let named, let reason) = error as? EventStoreError else { return false }
            return named == stream && reason.hasPrefix("event #1 (counted from 1) of the append is ") && reason.contains("at most 1000")
        }
        await #expect(throws: StoreError.invalidArgument("stream name is empty")) {
            try await log.append(Fixture.events(1), to: "")
        }
        await #expect(throws: StoreError.invalidArgument("stream name contains a NUL byte")) {
            try await log.append(Fixture.events(1), to: "a\u{0}b")
        }
        await #expect(throws: StoreError.self) {
            try await log.append(Fixture.events(1), to: String(repeating: "x", count: 1025))
        }
        await #expect(throws: StoreError.invalidArgument("event type is empty")) {
            try await log.append([NewEvent(type: "", data: Data())], to: "s/1")
        }
        await #expect(throws: StoreError.invalidArgument("an append to 's/1' needs at least one event")) {
            try await log.append([], to: "s/1")
        }
        #expect(throws: StoreError.invalidArgument("stream name is not valid UTF-8")) {
            try EventLog.streamName(validating: [0x61, 0xC3, 0x28])
        }
        #expect(try EventLog.streamName(validating: Array("konto/ä".utf8)) == "konto/ä")
        #expect(log.headPosition == 0 && log.eventCount == 0)
    }

    @Test func withoutSyncAppendsStillReadBackAndSurviveAReopen() async throws {
        let directory = TemporaryDirectory("nosync")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.durability = .unsafeNoSync
        var log = try EventLog.open(at: directory.path, options: options)
        for index in 0..<50 { try await log.append(Fixture.events(2), to: "s/\(index % 5)") }
        let all = try log.readAll()
        #expect(all.count == 100)
        log.close()
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(try log.readAll() == all)
    }

    @Test func deleteTruncateAndTombstone() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        try await log.append(Fixture.events(5), to: "s/1")
        try await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: 5, data: Data("five".utf8)))
        try await log.truncate(stream: "s/1", before: 3)
        #expect(try log.read(stream: "s/1").map(\.version) == [3, 4, 5])
        #expect(try log.read(stream: "s/1", direction: .backward).map(\.version) == [5, 4, 3])
        #expect(try log.latestSnapshot(of: "s/1")?.version == 5)
        try await log.delete(stream: "s/1")
        #expect(try log.read(stream: "s/1").isEmpty)
        #expect(try log.latestSnapshot(of: "s/1") == nil)
        #expect(try log.info(stream: "s/1") == EventLog.StreamInfo(version: 5, firstVisibleVersion: 6, isTombstoned: false))
        try await log.append(Fixture.events(2), to: "s/1", expecting: .exact(5))
        #expect(try log.read(stream: "s/1").map(\.version) == [6, 7])
        try await log.tombstone(stream: "s/1")
        #expect(try log.read(stream: "s/1").isEmpty)
        await #expect(throws: StoreError.streamTombstoned(stream: "s/1")) {
            try await log.append(Fixture.events(1), to: "s/1")
        }
        await #expect(throws: StoreError.streamTombstoned(stream: "s/1")) {
            try await log.delete(stream: "s/1")
        }
        #expect(try log.readAll().count == 7, "read-all still holds deleted events until compaction")
    }

    @Test func aSecondOpenInTheSameProcessIsLocked() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        #expect(throws: StoreError.locked(directory: directory.path)) { try Fixture.open(directory) }
        log.close()
        let again = try Fixture.open(directory)
        again.close()
    }

    // Found by a black-box test: with `dugong.lock` removed under a running writer (a clean-up
    // script taking it for stale), a second writer locked a new file of that name and both
    // wrote: the second's acknowledged events were overwritten. The writer also holds the
    // store's directory, which cannot be replaced under its files.
    @Test func aWriterWhoseLockFileWasRemovedKeepsTheStore() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        try await log.append(Fixture.events(1), to: "s/1")
        try FileManager.default.removeItem(atPath: directory.file("dugong.lock"))
        #expect(throws: StoreError.locked(directory: directory.path)) { try Fixture.open(directory) }
        #expect(throws: StoreError.locked(directory: directory.path)) { try EventLog.compact(at: directory.path) }
        #expect(StoreLock.writerIsPresent(in: directory.path), "readers see the writer without its lock file")
        try await log.append(Fixture.events(1), to: "s/1")
        log.close()
        #expect(!StoreLock.writerIsPresent(in: directory.path))
        let again = try Fixture.open(directory)
        #expect(try again.read(stream: "s/1").count == 2)
        again.close()
    }

    @Test func anotherProcessHoldingTheLockIsReported() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try Fixture.open(directory).close()
        // Another process takes the same flock(2) a writer takes, and says so on stdout.
        let holder = Process()
        let output = Pipe()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
            directory.file("dugong.lock"),
        ]
        holder.standardOutput = output
        try holder.runWhenFewFilesAreOpen()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line.hasPrefix("locked"))
        #expect(throws: StoreError.locked(directory: directory.path)) { try Fixture.open(directory) }
        #expect("\(StoreError.locked(directory: "/x"))".contains("locked by another process"))
    }

    @Test func openingRefusesWhatIsNotAStore() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        #expect(throws: StoreError.notFound(directory: directory.path)) {
            try EventLog.open(at: directory.path)
        }
        // An empty directory holds no store: a writer not asked to create one makes none there
        // (it made a 64 MiB store), and leaves no lock file; nor with a lock file left in it.
        try directory.create()
        for _ in 0..<2 {
            #expect(throws: StoreError.notFound(directory: directory.path)) { try EventLog.open(at: directory.path) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != "dugong.lock" }.isEmpty)
            _ = FileManager.default.createFile(atPath: directory.file("dugong.lock"), contents: nil)
        }
        _ = FileManager.default.createFile(atPath: directory.file("notes.txt"), contents: Data("hello".utf8))
        #expect(throws: StoreError.self) { try Fixture.open(directory) }
    }

    // A store whose manifest and segments were lost (its head file left) was an empty,
    // clean store to readers and `verify`, and a writer asked to create a store made a new one
    // over it. The head file records that events were stored: it is damage. So is a first
    // segment of zeros without a manifest (otherwise an interrupted creation) beside such a head.
    @Test func aStoreWhoseFilesWereLostIsDamageNotAnEmptyDirectory() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        try await log.append(Fixture.events(3), to: "s/1")
        let first = try #require(log.segmentNames.first)
        log.close()
        let segment = try FollowingTests.contents(directory.file(first))
        var readOnly = EventLog.Options()
        readOnly.readOnly = true
        for keepsZeroedSegment in [false, true] {
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name != "dugong.head" {
                try FileManager.default.removeItem(atPath: directory.file(name))
            }
            if keepsZeroedSegment {
                var zeroed = segment
                zeroed.replaceSubrange(Layout.segmentHeaderSize..., with: repeatElement(0, count: segment.count - Layout.segmentHeaderSize))
                try Data(zeroed).write(to: URL(fileURLWithPath: directory.file(first)))
            }
            let reader = try EventLog.open(at: directory.path, options: readOnly)
            #expect(!reader.damageFoundAtOpen.isEmpty, "an empty store to a reader")
            #expect(try !reader.verify().isClean)
            reader.close()
            for create in [false, true] {
                let writer = try EventLog.open(at: directory.path, options: .init(createIfMissing: create))
                #expect(!writer.damageFoundAtOpen.isEmpty)
                await #expect(throws: StoreError.self) { try await writer.append(Fixture.events(1), to: "s/2") }
                writer.close()
            }
            #expect(!FileManager.default.fileExists(atPath: directory.file("dugong.manifest")), "no new store made over the lost one")
        }
    }

    // A lost manifest alone: nothing says whether segments followed the last one found (one
    // may have held a delete of a stream whose events the first one holds). Stream reads answer
    // with the damage; the log read in order returns every event found, then the damage; the
    // salvaging read returns them all and names it.
    @Test func withoutItsManifestAStoreAnswersStreamReadsWithTheDamage() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        try await log.append(Fixture.events(2, size: 100), to: "s/0")
        try await log.delete(stream: "s/0")
        for round in 0..<30 { try await log.append(Fixture.events(2, size: 100), to: "s/\(1 + round % 2)") }
        let all = try log.readAll(maxCount: 1000)
        #expect(log.segmentNames.count > 2)
        let last = try #require(log.segmentNames.last)
        log.close()
        try FileManager.default.removeItem(atPath: directory.file(Layout.manifestName))
        for losesLastSegment in [false, true] {
            if losesLastSegment { try FileManager.default.removeItem(atPath: directory.file(last)) }
            var options = EventLog.Options()
            options.readOnly = true
            let reader = try EventLog.open(at: directory.path, options: options)
            defer { reader.close() }
            #expect(throws: StoreError.self) { try reader.read(stream: "s/0") }
            #expect(throws: StoreError.self) { try reader.read(stream: "s/1") }
            var found: [StoredEvent] = []
            #expect(throws: StoreError.self) {
                while true {
                    let batch = try reader.readAll(from: (found.last?.position).map { $0 + 1 } ?? 0, maxCount: 5)
                    guard !batch.isEmpty else { break }
                    found += batch
                }
            }
            #expect(found == Array(all.prefix(found.count)) && (losesLastSegment || found == all))
            var salvaged: [StoredEvent] = []
            var skipped: [DamagedRegion] = []
            var next: UInt64 = 0
            while true {
                let part = try reader.readAllSkippingDamage(from: next, maxCount: 5)
                salvaged += part.events
                skipped += part.skipped
                if part.next == next { break }
                next = part.next
            }
            #expect(salvaged == found && !skipped.isEmpty, "\(skipped)")
        }
    }

    // An older manifest put back (it lists fewer segments than the store has): the next
    // segment continues the log, so the manifest is stale, and what followed it may have held
    // a delete or later events. Stream reads gave a stale prefix and deleted events without
    // an error.
    @Test func aStaleManifestMakesStreamReadsAnswerWithTheDamage() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        try await log.append(Fixture.events(2, size: 100), to: "s/0")
        try await log.append(Fixture.events(2, size: 100), to: "s/1")
        let manifest = try FollowingTests.contents(directory.file(Layout.manifestName))
        let segments = log.segmentNames.count
        for _ in 0..<30 { try await log.append(Fixture.events(2, size: 100), to: "s/1") }
        try await log.delete(stream: "s/0")
        #expect(log.segmentNames.count > segments)
        log.close()
        try Data(manifest).write(to: URL(fileURLWithPath: directory.file(Layout.manifestName)))
        var options = EventLog.Options()
        options.readOnly = true
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        #expect(!reader.damageFoundAtOpen.isEmpty)
        #expect(throws: StoreError.self) { try reader.read(stream: "s/0") }
        #expect(throws: StoreError.self) { try reader.read(stream: "s/1") }
    }

    // Without the manifest, a segment file of another store among the files found (here named
    // so that it sorts first) was read as this store's first segment: its events were returned
    // as this store's. Files that do not form one log are not read at all.
    @Test func withoutItsManifestFilesThatDoNotFormOneLogAreNotRead() async throws {
        let directory = TemporaryDirectory()
        let other = TemporaryDirectory()
        defer {
            directory.remove()
            other.remove()
        }
        for (store, stream) in [(directory, "mine"), (other, "theirs")] {
            let log = try Fixture.open(store, segmentSize: 4096)
            for _ in 0..<20 { try await log.append(Fixture.events(2, size: 100), to: stream) }
            log.close()
        }
        let mine = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let theirs = try FileManager.default.contentsOfDirectory(atPath: other.path).filter { $0.hasSuffix(".dseg") }.sorted()
        #expect(mine.count > 1 && theirs.count > 1)
        try FileManager.default.removeItem(atPath: directory.file(Layout.manifestName))
        // Their first segment, under a name (a later generation of position 0) that sorts
        // between this store's first two.
        let foreign = try #require(mine.first).replacingOccurrences(of: ".dseg", with: "-1.dseg")
        try FileManager.default.copyItem(atPath: other.file(theirs[0]), toPath: directory.file(foreign))
        var options = EventLog.Options()
        options.readOnly = true
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        #expect(reader.damageFoundAtOpen.contains { $0.reason.contains("do not form one log") }, "\(reader.damageFoundAtOpen)")
        #expect(throws: StoreError.self) { try reader.readAll(maxCount: 1000) }
        #expect(throws: StoreError.self) { try reader.read(stream: "mine") }
        #expect(throws: StoreError.self) { try reader.read(stream: "theirs") }
    }

    @Test func anEmptyDirectoryIsAStoreOnlyWhenOneMayBeCreated() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try directory.create()
        // While another writer holds the lock (it is creating the store), `locked`, as it will
        // be a moment later; once nobody holds it, `notFound`.
        var creating: StoreLock? = try StoreLock.take(in: directory.path)
        #expect(throws: StoreError.locked(directory: directory.path)) { try EventLog.open(at: directory.path) }
        creating = nil
        _ = creating
        try FileManager.default.removeItem(atPath: directory.file("dugong.lock"))
        #expect(throws: StoreError.notFound(directory: directory.path)) { try EventLog.open(at: directory.path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        var readOnly = EventLog.Options()
        readOnly.readOnly = true
        let reader = try EventLog.open(at: directory.path, options: readOnly)
        #expect(reader.headPosition == 0 && reader.damageFoundAtOpen.isEmpty)
        reader.close()
        let log = try EventLog.open(at: directory.path, options: .init(createIfMissing: true))
        try await log.append(Fixture.events(1), to: "a")
        log.close()
        let reopened = try EventLog.open(at: directory.path)
        #expect(try reopened.readAll().count == 1)
        reopened.close()
    }

    @Test func aClosedStoreRefusesWork() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        log.close()
        log.close()
        await #expect(throws: StoreError.closed) { try await log.append(Fixture.events(1), to: "s/1") }
        #expect(throws: StoreError.closed) { try log.read(stream: "s/1") }
    }
}
