import Foundation
import Glibc

/// What ``EventLog/upgrade(at:)`` did.
public struct UpgradeReport: Sendable, Codable, Equatable {
    /// The format version the store had (of its oldest segment, when it was already current:
    /// this build reads versions 2 to the current one as they are), and the one it has now.
    public var fromVersion: Int
    public var toVersion: Int
    /// Events copied (every event of the old store).
    public var events: Int
    public var segmentsBefore: Int
    public var segmentsAfter: Int
    /// The store already was of the current version: nothing was changed.
    public var alreadyCurrent: Bool
    /// Set when the upgrade took effect but a step after its commit failed (removing a version
    /// 1 segment, writing the head file): nothing is lost, and the next writable open
    /// finishes it (``CompactionReport/unfinishedCleanup``).
    public var unfinishedCleanup: String? = nil
    /// On a store already current: what an interrupted upgrade or compaction left that this run
    /// finished (segments left out of the manifest removed, the head file written again), or nil
    /// when no file was changed.
    public var finished: String? = nil
    /// On an upgrade of a version 1 store: the bytes at the end of its last segment that held no
    /// whole frame (a torn write, as far as anything can tell: no index file a clean close saved
    /// says otherwise), which were not copied; nil when there were none.
    public var droppedTail: String? = nil
}

extension EventLog {
    /// Converts a store of format version 1 to the current version, keeping every event with its
    /// position, version, id and bytes, every lifecycle record and every snapshot. The old
    /// segments are replaced crash-safely, like a compaction's (the new manifest is the commit
    /// point); running it again after a crash finishes or restarts it. A store already of the
    /// current version is left as it is, but for what an upgrade or a compaction interrupted
    /// after its commit left (unlisted old segments, a missing or damaged head file), which a
    /// writable open finishes; one of a later version whose manifest is damaged or
    /// missing is refused, and nothing in it is removed.
    ///
    /// It takes the store's lock and refuses a damaged version 1 store (a torn tail after a
    /// crash is not damage: it was never acknowledged, and is not copied). A version 1 store
    /// does not record its segment size (its files were as long as their frames): the new
    /// segments take `options.segmentSize`, 64 MiB unless set, which later opens then keep.
    /// - Throws: ``StoreError/locked(directory:)``, ``StoreError/notFound(directory:)``,
    ///   ``StoreError/notAStore(directory:reason:)``, ``StoreError/corruption(segment:offset:reason:)``,
    ///   ``StoreError/invalidArgument(_:)`` for `options` an open would refuse.
    public static func upgrade(at directory: String, options: Options = Options()) throws -> UpgradeReport {
        if !Directory.exists(directory) {
            try refuseAsAFile(directory)
            throw StoreError.notFound(directory: directory)
        }
        try validate(options)
        // A directory of other files is refused before the lock (which would leave a lock file).
        if let foreign = try SegmentSet.foreignFiles(in: directory) { throw SegmentSet.notAStore(directory, holding: foreign) }
        var held: StoreLock? = try StoreLock.take(in: directory)
        defer { withExtendedLifetime(held) {} }
        switch try StoreFiles.readManifest(in: directory) {
        case .intact(let manifest):
            var report = UpgradeReport(
                fromVersion: try Self.oldestFormatVersion(of: manifest, in: directory), toVersion: Int(Layout.formatVersion), events: 0,
                segmentsBefore: manifest.segments.count, segmentsAfter: manifest.segments.count, alreadyCurrent: true)
            // An upgrade (or a compaction) interrupted after its commit left the old segments,
            // or no head file: what a writable open finishes, and so this run, the one its
            // message says to run again (verification names the head file until then).
            let listed = Set(manifest.segments.map(\.name))
            func unlistedFiles() throws -> Set<String> {
                Set(try Directory.entries(of: directory).filter { Layout.SegmentName(fileName: $0) != nil && !listed.contains($0) })
            }
            let unlisted = try unlistedFiles()
            let headProblems = StoreFiles.headProblems(in: directory, lookingTwice: false)
            if !unlisted.isEmpty || !headProblems.isEmpty {
                held = nil
                var writable = options
                writable.readOnly = false
                writable.createIfMissing = false
                writable.chosenSegmentSize = nil  // the store's own: a size is for a conversion
                let log = try EventLog.open(at: directory, options: writable)
                // A damaged store is not changed by the open: said, not "nothing to do".
                if let damage = log.recovery.corruptions.first {
                    log.close()
                    throw damage
                }
                log.close()
                // What the open removed, counted on disk: a file whose header cannot be read is
                // never removed (it said "removed" of one that stayed).
                let kept = try unlistedFiles().intersection(unlisted)
                let removed = unlisted.count - kept.count
                report.finished = [
                    removed > 0 ? "\(removed) segment file\(removed == 1 ? "" : "s") left out of the manifest removed" : nil,
                    kept.isEmpty
                        ? nil
                        : "\(kept.sorted().joined(separator: ", ")) left out of the manifest and kept (unreadable: never removed; `dugong verify` names \(kept.count == 1 ? "it" : "them"))",
                    headProblems.isEmpty ? nil : "the head file written again (\(headProblems.map(\.message).joined(separator: "; ")))",
                ].compactMap { $0 }.joined(separator: ", ")
            }
            return report
        case .damaged(let problem):
            // Version 1 stores have no manifest: this is a later store (or a newer build's).
            throw StoreError.corruption(
                segment: Layout.manifestName, offset: 0,
                reason: "\(problem): not a version 1 store, nothing to upgrade; \(StoreError.damagedStoreAdvice)")
        case .missing:
            break
        }
        guard !Directory.fileExists(directory + "/" + Layout.legacyCompactionManifestName) else {
            throw StoreError.notAStore(
                directory: directory,
                reason: "a version 1 compaction was interrupted (compaction.pending): open the store once with the version 1 build to finish it, then upgrade")
        }
        let legacy = try LegacyStore.read(directory: directory)
        guard !legacy.segments.isEmpty else { throw StoreError.notAStore(directory: directory, reason: "it holds no version 1 segments") }
        try Directory.checkStill(directory, is: held?.directoryIdentity)
        try IndexFile.remove(from: directory)
        var output = SegmentSetWriter(
            directory: directory, options: options, takenNames: Set(try Directory.entries(of: directory)), dryRun: false,
            sequence: 0, nextBatch: 0, firstPosition: legacy.segments[0].firstPosition)
        output.directoryIdentity = held?.directoryIdentity
        var first = FrameBuilder(nextPosition: output.cursor)
        for (stream, version) in legacy.versionsStartAt {
            first.appendStreamMetadata(stream: stream, operation: .versionsStartAt, version: version)
        }
        var events = 0
        do {
            try output.write(legacy, first: first, events: &events)
        } catch {
            output.removeUncommitted()
            throw error
        }
        let unfinished = try output.switchOver(
            fromGeneration: 0, removing: legacy.segments.map(\.name), headSequence: 0, nextPosition: legacy.nextPosition)
        return UpgradeReport(
            fromVersion: Int(Layout.legacyFormatVersion), toVersion: Int(Layout.formatVersion), events: events,
            segmentsBefore: legacy.segments.count, segmentsAfter: output.written.count, alreadyCurrent: false,
            unfinishedCleanup: unfinished, droppedTail: legacy.droppedTail)
    }
}

