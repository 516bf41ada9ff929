import Dugong
import Foundation
import Glibc

/// What a compaction did (or, dry, would do).
public struct CompactionReport: Sendable, Codable, Equatable {
    public var eventsBefore: Int
    public var eventsAfter: Int
    /// Bytes of the segment files on disk (as `du` counts them) before and after; after a dry
    /// run: an estimate in the same unit (each segment it would write, in whole 4 KiB blocks).
    public var bytesBefore: Int
    public var bytesAfter: Int
    public var segmentsBefore: Int
    public var segmentsAfter: Int
    /// Whether nothing was written (`dryRun`).
    public var dryRun: Bool
    /// Set when the compaction took effect (the new segments are the store) but a step after
    /// its commit failed: removing an old segment, or writing the head file. Nothing is lost;
    /// the next writable open finishes it (removes the old segments left, rewrites the head
    /// file, which verification names until then). Nil when every step succeeded.
    public var unfinishedCleanup: String? = nil
}

extension EventLog {
    /// The steps of a compaction, where the test hook ``Options/compactionFaults`` may fail it.
    enum CompactionStep: Sendable, Equatable {
        case wroteNewSegments, wroteManifest, removedOld(Int), wroteHead
    }

    /// Rewrites the store offline, without what deletes, truncations and tombstones hid and
    /// without superseded snapshots, re-packing events into large compressed frames. Surviving
    /// events keep their global positions, versions and bytes; every stream keeps its version
    /// (the versions removed are recorded, so appends continue after them); tombstones stay; the
    /// next event still gets the position it would have got.
    ///
    /// It takes the store's lock (a store in use by a writer throws ``StoreError/locked(directory:)``)
    /// and refuses a damaged store; a dry run takes no lock (it runs beside a writer and reports
    /// on the store as a reader sees it). Crash-safe: the new segments are written under new names and
    /// synced; the manifest naming them replaces the old one atomically (the commit point); then
    /// the old segments are removed. A crash before the commit leaves the old store (the next
    /// writable open or compaction removes the unlisted new files), after it the new one; an
    /// error before the commit (a full disk) removes the new files at once. A dry run changes
    /// nothing at all. It reads the whole tail as a writable open does (after a power cut the head
    /// file may be older than the last acknowledged batch), and refuses `options` an open would
    /// refuse (``StoreError/invalidArgument(_:)``).
    public static func compact(
        at directory: String, options: Options = Options(), dryRun: Bool = false,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> CompactionReport {
        if !Directory.exists(directory) {
            try refuseAsAFile(directory)
            throw StoreError.notFound(directory: directory)
        }
        try validate(options)
        // A directory of other files is refused before the lock (which would leave a lock file).
        if let foreign = try SegmentSet.foreignFiles(in: directory) { throw SegmentSet.notAStore(directory, holding: foreign) }
        // A dry run writes nothing: it reads beside a writer, as any reader does.
        let lock = dryRun ? nil : try StoreLock.take(in: directory)
        defer { withExtendedLifetime(lock) {} }
        // Opened as a reader would: nothing is repaired or removed; a torn tail is not copied.
        var set = dryRun
            ? try SegmentSet.openForReading(directory: directory)
            : try SegmentSet.open(directory: directory, writable: false, holdingLock: true, createWithCapacity: nil)
        guard let last = set.segments.last else {
            // No segment: an empty directory, or a store whose files were lost (damage); also
            // when every segment the manifest lists is missing or another one (another salt),
            // which only a scan records (it compacted nothing and said so, with exit 0).
            if let damage = set.context.damage.first { throw damage.error }
            if let damage = Recovery.scan([], context: set.context).index.damage.first { throw StoreError.damaged(first: damage.error) }
            return CompactionReport(eventsBefore: 0, eventsAfter: 0, bytesBefore: 0, bytesAfter: 0, segmentsBefore: 0, segmentsAfter: 0, dryRun: dryRun)
        }
        var context = set.context
        if !dryRun { try context.readHints(in: directory, lookingTwice: false) }
        let head = context.head
        context.lastFileSize = last.originalSize
        // With the lock, the whole tail as a writable open scans it: after a power cut the head
        // may be older than what was acknowledged (it is written after each sync, not synced),
        // and a reader's scan stops at the head's durable end: the events after it would be
        // left out of the new segments, then deleted with the old ones.
        context.repairing = !dryRun
        let recovered = Recovery.scan(set.segments, context: context)
        try recovered.checkReadable()
        if let damage = recovered.index.damage.first { throw StoreError.damaged(first: damage.error) }
        if !dryRun {
            try Directory.checkStill(directory, is: lock?.directoryIdentity)
            try IndexFile.remove(from: directory)
            // What an earlier compaction that failed (a full disk) or crashed left: on a full
            // disk, trying again must free that space first.
            try set.removeLeftovers(in: directory, locked: lock?.directoryIdentity)
        }
        let existing = Set(try Directory.entries(of: directory))
        var compaction = Compaction(
            directory: directory, options: options.adoptingSegmentSize(of: set.segments), index: recovered.index, segments: set.segments,
            takenNames: existing, dryRun: dryRun, sequence: last.header.sequence + 1,
            nextBatch: max(head?.nextBatch ?? 0, recovered.lastBatch.map { $0 + 1 } ?? 0))
        compaction.output.directoryIdentity = lock?.directoryIdentity
        do {
            try compaction.run(progress: progress)
            // Every frame read was checked for pages the disk failed; the old segments are still
            // checked as a whole before they are replaced (and removed).
            for segment in set.segments { try segment.checkReadable() }
        } catch {
            compaction.output.removeUncommitted()
            throw error
        }
        let bytesBefore = set.segments.reduce(0) { total, segment in
            total + ((try? File(path: segment.path, flags: O_RDONLY).allocatedSize()) ?? 0)
        }
        var report = CompactionReport(
            eventsBefore: recovered.index.eventCount, eventsAfter: compaction.eventsKept, bytesBefore: bytesBefore,
            bytesAfter: compaction.bytesWritten, segmentsBefore: set.segments.count, segmentsAfter: compaction.written.count,
            dryRun: dryRun)
        let oldNames = set.segments.map(\.name)
        set.segments.removeAll()
        guard !dryRun else {
            // In blocks, as the real run counts them (it printed the bytes it would write: "about
            // 438 after" where the run then said "8192 after").
            report.bytesAfter = compaction.written.reduce(0) { total, segment in total + (segment.end + 4095) / 4096 * 4096 }
            return report
        }
        report.unfinishedCleanup = try compaction.output.switchOver(
            fromGeneration: set.manifest.generation, removing: oldNames, headSequence: head?.sequence ?? 0,
            nextPosition: recovered.index.nextPosition)
        // Counted as the bytes before are (a segment takes whole blocks, a short one at least one).
        report.bytesAfter = compaction.written.reduce(0) { total, segment in
            total + ((try? File(path: directory + "/" + segment.name, flags: O_RDONLY).allocatedSize()) ?? 0)
        }
        return report
    }
}

/// One compaction: what to keep, in what order, written through a ``SegmentSetWriter``.
struct Compaction {
    let index: StreamIndex
    let segments: [Segment]
    var output: SegmentSetWriter

