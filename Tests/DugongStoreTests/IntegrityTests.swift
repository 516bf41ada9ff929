import Dugong
@testable import DugongStore
import Foundation
import Glibc
import Testing

/// The integrity issue's situations that need a simulated disk or the engine's API: group
/// commits cut by a power failure, syncs that fail, recovery's own durability, bounds.
@Suite("Integrity: crashes and bounds")
struct EngineIntegrityTests {
    /// Found by a black-box test: a store's directory renamed (and a new one made at its path)
    /// while a writer ran. The writer went on acknowledging, made new segments, the manifest and
    /// the index by path in the new directory, and wrote over another store's manifest there;
    /// the moved store lost the events of those segments. Now the writer checks the path still
    /// leads to its directory before it creates a file, and fails instead.
    /// The same for a compaction (from a review: it created, replaced and removed files by
    /// path, and removed a new store's first segment at the old path, which every store's first
    /// segment is named like). Moved at each step, it stops before touching the old path.
    @Test(arguments: [EventLog.CompactionStep.wroteNewSegments, .wroteManifest, .removedOld(0)])
    func aCompactionWhoseDirectoryIsMovedTouchesNothingUnderTheOldPath(step: EventLog.CompactionStep) async throws {
        let directory = TemporaryDirectory("moved-compaction")
        let moved = directory.path + "-moved"
        defer {
            directory.remove()
            try? FileManager.default.removeItem(atPath: moved)
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 4096
        let log = try EventLog.open(at: directory.path, options: options)
        for round in 0..<6 { try await log.append(Fixture.events(2, size: 700), to: "s/\(round % 2)") }
        try await log.delete(stream: "s/0")
        log.close()
        // A store of its own at the old path once the directory moved.
        let path = directory.path
        options.compactionFaults = { reached in
            guard reached == step else { return }
            try FileManager.default.moveItem(atPath: path, toPath: moved)
            let other = try EventLog.open(at: path, options: .init(createIfMissing: true))
            defer { other.close() }
            _ = try other.readAll()
        }
        // Before the commit it fails; after, it took effect and says what it left unfinished.
        let unfinished = (try? EventLog.compact(at: directory.path, options: options))?.unfinishedCleanup
        #expect(step == .wroteNewSegments ? unfinished == nil : unfinished?.contains("moved or replaced") == true)
        let other = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        #expect(try other.verify().isClean, "the store at the old path")
        other.close()
        let reopened = try EventLog.open(at: moved, options: InspectionTests.readOnly())
        defer { reopened.close() }
        #expect(try reopened.verify().isClean, "the moved store")
        #expect(try reopened.read(stream: "s/1").count == 6)
    }

    // A writer whose active segment another program removes or shortens: what it writes there
    // is not in the store, so it acknowledges nothing more and stops, with an error that says
    // why (a black-box run: it went on acknowledging commits, ~1,300 of which were gone). Both
    // durabilities: without syncs the check follows the write.
    @Test(arguments: [false, true], [EventLog.Durability.synchronous, .unsafeNoSync])
    func aWriterWhoseSegmentIsRemovedOrShortenedAcknowledgesNothingMore(removed: Bool, durability: EventLog.Durability) async throws {
        let directory = TemporaryDirectory("segment-tampered")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 65536
        options.durability = durability
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        try await log.append(Fixture.events(3), to: "s")
        let segment = directory.file(log.segmentNames.last!)
        if removed {
            try FileManager.default.removeItem(atPath: segment)
        } else {
            #expect(truncate(segment, 4096) == 0)
        }
        // The append and the next one are refused with the reason, told once (the next one's
        // said "the store failed" twice).
        for _ in 0..<2 {
            await #expect(throws: StoreError.self) {
                do {
                    try await log.append(Fixture.events(1), to: "s")
                } catch let error as StoreError {
                    #expect(error.description.contains(removed ? "removed by another program" : "another program shortened it"), "\(error)")
                    #expect(error.description.components(separatedBy: "the store failed").count == 2, "said once: \(error)")
                    throw error
                }
            }
        }
    }

