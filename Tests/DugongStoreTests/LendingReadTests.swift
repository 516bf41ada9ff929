import Dugong
@testable import DugongStore
import Foundation
import Testing

@Suite("Lending reads")
struct LendingReadTests {
    /// A store with every kind of frame: tiny commits (uncompressed, then compressed with the
    /// segment's dictionary), large ones, several segments, interleaved streams, a deleted one.
    static func makeStore(_ directory: TemporaryDirectory) async throws -> EventLog {
        let log = try Fixture.open(directory, segmentSize: 64 << 10)
        for round in 0..<40 {
            try await log.append(Fixture.events(1, size: round % 3 * 40), to: "small/\(round % 5)")
            try await log.append(Fixture.events(round % 7 + 2, type: "Big", size: 300), to: "large/\(round % 3)")
        }
        try await log.append(Fixture.events(3), to: "gone/1")
        try await log.delete(stream: "gone/1")
        try await log.append(Fixture.events(1000, size: 20), to: "bulk/1")
        return log
    }

    /// A read keeps the dictionary it looked up for the frames after it: it asks the segment's
    /// list again for a frame outside the offsets that dictionary is in effect for, in another
    /// segment, or after the list changed (a torn batch's dictionary forgotten, another written
    /// at the same offset).
    @Test func theDictionaryKeptForTheNextFramesIsTheOneInEffectThere() throws {
        let directory = TemporaryDirectory("dictionary-in-effect")
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        func segment(_ name: String) throws -> Segment {
            try Segment.create(
                directory: directory.path,
                header: SegmentHeader(firstPosition: 0, capacity: 1 << 16, createdMilliseconds: 0, salt: SegmentHeader.newSalt(), sequence: 1),
                name: name)
        }
        let first = try segment("a.dseg")
        let second = try segment("b.dseg")
        let one: [UInt8] = Array(repeating: 1, count: 40)
        let two: [UInt8] = Array(repeating: 2, count: 4096)
        let three: [UInt8] = Array(repeating: 3, count: 100)
        first.register(dictionary: one, at: 1000)
        first.register(dictionary: two, at: 5000)
        second.register(dictionary: three, at: 300)
        var kept = LentDictionary()
        func inEffect(_ offset: Int, _ segment: Segment) -> [UInt8] {
            let (bytes, check) = kept.inEffect(at: offset, in: segment)
            let expected = segment.dictionaryAndCheck(before: offset)
            #expect(check == expected.check, "check at \(offset)")
            return Array(bytes)
        }
        // Up the first segment, across both of its dictionaries' offsets, and back down.
        #expect(inEffect(128, first) == [])
        #expect(inEffect(1000, first) == [])
        #expect(inEffect(1001, first) == one)
        #expect(inEffect(5000, first) == one)
        #expect(inEffect(5001, first) == two)
        #expect(inEffect(60000, first) == two)
        #expect(inEffect(2000, first) == one)
        // Another segment at offsets the first one's answer covered.
        #expect(inEffect(2000, second) == three)
        #expect(inEffect(200, second) == [])
        #expect(inEffect(6000, first) == two)
        // The list changes under the kept answer: a later dictionary forgotten, another written.
        first.forgetDictionaries(from: 5000)
        #expect(inEffect(6000, first) == one)
        first.register(dictionary: three, at: 5000)
        #expect(inEffect(6000, first) == three)
        #expect(inEffect(4000, first) == one)
    }

    /// A read takes a frame's names again from the frame before when they are the same (the
    /// frames of a stream's commits): names longer than 16 bytes whose first and last 8 bytes
    /// and length agree are told apart byte for byte, as streams and as types, whichever order
    /// the frames come in.
    @Test func namesAlikeButForTheirMiddleAreToldApartFromFrameToFrame() async throws {
        let directory = TemporaryDirectory("names-alike")
        defer { directory.remove() }
        let log = try Fixture.open(directory)
        defer { log.close() }
        let streams = ["account/aaaaaaaa-1-zzzzzzzz", "account/aaaaaaaa-2-zzzzzzzz", "short/1"]
        let types = ["Deposited.v1.aaaaaa-X-bbbbbbbb", "Deposited.v1.aaaaaa-Y-bbbbbbbb", "T"]
        var random = SeededRandom(seed: 9)
        var expected: [(stream: String, type: String)] = []
        for _ in 0..<60 {
            let stream = streams[random.below(3)]
            let kinds = (0..<(1 + random.below(3))).map { _ in types[random.below(3)] }
            try await log.append(kinds.map { Fixture.events(1, type: $0)[0] }, to: stream)
            expected += kinds.map { (stream, $0) }
        }
        var lent: [(stream: String, type: String)] = []
        try log.forEachEvent { lent.append(($0.stream, $0.type)) }
        #expect(lent.map(\.stream) == expected.map(\.stream) && lent.map(\.type) == expected.map(\.type))
        for stream in streams {
            var read: [String] = []
            try log.forEachEvent(in: stream) { read.append($0.stream + " " + $0.type) }
            #expect(read == expected.filter { $0.stream == stream }.map { $0.stream + " " + $0.type })
        }
    }