    /// Raw payload at which a compacted frame is closed: large enough to compress well, small
    /// enough that reading one stream does not decompress much else.
    static let frameSize = 64 << 10

    /// ``frameSize``, or half a segment's room for frames when segments are smaller than twice
    /// that: a frame of events that do not compress still fits the store's segment size (a
    /// compaction of a store of 8 KiB segments wrote 20 KiB ones).
    let frameLimit: Int

    private(set) var eventsKept = 0
    private var builder: FrameBuilder?

    init(
        directory: String, options: EventLog.Options, index: StreamIndex, segments: [Segment], takenNames: Set<String>,
        dryRun: Bool, sequence: UInt64, nextBatch: UInt64
    ) {
        self.index = index
        self.segments = segments
        frameLimit = min(Self.frameSize, (options.segmentSize - Layout.segmentHeaderSize) / 2)
        output = SegmentSetWriter(
            directory: directory, options: options, takenNames: takenNames, dryRun: dryRun, sequence: sequence,
            nextBatch: nextBatch, firstPosition: segments.first?.header.firstPosition ?? 0)
    }

    var written: [SegmentSetWriter.Written] { output.written }
    var bytesWritten: Int { output.bytesWritten }

    mutating func run(progress: (Int, Int) -> Void) throws {
        // Lifecycle records and the latest snapshots first, so the index knows them before the events.
        var first = FrameBuilder(nextPosition: output.cursor)
        for name in index.streamOrder {
            guard let stream = index.stream(name) else { continue }
            // Versions that are not copied stay counted: appends continue after them.
            let keptFrom = stream.isTombstoned
                ? stream.version + 1 : min(max(stream.truncateBefore, stream.removedThrough + 1), stream.version + 1)
            if keptFrom > 1 {
                first.appendStreamMetadata(stream: name, operation: .versionsStartAt, version: keptFrom)
            }
            if stream.isTombstoned {
                first.appendStreamMetadata(stream: name, operation: .tombstone, version: 0)
            } else {
                if stream.snapshotsHiddenThrough > 0 {
                    first.appendStreamMetadata(stream: name, operation: .delete, version: stream.snapshotsHiddenThrough + 1)
                }
                if stream.truncateBefore > max(keptFrom, stream.snapshotsHiddenThrough + 1) {
                    first.appendStreamMetadata(stream: name, operation: .truncateBefore, version: stream.truncateBefore)
                }
                if let reference = stream.snapshot, reference.version > stream.snapshotsHiddenThrough {
                    let records = try FrameCache.records(at: reference.location.offset, in: segments[reference.location.segment])
                    if records.indices.contains(reference.recordIndex), case .snapshot(let snapshot) = records[reference.recordIndex] {
                        first.append(snapshot)
                    }
                }
            }
            if first.payloadSize >= frameLimit {
                try output.write(first)
                first = FrameBuilder(nextPosition: output.cursor)
            }
        }
        if !first.isEmpty { try output.write(first) }

        for (number, frame) in index.eventFrames.enumerated() {
            if number % 64 == 0 { progress(number, index.eventFrames.count) }
            let records = try FrameCache.records(at: frame.location.offset, in: segments[frame.location.segment], checksum: frame.checksum)
            for case .event(let event) in records {
                guard let stream = index.stream(event.stream), !stream.isTombstoned, event.version >= stream.truncateBefore else {
                    continue
                }
                if builder == nil { builder = FrameBuilder(nextPosition: event.position) }
                builder!.appendKeepingPosition(event)
                eventsKept += 1
                if builder!.payloadSize >= frameLimit {
                    try output.write(builder!)
                    builder = nil
                }
            }
        }
        if let last = builder {
            try output.write(last)
            builder = nil
        }
        progress(index.eventFrames.count, index.eventFrames.count)
        try output.finish(nextPosition: index.nextPosition)
    }
}

/// Writes a new set of segments (compaction, upgrade) and switches the store to it: frames in
/// log order, positions kept (gaps allowed), segments chained by salt, each synced; then the
/// manifest naming them replaces the old one (the commit point) and the old files go.
struct SegmentSetWriter {
    let directory: String
    /// The directory the compaction or upgrade locked (``StoreLock/directoryIdentity``): files
    /// are created, replaced and removed by path only while the path still leads there.
    var directoryIdentity: [UInt64]?
    let options: EventLog.Options
    /// Names in the directory now: new segments never reuse them.
    let takenNames: Set<String>
    let dryRun: Bool