    @Test func aWriterWhoseDirectoryIsMovedCreatesNothingUnderTheOldPath() async throws {
        let directory = TemporaryDirectory("moved")
        let moved = directory.path + "-moved"
        defer {
            directory.remove()
            try? FileManager.default.removeItem(atPath: moved)
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 4096
        let log = try EventLog.open(at: directory.path, options: options)
        var acknowledged = try await log.append(Fixture.events(1, size: 900), to: "s/1").lastVersion
        try FileManager.default.moveItem(atPath: directory.path, toPath: moved)
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: false)
        var refused = false
        for _ in 0..<12 {
            do {
                acknowledged = try await log.append(Fixture.events(1, size: 900), to: "s/1").lastVersion
            } catch {
                refused = true
                break
            }
        }
        log.close()
        #expect(refused, "a segment roll past 4 KiB was reached")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == [])
        let reopened = try EventLog.open(at: moved, options: InspectionTests.readOnly())
        defer { reopened.close() }
        #expect(try reopened.verify().isClean)
        #expect(try reopened.read(stream: "s/1").count == acknowledged)
    }

    /// A store on a simulated disk.
    static func simulated(_ label: String) throws -> (TemporaryDirectory, SimulatedDisk) {
        let directory = TemporaryDirectory(label)
        try directory.create()
        return (directory, SimulatedDisk(root: directory.path, seed: 7))
    }

