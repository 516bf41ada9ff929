import Dugong
@testable import DugongStore
import Foundation
import Synchronization
import Testing

/// Torn tails, garbage and damage: what recovery truncates, what it reports, what stays readable.
@Suite("Recovery and corruption")
struct RecoveryTests {
    /// A store of three commits in three frames: s/a v1, s/b v1-2, s/b v3 (positions 0, 1-2, 3).
    static func threeFrames(_ directory: TemporaryDirectory) async throws -> [StoredEvent] {
        let log = try Fixture.open(directory, segmentSize: 4096)
        try await log.append(Fixture.events(1, size: 40), to: "s/a", expecting: .noStream)
        try await log.append(Fixture.events(2, size: 40), to: "s/b", expecting: .noStream)
        try await log.append(Fixture.events(1, size: 40), to: "s/b", expecting: .exact(2))
        let all = try log.readAll()
        log.close()
        return all
    }

    static let segment = "00000000000000000000.dseg"

    @Test func aTornLastFrameIsCutAtEveryByteAndAppendsContinue() async throws {
        let source = TemporaryDirectory("torn-source")
        defer { source.remove() }
        let all = try await Self.threeFrames(source)
        try Fixture.simulateCrash(source, durableEnd: try Fixture.frameOffsets(of: source.file(Self.segment))[2], nextPosition: 3)
        let original = try Data(contentsOf: URL(fileURLWithPath: source.file(Self.segment)))
        let metadata = try ["dugong.manifest", "dugong.head"].map { ($0, try Data(contentsOf: URL(fileURLWithPath: source.file($0)))) }
        let offsets = try Fixture.frameOffsets(of: source.file(Self.segment))
        #expect(offsets.count == 4, "three frames and the close marker")
        let lastStart = offsets[2]
        let end = offsets[3]
        for cut in lastStart..<end {
            let directory = TemporaryDirectory("torn")
            defer { directory.remove() }
            try directory.create()
            // A torn write leaves the file at its size (a cut file is damage).
            try (original.prefix(cut) + Data(count: original.count - cut)).write(to: URL(fileURLWithPath: directory.file(Self.segment)))
            for (name, bytes) in metadata { try bytes.write(to: URL(fileURLWithPath: directory.file(name))) }
            let log = try Fixture.open(directory, segmentSize: 4096)
            #expect(try log.readAll() == Array(all.prefix(3)), "cut at \(cut)")
            #expect(log.recovery.corruptions.isEmpty, "cut at \(cut)")
            #expect(try log.info(stream: "s/b")?.version == 2)
            let commit = try await log.append(Fixture.events(1), to: "s/b", expecting: .exact(2))
            #expect(commit.firstPosition == 3 && commit.firstVersion == 3, "cut at \(cut)")
            log.close()
            let reopened = try Fixture.open(directory, segmentSize: 4096)
            #expect(try reopened.readAll().count == 4, "cut at \(cut)")
            #expect(reopened.recovery.tornBytesDiscarded == 0 && reopened.recovery.corruptions.isEmpty)
            reopened.close()
        }
    }

    // Found by a black-box test: a compaction that failed on a full disk left new segment
    // files of 0 bytes, which no later open removed (only files with a segment's header were
    // recognized as leftovers). Unlisted files of a segment's name that hold nothing (empty or
    // zeros) are removed by a writable open; one holding anything else is left alone.
    @Test func unlistedSegmentFilesHoldingNothingAreRemovedAtOpen() async throws {
        let directory = TemporaryDirectory("unlisted-empty")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        try await log.append(Fixture.events(3), to: "s/1")
        log.close()
        let empty = Layout.SegmentName(firstPosition: 0, generation: 1).fileName
        let zeros = Layout.SegmentName(firstPosition: 0, generation: 2).fileName
        let junk = Layout.SegmentName(firstPosition: 0, generation: 3).fileName
        try Data().write(to: URL(fileURLWithPath: directory.file(empty)))
        try Data(count: 5000).write(to: URL(fileURLWithPath: directory.file(zeros)))
        try Data("not a segment".utf8).write(to: URL(fileURLWithPath: directory.file(junk)))
        // An old segment a compaction killed before it removed them left beside the new set.
        let oldSet = Layout.SegmentName(firstPosition: 0, generation: 4).fileName
        try FileManager.default.copyItem(atPath: directory.file(Self.segment), toPath: directory.file(oldSet))
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        // Verification names what the next writer removes, as a warning: the store is whole.
        let report = try reader.verify()
        reader.close()
        #expect(report.isClean)
        #expect(report.warnings.filter { $0.kind == .leftoverFile }.map(\.segment).sorted() == [empty, zeros, oldSet].sorted())
        #expect(FileManager.default.fileExists(atPath: directory.file(empty)), "a reader removes nothing")
        let writer = try Fixture.open(directory)
        #expect(try writer.read(stream: "s/1").count == 3)
        writer.close()
        #expect(!FileManager.default.fileExists(atPath: directory.file(oldSet)))
        // The file left alone is named, as a warning, and never removed.
        let again = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        let warnings = try again.verify().warnings
        #expect(warnings.map(\.kind) == [.unreadableFile] && warnings.map(\.segment) == [junk], "\(warnings)")
        again.close()
        #expect(!FileManager.default.fileExists(atPath: directory.file(empty)))
        #expect(!FileManager.default.fileExists(atPath: directory.file(zeros)))
        #expect(FileManager.default.fileExists(atPath: directory.file(junk)))
    }