    struct Written {
        var name: String
        var header: SegmentHeader
        /// Where its frames end.
        var end: Int
    }

    /// The new segments, in order.
    private(set) var written: [Written] = []
    private(set) var bytesWritten = 0
    /// The position after the last event written: where the next segment's range starts.
    private(set) var cursor: UInt64
    private var output: OutputSegment?
    private var sequence: UInt64
    private(set) var nextBatch: UInt64

    init(directory: String, options: EventLog.Options, takenNames: Set<String>, dryRun: Bool, sequence: UInt64, nextBatch: UInt64, firstPosition: UInt64) {
        self.directory = directory
        self.options = options
        self.takenNames = takenNames
        self.dryRun = dryRun
        self.sequence = sequence
        self.nextBatch = nextBatch
        cursor = firstPosition
    }

    /// A new segment being written (no file in a dry run). Its frames form one batch: the last
    /// one, which ends the batch, is held back until the segment is closed.
    private struct OutputSegment {
        let name: String
        var header: SegmentHeader
        let file: OpenFile?
        var offset: Int
        var pending: SealedFrame?
        var capacity: Int?
    }

    /// Owns the descriptor of a file being written.
    private final class OpenFile {
        let file: File
        init(_ file: consuming File) { self.file = file }
    }

    /// Appends a frame, starting a new segment when the current one would exceed the segment size.
    mutating func write(_ frame: FrameBuilder) throws {
        precondition(frame.firstPosition >= cursor || frame.eventCount == 0, "positions increase")
        // Compaction writes segments of the current format version only.
        let sealed = frame.sealed(formatVersion: Layout.formatVersion)
        let pendingLength = output?.pending?.totalLength ?? 0
        if let current = output, current.offset + pendingLength > Layout.segmentHeaderSize,
            current.offset + pendingLength + sealed.totalLength > options.segmentSize
        {
            try closeOutput()
        }
        if output == nil { try startOutput(at: cursor, capacity: nil) }
        try writePending(endsBatch: false)
        output!.pending = sealed
        if frame.eventCount > 0, let last = frame.records.last(where: { if case .events = $0 { true } else { false } }),
            case .events(let run) = last
        {
            cursor = run.lastPosition + 1
        }
    }

