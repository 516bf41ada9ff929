import Dugong
@testable import DugongStore
import Foundation
import Testing

/// FORMAT.md's worked example: the test builds it with the engine's encoders and compares it
/// with the hex dump in FORMAT.md, then opens the dump as a store and reads it back.
@Suite("FORMAT.md's worked example")
struct FormatExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The example segment's bytes up to the end of its frames.
    static let salt: UInt64 = 0x0123_4567_89AB_CDEF

    static func exampleBytes() -> [UInt8] {
        var bytes = SegmentHeader(
            firstPosition: 0, capacity: 4096, createdMilliseconds: 1_732_862_695_000, salt: salt, sequence: 0
        ).encoded()
        var first = FrameBuilder(nextPosition: 0)
        first.append(StoredEvent(
            stream: "account/1", version: 1, position: 0,
            id: UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF")!, type: "Opened",
            timestampMilliseconds: 1_732_862_695_123, data: Data(#"{"owner":"Ada"}"#.utf8), metadata: Data(),
            endsCommit: false))
        first.append(StoredEvent(
            stream: "account/1", version: 2, position: 1,
            id: UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEE00")!, type: "Deposited",
            timestampMilliseconds: 1_732_862_695_125, data: Data(#"{"amount":5}"#.utf8), metadata: Data(),
            endsCommit: true))
        first.sealed(formatVersion: Layout.formatVersion).write(into: &bytes, base: 0, salt: salt, batch: 0, endsBatch: true)
        var second = FrameBuilder(nextPosition: 2)
        second.append(StoredSnapshot(stream: "account/1", version: 1, data: Data(#"{"o":"Ada"}"#.utf8)))
        second.appendStreamMetadata(stream: "account/1", operation: .truncateBefore, version: 2)
        second.sealed(formatVersion: Layout.formatVersion).write(into: &bytes, base: 0, salt: salt, batch: 1, endsBatch: true)
        return bytes
    }

    /// The writer encodes a commit straight from its `NewEvent`s; the example (and compaction)
    /// encode `StoredEvent`s. Both must give the same bytes, so that FORMAT.md describes what the
    /// writer writes: a commit of three events (metadata, empty data, the last ending it).
    @Test func theWritersEncodingIsTheDocumentedOne() {
        let owner = Data(#"{"owner":"Ada"}"#.utf8)
        let events: [NewEvent] = (0..<3).map { (index: Int) -> NewEvent in
            let id = UUID(uuidString: "0011223\(index)-4455-6677-8899-AABBCCDDEEFF")!
            let timestamp = Date(millisecondsSince1970: 1_732_862_695_123 + Int64(index))
            let data: Data = index == 1 ? Data() : owner
            let metadata: Data = index == 2 ? Data(#"{"m":1}"#.utf8) : Data()
            return NewEvent(id: id, type: "Opened", timestamp: timestamp, data: data, metadata: metadata)
        }
        var written = FrameBuilder(nextPosition: 7)
        written.append(events, stream: "account/1", firstVersion: 3)
        var documented = FrameBuilder(nextPosition: 7)
        for (index, event) in events.enumerated() {
            documented.append(StoredEvent(
                stream: "account/1", version: 3 + index, position: 7 + UInt64(index), id: event.id, type: event.type,
                timestampMilliseconds: event.timestamp.millisecondsSince1970, data: event.data, metadata: event.metadata,
                endsCommit: index == 2))
        }
        #expect(written.payload.bytes == documented.payload.bytes)
        #expect(written.records == documented.records)
        #expect(written.sealed(formatVersion: Layout.formatVersion).encoded(salt: Self.salt, offset: 128) == documented.sealed(formatVersion: Layout.formatVersion).encoded(salt: Self.salt, offset: 128))
    }

    /// The example store's manifest.
    static func exampleManifest() -> [UInt8] {
        Manifest(generation: 1, segments: [Manifest.Entry(name: "00000000000000000000.dseg", salt: salt)]).encoded()
    }

    /// The example store's head record (slot 1 of its head file), and the whole file.
    static func exampleHeadRecord() -> [UInt8] {
        HeadRecord(sequence: 1, segmentSalt: salt, durableEnd: 0x15f, nextPosition: 2, nextBatch: 2, cleanClose: false).encoded()
    }

    static func exampleHeadFile(record: [UInt8]) -> [UInt8] {
        var file = [UInt8](repeating: 0, count: 2 * Layout.headSlotSize)
        file.replaceSubrange(Layout.headSlotSize..<Layout.headSlotSize + record.count, with: record)
        return file
    }

    /// The bytes of the first ```text block after `marker` in FORMAT.md: each line is
    /// `offset: byte byte … | comment`.
    static func documentedBytes(after marker: String = "<!-- hex-example -->") throws -> [UInt8] {
        let format = try String(contentsOf: root.appendingPathComponent("FORMAT.md"), encoding: .utf8)
        let start = try #require(format.range(of: marker))
        let block = format[start.upperBound...].components(separatedBy: "```text\n")[1].components(separatedBy: "```")[0]
        var bytes: [UInt8] = []
        for line in block.split(separator: "\n") {
            let code = line.split(separator: "|", maxSplits: 1)[0]
            let parts = code.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[0].trimmingCharacters(in: .whitespaces), radix: 16) else { continue }
            #expect(offset == bytes.count, "line \(line) starts at \(bytes.count)")
            for hex in parts[1].split(separator: " ") { bytes.append(UInt8(hex, radix: 16)!) }
        }
        return bytes
    }

    static func hexDump(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 16).map { start in
            String(format: "%04x:", start) + bytes[start..<min(start + 16, bytes.count)].map { String(format: " %02x", $0) }.joined()
        }.joined(separator: "\n")
    }

    @Test func theDocumentedBytesAreWhatTheEngineWrites() throws {
        let generated = Self.exampleBytes()
        let documented = try Self.documentedBytes()
        #expect(documented == generated, "FORMAT.md's example differs from the engine's output:\n\(Self.hexDump(generated))")
        let manifest = try Self.documentedBytes(after: "<!-- hex-example-manifest -->")
        #expect(manifest == Self.exampleManifest(), "FORMAT.md's manifest differs:\n\(Self.hexDump(Self.exampleManifest()))")
        let head = try Self.documentedBytes(after: "<!-- hex-example-head -->")
        #expect(head == Self.exampleHeadRecord(), "FORMAT.md's head record differs:\n\(Self.hexDump(Self.exampleHeadRecord()))")
    }

    /// FORMAT.md's compressed frame: three events of `account/1`, at offset 128 of a segment of
    /// the example's salt.
    static func compressedExampleEvents() -> [StoredEvent] {
        (0..<3).map { index in
            StoredEvent(
                stream: "account/1", version: index + 1, position: UInt64(index),
                id: UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEE0\(index)")!, type: "Deposited",
                timestampMilliseconds: 1_732_862_695_123 + Int64(index), data: Data(#"{"amount":\#(5 + index),"currency":"EUR"}"#.utf8),
                metadata: Data(), endsCommit: index == 2)
        }
    }

    /// A reader's check of the documented compressed frame: valid at its offset, its stored
    /// bytes one Zstandard frame that decompresses to the documented payload, which decodes to
    /// the documented events. (The stored bytes are what this build's libzstd wrote; another
    /// version of the compressor may write others, which any reader decompresses alike.)
    @Test func theCompressedExampleDecodesAsDocumented() throws {
        let frame = try Self.documentedBytes(after: "<!-- hex-example-compressed -->")
        let payload = try Self.documentedBytes(after: "<!-- hex-example-compressed-payload -->")
        var builder = FrameBuilder(nextPosition: 0)
        for event in Self.compressedExampleEvents() { builder.append(event) }
        #expect(builder.payload.bytes == payload, "the documented payload differs:\n\(Self.hexDump(builder.payload.bytes))")
        let written = builder.sealed(formatVersion: 4).encoded(salt: Self.salt, offset: 128, batch: 0, endsBatch: true)
        #expect(frame.count > 40, "the documented frame; this build writes:\n\(Self.hexDump(written))")
        let segment = [UInt8](repeating: 0, count: 128) + frame
        let records = try segment.withUnsafeBytes { bytes -> [Record] in
            guard case .frame(let header) = FrameReader.probe(bytes, at: 128, salt: Self.salt) else { throw FrameDamage("not a valid frame") }
            #expect(header.isCompressed && !header.usesDictionary && Int(header.rawLength) == payload.count)
            let stored = UnsafeRawBufferPointer(rebasing: bytes[(128 + 40)...])
            #expect(Compression.decompress(stored, count: payload.count, codec: .zstandard) == payload)
            return try FrameReader.records(of: header, in: bytes, at: 128, dictionary: [], formatVersion: 4)
        }
        #expect(records == Self.compressedExampleEvents().map { .event($0) })
    }

    /// The same payload as a writer of version 5 stores it (under 512 bytes: one LZ4 block),
    /// byte for byte (LZ4's block format leaves the compressor free; this is what this build's
    /// liblz4 writes, and what the document walks through sequence by sequence). A reader of a
    /// version 4 segment refuses the LZ4 flag.
    @Test func theLZ4ExampleIsWhatTheEngineWritesAndDecodesAsDocumented() throws {
        let frame = try Self.documentedBytes(after: "<!-- hex-example-lz4 -->")
        let payload = try Self.documentedBytes(after: "<!-- hex-example-compressed-payload -->")
        var builder = FrameBuilder(nextPosition: 0)
        for event in Self.compressedExampleEvents() { builder.append(event) }
        let written = builder.sealed(formatVersion: 5).encoded(salt: Self.salt, offset: 128, batch: 0, endsBatch: true)
        #expect(written == frame, "the documented LZ4 frame differs; this build writes:\n\(Self.hexDump(written))")
        let segment = [UInt8](repeating: 0, count: 128) + frame
        try segment.withUnsafeBytes { bytes in
            guard case .frame(let header) = FrameReader.probe(bytes, at: 128, salt: Self.salt) else { throw FrameDamage("not a valid frame") }
            #expect(header.isCompressed && header.isLZ4Block && !header.usesDictionary && Int(header.rawLength) == payload.count)
            let stored = UnsafeRawBufferPointer(rebasing: bytes[(128 + 40)...])
            #expect(Compression.decompress(stored, count: payload.count, codec: .lz4) == payload)
            let records = try FrameReader.records(of: header, in: bytes, at: 128, dictionary: [], formatVersion: 5)
            #expect(records == Self.compressedExampleEvents().map { .event($0) })
            #expect(throws: FrameDamage.self) { try FrameReader.records(of: header, in: bytes, at: 128, dictionary: [], formatVersion: 4) }
        }
    }

    @Test func theDocumentedBytesOpenAsAStore() throws {
        let directory = TemporaryDirectory("example")
        defer { directory.remove() }
        try directory.create()
        var bytes = try Self.documentedBytes()
        bytes += [UInt8](repeating: 0, count: 4096 - bytes.count)
        try Data(bytes).write(to: URL(fileURLWithPath: directory.file("00000000000000000000.dseg")))
        try Data(try Self.documentedBytes(after: "<!-- hex-example-manifest -->")).write(to: URL(fileURLWithPath: directory.file("dugong.manifest")))
        let head = Self.exampleHeadFile(record: try Self.documentedBytes(after: "<!-- hex-example-head -->"))
        try Data(head).write(to: URL(fileURLWithPath: directory.file(Layout.headName)))
        // The head is what tells this crash's end from frames cut off: without it, damage.
        try FileManager.default.removeItem(atPath: directory.file(Layout.headName))
        do {
            var options = EventLog.Options()
            options.readOnly = true
            let headless = try EventLog.open(at: directory.path, options: options)
            defer { headless.close() }
            #expect(headless.recovery.corruptions.contains { "\($0)".contains("without the marker of a clean close") })
        }
        try Data(head).write(to: URL(fileURLWithPath: directory.file(Layout.headName)))
        let log = try EventLog.open(at: directory.path)
        defer { log.close() }
        #expect(log.recovery.tornBytesDiscarded == 0 && log.recovery.corruptions.isEmpty)
        let events = try log.readAll()
        #expect(events.count == 2)
        let event = try #require(events.first)
        #expect(event.stream == "account/1" && event.version == 1 && event.position == 0 && event.type == "Opened")
        #expect(event.id == UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF"))
        #expect(event.timestampMilliseconds == 1_732_862_695_123 && !event.endsCommit)
        #expect(String(decoding: event.data, as: UTF8.self) == #"{"owner":"Ada"}"#)
        let continued = StoredEvent(
            stream: "account/1", version: 2, position: 1, id: UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEE00")!,
            type: "Deposited", timestampMilliseconds: 1_732_862_695_125, data: Data(#"{"amount":5}"#.utf8), metadata: Data(),
            endsCommit: true)
        #expect(events.last == continued)
        #expect(try log.read(stream: "account/1") == [continued], "truncated before version 2")
        #expect(try log.info(stream: "account/1") == EventLog.StreamInfo(version: 2, firstVisibleVersion: 2, isTombstoned: false))
        #expect(try log.latestSnapshot(of: "account/1") == StoredSnapshot(stream: "account/1", version: 1, data: Data(#"{"o":"Ada"}"#.utf8)))
    }
}