    /// A store of 3 events in a 1 MiB segment, closed cleanly, with `bytes` written `gap`
    /// bytes after the end of its frames. Returns that end.
    static func threeEventsAndThen(_ bytes: Data, after gap: Int, in directory: TemporaryDirectory) async throws -> Int {
        let writer = try Fixture.open(directory, segmentSize: 1 << 20)
        try await writer.append(Fixture.events(3, size: 100), to: "s/1")
        writer.close()
        let path = directory.file(Self.segment)
        let end = try Fixture.endOfFrames(of: path)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(end + gap))
        try handle.write(contentsOf: bytes)
        try handle.close()
        return end
    }

    // Found by a black-box run of the Studio: 45 bytes of garbage 30 bytes after a clean
    // close's end read, to a reader, as a torn tail of 67,106,515 bytes (the rest of the
    // segment). A reader counts the bytes up to the first 4 KiB block of zeros; `verify`
    // names them as damage (nothing follows a clean close).
    @Test func aReaderCountsTheBytesAfterTheLastFrameNotTheRestOfTheSegment() async throws {
        let directory = TemporaryDirectory("garbage-count")
        defer { directory.remove() }
        let end = try await Self.threeEventsAndThen(Data(repeating: 0x5A, count: 45), after: 30, in: directory)
        let reader = try EventLog.open(at: directory.path, options: InspectionTests.readOnly())
        #expect(reader.recovery.corruptions.isEmpty && reader.eventCount == 3)
        #expect(reader.recovery.tornBytesDiscarded == (end / 4096 + 1) * 4096 - end, "\(reader.recovery.tornBytesDiscarded) after \(end)")
        reader.close()
        var thorough = InspectionTests.readOnly()
        thorough.useIndexFile = false  // as `dugong verify` opens a store
        let verifying = try EventLog.open(at: directory.path, options: thorough)
        let report = try verifying.verify()
        verifying.close()
        #expect(report.problems.contains { $0.offset == end + 30 && $0.message.contains("after the end recorded by a clean close") }, "\(report.problems)")
    }

    /// A torn tail after a crash (not a clean close) is counted, by `verify` too, up to the
    /// first 4 KiB block of zeros, not to the segment's capacity.
    @Test func verifyCountsATornTailNotTheRestOfTheSegment() async throws {
        let directory = TemporaryDirectory("torn-count")
        defer { directory.remove() }
        let end = try await Self.threeEventsAndThen(Data((0..<6000).map { _ in UInt8.random(in: 1...255) }), after: 0, in: directory)
        try Fixture.simulateCrash(directory, durableEnd: end)
        var thorough = InspectionTests.readOnly()
        thorough.useIndexFile = false  // as `dugong verify` opens a store
        let verifying = try EventLog.open(at: directory.path, options: thorough)
        defer { verifying.close() }
        let expected = ((end + 6000) / 4096 + 1) * 4096 - end
        #expect(verifying.recovery.tornBytesDiscarded == expected, "\(verifying.recovery.tornBytesDiscarded), end \(end)")
        let report = try verifying.verify()
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.warnings.contains { $0.kind == .tornTail && $0.message.hasPrefix("\(expected) bytes after the last valid frame") }, "\(report.warnings)")
    }

    @Test func garbageAfterTheLastFrameIsTruncatedAtOpen() async throws {
        let directory = TemporaryDirectory("garbage")
        defer { directory.remove() }
        let all = try await Self.threeFrames(directory)
        let path = directory.file(Self.segment)
        let end = try Fixture.endOfFrames(of: path)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(end))
        try handle.write(contentsOf: Data((0..<500).map { _ in UInt8.random(in: 1...255) }))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("garbage past the preallocated end".utf8))
        try handle.close()
        try Fixture.simulateCrash(directory, durableEnd: end)

        let log = try Fixture.open(directory, segmentSize: 4096)
        #expect(try log.readAll() == all)
        #expect(log.recovery.tornBytesDiscarded == 4096 - end)
        #expect(log.recovery.corruptions.isEmpty)
        try await log.append(Fixture.events(1), to: "s/c")
        log.close()
        // The file never shrinks (a reader may map it): the space after the frames reads as zeros.
        let after = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(after[(try Fixture.endOfFrames(of: path))..<4096].allSatisfy { $0 == 0 })
        let reopened = try Fixture.open(directory, segmentSize: 4096)
        defer { reopened.close() }
        #expect(try reopened.readAll().count == 5)
        #expect(reopened.recovery.tornBytesDiscarded == 0)
    }

    @Test(arguments: [("payload", 40), ("length field", 5), ("checksum", 1), ("first position", 18)])
    func aDamagedEarlierFrameIsReportedAndTheOthersStillRead(_ place: String, _ byteInFrame: Int) async throws {
        let directory = TemporaryDirectory("flip")
        defer { directory.remove() }
        let all = try await Self.threeFrames(directory)
        let path = directory.file(Self.segment)
        let damaged = try Fixture.frameOffsets(of: path)[1]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[damaged + byteInFrame] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))

        var options = EventLog.Options()
        options.segmentSize = 4096
        options.useIndexFile = false
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.count == 1, "\(place)")
        guard case .corruption(let segment, let offset, _) = log.recovery.corruptions.first else {
            Issue.record("no corruption reported for the \(place)")
            return
        }
        #expect(segment == Self.segment && offset == damaged)
        // The frames before and after still read.
        #expect(try log.read(stream: "s/b", from: 3) == [all[3]])
        #expect(try log.readAll(from: 3) == [all[3]])
        #expect(try log.readAll(from: 0) == [all[0]], "read-all stops before the damage")
        // Reads that touch the damaged frame throw a typed error naming segment and offset.
        // Reading s/a to its end cannot be trusted either: its version 2 could be in the damage.
        let reads = [
            { try log.read(stream: "s/b") }, { try log.read(stream: "s/b", from: 2) }, { try log.readAll(from: 1) },
            { try log.read(stream: "s/a") }, { try log.read(stream: "s/unknown") },
        ]
        for read in reads {
            #expect {
                _ = try read()
            } throws: { error in
                guard case .corruption(let segment, let offset, _) = error as? StoreError else { return false }
                return segment == Self.segment && offset == damaged
            }
        }
        // A damaged store refuses appends unless told otherwise: the damaged frame may hold
        // events of any stream, whose versions an append could then reuse.
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s/c") }
        log.close()
        options.acceptWritesDespiteDamage = true
        let writable = try EventLog.open(at: directory.path, options: options)
        defer { writable.close() }
        let commit = try await writable.append(Fixture.events(1), to: "s/c")
        #expect(commit.firstPosition == 4)
    }

    @Test func aFrameDamagedAfterOpenIsCaughtOnRead() async throws {
        let directory = TemporaryDirectory("late-flip")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 4096)
        defer { log.close() }
        try await log.append(Fixture.events(1, size: 40), to: "s/a")
        try await log.append(Fixture.events(1, size: 40), to: "s/b")
        let path = directory.file(Self.segment)
        let offset = try Fixture.frameOffsets(of: path)[0]
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try file.seek(toOffset: UInt64(offset + 45))
        let byte = try file.read(upToCount: 1)![0]
        try file.seek(toOffset: UInt64(offset + 45))
        try file.write(contentsOf: Data([byte ^ 0x01]))
        try file.close()
        log.core.cache.removeAll()
        #expect(throws: StoreError.corruption(segment: Self.segment, offset: offset, reason: "checksum mismatch")) {
            try log.read(stream: "s/a")
        }
        #expect(try log.read(stream: "s/b").count == 1)
    }

    @Test func damageInASealedSegmentIsReportedUpToTheNextSegment() async throws {
        let directory = TemporaryDirectory("sealed")
        defer { directory.remove() }
        var log = try Fixture.open(directory, segmentSize: 4096)
        for round in 0..<30 {
            try await log.append(Fixture.events(2, size: 150), to: "s/\(round % 3)")
        }
        let names = log.segmentNames
        let all = try log.readAll(maxCount: 1000)
        log.close()
        #expect(names.count >= 3)
        // Destroy the second segment's frames from its first frame's length field on.
        let path = directory.file(names[1])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for index in 128..<bytes.count { bytes[index] = 0xEE }
        try bytes.write(to: URL(fileURLWithPath: path))
        log = try Fixture.open(directory, segmentSize: 4096, useIndexFile: false)
        defer { log.close() }
        #expect(log.recovery.corruptions.count == 1)
        guard case .corruption(names[1], 128, _) = log.recovery.corruptions.first else {
            Issue.record("expected damage at \(names[1]) offset 128, got \(log.recovery.corruptions)")
            return
        }
        let secondStart = UInt64(names[1].prefix(20))!
        let thirdStart = UInt64(names[2].prefix(20))!
        #expect(try log.readAll(maxCount: 1000) == all.filter { $0.position < secondStart })
        #expect(try log.readAll(from: thirdStart, maxCount: 1000) == all.filter { $0.position >= thirdStart })
        #expect(throws: StoreError.self) { try log.readAll(from: secondStart) }
        #expect(throws: StoreError.self) { try log.read(stream: "s/0") }
    }

    /// A damaged segment header is damage, as a lost segment is: the store opens for reading
    /// only (it refused to open at all, so nothing of the other segments could be salvaged).
    @Test func aDamagedSegmentHeaderIsDamageAndTheStoreOpensForReading() async throws {
        let directory = TemporaryDirectory("header")
        defer { directory.remove() }
        _ = try await Self.threeFrames(directory)
        let path = directory.file(Self.segment)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[20] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        for readOnly in [true, false] {
            var options = EventLog.Options()
            options.readOnly = readOnly
            let log = try EventLog.open(at: directory.path, options: options)
            // Named where it is: in the segment, at its header (it named the manifest).
            #expect(log.recovery.corruptions.contains { corruption in
                guard case .corruption(let segment, let offset, let reason) = corruption else { return false }
                return segment == Self.segment && offset == 0 && reason.contains("segment header is damaged: segment header checksum mismatch")
            }, "\(log.recovery.corruptions)")
            if readOnly {
                #expect(try log.verify().problems.contains { $0.segment == Self.segment && $0.offset == 0 && $0.kind == .damagedSegment })
            }
            #expect(throws: StoreError.self) { try log.read(stream: "s/0") }
            await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s/0") }
            log.close()
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes, "nothing was repaired or removed")
        bytes[20] ^= 0xFF
        bytes[8] = 9
        // (With the header's checksum made to hold for it: one that fails is damage, above.)
        let checksum = Checksum.mask(bytes.withUnsafeBytes { Checksum.crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<124])) })
        for index in 0..<4 { bytes[124 + index] = UInt8(truncatingIfNeeded: checksum >> (8 * index)) }
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect {
            try Fixture.open(directory, segmentSize: 4096)
        } throws: { "\($0)".contains("format version 9, which this build cannot read") }
    }

    @Test func leftoverTemporaryFilesAreRemovedAtOpen() async throws {
        let directory = TemporaryDirectory("tmp")
        defer { directory.remove() }
        _ = try await Self.threeFrames(directory)
        _ = FileManager.default.createFile(atPath: directory.file("00000000000000000004.dseg.tmp"), contents: Data(count: 100))
        let log = try Fixture.open(directory, segmentSize: 4096)
        defer { log.close() }
        #expect(!FileManager.default.fileExists(atPath: directory.file("00000000000000000004.dseg.tmp")))
        #expect(try log.readAll().count == 4)
    }
}