extension EventLog {
    /// The format version of the oldest segment the manifest lists (this build reads versions
    /// 2 to the current one; a compaction rewrites older ones in the current version).
    static func oldestFormatVersion(of manifest: Manifest, in directory: String) throws -> Int {
        var oldest = Int(Layout.formatVersion)
        for entry in manifest.segments where Directory.fileExists(directory + "/" + entry.name) {
            let file = try File(path: directory + "/" + entry.name, flags: O_RDONLY)
            var bytes = [UInt8](repeating: 0, count: 10)
            let read = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            if let version = bytes.withUnsafeBytes({ SegmentHeader.version(of: UnsafeRawBufferPointer(rebasing: $0[0..<read])) }) {
                oldest = min(oldest, Int(version))
            }
        }
        return oldest
    }
}

extension SegmentSetWriter {
    /// The version 1 store's frames, after `first` (its streams' first versions), and the empty
    /// active segment: the new set of an upgrade. Counts the events into `events`.
    fileprivate mutating func write(_ legacy: LegacyStore, first: FrameBuilder, events: inout Int) throws {
        if !first.isEmpty { try write(first) }
        for frame in legacy.frames {
            var builder = FrameBuilder(nextPosition: max(cursor, frame.firstPosition))
            for record in frame.records {
                switch record {
                case .event(let event):
                    builder.appendKeepingPosition(event)
                    events += 1
                case .streamMetadata(let stream, let operation, let version):
                    builder.appendStreamMetadata(stream: stream, operation: operation, version: version)
                case .snapshot(let snapshot):
                    builder.append(snapshot)
                case .dictionary, .close:
                    break  // dictionaries belong to their segment; the new segments have none
                }
            }
            if !builder.isEmpty { try write(builder) }
        }
        try finish(nextPosition: legacy.nextPosition)
    }
}

