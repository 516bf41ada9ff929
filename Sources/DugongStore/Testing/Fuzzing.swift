import Foundation
import Glibc

/// Entry points for the fuzz target (`Fuzzing/`): each takes arbitrary bytes and must return
/// normally, whatever they hold. Checksums are recomputed where the input gives a plausible
/// length, so that the fuzzer reaches the decoders with crafted but checksum-valid input, the
/// input an adversary who can write files (or event data) could produce.
@_spi(Fuzzing)
public enum Fuzzing {
    static let salt: UInt64 = 0x5EED_5EED_5EED_5EED

    /// The first byte picks what the rest is: a frame, a segment's frames, a manifest, a head.
    public static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: input[1...])
        switch selector % 4 {
        case 0: frame(body)
        case 1: store(body)
        case 2: _ = Manifest.decode(Array(body))
        default: _ = HeadRecord.decode(body)
        }
    }

    /// One frame at offset 0, checksum fixed: probed, decoded, its events decoded (copied and lent).
    static func frame(_ bytes: UnsafeRawBufferPointer) {
        var frame = Array(bytes)
        fixChecksums(&frame, from: 0)
        frame.withUnsafeBytes { raw in
            guard case .frame(let header) = FrameReader.probe(raw, at: 0, salt: salt) else { return }
            // Both formats' decoders (version 2 refuses continuation records).
            _ = try? FrameReader.records(of: header, in: raw, at: 0, dictionary: [], formatVersion: Layout.formatVersion)
            _ = try? FrameReader.records(of: header, in: raw, at: 0, dictionary: [], formatVersion: Layout.oldestReadableFormatVersion)
            _ = try? FrameReader.events(
                of: header, in: raw, at: 0, dictionary: Array(repeating: 7, count: 64), formatVersion: Layout.formatVersion)
            // The lending reads' decoder: into a scratch buffer, names kept across frames.
            var names = NameTable()
            var fields: [EventFields] = []
            _ = try? FrameReader.eventFields(
                of: header, in: raw, at: 0, dictionary: ([], 0), scratch: ScratchBuffer(), formatVersion: Layout.formatVersion,
                names: &names, into: &fields)
            for field in fields { _ = field.stored }
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
