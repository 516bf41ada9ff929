import Dugong
@testable import DugongStore
import Foundation
import Testing

/// The operations that rewrite a store (compaction, upgrade) and the writer's inputs, against
/// what an adversarial review found: acknowledged events lost after a power cut, a store
/// destroyed by an upgrade, traps on values a caller passes.
@Suite("Rewriting a store and the writer's inputs")
struct RewritingTests {
    /// A copy of `source`'s files in `target` as a power cut leaves them: everything written is
    /// there (the segment was synced before the appends returned), the head file as `head`.
    static func powerCutImage(of source: TemporaryDirectory, in target: TemporaryDirectory, head: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: target.path, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name != Layout.lockFileName {
            try FileManager.default.copyItem(atPath: source.file(name), toPath: target.file(name))
        }
        try Data(head).write(to: URL(fileURLWithPath: target.file(Layout.headName)))
    }

    // The head is written after each sync without a sync of its own: after a power cut it may
    // be older than what was acknowledged. A compaction run next (no writable open before it)
    // scanned as a reader, stopped at the head's durable end and deleted the rest with the old
    // segments. It scans as a writable open does now.
    @Test(arguments: [false, true])
    func aCompactionAfterAPowerCutKeepsEveryAcknowledgedEvent(headNamesAnOlderSegment: Bool) async throws {
        let directory = TemporaryDirectory("rewrite-source")
        defer { directory.remove() }
        let image = TemporaryDirectory("rewrite-image")
        defer { image.remove() }
        let writer = try Fixture.open(directory, segmentSize: 8192)
        try await writer.append(Fixture.events(3), to: "a")
        let staleHead = try FollowingTests.contents(directory.file(Layout.headName))
        let segments = writer.segmentNames.count
        repeat {
            try await writer.append(Fixture.events(2, size: 900), to: "b")
        } while headNamesAnOlderSegment && writer.segmentNames.count == segments
        let acknowledged = try writer.readAll(maxCount: .max)
        try Self.powerCutImage(of: directory, in: image, head: staleHead)
        writer.close()

        _ = try EventLog.compact(at: image.path, options: { var options = EventLog.Options(); options.segmentSize = 8192; return options }())
        let reopened = try Fixture.open(image, segmentSize: 8192)
        defer { reopened.close() }
        #expect(try reopened.readAll(maxCount: .max).map(\.id) == acknowledged.map(\.id))
        #expect(reopened.headPosition == acknowledged.last!.position + 1)
    }

    // `upgrade` converts a version 1 store. Given a later store whose manifest is damaged or
    // missing, it deleted every segment (taking them for what an interrupted upgrade wrote).
    @Test(arguments: ["damaged", "missing"])
    func anUpgradeOfALaterStoreWithoutAnIntactManifestRemovesNothing(manifest: String) async throws {
        let directory = TemporaryDirectory("rewrite-upgrade")
        defer { directory.remove() }
        let writer = try Fixture.open(directory, segmentSize: 8192)
        for _ in 0..<6 { try await writer.append(Fixture.events(2, size: 900), to: "a") }
        writer.close()
        let before = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let manifestPath = directory.file(Layout.manifestName)
        if manifest == "missing" {
            try FileManager.default.removeItem(atPath: manifestPath)
        } else {
            try FollowingTests.overwrite(manifestPath, at: 12, with: [0xFF, 0xFF])
        }
        #expect(throws: StoreError.self) { try EventLog.upgrade(at: directory.path) }
        let after = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        #expect(after == before)
    }

    // Options are checked by every operation that writes segments with them (a negative segment
    // size trapped in a compaction; one the next open refuses was written after the old
    // segments were deleted).
    @Test func compactionAndUpgradeRefuseOptionsAnOpenRefuses() async throws {
        let directory = TemporaryDirectory("rewrite-options")
        defer { directory.remove() }
        try await { let log = try Fixture.open(directory); try await log.append(Fixture.events(2), to: "a"); log.close() }()
        for size in [-1, 100, 1 << 31] {
            var options = EventLog.Options()
            options.segmentSize = size
            #expect(throws: StoreError.self) { try EventLog.compact(at: directory.path, options: options) }
            #expect(throws: StoreError.self) { try EventLog.upgrade(at: directory.path, options: options) }
        }
        let log = try Fixture.open(directory)
        defer { log.close() }
        #expect(try log.readAll().count == 2)
    }