/// A store of format version 1, read whole for ``EventLog/upgrade(at:)``: 64-byte segment
/// headers, 32-byte frame headers whose checksum covers the frame alone, the same records.
struct LegacyStore {
    struct SegmentInfo {
        var name: String
        var firstPosition: UInt64
    }

    struct Frame {
        var firstPosition: UInt64
        var records: [Record]
    }

    var segments: [SegmentInfo] = []
    var frames: [Frame] = []
    var nextPosition: UInt64 = 0
    /// What a torn tail left at the end of the last segment, not copied (said in the report).
    var droppedTail: String?
    /// Streams whose versions begin after 1 (a version 1 compaction removed the ones before):
    /// the first event's version, or for a stream without events the version its delete recorded.
    var versionsStartAt: [(String, Int)] = []

    static func read(directory: String) throws -> LegacyStore {
        var store = LegacyStore()
        // Segments of a later version without a manifest, beside version 1 segments, are what an
        // interrupted upgrade wrote: removed. Without version 1 segments they are a later store
        // that lost its manifest: nothing is removed, and the upgrade is refused.
        var names: [String] = []
        var later: [String] = []
        var temporary: [String] = []
        for entry in try Directory.entries(of: directory) {
            if entry.hasSuffix(Layout.temporarySuffix) {
                temporary.append(entry)
            } else if Layout.SegmentName(fileName: entry) != nil {
                let bytes = try File.contents(of: directory + "/" + entry, limit: Int(Int32.max)) ?? []
                let version = bytes.withUnsafeBytes { SegmentHeader.version(of: $0) }
                if let version, version > Layout.legacyFormatVersion {
                    later.append(entry)
                } else {
                    names.append(entry)
                }
            }
        }
        guard !names.isEmpty else {
            // A later store that lost its manifest is damaged, as one whose manifest is damaged.
            guard later.isEmpty else {
                throw StoreError.corruption(
                    segment: Layout.manifestName, offset: 0,
                    reason: "the manifest is missing and the segments are of a later version: not a version 1 store, nothing to upgrade; \(StoreError.damagedStoreAdvice)")
            }
            throw StoreError.notAStore(directory: directory, reason: "it holds no version 1 segments")
        }
        for entry in temporary + later { try Directory.remove(directory + "/" + entry) }
        names.sort { Layout.SegmentName(fileName: $0)! < Layout.SegmentName(fileName: $1)! }
        var firstVersion: [StreamKey: (String, Int)] = [:]
        var deletedAt: [StreamKey: (String, Int)] = [:]
        let recorded = try recordedEnd(in: directory, names: names)
        for (number, name) in names.enumerated() {
            let bytes = try File.contents(of: directory + "/" + name, limit: Int(Int32.max)) ?? []
            let first = try bytes.withUnsafeBytes { try header(of: $0, name: name) }
            store.segments.append(SegmentInfo(name: name, firstPosition: first))
            store.nextPosition = max(store.nextPosition, first)
            let (frames, end) = try bytes.withUnsafeBytes { try self.frames(in: $0, name: name, isLast: number == names.count - 1) }
            if number == names.count - 1, !bytes.withUnsafeBytes({ Zeros.areAllZero($0, in: min(end, $0.count)..<$0.count) }) {
                store.droppedTail = "\(name): the \(bytes.count - end) bytes from offset \(end) held no whole frame (a write that never completed; no index file a clean close saved says the frames went further), not copied"
            }
            if let recorded, number == recorded.segments.count - 1, end < recorded.scannedEnd {
                throw missingFrames(in: name, end: end, recordedEnd: recorded.scannedEnd)
            }
            for frame in frames {
                store.nextPosition = max(store.nextPosition, frame.firstPosition)
                for record in frame.records {
                    switch record {
                    case .event(let event):
                        // Positions increase through the store (a copy of a frame, which version 1
                        // did not refuse, would repeat them): the new frames need it.
                        guard event.position >= store.nextPosition, event.position >= frame.firstPosition else {
                            throw StoreError.corruption(
                                segment: name, offset: 0,
                                reason: "event at position \(event.position) of '\(event.stream)' is before position \(max(store.nextPosition, frame.firstPosition)), where its frame's events start")
                        }
                        store.nextPosition = max(store.nextPosition, event.position + 1)
                        if firstVersion[StreamKey(event.stream)] == nil { firstVersion[StreamKey(event.stream)] = (event.stream, event.version) }
                    case .streamMetadata(let stream, .delete, let version):
                        deletedAt[StreamKey(stream)] = (stream, max(version, deletedAt[StreamKey(stream)]?.1 ?? 0))
                    default:
                        break
                    }
                }
            }
            store.frames += frames
        }
        if let recorded, store.nextPosition < recorded.nextPosition {
            throw StoreError.corruption(
                segment: names[names.count - 1], offset: 0,
                reason: "version 1 events end before position \(recorded.nextPosition), where the index file a clean close saved records them to: events are missing or damaged, not a torn write; the store must be repaired before an upgrade")
        }
        for (_, (stream, version)) in firstVersion where version > 1 { store.versionsStartAt.append((stream, version)) }
        for (key, (stream, version)) in deletedAt where firstVersion[key] == nil && version > 1 {
            store.versionsStartAt.append((stream, version))
        }
        store.versionsStartAt.sort { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
        return store
    }

    /// Version 1 could not tell a torn last write from damage at the end of its last segment,
    /// and neither can its frames alone. Its index file can: a clean close saved it, naming the
    /// segments, where the last of them had its frames end, and the next position (segments
    /// only grew after it, and a version 1 compaction removed it first). When that file is
    /// intact and names the store's first segments, frames of the last one it names that end
    /// before the recorded end (a segment cut short, a frame that fails its checksum, zeros
    /// over a frame), or events that end before the recorded next position, are damage, which
    /// the upgrade refuses: it would otherwise copy what is left, remove the old files and
    /// report success. (Found by a black-box run: a cleanly closed store cut to 5,000 bytes was
    /// upgraded with 29 of its 70 events, exit 0.) Without that file (a version 1 writer that
    /// stopped without closing), or when it cannot be read (it is a cache), a bad tail is what a
    /// torn write leaves, as version 1 read it. FORMAT.md §11.
    /// An intact file that names segments the store does not begin with is damage too: after a
    /// clean close segments were only added, and a version 1 compaction removed the file before
    /// it replaced any (the first segments were lost or replaced; 0 events were upgraded from
    /// a later segment, exit 0, a black-box run found).
    private static func recordedEnd(in directory: String, names: [String]) throws -> (segments: [String], scannedEnd: Int, nextPosition: UInt64)? {
        guard let raw = try? File.contents(of: directory + "/" + Layout.indexName, limit: Int(Int32.max)),
            let recorded = raw.withUnsafeBytes({ legacyIndexEnd(in: $0) }), !recorded.segments.isEmpty
        else { return nil }
        guard names.starts(with: recorded.segments) else {
            throw StoreError.corruption(
                segment: Layout.indexName, offset: 0,
                reason: "the index file a clean close saved names the segments \(recorded.segments.joined(separator: ", ")) (events up to position \(recorded.nextPosition)), which the store does not begin with (it holds \(names.joined(separator: ", "))): segments are missing or were replaced; the store must be repaired before an upgrade")
        }
        return recorded
    }

    private static func missingFrames(in segment: String, end: Int, recordedEnd: Int) -> StoreError {
        StoreError.corruption(
            segment: segment, offset: end,
            reason: "version 1 frames end at offset \(end), where the index file a clean close saved records them to offset \(recordedEnd): frames are missing or damaged, not a torn write; the store must be repaired before an upgrade")
    }

    /// The segment names, the last one's end of frames and the next position of a version 1
    /// index file (layout version 1), when its checksum holds and it reads to those fields.
    static func legacyIndexEnd(in bytes: UnsafeRawBufferPointer) -> (segments: [String], scannedEnd: Int, nextPosition: UInt64)? {
        guard bytes.count >= 20, Array(bytes[0..<8]) == IndexFile.magic,
            Checksum.mask(Checksum.crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])))
                == UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self))
        else { return nil }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)]))
        do {
            _ = try reader.bytes(8, "magic")
            guard try reader.u16("version") == Layout.legacyFormatVersion else { return nil }
            _ = try reader.u16("reserved")
            _ = try reader.u32("reserved")
            var segments: [String] = []
            for _ in 0..<(try reader.count("segment count", limit: reader.remaining)) {
                let name = String(decoding: try reader.lengthPrefixed("segment name"), as: UTF8.self)
                for _ in 0..<(try reader.count("dictionary count", limit: reader.remaining)) {
                    _ = try reader.varint("dictionary offset")
                    _ = try reader.lengthPrefixed("dictionary")
                }
                segments.append(name)
            }
            let scannedEnd = try reader.count("scanned end", limit: Int(Int32.max))
            let nextPosition = try reader.u64("next position")
            guard nextPosition <= Layout.maximumPosition else { return nil }
            return (segments, scannedEnd, nextPosition)
        } catch {
            return nil
        }
    }

    /// Checks a version 1 segment header. - Returns: its first position.
    private static func header(of bytes: UnsafeRawBufferPointer, name: String) throws -> UInt64 {
        guard bytes.count >= Layout.legacySegmentHeaderSize, Array(bytes[0..<8]) == Layout.segmentMagic,
            bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self) == Layout.legacyFormatVersion.littleEndian,
            Checksum.mask(Checksum.crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<60])))
                == UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 60, as: UInt32.self))
        else {
            throw StoreError.corruption(segment: name, offset: 0, reason: "not an intact version 1 segment header")
        }
        let first = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard Layout.SegmentName(fileName: name)?.firstPosition == first, first < Layout.maximumPosition else {
            throw StoreError.corruption(segment: name, offset: 16, reason: "first position \(first) does not match the file name")
        }
        return first
    }

    /// The frames of a version 1 segment. A torn tail of the last segment ends them; any other
    /// invalid frame is damage, which an upgrade refuses.
    private static func frames(in bytes: UnsafeRawBufferPointer, name: String, isLast: Bool) throws -> (frames: [Frame], end: Int) {
        var frames: [Frame] = []
        var dictionary: [UInt8] = []
        var offset = Layout.legacySegmentHeaderSize
        while true {
            guard let header = probe(bytes, at: offset) else {
                if Zeros.areAllZero(bytes, in: min(offset, bytes.count)..<min(offset + Layout.legacyFrameHeaderSize, bytes.count)) {
                    return (frames, offset)  // end of data
                }
                let laterFrame = (offset + 1..<max(offset + 1, bytes.count - Layout.legacyFrameHeaderSize)).contains { probe(bytes, at: $0) != nil }
                // A torn tail: never acknowledged (unless the index file a clean close saved
                // says the frames went further: `recordedEnd`).
                if isLast && !laterFrame { return (frames, offset) }
                throw StoreError.corruption(segment: name, offset: offset, reason: "damaged version 1 frame: the store must be repaired before an upgrade")
            }
            let records: [Record]
            do {
                records = try FrameReader.records(
                    of: header, in: bytes, at: offset, dictionary: dictionary, headerSize: Layout.legacyFrameHeaderSize,
                    formatVersion: Layout.legacyFormatVersion)
            } catch {
                throw StoreError.corruption(segment: name, offset: offset, reason: "\(error)")
            }
            for case .dictionary(let bytes) in records { dictionary = bytes }
            frames.append(Frame(firstPosition: header.firstPosition, records: records))
            offset += Layout.legacyFrameHeaderSize + Int(header.storedLength)
        }
    }

    /// A valid version 1 frame header at `offset`, checksum included.
    private static func probe(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> FrameHeader? {
        guard offset + Layout.legacyFrameHeaderSize <= bytes.count else { return nil }
        let load32 = { (at: Int) in UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + at, as: UInt32.self)) }
        let stored = load32(4), raw = load32(8)
        let flags = bytes[offset + 12]
        let check = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 14, as: UInt16.self))
        let first = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
        let events = load32(24), records = load32(28)
        let compressed = flags & Layout.frameCompressed != 0, usesDictionary = flags & Layout.frameUsesDictionary != 0
        guard stored > 0, Int(stored) <= Layout.maximumFramePayload, Int(raw) <= Layout.maximumFramePayload,
            flags & ~(Layout.frameCompressed | Layout.frameUsesDictionary) == 0, bytes[offset + 13] == 0,
            compressed || !usesDictionary, usesDictionary || check == 0, compressed || raw == stored,
            records > 0, events <= records, first < Layout.maximumPosition,
            offset + Layout.legacyFrameHeaderSize + Int(stored) <= bytes.count
        else { return nil }
        let covered = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + Layout.legacyFrameHeaderSize + Int(stored))])
        guard Checksum.mask(Checksum.crc32c(covered)) == load32(0) else { return nil }
        return FrameHeader(
            storedLength: stored, rawLength: raw, isCompressed: compressed, usesDictionary: usesDictionary,
            dictionaryCheck: check, firstPosition: first, eventCount: events, recordCount: records, batch: 0, endsBatch: true)
    }
}
