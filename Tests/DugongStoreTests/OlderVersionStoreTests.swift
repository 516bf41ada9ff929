import Dugong
@testable import DugongStore
import Foundation
import Testing

/// Stores written by format versions 3 (raw DEFLATE frames) and 4 (Zstandard frames only),
/// committed as those builds left them (`Fixtures/v3-store`, `Fixtures/v4-store`: the same
/// events, by `tools/callgrind`'s `Harness fixture`: commits of 100, 40, 2 and 1 events,
/// metadata, incompressible bytes, 32 KiB segments with dictionaries), and every event as each
/// build read it back (`v3-store.events.tsv`, `v4-store.events.tsv`). This build reads them as
/// they were, writes on in segments of the current version, and compaction converts them.
@Suite("Stores of older format versions")
struct OlderVersionStoreTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The format versions of the fixtures.
    static let versions: [UInt16] = [3, 4]

    /// The events of the fixture of `version` as the build of that version read them.
    static func expectedEvents(_ version: UInt16) throws -> [StoredEvent] {
        let text = try String(contentsOf: fixtures.appendingPathComponent("v\(version)-store.events.tsv"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 8, let version = Int(fields[1]), let position = UInt64(fields[2]),
                let id = UUID(uuidString: fields[3]), let milliseconds = Int64(fields[5]),
                let data = Data(base64Encoded: fields[6]), let metadata = Data(base64Encoded: fields[7])
            else { throw FixtureProblem(line: String(line)) }
            return StoredEvent(
                stream: fields[0], version: version, position: position, id: id, type: fields[4],
                timestampMilliseconds: milliseconds, data: data, metadata: metadata, endsCommit: false)
        }
    }

    struct FixtureProblem: Error { let line: String }

    /// A copy of the fixture of `version` in a temporary directory.
    static func copy(_ version: UInt16) throws -> TemporaryDirectory {
        let directory = TemporaryDirectory("v\(version)-store")
        try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("v\(version)-store").path, toPath: directory.path)
        return directory
    }

    static func segmentVersions(in directory: TemporaryDirectory) throws -> [UInt16?] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted().map { name in
            try Data(contentsOf: URL(fileURLWithPath: directory.file(name))).withUnsafeBytes { SegmentHeader.version(of: $0) }
        }
    }

    /// Every field but `endsCommit` (the fixture's listing does not carry it).
    static func same(_ read: [StoredEvent], _ expected: [StoredEvent]) -> Bool {
        read.count == expected.count && zip(read, expected).allSatisfy { read, expected in
            var read = read
            read.endsCommit = false
            return read == expected
        }
    }

    @Test(arguments: versions, [true, false])
    func itReadsAsItsOwnBuildReadIt(version: UInt16, useIndexFile: Bool) throws {
        let expected = try Self.expectedEvents(version)
        #expect(expected.count == 1_171)
        let directory = try Self.copy(version)
        defer { directory.remove() }
        let segments = try Self.segmentVersions(in: directory)
        #expect(segments.count >= 3 && segments.allSatisfy { $0 == version })
        var options = EventLog.Options()
        options.useIndexFile = useIndexFile
        options.readOnly = true
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        #expect(log.recovery.corruptions.isEmpty && log.recovery.tornBytesDiscarded == 0)
        #expect(Self.same(try log.readAll(), expected))
        // Stream reads, copied and lent (the lending read decompresses into a scratch buffer).
        for stream in Set(expected.map(\.stream)) {
            let mine = expected.filter { $0.stream == stream }
            #expect(Self.same(try log.read(stream: stream), mine))
            var lent: [StoredEvent] = []
            try log.forEachEvent(in: stream) { lent.append($0.stored) }
            #expect(Self.same(lent, mine))
        }
        #expect(try log.verify().isClean)
    }

    @Test(arguments: versions)
    func itIsWrittenOnInSegmentsOfTheCurrentVersion(version: UInt16) async throws {
        let expected = try Self.expectedEvents(version)
        let directory = try Self.copy(version)
        defer { directory.remove() }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        let before = try names.map { try Data(contentsOf: URL(fileURLWithPath: directory.file($0))) }
        var log = try EventLog.open(at: directory.path)
        var generator = SyntheticEvents(seed: 4)
        let added = (0..<150).map { generator.event(stream: 1, at: 1_764_600_000_000 + Int64($0)) }
        try await log.append(Array(added[..<100]), to: "account/1")
        try await log.append(Array(added[100...]), to: "fresh")
        log.close()
        let old = [UInt16?](repeating: version, count: names.count)
        #expect(try Self.segmentVersions(in: directory) == old + [Layout.formatVersion])
        let reader = try EventLog.open(at: directory.path, options: { var options = EventLog.Options(); options.readOnly = true; return options }())
        #expect(try reader.statistics().segments.map(\.formatVersion) == old.map { Int($0!) } + [EventLog.formatVersion])
        reader.close()
        // The older segments are as they were: nothing was written into them.
        #expect(try names.map { try Data(contentsOf: URL(fileURLWithPath: directory.file($0))) } == before)
        log = try EventLog.open(at: directory.path)
        defer { log.close() }
        let all = try log.readAll()
        #expect(Self.same(Array(all.prefix(expected.count)), expected))
        #expect(all.dropFirst(expected.count).map(\.id) == added.map(\.id))
        #expect(all.dropFirst(expected.count).map(\.data) == added.map(\.data))
        #expect(try log.read(stream: "account/1").suffix(100).map(\.id) == added.prefix(100).map(\.id))
        #expect(try log.verify().isClean)
    }

    @Test(arguments: versions)
    func compactionConvertsItToTheCurrentVersion(version: UInt16) throws {
        let expected = try Self.expectedEvents(version)
        let directory = try Self.copy(version)
        defer { directory.remove() }
        let report = try EventLog.compact(at: directory.path)
        #expect(report.eventsBefore == expected.count && report.eventsAfter == expected.count)
        let versions = try Self.segmentVersions(in: directory)
        #expect(!versions.isEmpty && versions.allSatisfy { $0 == Layout.formatVersion })
        let log = try EventLog.open(at: directory.path)
        defer { log.close() }
        #expect(Self.same(try log.readAll(), expected))
        #expect(try log.verify().isClean)
    }
}
