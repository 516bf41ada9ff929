import Dugong
@testable import DugongStore
import Foundation
import Glibc
import Synchronization
import Testing

/// Readers beside a writer: read-only opens and refreshes that follow the writer through
/// appends, restarts, rolls and compactions, and serve only what it acknowledged.
@Suite("Following a writer")
struct FollowingTests {
    /// A value tasks and hooks share.
    final class Shared<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
        func withLock<R>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
    }

    static func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Writes `bytes` at `offset` of an existing file, in place (the writer keeps it open).
    static func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
        let descriptor = Glibc.open(path, O_WRONLY)
        #expect(descriptor >= 0)
        defer { Glibc.close(descriptor) }
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        #expect(written == bytes.count)
    }

    /// Puts a copy back as `rsync --inplace --delete` would: every file of the copy written over
    /// the store's file of that name (truncated first: the same inode, shorter or longer), and
    /// the store's files the copy does not have removed.
    static func writeOver(_ store: String, from copy: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: copy)
        for name in names {
            let bytes = try contents(copy + "/" + name)
            let descriptor = Glibc.open(store + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            try #require(descriptor >= 0)
            defer { Glibc.close(descriptor) }
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            try #require(written == bytes.count)
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: store) where !names.contains(name) {
            try FileManager.default.removeItem(atPath: store + "/" + name)
        }
    }

    static func segmentPath(_ directory: TemporaryDirectory, _ log: EventLog) -> String {
        directory.file(log.segmentNames.last!)
    }

    // Item 4 of the readers issue: a batch written but not yet recorded in the head (the writer
    // between its sync and its head record), or half written (in the middle of its pwrite), is
    // "not yet" for a reader: neither served nor damage; served once the head records it.
    @Test func aReaderServesWhatTheHeadAcknowledgesAndABatchBeingWrittenIsNotYet() async throws {
        let directory = TemporaryDirectory("follow-head")
        defer { directory.remove() }
        let writer = try Fixture.open(directory)
        defer { writer.close() }
        try await writer.append(Fixture.events(1), to: "s")
        let headPath = directory.file(Layout.headName)
        let headBefore = try Self.contents(headPath)
        let start = try Fixture.endOfFrames(of: Self.segmentPath(directory, writer))
        try await writer.append(Fixture.events(1, size: 300), to: "s")
        let headAfter = try Self.contents(headPath)
        let segment = Self.segmentPath(directory, writer)
        let end = try Fixture.endOfFrames(of: segment)
        let frame = Array(try Self.contents(segment)[start..<end])

        // The head as it was before the second batch was acknowledged.
        try Self.overwrite(headPath, at: 0, with: headBefore)
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        #expect(reader.recovery.corruptions.isEmpty)
        #expect(try reader.readAll().map(\.version) == [1])
        // Half of the frame written.
        try Self.overwrite(segment, at: start + frame.count / 2, with: [UInt8](repeating: 0, count: frame.count - frame.count / 2))
        #expect(try reader.refresh() == 0)
        #expect(try reader.readAll().map(\.version) == [1])
        // All of it written and synced, the head not yet.
        try Self.overwrite(segment, at: start, with: frame)
        #expect(try reader.refresh() == 0)
        #expect(try EventLog.open(at: directory.path, options: InspectionTests.readOnly()).readAll().map(\.version) == [1])
        // The head records it: now it is served.
        try Self.overwrite(headPath, at: 0, with: headAfter)
        #expect(try reader.refresh() == 1)
        #expect(try reader.readAll().map(\.version) == [1, 2])
        #expect(reader.recovery.corruptions.isEmpty)
    }

    // Without syncs an append is acknowledged once written: readers serve whole batches as soon
    // as they are there, although the head moves only at open, roll and close.
    @Test func batchesWrittenWithoutSyncsAreServedOnceComplete() async throws {
        let directory = TemporaryDirectory("follow-nosync")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.durability = .unsafeNoSync
        let writer = try EventLog.open(at: directory.path, options: options)
        defer { writer.close() }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        for round in 1...3 {
            try await writer.append(Fixture.events(2), to: "s")
            #expect(try reader.refresh() == 2)
            #expect(reader.headPosition == UInt64(2 * round))
        }
    }

    // Item 4 of the readers issue: a reader that read the manifest just before a compaction
    // replaced it and removed the old segments opens the new set, never a mix or "missing".
    @Test func aReaderOpeningDuringACompactionSeesOneSetOfSegments() async throws {
        let directory = TemporaryDirectory("follow-open-compaction")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory, segmentSize: 4096)
            for _ in 0..<20 { try await writer.append(Fixture.events(2, size: 100), to: "s") }
            try await writer.truncate(stream: "s", before: 11)
            writer.close()
        }
        let compacted = Shared(false)
        var options = InspectionTests.readOnly()
        let path = directory.path
        options.readingHook = {
            let first = compacted.withLock { done in
                defer { done = true }
                return !done
            }
            if first { _ = try? EventLog.compact(at: path) }
        }
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        #expect(compacted.withLock { $0 })
        #expect(reader.recovery.corruptions.isEmpty)
        #expect(try reader.read(stream: "s").map(\.version) == Array(11...40))
        #expect(try reader.readAll().map(\.position) == (10..<40).map(UInt64.init))
    }

    // Item 3 of the readers issue: a reader follows a compaction (positions kept, removed events
    // gone) and a restarted writer; frames it had decoded before are not mistaken for the new
    // segments' frames at the same offsets.
    @Test func aRefreshFollowsACompactionAndARestartedWriter() async throws {
        let directory = TemporaryDirectory("follow-compaction")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory)
            for _ in 0..<10 { try await writer.append(Fixture.events(1), to: "s") }
            try await writer.append(Fixture.events(5), to: "t")
            try await writer.truncate(stream: "s", before: 6)
            writer.close()
        }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let before = try reader.read(stream: "t")
        #expect(try reader.readAll().count == 15)
        _ = try EventLog.compact(at: directory.path)
        #expect(try reader.refresh() == 0)
        #expect(reader.recovery.corruptions.isEmpty)
        #expect(try reader.readAll().map(\.position) == (5..<15).map(UInt64.init))
        #expect(try reader.read(stream: "t") == before)
        #expect(try reader.read(stream: "s").map(\.version) == Array(6...10))
        let writer = try Fixture.open(directory)
        try await writer.append(Fixture.events(1), to: "u")
        #expect(try reader.refresh() == 1)
        #expect(try reader.readAll(from: 15).map(\.stream) == ["u"])
        writer.close()
        #expect(try reader.refresh() == 0)
    }

    // Compaction packs the two frames of `t` into one at the place of the first: a reader that
    // decoded the old frames reads the new one, not the old one it remembers at that offset.
    @Test func aFrameDecodedBeforeACompactionIsNotTakenForTheFrameInItsPlace() async throws {
        let directory = TemporaryDirectory("follow-cache")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory)
            try await writer.append(Fixture.events(2), to: "t")
            try await writer.append(Fixture.events(2), to: "t")
            writer.close()
        }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let before = try reader.read(stream: "t")
        _ = try EventLog.compact(at: directory.path)
        #expect(try reader.refresh() == 0)
        #expect(try reader.read(stream: "t") == before)
    }

    // Item 2 of the readers issue: a writer that restarts continues the segment a reader has
    // open, compressing with the segment's dictionary; the reader keeps the dictionaries it found.
    @Test func aRefreshAfterAWriterRestartReadsFramesCompressedWithTheDictionary() async throws {
        let directory = TemporaryDirectory("follow-dictionary")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory)
            for _ in 0..<50 { try await writer.append(Fixture.events(20), to: "s") }
            writer.close()
        }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        #expect(try reader.readAll(from: 999).count == 1)
        let writer = try Fixture.open(directory)
        let appended = Fixture.events(1, size: 300)
        try await writer.append(appended, to: "big")
        #expect(try reader.refresh() == 1)
        let read = try reader.readAll(from: 1000)
        #expect(read.map(\.data) == appended.map(\.data))
        writer.close()
        #expect(try reader.refresh() == 0)
        #expect(try reader.readAll(from: 1000).map(\.data) == appended.map(\.data))
    }

    // Item 1 of the readers issue: a writer's clean close leaves the segment's size as it is (it
    // punches a hole instead of trimming), so a reader probing at the old end of the frames does
    // not fault, even when that end is a few bytes before a page boundary. A file shrunk by
    // another program is not read past its new size either.
    @Test func aReaderProbingPastTheEndOfAClosedOrShrunkSegmentDoesNotFault() async throws {
        let directory = TemporaryDirectory("follow-shrink")
        defer { directory.remove() }
        let writer = try Fixture.open(directory)
        try await writer.append(Fixture.events(1), to: "s")
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let segment = Self.segmentPath(directory, writer)
        var size = 1
        // Events of varying size until the frames end within 40 bytes of a page boundary.
        while (Fixture.headerSize + writer.frameBytes) % 4096 < 4096 - 40 {
            try await writer.append(Fixture.events(1, size: size % 97), to: "s")
            size += 7
        }
        let end = Fixture.headerSize + writer.frameBytes
        let capacity = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        #expect(try reader.refresh() > 0)
        writer.close()
        #expect(try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int == capacity)
        let count = reader.eventCount
        // The close marker is a batch of its own; probing after it touches the next page.
        #expect(try reader.refresh() == 0)
        #expect(try reader.readAll(maxCount: .max).count == count)
        // Another program shrinks the file to just after the frames.
        #expect(truncate(segment, off_t(end + 60)) == 0)
        #expect(try reader.refresh() == 0)
        #expect(try reader.readAll(maxCount: .max).count == count)
        let reopened = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        #expect(reopened.eventCount == count)
        reopened.close()
    }

    // Segment files shrunk under a reader by another program (a copy written over them in
    // place, `truncate`), sealed or active, to the header or to half: its reads must throw or
    // serve what the files still hold, never fault on a page past the file's new end (`SIGBUS`).
    @Test(arguments: [false, true], [false, true])
    func aReadOfASegmentShrunkUnderTheReaderThrowsInsteadOfFaulting(sealed: Bool, toHalf: Bool) async throws {
        let directory = TemporaryDirectory("follow-shrunk")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 16384)
        for index in 0..<24 { try await writer.append(Fixture.events(1, size: 1500), to: "s/\(index % 3)") }
        writer.close()
        var options = InspectionTests.readOnly()
        options.frameCacheCapacity = 0
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        let served = try reader.readAll(maxCount: .max)
        let names = reader.segmentNames
        try #require(names.count >= 3)
        let path = directory.file(sealed ? names[0] : names[names.count - 1])
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let original = try Self.contents(path)
        let zeroPages = MappedRegion.pagesReadPastTheEnd
        #expect(truncate(path, off_t(toHalf ? size / 2 : Fixture.headerSize)) == 0)
        // Reads of every event reach the shortened file's frames past its end: one throws (a
        // read returns the events before a damaged frame, and the next read from there throws).
        func readsUntilOneThrows() {
            var next: UInt64 = 0
            var thrown = false
            while !thrown, next < UInt64(served.count) {
                do {
                    let batch = try reader.readAll(from: next, maxCount: .max)
                    #expect(batch.map(\.id) == served[Int(next)..<Int(next) + batch.count].map(\.id))
                    if batch.isEmpty { break }
                    next += UInt64(batch.count)
                } catch let error as StoreError {
                    #expect(error.description.contains("shorter than"), "\(error)")
                    thrown = true
                } catch {
                    Issue.record(error)
                    return
                }
            }
            #expect(thrown, "read \(next) of \(served.count) events")
            for stream in ["s/0", "s/1", "s/2"] {
                if let read = try? reader.read(stream: stream) {
                    #expect(served.filter { $0.stream == stream }.map(\.id).starts(with: read.map(\.id)))
                }
            }
        }
        readsUntilOneThrows()
        #expect(MappedRegion.pagesReadPastTheEnd > zeroPages)
        // The file whole again, written back in place (the same inode): the reader's maps hold
        // zeros where it read past the end; a refresh maps the files anew, and the reader
        // serves what it served (from a review: the zeros stayed, and a follower took them for
        // the end of the log or for damage).
        try Self.overwrite(path, at: 0, with: original)
        _ = try reader.refresh()
        #expect(try reader.readAll(maxCount: .max).map(\.id) == served.map(\.id))
        #expect(try reader.verify().isClean)
        // Shortened again, with refreshes while it is: no fault either, and opened anew the
        // shortened file is damage, found and named.
        #expect(truncate(path, off_t(toHalf ? size / 2 : Fixture.headerSize)) == 0)
        readsUntilOneThrows()
        for _ in 0..<2 {
            _ = try? reader.refresh()
            if let read = try? reader.readAll(maxCount: .max) {
                #expect(served.map(\.id).starts(with: read.map(\.id)))
            }
        }
        let reopened = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        #expect(!(try reopened.verify().isClean))
        reopened.close()
    }

    /// How a store is put back from a copy under a follower.
    enum PutBack: CaseIterable, Sendable {
        /// The store's directory removed and the copy renamed into its place (new files).
        case renamed
        /// Every file of the copy written over the store's own (same files), and the files the
        /// copy does not have removed (`rsync --inplace --delete`).
        case writtenOverInPlace
    }

    // A store put back from an older copy under a follower: whether the copy ends before what
    // the reader served or a writer has since appended past it (the positions it served now
    // hold other events), and whether the copy's files are new or written over the old ones in
    // place, the next refresh throws, naming the older copy. Before, the reader went on with
    // the files it had open, and after the copy's appends read them against the copy's head:
    // "zeros where a frame should be" (the tool's `read-all --follow` exited 1 with that).
    //
    // With `rolls`, small segments: the writer rolls after the copy, to segments the copy does
    // not have, and the copy's writer rolls too (from a review: the segment of the last frame
    // served was not in the copy, and that was taken for a compaction).
    @Test(arguments: PutBack.allCases, [
        (false, false, false), (true, false, false), (false, true, false), (true, true, false), (false, false, true), (true, false, true),
    ])
    func aStorePutBackFromAnOlderCopyMakesTheFollowersRefreshThrow(
        putBack: PutBack, then: (appendedPast: Bool, compactedBefore: Bool, rolls: Bool)
    ) async throws {
        let (appendedPast, compactedBefore, rolls) = then
        let directory = TemporaryDirectory("follow-copy")
        let copy = TemporaryDirectory("follow-copy-backup")
        defer {
            directory.remove()
            copy.remove()
        }
        let segmentSize = rolls ? 4096 : 64 << 20
        let size = rolls ? 900 : 0
        var writer = try Fixture.open(directory, segmentSize: segmentSize)
        for _ in 0..<3 { try await writer.append(Fixture.events(1, size: size), to: "s") }
        writer.close()
        try FileManager.default.copyItem(atPath: directory.path, toPath: copy.path)
        writer = try Fixture.open(directory, segmentSize: segmentSize)
        for _ in 0..<3 { try await writer.append(Fixture.events(1, size: size), to: "s") }
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let served = try reader.readAll(maxCount: .max)
        #expect(served.count == 6)
        writer.close()
        if compactedBefore {
            // The reader follows a compaction first: none of the segments it reads now is in
            // the copy (new salts), and only the manifest's generation tells the copy is older.
            _ = try EventLog.compact(at: directory.path)
            #expect(try reader.refresh() == 0)
        }
        #expect(try reader.refresh() == 0)

        switch putBack {
        case .renamed:
            try FileManager.default.removeItem(atPath: directory.path)
            try FileManager.default.moveItem(atPath: copy.path, toPath: directory.path)
        case .writtenOverInPlace:
            try Self.writeOver(directory.path, from: copy.path)
        }
        if appendedPast {
            writer = try Fixture.open(directory, segmentSize: segmentSize)
            for _ in 0..<10 { try await writer.append(Fixture.events(1, size: size), to: "s") }
            writer.close()
        }
        #expect(throws: StoreError.self) {
            do {
                try reader.refresh()
            } catch let error as StoreError {
                #expect(error.description.contains("older copy"), "\(error)")
                throw error
            }
        }
        // Never other events at the positions it served: with its own files open, what it
        // served; with them written over, no more than the frames they still hold (a read
        // checks each frame's checksum against the index: a read stops, or throws, at the first
        // frame that changed).
        let after = (try? reader.readAll(maxCount: .max)) ?? []
        if putBack == .renamed || compactedBefore {  // (its files are not the ones written over)
            #expect(after.map(\.id) == served.map(\.id))
        } else {
            #expect(served.map(\.id).starts(with: after.map(\.id)))
        }
    }

    // A subscription on a read-only store follows a writer through restarts and a compaction:
    // every event once, in order; one started after the compaction never sees what it removed.
    @Test func aSubscriptionFollowsRestartsAndCompactions() async throws {
        let directory = TemporaryDirectory("follow-subscription")
        defer { directory.remove() }
        try Fixture.open(directory, segmentSize: 4096).close()  // so that a reader can open it
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let seen = Shared<[StoredEvent]>([])
        let follower = Task {
            for try await event in reader.subscribe() {
                seen.withLock { $0.append(event) }
            }
        }
        defer { follower.cancel() }
        func waitUntil(_ count: Int) async throws {
            for _ in 0..<2000 where seen.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(5)) }
            #expect(seen.withLock { $0.count } == count)
        }
        var writer = try Fixture.open(directory, segmentSize: 4096)
        for _ in 0..<5 { try await writer.append(Fixture.events(1, size: 200), to: "a") }
        writer.close()
        writer = try Fixture.open(directory, segmentSize: 4096)
        for _ in 0..<3 { try await writer.append(Fixture.events(1, size: 200), to: "b") }
        try await writer.truncate(stream: "a", before: 4)
        writer.close()
        try await waitUntil(8)
        _ = try EventLog.compact(at: directory.path)
        writer = try Fixture.open(directory, segmentSize: 4096)
        try await writer.append(Fixture.events(1), to: "c")
        writer.close()
        try await waitUntil(9)
        #expect(seen.withLock { $0.map(\.position) } == Array(0..<9))
        #expect(seen.withLock { $0.map(\.stream) } == ["a", "a", "a", "a", "a", "b", "b", "b", "c"])

        let late = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { late.close() }
        var lateSeen: [UInt64] = []
        for try await event in late.subscribe() {
            lateSeen.append(event.position)
            if event.stream == "c" { break }
        }
        #expect(lateSeen == [3, 4, 5, 6, 7, 8])
    }

    /// Whether `wait` is still waiting after `interval`; it is cancelled then.
    static func isStillWaiting(after interval: Duration, _ wait: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        let returned = Shared(false)
        let waiter = Task {
            try await wait()
            returned.withLock { $0 = true }
        }
        try await Task.sleep(for: interval)
        waiter.cancel()
        return !returned.withLock { $0 }
    }

    // A compaction that removes the log's last events leaves positions at its end that hold
    // no event (positions stay taken). A subscription that read the last kept event waits
    // there for the next append (it did not wait: a read-only one spun and never refreshed
    // again, a writable one spun until the next append).
    @Test func aSubscriptionWaitsPastPositionsACompactionEmptiedAtTheEnd() async throws {
        let directory = TemporaryDirectory("follow-trailing-gap")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory)
            try await writer.append(Fixture.events(3), to: "kept")
            try await writer.append(Fixture.events(4), to: "gone")
            try await writer.delete(stream: "gone")
            writer.close()
        }
        _ = try EventLog.compact(at: directory.path)
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        #expect(reader.headPosition == 7)
        #expect(try reader.readAll().map(\.position) == [0, 1, 2])
        #expect(try await Self.isStillWaiting(after: .milliseconds(100)) { try await reader.waitForEvents(after: 3) })

        let seen = Shared<[UInt64]>([])
        let follower = Task {
            for try await event in reader.subscribe() { seen.withLock { $0.append(event.position) } }
        }
        defer { follower.cancel() }
        let writer = try Fixture.open(directory)
        defer { writer.close() }
        #expect(try await Self.isStillWaiting(after: .milliseconds(100)) { try await writer.waitForEvents(after: 3) })
        try await Task.sleep(for: .milliseconds(50))
        try await writer.append(Fixture.events(1), to: "next")
        for _ in 0..<2000 where seen.withLock({ $0.count }) < 4 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(seen.withLock { $0 } == [0, 1, 2, 7])
        #expect(try await !Self.isStillWaiting(after: .milliseconds(200)) { try await writer.waitForEvents(after: 3) })
    }

    // The segment a compaction leaves active is a short file (a header) until a writer extends
    // it. A reader that mapped it short, beside a writer that extends it, fills it and rolls to
    // the next segment between two refreshes, maps it again: its frames are all there, no
    // damage (the reader took the end of its short map for the end of its frames).
    @Test func aShortSegmentAWriterExtendedAndLeftBetweenTwoRefreshesIsReadWhole() async throws {
        let directory = TemporaryDirectory("follow-short-segment")
        defer { directory.remove() }
        do {
            let writer = try Fixture.open(directory, segmentSize: 8192)
            try await writer.append(Fixture.events(2), to: "a")
            writer.close()
        }
        _ = try EventLog.compact(at: directory.path, options: { var options = EventLog.Options(); options.segmentSize = 8192; return options }())
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let segmentsBefore = reader.segmentNames.count
        let writer = try Fixture.open(directory, segmentSize: 8192)
        defer { writer.close() }
        var appended = 2
        while writer.segmentNames.count < segmentsBefore + 2 {
            try await writer.append(Fixture.events(1, size: 1500), to: "b")
            appended += 1
        }
        #expect(try reader.refresh() == appended - 2)
        #expect(try reader.verify().isClean)
        #expect(try reader.readAll().count == appended)
    }

    // A listed segment that is missing has a manifest entry and no open segment: a refresh
    // opens the segments listed after those it followed, not after those it has open (it
    // opened the last one again, and took its frames for new ones: damage and a wrong end).
    @Test func aRefreshBesideAMissingSegmentOpensOnlyNewSegments() async throws {
        let directory = TemporaryDirectory("follow-missing-segment")
        defer { directory.remove() }
        let names: [String]
        do {
            let writer = try Fixture.open(directory, segmentSize: 4096)
            while writer.segmentNames.count < 3 { try await writer.append(Fixture.events(1, size: 1000), to: "s") }
            names = writer.segmentNames
            writer.close()
        }
        try FileManager.default.removeItem(atPath: directory.file(names[1]))
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let damageBefore = try reader.verify().problems.count
        #expect(damageBefore > 0)
        var options = EventLog.Options()
        options.segmentSize = 4096
        options.acceptWritesDespiteDamage = true
        let writer = try EventLog.open(at: directory.path, options: options)
        defer { writer.close() }
        let commit = try await writer.append(Fixture.events(1), to: "t")
        #expect(try reader.refresh() == 1)
        #expect(reader.headPosition == writer.headPosition)
        #expect(try reader.readAll(from: commit.firstPosition).map(\.stream) == ["t"])
        #expect(try reader.verify().problems.count == damageBefore)
    }

    /// Random histories checked for (`DUGONG_FOLLOWER_HISTORIES`, 6 by default).
    static let histories = Int(ProcessInfo.processInfo.environment["DUGONG_FOLLOWER_HISTORIES"] ?? "") ?? 6

    /// The writers' options of the random histories: 8 KiB segments (rolls) and frames of
    /// several commits.
    static var randomHistoryOptions: EventLog.Options {
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 8192
        options.targetFrameSize = 2048
        return options
    }

    // Readers against a model, over random histories rather than listed cases: appends of 1 to
    // 4 events of up to 1.5 KB (8 KiB segments: rolls, frames of several commits), deletions of
    // streams, compactions (which remove deleted streams' events, the log's last ones too, and
    // leave a short active segment), writer restarts, and refreshes at random moments. After
    // every refresh the read-only reader holds exactly the model's events (positions, ids, in
    // order) and verifies clean; a subscription opened at the start delivers each event once,
    // in order, skips only events a compaction removed, and gets the last append.
    @Test(arguments: 0..<histories)
    func aFollowerMatchesTheModelThroughRandomHistories(seed: Int) async throws {
        let directory = TemporaryDirectory("follow-model")
        defer { directory.remove() }
        var random = SeededRandom(seed: UInt64(seed) &* 0x9E37_79B9 &+ 17)
        let options = Self.randomHistoryOptions
        var writer: EventLog? = try EventLog.open(at: directory.path, options: options)
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        // The model: every stored event (position, stream, id), and the streams deleted.
        var stored: [(position: UInt64, stream: String, id: UUID)] = []
        var deleted: Set<String> = []
        var removed: Set<UInt64> = []
        var nextStream = 0
        let delivered = Shared<[StoredEvent]>([])
        let follower = Task {
            for try await event in reader.subscribe() { delivered.withLock { $0.append(event) } }
        }
        defer { follower.cancel() }
        for step in 0..<60 {
            let live = Set(stored.map(\.stream)).subtracting(deleted).sorted()
            switch random.next() % 10 {
            case 0 where writer != nil && !live.isEmpty:
                let stream = live[Int(random.next() % UInt64(live.count))]
                try await writer!.delete(stream: stream)
                deleted.insert(stream)
            case 1:
                writer?.close()
                writer = nil
                _ = try EventLog.compact(at: directory.path, options: options)
                for event in stored where deleted.contains(event.stream) { removed.insert(event.position) }
                stored.removeAll { deleted.contains($0.stream) }
            case 2:
                writer?.close()
                writer = nil
            default:
                if writer == nil { writer = try EventLog.open(at: directory.path, options: options) }
                let stream = live.isEmpty || random.next() % 3 == 0 ? "s/\(nextStream)" : live[Int(random.next() % UInt64(live.count))]
                if stream == "s/\(nextStream)" { nextStream += 1 }
                let events = Fixture.events(1 + Int(random.next() % 4), size: Int(random.next() % 1500))
                let commit = try await writer!.append(events, to: stream)
                for (offset, event) in events.enumerated() { stored.append((commit.firstPosition + UInt64(offset), stream, event.id)) }
            }
            if random.next() % 3 == 0 || step == 59 {
                try reader.refresh()
                let read = try reader.readAll(maxCount: .max)
                #expect(read.map(\.position) == stored.map(\.position), "seed \(seed), step \(step)")
                #expect(read.map(\.id) == stored.map(\.id), "seed \(seed), step \(step)")
                #expect(try reader.verify().isClean, "seed \(seed), step \(step)")
            }
        }
        // A last append (the history may end with a compaction of the last events).
        if writer == nil { writer = try EventLog.open(at: directory.path, options: options) }
        let final = try await writer!.append(Fixture.events(1), to: "last")
        stored.append((final.firstPosition, "last", try #require(writer!.readAll(from: final.firstPosition).first).id))
        writer!.close()
        let last = stored[stored.count - 1]
        for _ in 0..<2000 where delivered.withLock({ $0.last?.position ?? 0 }) < last.position {
            try await Task.sleep(for: .milliseconds(5))
        }
        let seen = delivered.withLock { $0 }
        #expect(seen.last?.position == last.position, "seed \(seed): the subscription got the last append")
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.position < $1.position }, "seed \(seed): once each, in order")
        let ids = Dictionary(uniqueKeysWithValues: stored.map { ($0.position, $0.id) })
        let seenPositions = Set(seen.map(\.position))
        #expect(seen.allSatisfy { ids[$0.position] == $0.id || removed.contains($0.position) }, "seed \(seed): the stored events")
        #expect(stored.allSatisfy { seenPositions.contains($0.position) }, "seed \(seed): skips only what a compaction removed")
    }

    // Copies put back over random histories (appends over rolling 8 KiB segments, deletions,
    // compactions, writer restarts): at random moments the writer stops and the store's
    // directory is replaced by a copy taken earlier (renamed into place), after which a writer
    // may append to it. Whatever the history, a refresh either throws, or afterwards serves
    // exactly what a fresh reader of the directory serves; and it must throw when a position it
    // served holds another event in the store now, or the store ends before it. (It found a
    // copy's head reaching the sequence the reader followed, a copy's rolls raising the
    // manifest's generation past the one followed, and a copy of another branch of history
    // whose compaction had removed the last event served. `DUGONG_TRACE=<seed>` prints a
    // history's steps and views.)
    @Test(arguments: 0..<histories)
    func aFollowerNeverServesAnotherHistoryAfterACopyIsPutBack(seed: Int) async throws {
        let directory = TemporaryDirectory("follow-putback")
        defer { directory.remove() }
        var random = SeededRandom(seed: UInt64(seed) &* 0x2545_F491 &+ 99)
        let options = Self.randomHistoryOptions
        var writer: EventLog? = try EventLog.open(at: directory.path, options: options)
        var reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        var copies: [TemporaryDirectory] = []
        defer { for copy in copies { copy.remove() } }
        var streams = ["s/0"]
        var thrown = 0
        var putBacks = 0
        var served: [StoredEvent] = []  // what the reader serves since its last refresh
        var writtenOver = false  // a copy written over its files in place since its last refresh
        func closeWriter() {
            writer?.close()
            writer = nil
        }
        let trace = ProcessInfo.processInfo.environment["DUGONG_TRACE"] == "\(seed)"
        for step in 0..<80 {
            let choice = random.below(12)
            if trace { print("step \(step): \(choice) copies \(copies.count)") }
            switch choice {
            case 0 where writer != nil:
                try await writer!.delete(stream: streams[random.below(streams.count)])
            case 1:
                closeWriter()
                _ = try EventLog.compact(at: directory.path, options: options)
            case 2:
                closeWriter()
                let copy = TemporaryDirectory("follow-putback-copy")
                try FileManager.default.copyItem(atPath: directory.path, toPath: copy.path)
                copies.append(copy)
            case 3 where !copies.isEmpty:
                closeWriter()
                let copy = copies[random.below(copies.count)]
                putBacks += 1
                guard random.below(2) == 0 else {
                    try FileManager.default.removeItem(atPath: directory.path)
                    try FileManager.default.copyItem(atPath: copy.path, toPath: directory.path)
                    break
                }
                // Written over in place: the files the reader has mapped change under it, and
                // may get shorter. Its reads before the next refresh must not fault, and serve
                // no more than a prefix of what it served (a changed frame's checksum does not
                // match the index: the read stops or throws).
                let before = streams.map { try? reader.read(stream: $0) }
                try Self.writeOver(directory.path, from: copy.path)
                writtenOver = true
                if trace { print("  written over in place") }
                if let stale = try? reader.readAll(maxCount: .max) {
                    #expect(served.map(\.id).starts(with: stale.map(\.id)), "seed \(seed), step \(step): a read after the copy was written over in place")
                }
                for (stream, before) in zip(streams, before) {
                    if let stale = try? reader.read(stream: stream) {
                        #expect((before ?? []).map(\.id).starts(with: stale.map(\.id)), "seed \(seed), step \(step): a read of \(stream) after the copy was written over in place")
                    }
                }
            default:
                if writer == nil { writer = try EventLog.open(at: directory.path, options: options) }
                if random.below(4) == 0 { streams.append("s/\(streams.count)") }
                let stream = streams[random.below(streams.count)]
                try await writer!.append(Fixture.events(1 + random.below(3), size: random.below(1200)), to: stream)
            }
            guard random.below(3) == 0 || step == 79 else { continue }
            let fresh = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
            let now = try fresh.readAll(maxCount: .max)
            let head = fresh.headPosition
            fresh.close()
            let stored = Dictionary(uniqueKeysWithValues: now.map { ($0.position, $0.id) })
            // (Or the store ends before a position the reader passed: the events there may have
            // been removed by a compaction it followed, but a writer would give it to others.)
            let otherHistory = served.contains { event in stored[event.position].map { $0 != event.id } ?? false }
                || (served.last.map { $0.position >= head } ?? false) || reader.headPosition > head
            do {
                try reader.refresh()
                if trace { print("  served \(served.map { "\($0.position):\($0.stream):\($0.id.uuidString.prefix(4))" })\n  now \(now.map { "\($0.position):\($0.stream):\($0.id.uuidString.prefix(4))" })") }
            let differing = served.first { event in stored[event.position].map { $0 != event.id } ?? false }
                #expect(!otherHistory, "seed \(seed), step \(step): the store holds other events where the reader served some, and refresh() did not throw (served \(served.count) to \(served.last?.position ?? 0), head now \(head), first differing \(differing.map { "\($0.position)" } ?? "none"), put backs \(putBacks))")
                let read = try reader.readAll(maxCount: .max)
                #expect(read.map(\.position) == now.map(\.position) && read.map(\.id) == now.map(\.id), "seed \(seed), step \(step): what a fresh reader serves")
                served = read
                writtenOver = false
            } catch let error as StoreError {
                #expect(error.description.contains("older copy"), "seed \(seed), step \(step): \(error)")
                // Only when the store holds another history now, or its files changed under the
                // reader (a copy written over them in place: what it served cannot be read back).
                #expect(otherHistory || writtenOver, "seed \(seed), step \(step): refresh() threw, but the store holds what the reader served: \(error)")
                writtenOver = false
                thrown += 1
                reader.close()
                reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
                served = try reader.readAll(maxCount: .max)
            }
        }
        closeWriter()
        #expect(thrown <= putBacks, "seed \(seed): refresh() threw only after a copy was put back")
    }

    // A reader refreshing in a tight loop beside a writer that appends multi-frame batches and
    // rolls segments: never damage, never an error, and in the end exactly the writer's events.
    @Test func aReaderRacingAWriterNeverSeesDamage() async throws {
        let directory = TemporaryDirectory("follow-race")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 64 << 10
        options.targetFrameSize = 1024
        let writer = try EventLog.open(at: directory.path, options: options)
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        defer { reader.close() }
        let stop = Shared(false)
        // On a thread of its own: spinning on a cooperative thread would starve the writer's
        // continuations (and every other test's) on a 2-core machine.
        let refreshes = Task {
            try await onOwnThread {
                var count = 0
                while !stop.withLock({ $0 }) {
                    try reader.refresh()
                    count += 1
                }
                return count
            }
        }
        for round in 0..<200 {
            try await writer.append(Fixture.events(1 + round % 7, size: 150 + round), to: "s/\(round % 5)")
        }
        let written = try writer.readAll(maxCount: .max)
        writer.close()
        stop.withLock { $0 = true }
        let count = try await refreshes.value
        #expect(count > 0)
        try reader.refresh()
        #expect(reader.recovery.corruptions.isEmpty)
        #expect(try reader.readAll(maxCount: .max) == written)
    }

    // Helper 60's F2 (session 32) asked whether a refresh that opens the files anew could take
    // a writer's work for damage when the writer came between the refresh's read of the head and
    // its scan. Here the segment's path names a new file (as when a copy is put back), and a
    // writer reopens the store after the clean close the head records and appends meanwhile:
    // the frames after the clean close are not served before a head records them, nor are they
    // damage; the next refresh serves them.
    @Test func aRefreshThatRacedAWriterPastACleanCloseServesItsEventsNext() async throws {
        let directory = TemporaryDirectory("follow-race-clean-close")
        let later = TemporaryDirectory("follow-race-later")
        defer { [directory, later].forEach { $0.remove() } }
        do {
            let writer = try Fixture.open(directory, segmentSize: 1 << 16, useIndexFile: false)
            for round in 0..<5 { try await writer.append(Fixture.events(2, size: 100), to: "s/\(round % 2)") }
            writer.close()
        }
        let segment = "00000000000000000000.dseg"
        // The store as it is once a writer reopened it and appended: its segment and its head.
        try FileManager.default.copyItem(atPath: directory.path, toPath: later.path)
        let grown: (segment: Data, head: Data)
        do {
            let writer = try Fixture.open(later, segmentSize: 1 << 16, useIndexFile: false)
            try await writer.append(Fixture.events(1), to: "s/new")
            grown = (try Data(contentsOf: URL(fileURLWithPath: later.file(segment))), try Data(contentsOf: URL(fileURLWithPath: later.file(Layout.headName))))
            writer.close()
        }
        let armed = Shared(false)
        let writerLock = Shared<StoreLock?>(nil)
        var options = InspectionTests.readOnly()
        let path = directory.path
        options.scanningHook = {
            guard armed.withLock({ armed in defer { armed = false }; return armed }) else { return }
            // The writer opens (its mark set), appends and records the new end in the head, in place.
            do {
                let lock = try StoreLock.take(in: path)
                try lock.markWriter()
                writerLock.withLock { $0 = lock }
                let file = try FileHandle(forUpdating: URL(fileURLWithPath: path + "/" + segment))
                try file.write(contentsOf: grown.segment)
                try file.close()
                let head = try FileHandle(forUpdating: URL(fileURLWithPath: path + "/" + Layout.headName))
                try head.write(contentsOf: grown.head)
                try head.close()
            } catch {
                Issue.record("\(error)")
            }
        }
        let reader = try EventLog.open(at: directory.path, options: options)
        defer { reader.close() }
        #expect(try reader.readAll().count == 10)
        // The same bytes under a new file: the next refresh opens the files anew.
        try FileManager.default.copyItem(atPath: directory.file(segment), toPath: directory.file("copy"))
        #expect(rename(directory.file("copy"), directory.file(segment)) == 0)
        armed.withLock { $0 = true }
        #expect(try reader.refresh() == 0, "what the head it read records")
        #expect(!armed.withLock { $0 }, "the writer came during the refresh")
        #expect(reader.damageFoundAtOpen.isEmpty, "\(reader.damageFoundAtOpen)")
        #expect(try reader.refresh() == 1)
        #expect(reader.damageFoundAtOpen.isEmpty, "\(reader.damageFoundAtOpen)")
        #expect(try reader.read(stream: "s/new").count == 1)
        writerLock.withLock { $0 = nil }
    }
}