    @Test func theLogLentInAnyPagesIsWhatReadAllReturns() async throws {
        let directory = TemporaryDirectory("lending")
        defer { directory.remove() }
        let log = try await Self.makeStore(directory)
        defer { log.close() }
        #expect(log.segmentNames.count > 1)
        let expected = try log.readAll(maxCount: 100_000)
        #expect(expected.count > 1000)
        for page in [1, 3, 64, 4096, Int.max] {
            var lent: [StoredEvent] = []
            var next: UInt64 = 0
            while true {
                let after = try log.forEachEvent(from: next, maxCount: page) { event in
                    let copy = event.stored
                    // Every accessor says what the copy says.
                    #expect(event.stream == copy.stream && event.version == copy.version && event.position == copy.position)
                    #expect(event.id == copy.id && event.type == copy.type && event.timestamp == copy.timestamp)
                    #expect(event.endsCommit == copy.endsCommit && event.data == copy.data && event.metadata == copy.metadata)
                    #expect(event.dataCount == copy.data.count && event.metadataCount == copy.metadata.count)
                    #expect(event.withData { Data($0) } == copy.data && event.withMetadata { Data($0) } == copy.metadata)
                    lent.append(copy)
                }
                if after == next { break }
                #expect(after == lent.last!.position + 1)
                next = after
            }
            #expect(lent == expected, "pages of \(page)")
        }
        // From the middle of a frame, and past the end.
        let middle = expected[expected.count / 2].position
        var fromMiddle: [StoredEvent] = []
        try log.forEachEvent(from: middle, maxCount: 10) { fromMiddle.append($0.stored) }
        #expect(fromMiddle == Array(try log.readAll(from: middle, maxCount: 10)))
        #expect(try log.forEachEvent(from: log.headPosition + 5) { _ in Issue.record("lent past the end") } == log.headPosition + 5)
        #expect(try log.forEachEvent(from: 0, maxCount: 0) { _ in Issue.record("lent with maxCount 0") } == 0)
    }

    @Test func aStreamLentIsWhatReadReturnsInEveryDirectionAndRange() async throws {
        let directory = TemporaryDirectory("lending-streams")
        defer { directory.remove() }
        let log = try await Self.makeStore(directory)
        defer { log.close() }
        for stream in ["small/0", "large/1", "bulk/1", "gone/1", "never/1"] {
            for (from, maxCount, direction) in [(nil, Int.max, EventLog.Direction.forward), (3, 5, .forward), (nil, 4, .backward), (7, 3, .backward)] {
                var lent: [StoredEvent] = []
                let count = try log.forEachEvent(in: stream, from: from, maxCount: maxCount, direction: direction) { lent.append($0.stored) }
                let read = try log.read(stream: stream, from: from, maxCount: maxCount, direction: direction)
                #expect(lent == read, "\(stream) from \(String(describing: from)) \(direction)")
                #expect(count == read.count)
            }
        }
    }

    struct Stop: Error {}