    // A timestamp whose milliseconds do not fit an Int64 (NaN, infinity, 10^17 s) trapped on
    // the writer's thread, taking the process down; it is refused with the append.
    @Test func aTimestampBeyondWhatAStoreKeepsIsRefused() async throws {
        let directory = TemporaryDirectory("rewrite-timestamp")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        for seconds in [Double.nan, .infinity, -.infinity, 1e17, -1e17] {
            let event = NewEvent(type: "T", timestamp: Date(timeIntervalSince1970: seconds), data: Data("{}".utf8))
            await #expect(throws: StoreError.self) { try await log.append([Fixture.events(1)[0], event], to: "s") }
        }
        let edge = NewEvent(type: "T", timestamp: Date(timeIntervalSince1970: 9e15), data: Data("{}".utf8))
        try await log.append([edge], to: "s")
        #expect(try log.read(stream: "s").map(\.timestampMilliseconds) == [9_000_000_000_000_000_000])
    }

    // A store whose only listed segment is missing, opened to accept writes despite damage,
    // has no segment to write to: appends are refused (they crashed on the missing writer).
    @Test func acceptingWritesDespiteDamageWithNoSegmentToWriteToRefusesThem() async throws {
        let directory = TemporaryDirectory("rewrite-no-writer")
        defer { directory.remove() }
        let names: [String]
        do {
            let log = try Fixture.open(directory)
            try await log.append(Fixture.events(2), to: "a")
            names = log.segmentNames
            log.close()
        }
        try FileManager.default.removeItem(atPath: directory.file(names[0]))
        var options = EventLog.Options()
        options.acceptWritesDespiteDamage = true
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        await #expect(throws: StoreError.self) { try await log.append(Fixture.events(1), to: "a") }
        #expect(throws: StoreError.self) { try log.send([EventLog.Append(stream: "a", events: Fixture.events(1))]) }
        await #expect(throws: StoreError.self) { try await log.delete(stream: "a") }
    }

