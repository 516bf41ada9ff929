import Dugong
@testable import DugongStore
import Foundation
import Testing

/// Continuation records (FORMAT.md §6.1a, format version 3): an event that continues the frame's
/// previous event record stores only its id, type (when it changes), timestamp delta, data and
/// metadata. Whatever the writer chose, a reader must get back exactly the events written.
@Suite("Continuation records")
struct ContinuationTests {
    static func event(
        _ stream: String, _ version: Int, _ position: UInt64, type: String = "T", at timestamp: Int64 = 0, ends: Bool = true,
        data: String = "{}", metadata: String = ""
    ) -> StoredEvent {
        StoredEvent(
            stream: stream, version: version, position: position, id: UUID(), type: type, timestampMilliseconds: timestamp,
            data: Data(data.utf8), metadata: Data(metadata.utf8), endsCommit: ends)
    }

    /// Seals `builder` uncompressed-or-not as the engine would, probes and decodes it as a
    /// segment of `formatVersion` would.
    static func decode(_ builder: FrameBuilder, formatVersion: UInt16 = Layout.formatVersion) throws -> [Record] {
        try decode(builder.sealed(formatVersion: formatVersion).encoded(salt: 5, offset: 0), formatVersion: formatVersion)
    }

    static func decode(_ frame: [UInt8], formatVersion: UInt16 = Layout.formatVersion) throws -> [Record] {
        try frame.withUnsafeBytes { bytes in
            guard case .frame(let header) = FrameReader.probe(bytes, at: 0, salt: 5) else { throw FrameDamage("not a frame") }
            return try FrameReader.records(of: header, in: bytes, at: 0, dictionary: [], formatVersion: formatVersion)
        }
    }

    /// A frame whose payload is `payload` as given (no compression), its checksum valid.
    static func frame(payload: PayloadBuffer, firstPosition: UInt64, events: UInt32, records: UInt32) -> [UInt8] {
        SealedFrame(
            stored: payload.bytes, rawLength: payload.count, isCompressed: false, isLZ4Block: false, usesDictionary: false, dictionaryCheck: 0,
            firstPosition: firstPosition, eventCount: events, recordCount: records, records: []
        ).encoded(salt: 5, offset: 0)
    }

    static func appendEvent(to payload: inout PayloadBuffer, version: Int = 1, endsCommit: Bool) {
        payload.appendEvent(
            endsCommit: endsCommit, positionDelta: 0, stream: "a", version: version, id: UUID(), type: "T", timestampMilliseconds: 0,
            data: Data(), metadata: Data())
    }

    static func appendContinuation(to payload: inout PayloadBuffer) {
        payload.appendContinuation(endsCommit: true, id: UUID(), type: nil, timestampDelta: 0, data: Data(), metadata: Data())
    }

