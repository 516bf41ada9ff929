import Dugong
@testable import DugongStore
import Foundation
import Testing

@Suite("The index file")
struct IndexFileTests {
    /// Everything a reader can observe of a store.
    static func observe(_ log: EventLog) throws -> String {
        var lines: [String] = []
        lines += try log.readAll(maxCount: 100_000).map { "\($0.position) \($0.stream) \($0.version) \($0.id)" }
        for stream in try log.streamNames() {
            let info = try log.info(stream: stream)
            let snapshot = try log.latestSnapshot(of: stream)
            let events = (try? log.read(stream: stream).map(\.version)) ?? []
            lines.append("\(stream) \(String(describing: info)) \(snapshot?.version ?? -1) \(events)")
        }
        lines.append("categories \(try log.streams(inCategory: "s")) \(try log.streams(inCategory: "t"))")
        let stats = try log.statistics()
        lines.append("\(log.headPosition) \(log.eventCount) \(stats.frameBytes) \(stats.rawPayloadBytes) \(stats.streams)")
        return lines.joined(separator: "\n")
    }

    static func populate(_ directory: TemporaryDirectory) async throws {
        let log = try Fixture.open(directory, segmentSize: 8192)
        for round in 0..<60 {
            try await log.append(Fixture.events(1 + round % 3, size: 40), to: round % 4 == 0 ? "t/\(round % 3)" : "s/\(round % 5)")
        }
        try await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: 3, data: Data("x".utf8)))
        try await log.truncate(stream: "s/2", before: 3)
        try await log.delete(stream: "s/3")
        try await log.tombstone(stream: "t/1")
        log.close()
    }

    @Test func aStoreOpenedFromItsIndexLooksExactlyAsAFullScanShowsIt() async throws {
        let directory = TemporaryDirectory("index")
        defer { directory.remove() }
        try await Self.populate(directory)
        #expect(FileManager.default.fileExists(atPath: directory.file("dugong.index")))
        let scanned = try Fixture.open(directory, segmentSize: 8192, useIndexFile: false)
        let expected = try Self.observe(scanned)
        scanned.close()
        var indexed = try Fixture.open(directory, segmentSize: 8192)
        #expect(try Self.observe(indexed) == expected)
        // Appends after an indexed open continue where they should, and the next open agrees.
        try await indexed.append(Fixture.events(2), to: "s/4")
        indexed.close()
        indexed = try Fixture.open(directory, segmentSize: 8192)
        let afterAppend = try Self.observe(indexed)
        indexed.close()
        let rescanned = try Fixture.open(directory, segmentSize: 8192, useIndexFile: false)
        let full = try Self.observe(rescanned)
        #expect(full == afterAppend, "\(zip(full.split(separator: "\n"), afterAppend.split(separator: "\n")).filter { $0 != $1 })")
        rescanned.close()
    }

    @Test func eventsAppendedAfterTheIndexWasSavedAreScanned() async throws {
        let directory = TemporaryDirectory("index-tail")
        defer { directory.remove() }
        try await Self.populate(directory)
        let saved = try Data(contentsOf: URL(fileURLWithPath: directory.file("dugong.index")))
        var log = try Fixture.open(directory, segmentSize: 8192)
        for round in 0..<30 { try await log.append(Fixture.events(2, size: 40), to: "s/\(round % 5)") }
        log.close()
        log = try Fixture.open(directory, segmentSize: 8192, useIndexFile: false)
        let expected = try Self.observe(log)
        log.close()
        // As if the process had died before saving a new index: the old one covers a prefix
        // (and the head has moved on, so it is not used).
        try saved.write(to: URL(fileURLWithPath: directory.file("dugong.index")))
        log = try Fixture.open(directory, segmentSize: 8192)
        defer { log.close() }
        #expect(try Self.observe(log) == expected)
    }

    /// An index file is untrusted even when its checksum holds (a file written by something else,
    /// or damage that a checksum recomputed over it hides): a position delta near 2^64 once
    /// overflowed the running sum and trapped. It is refused now, and the open scans instead.
    @Test func aSavedPositionPastTheEndIsRefusedWithoutOverflow() async throws {
        let directory = TemporaryDirectory("index-overflow")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        let events = Fixture.events(2)
        try await log.append(events, to: "victim")
        log.close()
        let path = directory.file("dugong.index")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // After the stream's name: truncate-before 0, snapshots-hidden 0, flags 4 (a last id), the
        // id, removed-through 0, 2 positions: deltas 0 and 1.
        let name = Array("victim".utf8)
        let start = try #require((1...(bytes.count - name.count)).first { bytes[$0 - 1] == UInt8(name.count) && Array(bytes[$0..<$0 + name.count]) == name })
        let deltas = start + name.count + 3 + 16 + 1
        #expect(Array(bytes[deltas..<deltas + 3]) == [2, 0, 1], "the layout this test expects")
        // Deltas 1 and 2^64 - 1 (ten bytes of varint): their sum passes 2^64. The checksum is made good.
        bytes[deltas + 1] = 1
        bytes.replaceSubrange(deltas + 2..<deltas + 3, with: [UInt8](repeating: 0xFF, count: 9) + [0x01])
        bytes.removeLast(4)
        let crc = bytes.withUnsafeBytes { Checksum.mask(Checksum.crc32c($0)) }
        withUnsafeBytes(of: crc.littleEndian) { bytes += $0 }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reopened = try Fixture.open(directory)
        defer { reopened.close() }
        #expect(try reopened.read(stream: "victim").map(\.id) == events.map(\.id))
    }

    @Test func aDamagedIndexFileIsIgnored() async throws {
        let directory = TemporaryDirectory("index-damaged")
        defer { directory.remove() }
        try await Self.populate(directory)
        let scanned = try Fixture.open(directory, segmentSize: 8192, useIndexFile: false)
        let expected = try Self.observe(scanned)
        scanned.close()
        let path = directory.file("dugong.index")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let log = try Fixture.open(directory, segmentSize: 8192)
        defer { log.close() }
        #expect(try Self.observe(log) == expected)
    }

    // Another store's index put in a store's directory: opens do not use it (its segments are
    // not these), and verification says so in a warning (a black-box run found it said nothing,
    // where README promises it says when the saved index does not describe the segments).
    @Test func verificationWarnsOfAnotherStoresIndex() async throws {
        let directory = TemporaryDirectory("index-foreign")
        let other = TemporaryDirectory("index-foreign-other")
        defer {
            directory.remove()
            other.remove()
        }
        try await Self.populate(directory)
        try await Self.populate(other)
        var options = InspectionTests.readOnly()
        options.useIndexFile = false
        func warnings() throws -> [EventLog.Finding] {
            let log = try EventLog.open(at: directory.path, options: options)
            defer { log.close() }
            let report = try log.verify()
            #expect(report.isClean, "\(report.problems)")
            return report.warnings.filter { $0.kind == .indexMismatch }
        }
        #expect(try warnings().isEmpty, "its own index")
        let before = try EventLog.open(at: directory.path, options: options)
        let expected = try before.readAll(maxCount: .max).map(\.id)
        before.close()
        try FileManager.default.removeItem(atPath: directory.file("dugong.index"))
        try FileManager.default.copyItem(atPath: other.file("dugong.index"), toPath: directory.file("dugong.index"))
        let found = try warnings()
        #expect(found.count == 1 && found.first?.message.contains("does not describe these segments") == true, "\(found)")
        // One that cannot be read is said to be so, with the reason (a black-box run: a
        // directory in its place, or a file of another user's, was "another store's").
        try FileManager.default.removeItem(atPath: directory.file("dugong.index"))
        try FileManager.default.createDirectory(atPath: directory.file("dugong.index"), withIntermediateDirectories: false)
        let unreadable = try warnings()
        #expect(unreadable.count == 1 && unreadable.first?.message.contains("dugong.index cannot be read (") == true
            && unreadable.first?.message.contains("Is a directory") == true, "\(unreadable)")
        try FileManager.default.removeItem(atPath: directory.file("dugong.index"))
        try FileManager.default.copyItem(atPath: other.file("dugong.index"), toPath: directory.file("dugong.index"))
        let log = try Fixture.open(directory, segmentSize: 8192)
        #expect(try log.readAll(maxCount: .max).map(\.id) == expected)
        log.close()
        #expect(try warnings().isEmpty, "replaced at the writer's clean close")
    }

    @Test func damageInAFrameTheIndexCoversIsCaughtOnReadAndByVerify() async throws {
        let directory = TemporaryDirectory("index-frame-damage")
        defer { directory.remove() }
        try await Self.populate(directory)
        let name = "00000000000000000000.dseg"
        let offset = try Fixture.frameOffsets(of: directory.file(name))[3]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file(name)))
        bytes[offset + 40] ^= 0x08
        try bytes.write(to: URL(fileURLWithPath: directory.file(name)))
        let log = try Fixture.open(directory, segmentSize: 8192)
        #expect(log.recovery.corruptions.isEmpty, "the index is trusted at open")
        #expect {
            // The events before the damaged frame come first; the read that reaches it throws.
            var next: UInt64 = 0
            while let last = try log.readAll(from: next, maxCount: 1000).last { next = last.position + 1 }
        } throws: { error in
            guard case .corruption(let segment, let at, _) = error as? StoreError else { return false }
            return segment == name && at == offset
        }
        log.close()
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = false
        let verifying = try EventLog.open(at: directory.path, options: options)
        defer { verifying.close() }
        #expect(try verifying.verify().problems.contains { $0.segment == name && $0.offset == offset })
    }

    /// A damaged dictionary frame is damage to the frames compressed with its dictionary
    /// (FORMAT.md §8), whether the store is opened from its index file, which holds a copy of
    /// each dictionary, or by a full scan: the index is trusted for speed only. (An open from the
    /// index read every event with the copy and reported nothing, a scan stopped at the damage.)
    @Test func aDamagedDictionaryFrameIsDamageWithTheIndexFileAsWithout() async throws {
        let directory = TemporaryDirectory("index-dictionary-damage")
        defer { directory.remove() }
        let log = try Fixture.open(directory, segmentSize: 8192)
        for round in 0..<120 {
            try await log.append(Fixture.events(1 + round % 2, size: 60), to: "s/\(round % 5)")
        }
        log.close()
        // A later segment's dictionary frame: the first frame of a segment after the first, if
        // it holds a dictionary record and no event.
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        var damaged: (name: String, offset: Int)?
        for name in names.dropFirst() where damaged == nil {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file(name)))
            let records = try bytes.withUnsafeBytes { raw -> [Record] in
                let salt = try SegmentHeader(decoding: raw).salt
                guard case .frame(let header) = FrameReader.probe(raw, at: 128, salt: salt), header.eventCount == 0 else { return [] }
                return try FrameReader.records(of: header, in: raw, at: 128, dictionary: [], formatVersion: Layout.formatVersion)
            }
            if records.contains(where: { if case .dictionary = $0 { true } else { false } }) { damaged = (name, 128) }
        }
        let (name, offset) = try #require(damaged, "a later segment starts with a dictionary frame")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file(name)))
        bytes[offset + 60] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: directory.file(name)))
        /// The events read in log order before the first error, and where that error is.
        func readThrough(useIndexFile: Bool) throws -> (count: Int, damage: String?) {
            var options = EventLog.Options()
            options.readOnly = true
            options.useIndexFile = useIndexFile
            let log = try EventLog.open(at: directory.path, options: options)
            defer { log.close() }
            var count = 0
            var next: UInt64 = 0
            do {
                while true {
                    let after = try log.forEachEvent(from: next, maxCount: 1000) { _ in count += 1 }
                    if after == next { return (count, nil) }
                    next = after
                }
            } catch let error as StoreError {
                guard case .corruption(let segment, let at, _) = error else { throw error }
                return (count, "\(segment) \(at)")
            }
        }
        let scanned = try readThrough(useIndexFile: false)
        #expect(scanned.damage != nil, "the scan finds the damage")
        let indexed = try readThrough(useIndexFile: true)
        #expect(indexed.count == scanned.count && indexed.damage == scanned.damage, "indexed \(indexed), scanned \(scanned)")
    }
}