    // A segment a compaction or an upgrade writes begins with its header from the start, not
    // only once it is complete (see SegmentSetWriter.startOutput).
    @Test func aSegmentBeingRewrittenBeginsWithItsHeader() throws {
        let directory = TemporaryDirectory("rewrite-header-first")
        try directory.create()
        defer { directory.remove() }
        var output = SegmentSetWriter(
            directory: directory.path, options: EventLog.Options(), takenNames: [], dryRun: false, sequence: 0, nextBatch: 0, firstPosition: 0)
        for commit in 0..<2 {
            var builder = FrameBuilder(nextPosition: UInt64(commit * 2))
            builder.append(Fixture.events(2), stream: "a", firstVersion: 1 + commit * 2)
            try output.write(builder)
        }
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).first { $0.hasSuffix(".dseg") })
        let bytes = try FollowingTests.contents(directory.file(name))
        #expect(bytes.count > Layout.segmentHeaderSize, "a frame is written")
        let header = try bytes.withUnsafeBytes { raw in try SegmentHeader(decoding: raw) }
        #expect(header.firstPosition == 0)
    }

    // A crash while a store is created, after its first segment and before its manifest (which
    // makes it a store), left a directory every later open took for a damaged store: appends
    // were refused for good. A writable open that may create the store creates it again. One
    // whose segment holds anything but zeros after its header stays damage (not a store whose
    // first frames a zeroed page took).
    @Test func aStoreWhoseCreationStoppedBeforeItsManifestIsCreatedAgain() async throws {
        let directory = TemporaryDirectory("rewrite-creation")
        defer { directory.remove() }
        let created = try Fixture.open(directory)
        let first = try #require(created.segmentNames.first)
        created.close()
        // As the creation left it: no manifest, nothing after the header (not even the close
        // marker a close writes), no index file (only a close saves one).
        try FileManager.default.removeItem(atPath: directory.file(Layout.manifestName))
        try FileManager.default.removeItem(atPath: directory.file(Layout.indexName))
        try FollowingTests.overwrite(directory.file(first), at: Layout.segmentHeaderSize, with: [UInt8](repeating: 0, count: 4096))
        // A reader (verify beside a killed first import) sees no store yet, not damage.
        var readOnly = EventLog.Options()
        readOnly.readOnly = true
        let reader = try EventLog.open(at: directory.path, options: readOnly)
        #expect(reader.damageFoundAtOpen.isEmpty && reader.headPosition == 0, "\(reader.damageFoundAtOpen)")
        #expect(try reader.verify().isClean)
        reader.close()
        // A writer not asked to create a store finds none, and leaves the segment as it is.
        #expect(throws: StoreError.notFound(directory: directory.path)) { try EventLog.open(at: directory.path) }
        #expect(FileManager.default.fileExists(atPath: directory.file(first)))
        let log = try Fixture.open(directory)
        try await log.append(Fixture.events(2), to: "a")
        #expect(try log.readAll().count == 2)
        let name = try #require(log.segmentNames.first)
        log.close()

        // Events past a zeroed first frame: damage, nothing removed.
        try FileManager.default.removeItem(atPath: directory.file(Layout.manifestName))
        try FollowingTests.overwrite(directory.file(name), at: Layout.segmentHeaderSize, with: [UInt8](repeating: 0, count: Layout.frameHeaderSize))
        let damaged = try Fixture.open(directory)
        defer { damaged.close() }
        #expect(!damaged.recovery.corruptions.isEmpty)
        await #expect(throws: StoreError.self) { try await damaged.append(Fixture.events(1), to: "a") }
    }

    // A version 1 frame repeated after the last one (a copy with its own valid checksum:
    // version 1 did not refuse it) made `upgrade` trap on positions that go back; it is
    // refused as damage, and the store is left as it was.
    @Test func anUpgradeRefusesVersionOneFramesWhosePositionsGoBack() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/v1-store")
        let directory = TemporaryDirectory("rewrite-v1-repeat")
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: fixture.path, toPath: directory.path)
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let last = directory.file(try #require(segments.last))
        var bytes = try FollowingTests.contents(last)
        func frameLength(at offset: Int) -> Int {
            Layout.legacyFrameHeaderSize + Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) })
        }
        var end = Layout.legacySegmentHeaderSize
        while end + Layout.legacyFrameHeaderSize <= bytes.count, frameLength(at: end) > Layout.legacyFrameHeaderSize { end += frameLength(at: end) }
        let first = Array(bytes[Layout.legacySegmentHeaderSize..<Layout.legacySegmentHeaderSize + frameLength(at: Layout.legacySegmentHeaderSize)])
        if bytes.count < end + first.count { bytes += [UInt8](repeating: 0, count: end + first.count - bytes.count) }
        bytes.replaceSubrange(end..<end + first.count, with: first)
        try Data(bytes).write(to: URL(fileURLWithPath: last))
        func files() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != Layout.lockFileName }.sorted()
        }
        let before = try files()
        #expect(throws: StoreError.self) { try EventLog.upgrade(at: directory.path) }
        #expect(try files() == before)
        #expect(try FollowingTests.contents(last) == bytes)
    }

    // A compaction that committed and crashed before it removed the old set leaves it beside
    // the new one; the next writable open removes it. It did so before its scan, so when the
    // new set turned out damaged the old set, the only intact copy of those events, was gone.
    // It is removed only once the scan found no damage.
    @Test(arguments: [false, true])
    func aCompactionsOldSetStaysUntilTheNewOneIsFoundWhole(newSetDamaged: Bool) async throws {
        let directory = TemporaryDirectory("rewrite-old-set")
        defer { directory.remove() }
        _ = try await CompactionTests.populate(directory)
        let aside = TemporaryDirectory("rewrite-old-set-aside")
        defer { aside.remove() }
        try FileManager.default.createDirectory(atPath: aside.path, withIntermediateDirectories: true)
        let oldSet = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(Layout.segmentSuffix) }.sorted()
        for name in oldSet { try FileManager.default.copyItem(atPath: directory.file(name), toPath: aside.file(name)) }
        _ = try EventLog.compact(at: directory.path, options: CompactionTests.options)
        let newSet = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(Layout.segmentSuffix) }.sorted()
        #expect(Set(newSet).isDisjoint(with: oldSet), "a compaction writes new names")
        for name in oldSet { try FileManager.default.copyItem(atPath: aside.file(name), toPath: directory.file(name)) }
        try? FileManager.default.removeItem(atPath: directory.file(Layout.indexName))
        if newSetDamaged {
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory.file(newSet[0])))
            try handle.seek(toOffset: UInt64(Layout.segmentHeaderSize + 100))
            let byte = try #require(try handle.read(upToCount: 1)).first!
            try handle.seek(toOffset: UInt64(Layout.segmentHeaderSize + 100))
            try handle.write(contentsOf: Data([byte ^ 0x5A]))
            try handle.close()
        }
        let log = try Fixture.open(directory, segmentSize: 8192)
        #expect(log.damageFoundAtOpen.isEmpty == !newSetDamaged)
        log.close()
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(Layout.segmentSuffix) }.sorted()
        #expect(left == (newSetDamaged ? (oldSet + newSet).sorted() : newSet), "\(left)")
    }

    // A segment file with another salt than the manifest lists is not the store's: a writable
    // open refuses it, and it extended the file to its capacity first.
    @Test func aSegmentFileWithAnotherSaltIsLeftAsItIs() async throws {
        let directory = TemporaryDirectory("rewrite-salt")
        defer { directory.remove() }
        let other = TemporaryDirectory("rewrite-salt-other")
        defer { other.remove() }
        for store in [directory, other] {
            let log = try Fixture.open(store, segmentSize: 65536)
            try await log.append(Fixture.events(3), to: "a")
            log.close()
        }
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).first { $0.hasSuffix(Layout.segmentSuffix) })
        // Shorter than its capacity, as a copy that dropped the zeros after the frames.
        try FileManager.default.removeItem(atPath: directory.file(name))
        try Data(try FollowingTests.contents(other.file(name)).prefix(8192)).write(to: URL(fileURLWithPath: directory.file(name)))
        let before = try FollowingTests.contents(directory.file(name))
        let log = try Fixture.open(directory, segmentSize: 65536)
        #expect(log.damageFoundAtOpen.contains { $0.description.contains("another salt") }, "\(log.damageFoundAtOpen)")
        log.close()
        #expect(try FollowingTests.contents(directory.file(name)) == before)
    }

    // Values read from disk are bounded before arithmetic: a manifest whose generation is near
    // UInt64.max (valid checksum) trapped the writer's next roll; a segment name with an
    // 11-digit generation is not a segment name.
    @Test func aForgedGenerationIsDamageNotATrap() async throws {
        let directory = TemporaryDirectory("rewrite-generation")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 8192)
        try await log.append(Fixture.events(3), to: "a")
        let listed = log.segmentNames
        log.close()
        guard case .intact(let manifest) = try StoreFiles.readManifest(in: directory.path) else {
            Issue.record("no intact manifest")
            return
        }
        try StoreFiles.writeManifest(Manifest(generation: .max, segments: manifest.segments), in: directory.path)
        guard case .damaged(let reason) = try StoreFiles.readManifest(in: directory.path) else {
            Issue.record("a manifest of generation UInt64.max was read as intact")
            return
        }
        #expect(reason.contains("generation"), "\(reason)")
        let reopened = try Fixture.open(directory, segmentSize: 8192)
        #expect(reopened.damageFoundAtOpen.contains { $0.description.contains("generation") }, "\(reopened.damageFoundAtOpen)")
        #expect(reopened.segmentNames == listed)
        reopened.close()
        #expect(Layout.SegmentName(fileName: "00000000000000000000-9999999999.dseg")?.generation == 9_999_999_999)
        #expect(Layout.SegmentName(fileName: "00000000000000000000-10000000000.dseg") == nil)
        #expect(Layout.SegmentName(fileName: "00000000000000000000-9223372036854775807.dseg") == nil)
    }
}