    /// Closes the last segment and adds an empty active segment at `nextPosition`, so that
    /// positions are never reused.
    mutating func finish(nextPosition: UInt64) throws {
        precondition(nextPosition >= cursor)
        try closeOutput()
        try startOutput(at: nextPosition, capacity: options.segmentSize)
        try closeOutput()
    }

    /// Writes the held-back frame of the output segment.
    private mutating func writePending(endsBatch: Bool) throws {
        guard var current = output, let frame = current.pending else { return }
        var bytes: [UInt8] = []
        frame.write(into: &bytes, base: current.offset, salt: current.header.salt, batch: nextBatch, endsBatch: endsBatch)
        if let file = current.file {
            try bytes.withUnsafeBytes { try file.file.write($0, at: current.offset) }
        }
        current.offset += bytes.count
        current.pending = nil
        output = current
    }

    /// Starts a new segment whose range begins at `position`; `capacity` nil: as long as its frames.
    private mutating func startOutput(at position: UInt64, capacity: Int?) throws {
        var generation = 0
        var name = Layout.SegmentName(firstPosition: position, generation: 0).fileName
        while takenNames.contains(name) || written.contains(where: { $0.name == name }) {
            generation += 1
            name = Layout.SegmentName(firstPosition: position, generation: generation).fileName
        }
        let previous = written.last
        let header = SegmentHeader(
            firstPosition: position, capacity: UInt64(capacity ?? Layout.segmentHeaderSize),
            createdMilliseconds: Date.currentMillisecond.millisecondsSince1970, followsCompactedPositions: previous != nil,
            salt: SegmentHeader.newSalt(), sequence: sequence, previousSalt: previous?.header.salt ?? 0,
            previousEnd: UInt64(previous?.end ?? 0))
        sequence += 1
        var file: OpenFile?
        if !dryRun {
            try Directory.checkStill(directory, is: directoryIdentity)
            let created = try File(path: directory + "/" + name, flags: O_RDWR | O_CREAT | O_TRUNC)
            // The header first (its capacity set again at the end): a file under a segment's
            // name begins with one from the start. After a crash in the middle of it, zeros there
            // were taken for a damaged version 1 segment by a rerun of the upgrade (which then
            // refused every time), and the file was never removed as an unlisted segment.
            do {
                try header.encoded().withUnsafeBytes { try created.write($0, at: 0) }
            } catch {
                if (try? Directory.checkStill(directory, is: directoryIdentity)) != nil {
                    try? Directory.remove(directory + "/" + name)  // (not yet known to removeUncommitted)
                }
                throw error
            }
            file = OpenFile(created)
        }
        output = OutputSegment(name: name, header: header, file: file, offset: Layout.segmentHeaderSize, pending: nil, capacity: capacity)
    }

