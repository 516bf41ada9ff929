import Dugong
import Foundation
import Glibc

/// What a compaction did (or, dry, would do).
public struct CompactionReport: Sendable, Codable, Equatable {
    public var eventsBefore: Int
    public var eventsAfter: Int
    /// Bytes of the segment files.
    public var bytesBefore: Int
    public var bytesAfter: Int
    public var segmentsBefore: Int
    public var segmentsAfter: Int
    /// Whether nothing was written (`dryRun`).
    public var dryRun: Bool
}

extension EventLog {
    /// The steps of a compaction, where the test hook ``Options/compactionFaults`` may fail it.
    enum CompactionStep: Sendable, Equatable {
        case wroteNewSegments, wroteManifest, renamed(Int), removedOld(Int), removedManifest
    }

    /// Rewrites the store offline, without what deletes, truncations and tombstones hid and
    /// without superseded snapshots, re-packing events into large compressed frames. Surviving
    /// events keep their global positions, versions and bytes; tombstones stay; the next event
    /// still gets the position it would have got.
    ///
    /// It takes the store's lock (a store in use by a writer throws ``StoreError/locked(directory:)``)
    /// and refuses a damaged store. Crash-safe: the new segments are written to temporary files
    /// and synced; a manifest naming the old and new sets is written, synced and renamed into
    /// place (the commit point); the new files are renamed into place, the old ones removed and
    /// the manifest removed, syncing the directory after each stage. Opening a store finishes an
    /// interrupted compaction (all new files in place: the old ones go) or undoes it.
    public static func compact(
        at directory: String, options: Options = Options(), dryRun: Bool = false,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> CompactionReport {
        guard Directory.exists(directory) else { throw StoreError.notFound(directory: directory) }
        let lock = try File(path: directory + "/" + Layout.lockFileName, flags: O_RDWR | O_CREAT)
        guard try lock.lockExclusively() else { throw StoreError.locked(directory: directory) }
        try Compaction.finishInterrupted(in: directory)
        if !dryRun { try IndexFile.remove(from: directory) }
        let (names, _) = try segmentNames(in: directory, removingTemporaryFiles: true)
        guard !names.isEmpty else {
            return CompactionReport(eventsBefore: 0, eventsAfter: 0, bytesBefore: 0, bytesAfter: 0, segmentsBefore: 0, segmentsAfter: 0, dryRun: dryRun)
        }
        var segments: [Segment] = []
        for (offset, name) in names.enumerated() {
            let last = offset == names.count - 1
            segments.append(try Segment.open(directory: directory, name: name.fileName, writable: last, extendToCapacity: false))
        }
        let recovered = try Recovery.scan(segments, repair: true)
        if let damage = recovered.index.damage.first { throw StoreError.damaged(first: damage.error) }
        var compaction = Compaction(
            directory: directory, options: options, index: recovered.index, segments: segments,
            oldNames: Set(names.map(\.fileName)), dryRun: dryRun)
        try compaction.run(progress: progress)
        let bytesBefore = segments.reduce(0) { total, segment in total + ((try? File(path: segment.path, flags: O_RDONLY).size()) ?? 0) }
        let report = CompactionReport(
            eventsBefore: recovered.index.eventCount, eventsAfter: compaction.eventsKept, bytesBefore: bytesBefore,
            bytesAfter: compaction.bytesWritten, segmentsBefore: segments.count, segmentsAfter: compaction.newNames.count,
            dryRun: dryRun)
        segments.removeAll()
        guard !dryRun else { return report }
        try compaction.switchOver(replacing: names.map(\.fileName))
        return report
    }
}

/// One compaction: the plan, the new segment files, and the switch from the old set to them.
struct Compaction {
    let directory: String
    let options: EventLog.Options
    let index: StreamIndex
    let segments: [Segment]
    let oldNames: Set<String>
    let dryRun: Bool

    /// Raw payload at which a compacted frame is closed: large enough to compress well, small
    /// enough that reading one stream does not inflate much else.
    static let frameSize = 64 << 10

    private(set) var newNames: [String] = []
    private(set) var eventsKept = 0
    private(set) var bytesWritten = 0
    private var output: OutputSegment?
    private var builder: FrameBuilder?
    /// The position after the last event written: where the next segment's range starts.
    private var cursor: UInt64

    init(directory: String, options: EventLog.Options, index: StreamIndex, segments: [Segment], oldNames: Set<String>, dryRun: Bool) {
        self.directory = directory
        self.options = options
        self.index = index
        self.segments = segments
        self.oldNames = oldNames
        self.dryRun = dryRun
        cursor = segments.first?.header.firstPosition ?? 0
    }