    // 4. A power cut that keeps a later frame of the last group commit but not an earlier one
    // is a torn tail: the store reopens writable and the unacknowledged batch is gone.
    @Test func aBatchTornInTheMiddleIsATornTailNotDamage() async throws {
        let directory = TemporaryDirectory("torn-batch")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.targetFrameSize = 1024
        options.segmentSize = 64 << 10
        var log = try EventLog.open(at: directory.path, options: options)
        try await log.append(Fixture.events(3, size: 50), to: "s/acked")
        // One batch of several frames: many appends arriving together.
        let writer = log
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<40 { group.addTask { _ = try? await writer.append(Fixture.events(2, size: 300), to: "s/\(index)") } }
        }
        let path = directory.file("00000000000000000000.dseg")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let offsets = try Fixture.frameOffsets(of: path)
        let batchOf = { (offset: Int) in (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + 32 + $1]) << (8 * UInt64($1)) } }
        let positionOf = { (offset: Int) in (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + 16 + $1]) << (8 * UInt64($1)) } }
        // A batch of several frames becomes the last one written when the power fails: what
        // followed it never happened, and of it the disk kept all but its first frame.
        let first = try #require(offsets.lastIndex { offset in offsets.filter { batchOf($0) == batchOf(offset) }.count > 1 && offset > offsets[0] }
            .map { last in offsets.firstIndex { batchOf($0) == batchOf(offsets[last]) }! })
        let batchStart = offsets[first]
        let batchEnd = offsets.first { $0 > batchStart && batchOf($0) != batchOf(batchStart) } ?? bytes.count
        let acknowledged = try log.readAll(maxCount: 10_000).filter { $0.position < positionOf(batchStart) }
        var damaged = bytes
        damaged.replaceSubrange(batchEnd..<bytes.count, with: repeatElement(0, count: bytes.count - batchEnd))
        damaged.replaceSubrange(batchStart..<batchStart + 40, with: repeatElement(0, count: 40))
        log.close()
        try Data(damaged).write(to: URL(fileURLWithPath: path))
        try Fixture.simulateCrash(directory, durableEnd: batchStart, nextPosition: positionOf(batchStart))
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.isEmpty, "\(log.recovery.corruptions)")
        let after = try log.readAll(maxCount: 10_000)
        #expect(Array(after.prefix(acknowledged.count)) == acknowledged)
        #expect(after.allSatisfy { $0.position < UInt64(after.count) }, "nothing of the torn batch is back with a gap")
        try await log.append(Fixture.events(1), to: "s/acked", expecting: .exact(3))
    }

    /// A head whose next batch is beyond the segment's last batch + 1 (a head made or changed
    /// with its checksum made good: a whole store's head is written after its batch, so never
    /// says more): the writer still numbers its batch after the highest seen, so the commit it
    /// acknowledges is not read as damage afterwards (found by a black-box run: it took the
    /// head's 1000 after batch 29, and with the index rebuilt the events were unreadable).
    @Test func aHeadsHigherNextBatchDoesNotMakeTheNextCommitDamage() async throws {
        let directory = TemporaryDirectory("head-next-batch")
        defer { directory.remove() }
        let options = try await Self.closedStore(in: directory, commits: 15)
        let head = try #require(try StoreFiles.readHead(in: directory.path))
        var record = head
        record.sequence += 1
        record.nextBatch = head.nextBatch + 1000
        try HeadFile(directory: directory.path).write(record, durably: false)
        try? FileManager.default.removeItem(atPath: directory.file(Layout.indexName))
        var log = try EventLog.open(at: directory.path, options: options)
        try await log.append(Fixture.events(1), to: "s", expecting: .exact(15))
        try await log.append(Fixture.events(1), to: "s", expecting: .exact(16))
        log.close()
        try? FileManager.default.removeItem(atPath: directory.file(Layout.indexName))
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.isEmpty, "\(log.recovery.corruptions)")
        let report = try log.verify()
        #expect(report.isClean, "\(report.problems)")
        #expect(try log.read(stream: "s").count == 17)
    }

    /// Options for small stores (64 KiB segments), and such a store in `directory` holding
    /// `commits` one-event commits to "s", closed.
    static func closedStore(in directory: TemporaryDirectory, commits: Int) async throws -> EventLog.Options {
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 64 << 10
        let log = try EventLog.open(at: directory.path, options: options)
        for _ in 0..<commits { try await log.append(Fixture.events(1), to: "s") }  // a frame each, acknowledged
        log.close()
        return options
    }

    // 4b. Without a whole head file nothing tells a torn write from acknowledged frames that
    // were lost: invalid bytes after the last valid frame are damage, never cut off (the next
    // writer then handed their versions and positions to other events, and verify said clean).
    @Test(arguments: ["missing", "no intact record", "newest record lost"])
    func withoutAWholeHeadFileAnInvalidTailIsDamageNotATornWrite(head: String) async throws {
        let directory = TemporaryDirectory("tail-without-head")
        defer { directory.remove() }
        _ = try await Self.closedStore(in: directory, commits: 3)
        let path = directory.file("00000000000000000000.dseg")
        let third = try #require(try Fixture.eventFrameOffsets(of: path).last)
        let headPath = directory.file(Layout.headName)
        switch head {
        case "missing":
            try FileManager.default.removeItem(atPath: headPath)
        case "no intact record":
            try Data(count: 2 * Layout.headSlotSize).write(to: URL(fileURLWithPath: headPath))
        default:
            // A record as an older head says (the third frame after its durable end), then a
            // newer one in the other slot, which is then lost.
            try Fixture.simulateCrash(directory, durableEnd: third)
            try Fixture.simulateCrash(directory)
            let newest = try #require(try StoreFiles.readHead(in: directory.path))
            let slot = Int(newest.sequence % 2) * Layout.headSlotSize
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: headPath)))
            bytes.replaceSubrange(slot..<slot + Layout.headSlotSize, with: repeatElement(0, count: Layout.headSlotSize))
            try Data(bytes).write(to: URL(fileURLWithPath: headPath))
        }
        try? FileManager.default.removeItem(atPath: directory.file(Layout.indexName))
        // The third event's frame damaged from its 48th byte on, and everything after it.
        var segment = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        segment.replaceSubrange((third + 48)..., with: repeatElement(0, count: segment.count - third - 48))
        try Data(segment).write(to: URL(fileURLWithPath: path))

        let log = try EventLog.open(at: directory.path)
        defer { log.close() }
        #expect(log.recovery.corruptions.contains { "\($0)".contains("head file") }, "\(head): \(log.recovery.corruptions)")
        #expect(log.recovery.tornBytesDiscarded == 0)
        #expect(throws: StoreError.self) { try log.read(stream: "s") }
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s") }
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))).prefix(segment.count) == segment[...], "nothing zeroed or trimmed")
    }

    // 4b'. A writer that finds no intact head record starts again at sequence 1: it fills both
    // slots with synced records, so that its later records (not synced) can only ever leave an
    // older record behind at a power cut, never a slot of zeros, which is a damaged head.
    @Test func aWriterStartingANewHeadFileFillsBothSlots() async throws {
        let directory = TemporaryDirectory("head-restart")
        defer { directory.remove() }
        let options = try await Self.closedStore(in: directory, commits: 1)
        try FileManager.default.removeItem(atPath: directory.file(Layout.headName))
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.isEmpty, "\(log.recovery.corruptions)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.file(Layout.headName))))
        let slots = [0, Layout.headSlotSize].map { start in
            bytes.withUnsafeBytes { HeadRecord.decode(UnsafeRawBufferPointer(rebasing: $0[start..<start + HeadRecord.encodedSize])) }
        }
        #expect(slots.allSatisfy { $0 != nil }, "both slots hold a record: \(slots)")
        try await log.append(Fixture.events(1), to: "s")
        #expect(StoreFiles.headProblems(in: directory.path, lookingTwice: false).isEmpty)
    }

    // 4c. Bytes after a clean close's durable end are damage (FORMAT.md §8): a writable open
    // finds them and changes nothing. It did not look there, and its close punched them away.
    @Test func bytesAfterACleanCloseAreDamageAWritableOpenFinds() async throws {
        let directory = TemporaryDirectory("after-clean-close")
        defer { directory.remove() }
        let options = try await Self.closedStore(in: directory, commits: 1)
        let path = directory.file("00000000000000000000.dseg")
        let garbage = Array("GARBAGE!".utf8)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 40_000)
        try handle.write(contentsOf: garbage)
        try handle.close()
        let log = try EventLog.open(at: directory.path, options: options)
        #expect(log.recovery.corruptions.contains { "\($0)".contains("clean close") }, "\(log.recovery.corruptions)")
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s") }
        #expect(throws: StoreError.self, "the bytes may have held the stream's later events") { try log.read(stream: "s") }
        log.close()
        #expect(Array([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))[40_000..<40_008]) == garbage, "left as found")
    }

    // A full disk: the append that needed a new segment fails with an error that names the
    // call, the file and ENOSPC; the store accepts no more writes until it is reopened, and the
    // reopen (space freed) finds every acknowledged event and takes appends again.
    @Test func aFullDiskStopsAppendsWithAClearErrorAndLosesNothing() async throws {
        let (directory, disk) = try Self.simulated("full-disk")
        defer {
            disk.unregister()
            directory.remove()
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 4096
        var log = try EventLog.open(at: directory.path, options: options)
        var acknowledged: [UUID] = []
        func append() async throws {
            let events = Fixture.events(1, size: 200)
            try await log.append(events, to: "s/a")
            acknowledged += events.map(\.id)
        }
        for _ in 0..<3 { try await append() }
        var full = SimulatedDisk.Faults()
        full.fullDisk = 1
        disk.setFaults(full)
        var failure: (any Error)?
        do {
            for _ in 0..<40 { try await append() }  // enough to need the next segment (4 KiB each)
        } catch {
            failure = error
        }
        let error = try #require(failure, "a full disk failed no append")
        let message = "\(error)"
        #expect(message.contains("No space left on device") && message.contains("errno \(ENOSPC)") && message.contains(".dseg"), "\(message)")
        #expect(message.contains("reopen it to recover"), "\(message)")
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s/b") }
        disk.setFaults(SimulatedDisk.Faults())
        log.close()
        options.createIfMissing = false
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.isEmpty, "\(log.recovery.corruptions)")
        // (The failed append may be there too: it was never acknowledged.)
        let stored = try log.read(stream: "s/a").map(\.id)
        #expect(Array(stored.prefix(acknowledged.count)) == acknowledged && stored.count <= acknowledged.count + 1)
        try await log.append(Fixture.events(1), to: "s/b")
        #expect(try log.verify().isClean)
    }

    // 5 and 6. A frame written but never durable (no sync, or a sync that failed and left its
    // pages marked clean) is made durable by the next open before anything is served: a retry
    // acknowledged as a duplicate survives a power cut afterwards.
    @Test func whatRecoveryServesIsDurableFirst() async throws {
        let (directory, disk) = try Self.simulated("recovery-sync")
        defer {
            disk.unregister()
            directory.remove()
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 16 << 10
        var log = try EventLog.open(at: directory.path, options: options)
        try await log.append(Fixture.events(1), to: "s/a")
        let retried = Fixture.events(2)
        disk.setFaults(SimulatedDisk.Faults(failingSync: 1))
        await #expect(throws: StoreError.self) { try await log.append(retried, to: "s/a", expecting: .exact(1)) }
        disk.setFaults(SimulatedDisk.Faults())
        log.close()
        // Same boot: the page cache still holds the frame whose sync failed.
        options.createIfMissing = false
        log = try EventLog.open(at: directory.path, options: options)
        let retry = try await log.append(retried, to: "s/a", expecting: .exact(1))
        #expect(retry.wasDuplicate, "the retry finds the recovered frame")
        log.close()
        disk.crash(atOperation: disk.operationCount + 1)
        try disk.materializeCrash()
        log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(try log.read(stream: "s/a").map(\.id) == [try log.read(stream: "s/a")[0].id] + retried.map(\.id),
                "the acknowledged duplicate survived the power cut")
        #expect(log.recovery.corruptions.isEmpty)
    }

    // 13. In the mode without syncs, sealed segments are still synced when the next one starts.
    @Test func sealedSegmentsAreSyncedWithoutSynchronousDurability() async throws {
        let (directory, disk) = try Self.simulated("nosync-seal")
        defer {
            disk.unregister()
            directory.remove()
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 4096
        options.durability = .unsafeNoSync
        let log = try EventLog.open(at: directory.path, options: options)
        for index in 0..<40 { try await log.append(Fixture.events(1, size: 200), to: "s/\(index % 3)") }
        let names = log.segmentNames
        #expect(names.count >= 3)
        let sealed = try log.readAll(maxCount: 1000).filter { $0.position < UInt64(names.last!.prefix(20))! }
        disk.crash(atOperation: disk.operationCount + 1)
        log.close()
        try disk.materializeCrash()
        options.durability = .synchronous
        let reopened = try EventLog.open(at: directory.path, options: options)
        defer { reopened.close() }
        #expect(Array(try reopened.readAll(maxCount: 1000).prefix(sealed.count)) == sealed)
        #expect(reopened.recovery.corruptions.isEmpty)
    }

    // 13. Creating a store makes its directory entries durable: every directory it creates is
    // synced in its parent.
    @Test func creatingAStoreSyncsTheDirectoriesItCreates() throws {
        let (root, disk) = try Self.simulated("parent-sync")
        defer {
            disk.unregister()
            root.remove()
        }
        var options = EventLog.Options(createIfMissing: true)
        options.segmentSize = 4096
        let log = try EventLog.open(at: root.file("new/store"), options: options)
        log.close()
        let synced = disk.trace.filter { $0.contains("fsync directory") }
        #expect(synced.contains { $0.hasSuffix("fsync directory ") }, "the root, which holds new/: \(synced)")
        #expect(synced.contains { $0.hasSuffix("fsync directory /new") }, "new/, which holds store/: \(synced)")
    }

    // 12. Bounds: a commit over the named maximum is refused before anything is written; a
    // version past 2^62 is refused at the API; a write that makes no progress is an error.
    @Test func boundsAreEnforcedAtTheAPI() async throws {
        let directory = TemporaryDirectory("bounds")
        defer { directory.remove() }
        var options = EventLog.Options(createIfMissing: true)
        options.maximumEventSize = 256 << 20
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        let big = Data(count: 200 << 20)  // shared by the three events: no 600 MB in memory
        let events = (0..<3).map { _ in NewEvent(type: "Big", data: big) }
        await #expect(throws: StoreError.commitTooLarge(size: 3 * ((200 << 20) + 1 + 3 + 40), maximum: EventLog.maximumCommitSize)) {
            try await log.append(events, to: "s")
        }
        await #expect(throws: StoreError.self) { try await log.truncate(stream: "s", before: Int.max) }
        await #expect(throws: StoreError.self) {
            try await log.saveSnapshot(StoredSnapshot(stream: "s", version: Int.max, data: Data()))
        }
        #expect(log.headPosition == 0 && log.frameBytes == 0)
    }

    @Test func aWriteThatMakesNoProgressIsAnError() throws {
        let directory = TemporaryDirectory("stuck")
        try directory.create()
        FileSystems.register(Stuck(), for: directory.path)
        defer {
            FileSystems.unregister(directory.path)
            directory.remove()
        }
        let file = try File(path: directory.file("f"), flags: O_RDWR | O_CREAT)
        #expect(throws: SystemError.self) { try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try file.write($0, at: 0) } }
    }
}

/// A file system whose writes make no progress.
final class Stuck: FileSystem, @unchecked Sendable {
    func write(_ descriptor: Int32, path: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int { 0 }
    func synchronize(_ descriptor: Int32, path: String, dataOnly: Bool) throws(SystemError) {}
    func preallocate(_ descriptor: Int32, path: String, size: Int) throws(SystemError) {}
    func punchHole(_ descriptor: Int32, path: String, range: Range<Int>) throws(SystemError) {}
    func opened(_ descriptor: Int32, path: String, created: Bool, truncated: Bool) {}
    func duplicated(_ descriptor: Int32, as copy: Int32) {}
    func closed(_ descriptor: Int32) {}
    func rename(_ from: String, to: String) throws(SystemError) {}
    func remove(_ path: String) throws(SystemError) {}
    func synchronizeDirectory(_ path: String) throws(SystemError) {}
}