@Suite("Write and sync failures")
struct FailureTests {
    struct InjectedFailure: Error {}

    @Test(arguments: [EventLog.FaultPoint.write, .sync])
    func aFailedWriteOrSyncIsFatalAndReopeningRecovers(_ point: EventLog.FaultPoint) async throws {
        let directory = TemporaryDirectory("fault")
        defer { directory.remove() }
        let armed = Mutex(false)
        var options = EventLog.Options(createIfMissing: true)
        options.faults = { where_ in
            if where_ == point, armed.withLock({ $0 }) { throw InjectedFailure() }
        }
        let log = try EventLog.open(at: directory.path, options: options)
        let kept = try await log.append(Fixture.events(2), to: "s/1")
        armed.withLock { $0 = true }
        await #expect {
            try await log.append(Fixture.events(1), to: "s/1")
        } throws: { error in
            guard case .failed(let reason) = error as? StoreError else { return false }
            return reason.contains("InjectedFailure")
        }
        armed.withLock { $0 = false }
        // No retry after a failed sync: the page cache may have dropped the data.
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "s/2") }
        log.close()

        let reopened = try EventLog.open(at: directory.path)
        defer { reopened.close() }
        let events = try reopened.read(stream: "s/1")
        // The failed commit was never acknowledged; whether its bytes reached the disk decides
        // whether it is there, but the acknowledged commit always is.
        #expect(events.prefix(2).map(\.position) == [kept.firstPosition, kept.lastPosition])
        #expect(events.count == 2 || (point == .sync && events.count == 3))
        try await reopened.append(Fixture.events(1), to: "s/1")
    }
}