    /// A new segment being written to its temporary file (no file in a dry run).
    private struct OutputSegment {
        let name: String
        let file: TemporaryFile?
        var offset: Int
        var bytesInSegment: Int
    }

    /// Owns the descriptor of a file being written.
    private final class TemporaryFile {
        let file: File
        init(_ file: consuming File) { self.file = file }
    }

    mutating func run(progress: (Int, Int) -> Void) throws {
        // Lifecycle records and the latest snapshots first, so the index knows them before the events.
        var first = FrameBuilder(nextPosition: cursor)
        for name in index.streamOrder {
            guard let stream = index.stream(name) else { continue }
            if stream.isTombstoned {
                first.appendStreamMetadata(stream: name, operation: .tombstone, version: 0)
            } else {
                if stream.snapshotsHiddenThrough > 0 {
                    first.appendStreamMetadata(stream: name, operation: .delete, version: stream.snapshotsHiddenThrough + 1)
                }
                if stream.truncateBefore > max(1, stream.snapshotsHiddenThrough + 1) {
                    first.appendStreamMetadata(stream: name, operation: .truncateBefore, version: stream.truncateBefore)
                }
                if let reference = stream.snapshot, reference.version > stream.snapshotsHiddenThrough {
                    let records = try FrameCache.records(at: reference.location.offset, in: segments[reference.location.segment])
                    if case .snapshot(let snapshot) = records[reference.recordIndex] { first.append(snapshot) }
                }
            }
            if first.payloadSize >= Self.frameSize {
                try write(first)
                first = FrameBuilder(nextPosition: cursor)
            }
        }
        if !first.isEmpty { try write(first) }

        for (number, frame) in index.eventFrames.enumerated() {
            if number % 64 == 0 { progress(number, index.eventFrames.count) }
            let records = try FrameCache.records(at: frame.location.offset, in: segments[frame.location.segment])
            for case .event(let event) in records {
                guard let stream = index.stream(event.stream), !stream.isTombstoned, event.version >= stream.truncateBefore else {
                    continue
                }
                if builder == nil { builder = FrameBuilder(nextPosition: event.position) }
                builder!.appendKeepingPosition(event)
                eventsKept += 1
                if builder!.payloadSize >= Self.frameSize {
                    try write(builder!)
                    builder = nil
                }
            }
        }
        if let last = builder {
            try write(last)
            builder = nil
        }
        progress(index.eventFrames.count, index.eventFrames.count)
        try closeOutput()
        // A fresh active segment at the head, so that positions are never reused.
        try startOutput(at: index.nextPosition, capacity: options.segmentSize)
        try closeOutput()
    }

    private mutating func write(_ frame: FrameBuilder) throws {
        let bytes = frame.encoded()
        if let current = output, current.bytesInSegment > 0, current.offset + bytes.count > options.segmentSize {
            try closeOutput()
        }
        if output == nil { try startOutput(at: cursor, capacity: nil) }
        if let temporary = output!.file {
            let offset = output!.offset
            try bytes.withUnsafeBytes { try temporary.file.write($0, at: offset) }
        }
        output!.offset += bytes.count
        output!.bytesInSegment += bytes.count
        if let last = frame.records.last(where: { if case .event = $0 { true } else { false } }), case .event(let event) = last {
            cursor = event.position + 1
        }
    }

    /// Starts a new segment whose range begins at `position`; `capacity` nil: as long as its frames.
    private mutating func startOutput(at position: UInt64, capacity: Int?) throws {
        var generation = 0
        var name = Layout.SegmentName(firstPosition: position, generation: 0).fileName
        while oldNames.contains(name) || newNames.contains(name) {
            generation += 1
            name = Layout.SegmentName(firstPosition: position, generation: generation).fileName
        }
        newNames.append(name)
        let header = SegmentHeader(
            firstPosition: position, capacity: UInt64(capacity ?? 0),
            createdMilliseconds: Date.currentMillisecond.millisecondsSince1970,
            followsCompactedPositions: newNames.count > 1)
        var file: TemporaryFile?
        if !dryRun {
            let opened = TemporaryFile(try File(path: directory + "/" + name + Layout.temporarySuffix, flags: O_RDWR | O_CREAT | O_TRUNC))
            try header.encoded().withUnsafeBytes { try opened.file.write($0, at: 0) }
            file = opened
        }
        output = OutputSegment(name: name, file: file, offset: Layout.segmentHeaderSize, bytesInSegment: 0)
        if capacity != nil { pendingCapacity = capacity }
    }

