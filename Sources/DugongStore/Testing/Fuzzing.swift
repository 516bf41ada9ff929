import CDugongShims
import Dugong
import Foundation
import Glibc
import Synchronization

/// Entry points for the fuzz target (`Fuzzing/`): each takes arbitrary bytes and must return
/// normally, whatever they hold. Checksums are recomputed where the input gives a plausible
/// length, so that the fuzzer reaches the decoders with crafted but checksum-valid input, the
/// input an adversary who can write files (or event data) could produce.
@_spi(Fuzzing)
public enum Fuzzing {
    static let salt: UInt64 = 0x5EED_5EED_5EED_5EED

    /// The first byte picks what the rest is: a frame, a segment's frames, a manifest, a head;
    /// 0xF0 to 0xF7, an LZ4 block; from 0xF8 up, edits to a saved index file.
    public static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        // Its stores have no writer beside their readers: a head file found wrong is wrong.
        StoreFiles.headLookAgainMicroseconds.store(0, ordering: .relaxed)
        let body = UnsafeRawBufferPointer(rebasing: input[1...])
        if selector >= 0xF8 { return index(edits: body) }
        if selector >= 0xF0 { return lz4Block(body) }
        switch selector % 4 {
        case 0: frame(body)
        case 1: store(body)
        case 2: _ = Manifest.decode(Array(body))
        default: _ = HeadRecord.decode(body)
        }
    }

    /// A small store, closed cleanly (so it has a saved index), made once per process: its
    /// directory and its index file's bytes without their checksum.
    private static let indexedStore: (directory: String, body: [UInt8])? = {
        let directory = NSTemporaryDirectory() + "dugong-fuzz-index-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "dugong-fuzz-index-\(getpid())") }
        let made = DispatchSemaphore(value: 0)
        let store = Mutex<Bool>(false)
        Task.detached {
            defer { made.signal() }
            var options = EventLog.Options(createIfMissing: true)
            options.durability = .unsafeNoSync
            options.segmentSize = 8192
            guard let log = try? EventLog.open(at: directory, options: options) else { return }
            for round in 0..<24 {
                let events = (0..<(1 + round % 3)).map { index in
                    NewEvent(type: "T\(index % 2)", timestamp: Date(millisecondsSince1970: Int64(round)), data: Data("\(round)".utf8))
                }
                _ = try? await log.append(events, to: round % 4 == 0 ? "t/\(round % 3)" : "s/\(round % 5)")
            }
            _ = try? await log.saveSnapshot(StoredSnapshot(stream: "s/1", version: 2, data: Data("x".utf8)))
            _ = try? await log.truncate(stream: "s/2", before: 2)
            _ = try? await log.tombstone(stream: "t/1")
            log.close()
            store.withLock { $0 = true }
        }
        made.wait()
        guard store.withLock({ $0 }),
            let bytes = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + Layout.indexName))), bytes.count > 4
        else { return nil }
        return (directory, Array(bytes.dropLast(4)))
    }()

    /// The saved index of ``indexedStore`` with edits (three bytes each: a big-endian offset,
    /// modulo the file's length, and a byte to XOR there; a last byte alone cuts the file there,
    /// scaled to its length), its checksum made good, then the store opened read-only with it and
    /// read: whatever the index says, the open uses it only if it describes the segments, and
    /// never crashes.
    static func index(edits: UnsafeRawBufferPointer) {
        guard let store = indexedStore else { return }
        var body = store.body
        var offset = 0
        while offset + 3 <= edits.count {
            body[(Int(edits[offset]) << 8 | Int(edits[offset + 1])) % body.count] ^= edits[offset + 2]
            offset += 3
        }
        if offset < edits.count { body.removeLast(body.count - body.count * Int(edits[offset]) / 256) }
        let checksum = body.withUnsafeBytes { Checksum.mask(Checksum.crc32c($0)) }
        withUnsafeBytes(of: checksum.littleEndian) { body += $0 }
        guard (try? Data(body).write(to: URL(fileURLWithPath: store.directory + "/" + Layout.indexName))) != nil else { return }
        var options = EventLog.Options()
        options.readOnly = true
        guard let log = try? EventLog.open(at: store.directory, options: options) else { return }
        _ = try? log.readAll(maxCount: 10_000)
        for stream in (try? log.streamNames()) ?? [] {
            _ = try? log.read(stream: stream)
            _ = try? log.forEachEvent(in: stream, direction: .backward) { _ = $0.stored }
            _ = try? log.info(stream: stream)
            _ = try? log.latestSnapshot(of: stream)
        }
        _ = try? log.streams(inCategory: "s")
        _ = try? log.statistics()
        log.close()
    }

    /// An LZ4 block (after 2 bytes of raw length and 1 of dictionary length, the dictionary
    /// taken from the start of a fixed text) decoded by the engine's reader into a buffer of
    /// exactly raw length and into one with room to spare (the same verdict and bytes), and by
    /// liblz4's: whatever the engine's accepts, liblz4's decodes to
    /// the same bytes (liblz4 accepts more: FORMAT.md §7), and a sanitizer sees every byte the
    /// engine's reads and writes.
    static func lz4Block(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 4 else { return }
        let count = Int(bytes[0]) | Int(bytes[1]) << 8
        let history = Array(#"{"type":"MoneyDeposited","amount":1250,"currency":"EUR","user":"u-0007"},0000000000000000aaaaaaaa"#.utf8)
            .prefix(Int(bytes[2]) % 101)
        let block = Array(bytes[3...])
        /// `room`: bytes past `count` the engine's reader may write (its faster path needs 32).
        func decoded(liblz4: Bool, room: Int = 0) -> [UInt8]? {
            // Exactly `count + room` bytes, so that a write past them is the sanitizer's to see.
            let output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count + room, 1), alignment: 1)
            defer { output.deallocate() }
            let result = block.withUnsafeBytes { block in
                history.withUnsafeBytes { history in
                    liblz4
                        ? dugong_lz4_decompress_liblz4(
                            block.baseAddress, block.count, output.baseAddress, count, history.baseAddress, history.count)
                        : dugong_lz4_decompress(
                            block.baseAddress, block.count, output.baseAddress, count, count + room, history.baseAddress, history.count)
                }
            }
            return result == 0 ? Array(output.prefix(count)) : nil
        }
        guard count >= 1 else { return }
        let ours = decoded(liblz4: false)
        precondition(decoded(liblz4: false, room: Int(bytes[2]) % 64) == ours, "the engine's LZ4 reader decodes otherwise with room to spare")
        guard let ours else { return }
        precondition(decoded(liblz4: true) == ours, "the engine's LZ4 reader accepted a block liblz4 decodes otherwise")
    }

    /// One frame at offset 0, checksum fixed: probed, decoded, its events decoded (copied and lent).
    static func frame(_ bytes: UnsafeRawBufferPointer) {
        var frame = Array(bytes)
        fixChecksums(&frame, from: 0)
        frame.withUnsafeBytes { raw in
            guard case .frame(let header) = FrameReader.probe(raw, at: 0, salt: salt) else { return }
            // Every readable format's decoders (version 2 refuses continuation records; versions
            // up to 3 inflate DEFLATE, 4 decompresses Zstandard, 5 Zstandard or LZ4 blocks), without
            // and with a dictionary.
            for version in Layout.oldestReadableFormatVersion...Layout.formatVersion {
                _ = try? FrameReader.records(of: header, in: raw, at: 0, dictionary: [], formatVersion: version)
                _ = try? FrameReader.events(
                    of: header, in: raw, at: 0, dictionary: Array(repeating: 7, count: 64), formatVersion: version)
            }
            // The lending reads' decoder: into a scratch buffer, names kept across frames. The
            // fields point into the scratch buffer: it lives until they are read.
            var names = NameTable()
            var events = FrameEvents()
            var frameNames = FrameNames()
            var scratch = ScratchBuffer()
            _ = try? FrameReader.eventFields(
                of: header, in: raw, at: 0, dictionary: (UnsafeRawBufferPointer(start: nil, count: 0), 0), scratch: &scratch,
                formatVersion: Layout.formatVersion, names: &names, into: &events, frameNames: &frameNames)
            frameNames.withNames { names in
                events.withEvents { for field in $0 { _ = field.stored(names: names) } }
            }
            _ = consume scratch  // the fields point into it: it lives until they are read
        }
    }

    /// A store whose one segment holds `bytes` as its frames (checksums fixed), opened read-only
    /// and for writing, read in full, verified.
    static func store(_ bytes: UnsafeRawBufferPointer) {
        let directory = NSTemporaryDirectory() + "dugong-fuzz-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try? FileManager.default.removeItem(atPath: directory)
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil else { return }
        let name = Layout.SegmentName(firstPosition: 0, generation: 0).fileName
        var segment = SegmentHeader(
            firstPosition: 0, capacity: UInt64(Layout.segmentHeaderSize + bytes.count + 4096), createdMilliseconds: 0,
            salt: salt, sequence: 0
        ).encoded()
        segment += Array(bytes)
        fixChecksums(&segment, from: Layout.segmentHeaderSize)
        let manifest = Manifest(generation: 1, segments: [Manifest.Entry(name: name, salt: salt)])
        guard (try? Data(segment).write(to: URL(fileURLWithPath: directory + "/" + name))) != nil,
            (try? Data(manifest.encoded()).write(to: URL(fileURLWithPath: directory + "/" + Layout.manifestName))) != nil
        else { return }
        for readOnly in [true, false] {
            var options = EventLog.Options()
            options.readOnly = readOnly
            options.useIndexFile = false
            options.segmentSize = 4096
            guard let log = try? EventLog.open(at: directory, options: options) else { continue }
            _ = try? log.readAll(maxCount: 10_000)
            for stream in (try? log.streamNames().prefix(8)) ?? [] {
                _ = try? log.read(stream: stream)
                _ = try? log.read(stream: stream, direction: .backward)
                _ = try? log.forEachEvent(in: stream, direction: .backward) { _ = $0.stored }
                _ = try? log.latestSnapshot(of: stream)
            }
            _ = try? log.verify()
            _ = try? log.statistics()
            log.close()
        }
    }

    /// Rewrites the checksum of every frame whose length fits, walking frames from `start`.
    static func fixChecksums(_ bytes: inout [UInt8], from start: Int) {
        var offset = start
        while offset + Layout.frameHeaderSize <= bytes.count {
            let stored = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))) }
            let end = offset + Layout.frameHeaderSize + stored
            guard stored > 0, end <= bytes.count else { return }
            let checksum = bytes.withUnsafeBytes { raw in
                FrameHeader.checksum(salt: salt, offset: offset, covering: UnsafeRawBufferPointer(rebasing: raw[(offset + 4)..<end]))
            }
            withUnsafeBytes(of: checksum.littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
            offset = end
        }
    }
}