    @Test func everyMixOfStreamsTypesTimestampsAndGapsRoundTrips() throws {
        var generator = SystemRandomNumberGenerator()
        let extremes: [Int64] = [0, 1, -1, .max, .min, .max - 1, .min + 1, 1_732_862_695_123]
        for trial in 0..<300 {
            var builder = FrameBuilder(nextPosition: 10)
            var written: [Record] = []
            var versions: [String: Int] = [:]
            var position: UInt64 = 10
            var timestamp: Int64 = 1_732_862_695_123
            for _ in 0..<Int.random(in: 1...40, using: &generator) {
                if Int.random(in: 0..<12, using: &generator) == 0 {
                    let snapshot = StoredSnapshot(stream: "s/0", version: 1, data: Data("x".utf8))
                    builder.append(snapshot)
                    written.append(.snapshot(snapshot))
                    continue
                }
                let stream = "s/\(Int.random(in: 0..<3, using: &generator))"
                let version = versions[stream, default: 0] + 1
                versions[stream] = version
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: timestamp = extremes.randomElement(using: &generator)!
                case 1: timestamp &+= Int64.random(in: -1000...1000, using: &generator)
                default: break
                }
                let event = Self.event(
                    stream, version, position, type: ["T", "T", "Opened", String(repeating: "é", count: 100)].randomElement()!,
                    at: timestamp, ends: Bool.random(using: &generator), data: trial % 2 == 0 ? "{\"n\":\(position)}" : "",
                    metadata: Bool.random(using: &generator) ? "" : "m")
                builder.appendKeepingPosition(event)
                written.append(.event(event))
                position += UInt64.random(in: 1...2, using: &generator)  // a gap now and then (compaction's survivors)
            }
            #expect(try Self.decode(builder) == written, "trial \(trial)")
            #expect(IndexRecord.grouping(try Self.decode(builder)) == builder.records, "trial \(trial)")
        }
    }

    @Test func theWriterStoresEveryEventAfterACommitsFirstAsAContinuation() throws {
        let events = (0..<5).map { NewEvent(type: $0 == 2 ? "Other" : "T", timestamp: Date(millisecondsSince1970: 100 - Int64($0)), data: Data("{}".utf8)) }
        var builder = FrameBuilder(nextPosition: 0)
        builder.append(events, stream: "a", firstVersion: 1)
        builder.append(Array(events.prefix(2)), stream: "a", firstVersion: 6)  // the same stream's next commit continues too
        builder.append(Array(events.prefix(1)), stream: "b", firstVersion: 1)  // another stream starts with an event record
        let decoded = try Self.decode(builder)
        let expected: [Record] = (0..<5).map { index in
            .event(StoredEvent(
                stream: "a", version: index + 1, position: UInt64(index), id: events[index].id, type: events[index].type,
                timestampMilliseconds: 100 - Int64(index), data: Data("{}".utf8), metadata: Data(), endsCommit: index == 4))
        } + (0..<2).map { index in
            .event(StoredEvent(
                stream: "a", version: 6 + index, position: UInt64(5 + index), id: events[index].id, type: events[index].type,
                timestampMilliseconds: 100 - Int64(index), data: Data("{}".utf8), metadata: Data(), endsCommit: index == 1))
        } + [.event(StoredEvent(
            stream: "b", version: 1, position: 7, id: events[0].id, type: "T", timestampMilliseconds: 100, data: Data("{}".utf8),
            metadata: Data(), endsCommit: true))]
        #expect(decoded == expected)
        // Only the first event of "a" and the one of "b" are event records: 2 × 0x01, 6 × 0x06.
        var payload = builder.payload.bytes[...]
        var kinds: [UInt8] = []
        for record in decoded {
            guard case .event(let event) = record else { continue }
            kinds.append(payload.first!)
            let named = payload.first == Layout.RecordType.event.rawValue ? 1 + 1 + 1 + 1 + event.stream.utf8.count + 1 + 1 + event.type.utf8.count + 8 : 2
            let typed = payload.first == Layout.RecordType.continuation.rawValue && payload.dropFirst().first! & Layout.continuationSameType == 0
                ? 1 + event.type.utf8.count : 0
            let delta = payload.first == Layout.RecordType.continuation.rawValue ? 1 : 0
            payload = payload.dropFirst(named + 16 + typed + delta + 1 + event.data.count + 1 + event.metadata.count)
        }
        #expect(payload.isEmpty)
        #expect(kinds == [1, 6, 6, 6, 6, 6, 6, 1])
        // A lone event continues nothing.
        var single = FrameBuilder(nextPosition: 0)
        single.append([events[0]], stream: "a", firstVersion: 1)
        #expect(single.payload.bytes.first == Layout.RecordType.event.rawValue)
    }

    @Test func aContinuationWithoutAnEventBeforeItOrInAVersionTwoSegmentIsDamage() throws {
        var builder = FrameBuilder(nextPosition: 0)
        builder.append(Self.event("a", 1, 0, ends: false))
        builder.append(Self.event("a", 2, 1))
        #expect(try Self.decode(builder).count == 2)
        #expect(throws: FrameDamage.self) { try Self.decode(builder, formatVersion: 2) }
        // First in its frame.
        var alone = PayloadBuffer()
        Self.appendContinuation(to: &alone)
        #expect(throws: FrameDamage.self) { try Self.decode(Self.frame(payload: alone, firstPosition: 0, events: 1, records: 1)) }
        // After a record that is not an event.
        var afterSnapshot = PayloadBuffer()
        Self.appendEvent(to: &afterSnapshot, endsCommit: true)
        var snapshot = ByteWriter(capacity: 16)
        snapshot.snapshot(StoredSnapshot(stream: "a", version: 1, data: Data()))
        snapshot.bytes.withUnsafeBytes { afterSnapshot.append($0) }
        Self.appendContinuation(to: &afterSnapshot)
        #expect(throws: FrameDamage.self) { try Self.decode(Self.frame(payload: afterSnapshot, firstPosition: 0, events: 2, records: 3)) }
        // Unknown flag bits.
        var flagged = PayloadBuffer()
        Self.appendEvent(to: &flagged, endsCommit: false)
        let good = flagged.count
        Self.appendContinuation(to: &flagged)
        #expect(try Self.decode(Self.frame(payload: flagged, firstPosition: 0, events: 2, records: 2)).count == 2)
        var bytes = flagged.bytes
        bytes[good + 1] |= 0x04
        var patched = PayloadBuffer()
        bytes.withUnsafeBytes { patched.append($0) }
        #expect(throws: FrameDamage.self) { try Self.decode(Self.frame(payload: patched, firstPosition: 0, events: 2, records: 2)) }
        // A version past 2^62 - 1 through continuations.
        var high = PayloadBuffer()
        Self.appendEvent(to: &high, version: Layout.maximumVersion, endsCommit: false)
        Self.appendContinuation(to: &high)
        #expect(throws: FrameDamage.self) { try Self.decode(Self.frame(payload: high, firstPosition: 0, events: 2, records: 2)) }
    }

    /// Decodes `frame` with the lending reads' decoder (into reused room, names kept across
    /// frames), as a read of a segment of `formatVersion` would.
    static func lend(_ frame: [UInt8], formatVersion: UInt16 = Layout.formatVersion) throws -> Int {
        try frame.withUnsafeBytes { bytes in
            guard case .frame(let header) = FrameReader.probe(bytes, at: 0, salt: 5) else { throw FrameDamage("not a frame") }
            var names = NameTable()
            var events = FrameEvents()
            var frameNames = FrameNames()
            var scratch = ScratchBuffer()
            try FrameReader.eventFields(
                of: header, in: bytes, at: 0, dictionary: (UnsafeRawBufferPointer(start: nil, count: 0), 0), scratch: &scratch,
                formatVersion: formatVersion, names: &names, into: &events, frameNames: &frameNames)
            return events.count
        }
    }

    /// Frames whose checksums are valid but whose records do not hold together are damage to
    /// every decoder: the copying one (`records`), the events-only one and the lending one, which
    /// has a fast path of its own for continuation records. (Found by review: the fast path once
    /// read a data length that ran past the payload again from the data's first bytes, and so
    /// decoded an event from a damaged frame; the lending decoder trapped on a frame too short
    /// for its header's events and on an unknown record after the header's last event.)
    @Test func recordsThatDoNotHoldTogetherAreDamageToEveryDecoder() throws {
        func expectDamage(_ payload: [UInt8], events: UInt32, records: UInt32, _ comment: Comment) {
            var buffer = PayloadBuffer()
            payload.withUnsafeBytes { buffer.append($0) }
            let frame = Self.frame(payload: buffer, firstPosition: 0, events: events, records: records)
            #expect(throws: FrameDamage.self, comment) { try Self.decode(frame) }
            #expect(throws: FrameDamage.self, comment) {
                try frame.withUnsafeBytes { bytes in
                    guard case .frame(let header) = FrameReader.probe(bytes, at: 0, salt: 5) else { throw FrameDamage("not a frame") }
                    return try FrameReader.events(of: header, in: bytes, at: 0, dictionary: [], formatVersion: Layout.formatVersion)
                }
            }
            #expect(throws: FrameDamage.self, comment) { try Self.lend(frame) }
        }
        var first = PayloadBuffer()
        Self.appendEvent(to: &first, endsCommit: false)
        let event = first.bytes
        let id = [UInt8](repeating: 7, count: 16)
        // A continuation (ends a commit, same type), timestamp delta 0, then lengths that run past
        // the payload: data of 5 with 3 bytes left, data of 128 (two bytes) with 2 left, and
        // metadata of 2 with 1 left.
        expectDamage(event + [0x06, 0x03] + id + [0x00, 0x05, 0x01, 0x41, 0x00], events: 2, records: 2, "data of 5, 3 bytes left")
        expectDamage(event + [0x06, 0x03] + id + [0x00, 0x80, 0x01, 0x00, 0x00], events: 2, records: 2, "data of 128, 2 left")
        expectDamage(event + [0x06, 0x03] + id + [0x00, 0x00, 0x02, 0x00], events: 2, records: 2, "metadata of 2, 1 left")
        // A new type whose length runs past the payload.
        expectDamage(event + [0x06, 0x01] + id + [0x09, 0x54], events: 2, records: 2, "type of 9, 1 left")
        // The same records whole decode (the damage above is the lengths, nothing else).
        var whole = PayloadBuffer()
        (event + [0x06, 0x03] + id + [0x00, 0x01, 0x41, 0x00]).withUnsafeBytes { whole.append($0) }
        #expect(try Self.lend(Self.frame(payload: whole, firstPosition: 0, events: 2, records: 2)) == 2)
        #expect(try Self.decode(Self.frame(payload: whole, firstPosition: 0, events: 2, records: 2)).count == 2)
        // A payload too short for any event, its header saying one.
        expectDamage([0x01], events: 1, records: 1, "one byte, one event")
        // An unknown record type: alone, and after the header's last event.
        expectDamage([0x00], events: 0, records: 1, "unknown type, no events")
        expectDamage(event + [0x07], events: 1, records: 2, "unknown type after the last event")
        // More events than the header says, and more than the room first made for them.
        var many = PayloadBuffer()
        Self.appendEvent(to: &many, endsCommit: false)
        for _ in 0..<300 { Self.appendContinuation(to: &many) }
        #expect(try Self.lend(Self.frame(payload: many, firstPosition: 0, events: 301, records: 301)) == 301)
        expectDamage(many.bytes, events: 300, records: 301, "301 events, header says 300")
        expectDamage(many.bytes, events: 2, records: 301, "301 events, header says 2")
    }

    /// Every name and version a reader takes from a frame is bounded as the writer bounds it: a
    /// frame that breaks a bound (by a bug or a hand edit, its checksum valid) is damage.
    @Test func namesAndVersionsOutOfBoundsAreDamage() throws {
        func frame(stream: String = "a", type: String = "T", version: Int = 1, continued: String?? = .none) -> [UInt8] {
            var payload = PayloadBuffer()
            payload.appendEvent(
                endsCommit: continued == nil, positionDelta: 0, stream: stream, version: version, id: UUID(), type: type,
                timestampMilliseconds: 0, data: Data(), metadata: Data())
            if case .some(let type) = continued {
                payload.appendContinuation(endsCommit: true, id: UUID(), type: type, timestampDelta: 0, data: Data(), metadata: Data())
            }
            return Self.frame(payload: payload, firstPosition: 0, events: continued == nil ? 1 : 2, records: continued == nil ? 1 : 2)
        }
        #expect(try Self.decode(frame()).count == 1)
        #expect(try Self.decode(frame(stream: String(repeating: "s", count: 1024), type: String(repeating: "t", count: 1024))).count == 1)
        #expect(try Self.decode(frame(version: Layout.maximumVersion)).count == 1)
        #expect(try Self.decode(frame(version: Layout.maximumVersion - 1, continued: .some(nil))).count == 2)
        let damaged: [(String, [UInt8])] = [
            ("empty stream", frame(stream: "")), ("stream of 1025 bytes", frame(stream: String(repeating: "s", count: 1025))),
            ("NUL in a stream", frame(stream: "a\u{0}b")), ("empty type", frame(type: "")),
            ("type of 1025 bytes", frame(type: String(repeating: "t", count: 1025))), ("NUL in a type", frame(type: "T\u{0}")),
            ("continuation's empty type", frame(continued: .some(""))),
            ("continuation's type of 1025 bytes", frame(continued: .some(String(repeating: "t", count: 1025)))),
            ("version 2^62", frame(version: Layout.maximumVersion + 1)),
            ("continuation to version 2^62", frame(version: Layout.maximumVersion, continued: .some(nil))),
        ]
        for (what, bytes) in damaged {
            #expect(throws: FrameDamage.self, "\(what)") { try Self.decode(bytes) }
        }
    }

    /// Names are compared byte for byte (FORMAT.md §2): a stream or type spelled NFC and one
    /// spelled NFD are canonically equivalent to Swift's `==`, yet different names, so neither
    /// may be stored as a continuation of the other.
    @Test func canonicallyEquivalentNamesAreNeverContinued() throws {
        let composed = "Jos\u{E9}", decomposed = "Jose\u{301}"
        #expect(composed == decomposed && Array(composed.utf8) != Array(decomposed.utf8))
        // The writer's path: two commits in one frame, the second at the first's next version.
        var builder = FrameBuilder(nextPosition: 0)
        let first = [NewEvent(type: composed, data: Data()), NewEvent(type: decomposed, data: Data())]
        builder.append(first, stream: composed, firstVersion: 1)
        builder.append([NewEvent(type: decomposed, data: Data())], stream: decomposed, firstVersion: 3)
        let written = try Self.decode(builder).map { record -> StoredEvent in
            guard case .event(let event) = record else { preconditionFailure() }
            return event
        }
        #expect(written.map { Array($0.stream.utf8) } == [composed, composed, decomposed].map { Array($0.utf8) })
        #expect(written.map { Array($0.type.utf8) } == [composed, decomposed, decomposed].map { Array($0.utf8) })
        // Compaction's path.
        var compacted = FrameBuilder(nextPosition: 0)
        compacted.appendKeepingPosition(Self.event(composed, 1, 0, type: composed, ends: false))
        compacted.appendKeepingPosition(Self.event(composed, 2, 1, type: decomposed))
        compacted.appendKeepingPosition(Self.event(decomposed, 3, 2, type: decomposed))
        let read = try Self.decode(compacted).map { record -> StoredEvent in
            guard case .event(let event) = record else { preconditionFailure() }
            return event
        }
        #expect(read.map { Array($0.stream.utf8) } == [composed, composed, decomposed].map { Array($0.utf8) })
        #expect(read.map { Array($0.type.utf8) } == [composed, decomposed, decomposed].map { Array($0.utf8) })
    }

    @Test func zigzagCoversEveryDifference() {
        for value: Int64 in [0, -1, 1, -2, 2, .max, .min, .max - 1, .min + 1, 1_000_000, -1_000_000] {
            #expect(ZigZag.decode(ZigZag.encode(value)) == value)
        }
        #expect([0, -1, 1, -2, 2].map { ZigZag.encode($0) } == [0, 1, 2, 3, 4])
    }

    /// A store written by format version 2 (no continuation records), committed as the version 2
    /// build left it: it reads as it did and accepts appends, which go to a new segment of the
    /// current version (frames go only into segments of the current version).
    @Test func aVersionTwoStoreIsReadAndWrittenOn() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let directory = TemporaryDirectory("v2-store")
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("v2-store").path, toPath: directory.path)
        let expected = try String(contentsOf: fixtures.appendingPathComponent("v2-store.read-all.jsonl"), encoding: .utf8)
            .split(separator: "\n").count
        let log = try EventLog.open(at: directory.path)
        #expect(log.recovery.corruptions.isEmpty && log.recovery.tornBytesDiscarded == 0)
        let before = try log.readAll()
        #expect(before.count == expected && before.last?.stream == "order/9" && before.last?.version == 3)
        let segmentsBefore = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }
        try await log.append([NewEvent(type: "Single", data: Data("{}".utf8))], to: "order/10")
        let segmentsAfter = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted()
        #expect(segmentsAfter.count == segmentsBefore.count + 1)
        try await log.append((0..<3).map { _ in NewEvent(type: "Many", data: Data("{}".utf8)) }, to: "order/9")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".dseg") }.sorted() == segmentsAfter)
        log.close()
        let versions = try segmentsAfter.map { name in
            try Data(contentsOf: URL(fileURLWithPath: directory.file(name))).withUnsafeBytes { SegmentHeader.version(of: $0) }
        }
        #expect(versions == [2, Layout.formatVersion])
        let reopened = try EventLog.open(at: directory.path)
        defer { reopened.close() }
        let after = try reopened.readAll()
        #expect(Array(after.prefix(before.count)) == before)
        #expect(after.suffix(4).map(\.type) == ["Single", "Many", "Many", "Many"])
        #expect(try reopened.read(stream: "order/9").map(\.version) == [1, 2, 3, 4, 5, 6])
        #expect(try reopened.verify().isClean)
    }
}