    /// Stream reads keep the last frames they decoded for the next reads (streams written
    /// together share frames): reads in every order, from many tasks at once, through cache
    /// misses and evictions, after a compaction replaced every frame, lend what `read` copies.
    @Test func streamReadsThroughTheFrameCacheLendWhatReadReturns() async throws {
        let directory = TemporaryDirectory("lending-cache")
        defer { directory.remove() }
        var log = try Fixture.open(directory)
        // Pipelined commits of 300 streams: frames of many streams each (and 2 uncompressed).
        var sent: [SentCommit] = []
        for round in 0..<3 {
            for stream in 0..<300 {
                sent.append(try log.send([EventLog.Append(stream: "s/\(stream)", events: Fixture.events(round + 1, size: 30))]))
            }
        }
        for commit in sent { _ = try await commit.commits() }
        try await log.append(Fixture.events(1, size: 2), to: "tiny/1")
        func check(_ log: EventLog, order: [Int]) throws {
            for stream in order {
                let expected = try log.read(stream: "s/\(stream)")
                #expect(expected.count == 6)
                var lent: [StoredEvent] = []
                try log.forEachEvent(in: "s/\(stream)") { lent.append($0.stored) }
                #expect(lent == expected, "s/\(stream)")
            }
            var tiny: [Int] = []
            try log.forEachEvent(in: "tiny/1") { tiny.append($0.dataCount) }
            #expect(tiny == (try log.read(stream: "tiny/1")).map(\.data.count))
        }
        try check(log, order: Array(0..<300))
        try check(log, order: (0..<300).shuffled())
        let copies = try (0..<300).map { try log.read(stream: "s/\($0)") }
        let lentConcurrently = try await withThrowingTaskGroup(of: (Int, [StoredEvent]).self) { group in
            for stream in 0..<300 {
                group.addTask { [log] in
                    var lent: [StoredEvent] = []
                    try log.forEachEvent(in: "s/\(stream)") { lent.append($0.stored) }
                    return (stream, lent)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect((0..<300).allSatisfy { lentConcurrently[$0] == copies[$0] })
        log.close()
        _ = try EventLog.compact(at: directory.path)
        log = try EventLog.open(at: directory.path)
        defer { log.close() }
        try check(log, order: (0..<300).shuffled())
    }

    @Test func whatTheClosureThrowsEndsTheReadAsItIs() async throws {
        let directory = TemporaryDirectory("lending-throws")
        defer { directory.remove() }
        let log = try await Self.makeStore(directory)
        defer { log.close() }
        var seen = 0
        #expect(throws: Stop.self) {
            try log.forEachEvent { _ in
                seen += 1
                if seen == 5 { throw Stop() }
            }
        }
        #expect(seen == 5)
        #expect(throws: Stop.self) { try log.forEachEvent(in: "bulk/1") { _ in throw Stop() } }
    }

    /// Zeroes 8 bytes in the middle of the fourth event frame (positions 30...39).
    static func damageFourthFrame(_ directory: TemporaryDirectory) throws {
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted().first)
        let offsets = try Fixture.eventFrameOffsets(of: directory.file(segment))
        let handle = try #require(FileHandle(forUpdatingAtPath: directory.file(segment)))
        try handle.seek(toOffset: UInt64(offsets[3] + 60))
        handle.write(Data(repeating: 0, count: 8))
        try handle.close()
    }

    /// Damage found at open (the scan), or only when the frame is read (it happened after).
    @Test(arguments: [true, false]) func eventsBeforeDamageAreLentAndTheNextReadReportsIt(damagedBeforeOpen: Bool) async throws {
        let directory = TemporaryDirectory("lending-damage")
        defer { directory.remove() }
        do {
            let log = try Fixture.open(directory, useIndexFile: false)
            for round in 0..<6 { try await log.append(Fixture.events(10, size: 50), to: "s/\(round)") }
            log.close()
        }
        if damagedBeforeOpen { try Self.damageFourthFrame(directory) }
        var options = EventLog.Options()
        options.readOnly = true
        options.useIndexFile = false
        let log = try EventLog.open(at: directory.path, options: options)
        defer { log.close() }
        if !damagedBeforeOpen { try Self.damageFourthFrame(directory) }
        var lent: [StoredEvent] = []
        let next = try log.forEachEvent { lent.append($0.stored) }
        #expect(lent.count == 30 && lent.map(\.position) == Array(0..<30))
        #expect(next == 30)
        #expect(throws: StoreError.self) { try log.forEachEvent(from: next) { _ in } }
        #expect(throws: StoreError.self) { try log.forEachEvent(in: "s/3") { _ in } }
        // After the damage, reading goes on from the next frame, as readAll does.
        var after: [StoredEvent] = []
        try log.forEachEvent(from: 40) { after.append($0.stored) }
        #expect(after == (try log.readAll(from: 40)))
    }
}