    /// Writes the last frame (ending the segment's batch) and the header with the segment's
    /// capacity (sealed segments: their own size), and syncs the file.
    private mutating func closeOutput() throws {
        guard output != nil else { return }
        if output!.pending != nil {
            try writePending(endsBatch: true)
            nextBatch += 1
        }
        let current = output!
        output = nil
        var header = current.header
        header.capacity = UInt64(current.capacity ?? current.offset)
        bytesWritten += current.offset
        written.append(Written(name: current.name, header: header, end: current.offset))
        guard let opened = current.file else { return }
        try header.encoded().withUnsafeBytes { try opened.file.write($0, at: 0) }
        try opened.file.synchronize()
    }

    /// After a failure before the commit: removes the new segments written so far, so that a
    /// compaction or an upgrade that failed for want of space gives that space back. Best
    /// effort, and nothing once the path no longer leads to the locked directory: a file left
    /// is an unlisted segment, which the next writable open or compaction removes.
    func removeUncommitted() {
        guard !dryRun else { return }
        for name in written.map(\.name) + (output.map { [$0.name] } ?? []) {
            guard (try? Directory.checkStill(directory, is: directoryIdentity)) != nil else { return }
            try? Directory.remove(directory + "/" + name)
        }
    }

    /// The commit: the new manifest replaces the old one; then the old files go and the head
    /// names the new active segment. Each stage is durable before the next.
    /// - Returns: what failed after the commit (the switch took effect: nothing is thrown then,
    ///   the caller reports it), or nil.
    /// - Throws: what failed before the commit (the old store is in effect).
    func switchOver(fromGeneration generation: UInt64, removing oldNames: [String], headSequence: UInt64, nextPosition: UInt64) throws -> String? {
        let fault = options.compactionFaults ?? { _ in }
        do {
            try Directory.synchronize(directory)
            try fault(.wroteNewSegments)
            try Directory.checkStill(directory, is: directoryIdentity)
        } catch {
            removeUncommitted()
            throw error
        }
        let manifest = Manifest(
            generation: generation + 1, segments: written.map { Manifest.Entry(name: $0.name, salt: $0.header.salt) })
        // The commit point. After an error the new segments go only if the old manifest is
        // still the one there (a rename that took effect before a failed sync committed).
        do {
            try StoreFiles.writeManifest(manifest, in: directory)
        } catch {
            switch try? StoreFiles.readManifest(in: directory) {
            case .intact(let found)? where found.generation == generation: removeUncommitted()
            case .missing? where generation == 0: removeUncommitted()  // an upgrade: version 1 stores have none
            default: break
            }
            throw error
        }
        do {
            try fault(.wroteManifest)
            for (number, name) in oldNames.enumerated() {
                try Directory.checkStill(directory, is: directoryIdentity)
                try Directory.remove(directory + "/" + name)
                try fault(.removedOld(number))
            }
            try Directory.synchronize(directory)
            try Directory.checkStill(directory, is: directoryIdentity)
            let active = written.last!
            let record = HeadRecord(
                sequence: headSequence + 1, segmentSalt: active.header.salt, durableEnd: UInt64(active.end),
                nextPosition: nextPosition, nextBatch: nextBatch, cleanClose: true)
            try HeadFile(directory: directory).write(record, durably: true)
            try fault(.wroteHead)
        } catch {
            return "\(error)"
        }
        return nil
    }
}
