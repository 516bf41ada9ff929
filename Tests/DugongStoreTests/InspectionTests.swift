import Dugong
@testable import DugongStore
import Foundation
import Glibc
import Testing

@Suite("Read-only opening, verification and statistics")
struct InspectionTests {
    static func readOnly() -> EventLog.Options {
        var options = EventLog.Options()
        options.readOnly = true
        return options
    }

    /// Whether /dev/shm is a tmpfs (where reading a hole through a mapping allocates it).
    static let sharedMemoryIsTmpfs: Bool = {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().prefix(2) == ["/dev/shm", "tmpfs"] }
    }()

    // Found by a black-box test: on a full tmpfs `verify` died of SIGBUS, reading the punched
    // tail of a closed store's segment through its mapping (tmpfs allocates a hole's pages when
    // they are read that way). Verify and opens now step over holes: the tail stays unallocated.
    @Test(.enabled(if: sharedMemoryIsTmpfs, "/dev/shm is not a tmpfs here"))
    func readingAStoreOnTmpfsDoesNotAllocateItsHoles() async throws {
        let path = "/dev/shm/dugong-tests-holes-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // (4 MiB segments: a container's /dev/shm may hold no more than 64 MiB.)
        var creating = EventLog.Options(createIfMissing: true)
        creating.segmentSize = 4 << 20
        let writer = try EventLog.open(at: path, options: creating)
        try await writer.append(Fixture.events(3), to: "s/1")
        writer.close()
        let segment = try #require(writer.segmentNames.first.map { path + "/" + $0 })
        let allocated = { try File(path: segment, flags: O_RDONLY).allocatedSize() }
        let closed = try allocated()
        #expect(closed < 1 << 20, "a clean close punched the tail")
        let reader = try EventLog.open(at: path, options: Self.readOnly())
        #expect(try reader.verify().isClean)
        reader.close()
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = false
        let scanning = try EventLog.open(at: path, options: options)
        #expect(try scanning.verify().isClean)
        scanning.close()
        let after = try allocated()
        #expect(after == closed, "reading allocated the holes: \(after) bytes, \(closed) after the close")
    }

    @Test func aReadOnlyStoreFollowsAWriterWithoutTouchingAnything() async throws {
        let directory = TemporaryDirectory("readonly")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 8192)
        defer { writer.close() }
        try await writer.append(Fixture.events(3), to: "s/1")
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { reader.close() }
        #expect(try reader.readAll().count == 3)
        await #expect(throws: StoreError.readOnly) { try await reader.append(Fixture.events(1), to: "s/1") }
        for round in 0..<20 { try await writer.append(Fixture.events(5, size: 100), to: "s/\(round % 3)") }
        #expect(writer.segmentNames.count > 1)
        let added = try reader.refresh()
        #expect(added == 100)
        #expect(try reader.readAll(maxCount: 1000) == (try writer.readAll(maxCount: 1000)))
        #expect(try reader.read(stream: "s/1").count == (try writer.read(stream: "s/1").count))
        #expect(try reader.refresh() == 0)
    }

    @Test func readOnlyOpeningLeavesATornTailAlone() async throws {
        let directory = TemporaryDirectory("readonly-torn")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 4096)
        try await writer.append(Fixture.events(2), to: "s/1")
        writer.close()
        let path = directory.file("00000000000000000000.dseg")
        let end = try Fixture.endOfFrames(of: path)
        let garbage = Data(repeating: 0xAB, count: 40)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(end))
        try handle.write(contentsOf: garbage)
        try handle.close()
        try Fixture.simulateCrash(directory, durableEnd: end)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let reader = try EventLog.open(at: directory.path, options: Self.readOnly())
        #expect(try reader.readAll().count == 2)
        let report = try reader.verify()
        #expect(report.isClean && report.warnings.map(\.kind) == [.tornTail])
        reader.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "a read-only open changes no byte")
    }

    @Test func verifyFindsNothingOnAHealthyStoreAndTheDamageOnADamagedOne() async throws {
        let directory = TemporaryDirectory("verify")
        defer { directory.remove() }
        var log = try Fixture.open(directory, segmentSize: 8192)
        for round in 0..<30 { try await log.append(Fixture.events(3, size: 50), to: "s/\(round % 4)") }
        try await log.truncate(stream: "s/1", before: 5)
        try await log.delete(stream: "s/2")
        let clean = try log.verify()
        #expect(clean.isClean && clean.warnings.isEmpty)
        #expect(clean.events == 90 && clean.streams == 4 && clean.segments == log.segmentNames.count)
        let names = log.segmentNames
        log.close()
        let path = directory.file(names[0])
        let offset = try Fixture.frameOffsets(of: path)[2]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[offset + 40] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: path))
        log = try EventLog.open(at: directory.path, options: Self.readOnly())
        defer { log.close() }
        let report = try log.verify()
        #expect(!report.isClean)
        #expect(report.problems.contains { $0.segment == names[0] && $0.offset == offset && $0.kind == .damagedFrame })
    }

    @Test func statisticsCountWhatIsThere() async throws {
        let directory = TemporaryDirectory("stats")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        try await log.append(Fixture.events(7, size: 40), to: "big/1")
        try await log.append(Fixture.events(2), to: "small/1")
        try await log.saveSnapshot(StoredSnapshot(stream: "snap/1", version: 0, data: Data("x".utf8)))
        let stats = try log.statistics()
        #expect(stats.events == 9 && stats.streams == 3 && stats.headPosition == 9)
        #expect(stats.largestStreams.first?.stream == "big/1" && stats.largestStreams.first?.version == 7)
        #expect(stats.segments.count == 1 && stats.frameBytes > 0 && stats.rawPayloadBytes > 0)
        #expect(try log.streamNames() == ["big/1", "small/1", "snap/1"])
    }
}