    private var pendingCapacity: Int?

    /// Fixes the segment's capacity in its header (sealed segments: their own size), syncs it.
    private mutating func closeOutput() throws {
        guard let current = output else { return }
        output = nil
        let capacity = pendingCapacity ?? current.offset
        pendingCapacity = nil
        bytesWritten += current.offset
        guard let temporary = current.file else { return }
        let header = SegmentHeader(
            firstPosition: Layout.SegmentName(fileName: current.name)!.firstPosition, capacity: UInt64(capacity),
            createdMilliseconds: Date.currentMillisecond.millisecondsSince1970,
            followsCompactedPositions: newNames.first != current.name)
        try header.encoded().withUnsafeBytes { try temporary.file.write($0, at: 0) }
        try temporary.file.synchronize()
    }

    /// The commit: manifest, renames, removals, each stage made durable.
    func switchOver(replacing old: [String]) throws {
        let fault = options.compactionFaults ?? { _ in }
        try fault(.wroteNewSegments)
        let manifest = directory + "/" + Layout.compactionManifestName
        let text = (["DUGONG-COMPACTION 1"] + old.map { "old " + $0 } + newNames.map { "new " + $0 }).joined(separator: "\n") + "\n"
        let temporary = manifest + Layout.temporarySuffix
        let file = try File(path: temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        try Array(text.utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.synchronize()
        try Directory.rename(temporary, to: manifest)
        try Directory.synchronize(directory)
        try fault(.wroteManifest)
        for (number, name) in newNames.enumerated() {
            try Directory.rename(directory + "/" + name + Layout.temporarySuffix, to: directory + "/" + name)
            try fault(.renamed(number))
        }
        try Directory.synchronize(directory)
        for (number, name) in old.enumerated() {
            try Directory.remove(directory + "/" + name)
            try fault(.removedOld(number))
        }
        try Directory.synchronize(directory)
        try Directory.remove(manifest)
        try Directory.synchronize(directory)
        try fault(.removedManifest)
    }

    /// The old and new segment names of an interrupted compaction's manifest, or `nil` when
    /// there is none.
    static func manifest(in directory: String) throws -> (old: [String], new: [String])? {
        let manifest = directory + "/" + Layout.compactionManifestName
        guard FileManager.default.fileExists(atPath: manifest) else { return nil }
        let text = (try? String(contentsOfFile: manifest, encoding: .utf8)) ?? ""
        var lines = text.split(separator: "\n")
        guard lines.first == "DUGONG-COMPACTION 1" else {
            throw StoreError.corruption(segment: Layout.compactionManifestName, offset: 0, reason: "not a compaction manifest of this version")
        }
        lines.removeFirst()
        var old: [String] = []
        var new: [String] = []
        for line in lines {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let name = Layout.SegmentName(fileName: String(parts[1]))?.fileName, name == parts[1] else {
                throw StoreError.corruption(segment: Layout.compactionManifestName, offset: 0, reason: "malformed line '\(line)'")
            }
            switch parts[0] {
            case "old": old.append(name)
            case "new": new.append(name)
            default: throw StoreError.corruption(segment: Layout.compactionManifestName, offset: 0, reason: "malformed line '\(line)'")
            }
        }
        return (old, new)
    }

    /// The segment names an interrupted compaction leaves out: the old set when every new
    /// segment is in place (the compaction committed), the new set otherwise.
    static func supersededNames(in directory: String) throws -> Set<String> {
        guard let (old, new) = try manifest(in: directory) else { return [] }
        let exists = { (name: String) in FileManager.default.fileExists(atPath: directory + "/" + name) }
        return Set(new.allSatisfy(exists) ? old.filter { !new.contains($0) } : new)
    }

    /// Finishes or undoes a compaction that a crash interrupted: with every new segment in
    /// place the old ones are removed; otherwise the new ones are. Then the manifest goes.
    static func finishInterrupted(in directory: String) throws {
        guard let (_, new) = try manifest(in: directory) else { return }
        for name in try supersededNames(in: directory) where FileManager.default.fileExists(atPath: directory + "/" + name) {
            try Directory.remove(directory + "/" + name)
        }
        for name in new where FileManager.default.fileExists(atPath: directory + "/" + name + Layout.temporarySuffix) {
            try Directory.remove(directory + "/" + name + Layout.temporarySuffix)
        }
        try Directory.synchronize(directory)
        try Directory.remove(directory + "/" + Layout.compactionManifestName)
        try Directory.synchronize(directory)
    }
}
