import Foundation
import Glibc

extension EventLog {
    /// One finding of ``verify(progress:)``: where, what kind, and what exactly.
    public struct Finding: Sendable, Equatable, Codable, CustomStringConvertible {
        public enum Kind: String, Sendable, Codable {
            /// A frame fails its checksum or does not decode, or bytes between frames are garbage.
            case damagedFrame = "damaged-frame"
            /// A segment's header is damaged or does not fit the file name or its neighbours.
            case damagedSegment = "damaged-segment"
            /// Global positions do not increase.
            case positionOrder = "position-order"
            /// A stream's versions skip or repeat (beyond what truncation and deletes allow).
            case versionSequence = "version-sequence"
            /// The index does not point at the event the segments hold.
            case indexMismatch = "index-mismatch"
            /// The manifest or the head file is missing or damaged, a segment file is longer
            /// than its capacity, or what the manifest, the head or the index file records says
            /// that acknowledged events are missing.
            case damagedMetadata = "damaged-metadata"
            /// Bytes after the last frame of the newest segment: a write that never completed
            /// (discarded at the next open for writing). A warning, not a problem.
            case tornTail = "torn-tail"
            /// A segment file the manifest does not list, which the next open for writing
            /// removes: what an interrupted compaction, upgrade or roll left (or a roll in
            /// progress, beside a writer). A warning, not a problem.
            case leftoverFile = "leftover-file"
            /// A file under a segment's name that the manifest does not list and whose header
            /// cannot be read: left as it is. A warning, not a problem.
            case unreadableFile = "unreadable-file"
        }

        public var segment: String
        public var offset: Int
        public var kind: Kind
        public var message: String

        public init(segment: String, offset: Int, kind: Kind, message: String) {
            self.segment = segment
            self.offset = offset
            self.kind = kind
            self.message = message
        }

        public var description: String { "\(segment) at offset \(offset): \(kind.rawValue): \(message)" }
    }

    /// What ``verify(progress:)`` found.
    public struct VerificationReport: Sendable, Codable {
        public var segments: Int
        /// Frames that hold events (bookkeeping frames, such as dictionaries and close markers,
        /// are checked too but not counted).
        public var frames: Int
        public var events: Int
        public var streams: Int
        /// Problems: damage, ordering or index errors.
        public var problems: [Finding]
        /// Findings that lose nothing acknowledged (a torn tail).
        public var warnings: [Finding]

        public init(segments: Int, frames: Int, events: Int, streams: Int, problems: [Finding], warnings: [Finding]) {
            self.segments = segments
            self.frames = frames
            self.events = events
            self.streams = streams
            self.problems = problems
            self.warnings = warnings
        }

        public var isClean: Bool { problems.isEmpty }
    }

    /// Checks the whole store: every frame's checksum (again), every event decoded, global
    /// positions increasing, every stream's versions contiguous (below its truncation point
    /// versions may be missing), and the index against what the segments hold. Changes nothing.
    ///
    /// Open the store with ``Options/readOnly`` to verify a store another process is writing.
    /// - Parameter progress: called with (frames checked, frames in all) now and then.
    public func verify(progress: (Int, Int) -> Void = { _, _ in }) throws -> VerificationReport {
        try prepareToRead()
        let (index, segments) = try core.withReadableState { shared in
            return (shared.index, shared.segments.indices.map { core.segmentForReading($0, in: &shared) })
        }
        var problems: [Finding] = []
        var warnings: [Finding] = []
        for damage in index.damage {
            // Within a segment's first 128 bytes: its header (damaged, or not fitting its
            // neighbours); past them, a frame.
            let kind: Finding.Kind =
                [Layout.manifestName, Layout.indexName, Layout.headName].contains(damage.segmentName) ? .damagedMetadata
                : damage.offset < Layout.segmentHeaderSize ? .damagedSegment : .damagedFrame
            problems.append(Finding(segment: damage.segmentName, offset: damage.offset, kind: kind, message: damage.reason))
        }
        if !segments.isEmpty {
            for (offset, message) in StoreFiles.headProblems(in: directory, lookingTwice: options.readOnly) {
                problems.append(Finding(segment: Layout.headName, offset: offset, kind: .damagedMetadata, message: message))
            }
        }
        for segment in segments {
            // The file this store opened: beside compactions, the name may be another file's by
            // now (they alternate names), which is no damage of this one.
            let size = (try? segment.file.size()) ?? 0
            if size > Int(segment.header.capacity) {
                problems.append(Finding(
                    segment: segment.name, offset: Int(segment.header.capacity), kind: .damagedMetadata,
                    message: "the file is \(size) bytes, longer than its capacity \(segment.header.capacity)"))
            }
        }
        if recovery.tornBytesDiscarded > 0, options.readOnly, let last = segments.last {
            let offset = core.shared.withLock { $0.scannedEnd }
            warnings.append(Finding(
                segment: last.name, offset: offset, kind: .tornTail,
                message: "\(recovery.tornBytesDiscarded) bytes after the last valid frame: an incomplete write, discarded at the next open for writing (or a write in progress)"))
        }
        for name in recovery.leftoverFiles {
            warnings.append(Finding(
                segment: name, offset: 0, kind: .leftoverFile,
                message: "a segment file the manifest does not list (left by an interrupted compaction, upgrade or roll, or a roll in progress): not part of the store; the next open for writing removes it"))
        }
        for name in recovery.unreadableFiles {
            let why = recovery.unreadableReasons[name].map { " (\($0))" } ?? ""
            warnings.append(Finding(
                segment: name, offset: 0, kind: .unreadableFile,
                message: "a file under a segment's name that the manifest does not list, and whose header cannot be read as that segment's\(why): not read, never removed or written over; an interrupted compaction may leave one, and so may damage to a segment that held events (look at it before removing it)"))
        }
        var previousPosition: UInt64?
        var expectedVersion: [StreamKey: Int] = [:]
        var events = 0
        for (frameNumber, frame) in index.eventFrames.enumerated() {
            if frameNumber % 256 == 0 { progress(frameNumber, index.eventFrames.count) }
            let segment = segments[frame.location.segment]
            let decoded: [StoredEvent]
            do {
                decoded = try FrameCache.records(at: frame.location.offset, in: segment, checksum: frame.checksum).compactMap {
                    if case .event(let event) = $0 { return event }
                    return nil
                }
            } catch let error as SystemError {
                throw error  // a page the disk failed: not damage, and nothing verified
            } catch {
                problems.append(Finding(segment: segment.name, offset: frame.location.offset, kind: .damagedFrame, message: "\(error)"))
                continue
            }
            for event in decoded {
                events += 1
                let place = (segment.name, frame.location.offset)
                if let previousPosition, event.position <= previousPosition {
                    problems.append(Finding(
                        segment: place.0, offset: place.1, kind: .positionOrder,
                        message: "position \(event.position) follows position \(previousPosition)"))
                }
                previousPosition = event.position
                let entry = index.stream(event.stream)
                let expected = expectedVersion[StreamKey(event.stream)] ?? (entry?.removedThrough ?? 0) + 1
                let hiddenBelow = entry?.truncateBefore ?? 1
                let skippedLegitimately = event.version > expected && event.version <= hiddenBelow
                let skippedByDamage = event.version > expected
                    && (expected...(event.version - 1)).allSatisfy {
                        index.position(of: $0, in: event.stream).map { $0 >= StreamIndex.damagedMarker } ?? false
                    }
                if event.version != expected && !skippedLegitimately && !skippedByDamage {
                    problems.append(Finding(
                        segment: place.0, offset: place.1, kind: .versionSequence,
                        message: "stream '\(event.stream)' has version \(event.version) where version \(expected) was expected"))
                }
                expectedVersion[StreamKey(event.stream)] = max(expected, event.version + 1)
                guard entry != nil, index.position(of: event.version, in: event.stream) == event.position else {
                    problems.append(Finding(
                        segment: place.0, offset: place.1, kind: .indexMismatch,
                        message: "the index does not place version \(event.version) of '\(event.stream)' at position \(event.position)"))
                    continue
                }
            }
        }
        if let problem = indexFileProblem(scanned: index, segments: segments) {
            problems.append(Finding(segment: Layout.indexName, offset: 0, kind: .indexMismatch, message: problem))
        } else if !problems.contains(where: { $0.segment == Layout.indexName }), let unused = unusedIndexFile(segments: segments) {
            // (Not beside damage the index file proves: "saved before a change" would contradict it.)
            warnings.append(Finding(segment: Layout.indexName, offset: 0, kind: .indexMismatch, message: unused))
        }
        progress(index.eventFrames.count, index.eventFrames.count)
        return VerificationReport(
            segments: segments.count, frames: index.eventFrames.count, events: events,
            streams: index.streamOrder.count, problems: problems, warnings: warnings)
    }

    /// What is wrong with `dugong.index` when an open would use it (its checksum, segments and
    /// head hold) but it does not describe what the scan found: reads through it would fail.
    private func indexFileProblem(scanned: StreamIndex, segments: [Segment]) -> String? {
        guard !options.useIndexFile, let head = try? StoreFiles.readHead(in: directory),
            let saved = IndexFile.load(from: directory, segments: segments, head: head, registering: false)
        else { return nil }
        let advice = "; remove it (the next open rebuilds the index by scanning)"
        // Only what both saw: beside a writer, the file may be newer than the scan (a later clean
        // close), and then describes more; within what the scan saw it must agree.
        let seen = scanned.nextPosition
        let frames = saved.index.eventFrames.prefix { $0.firstPosition < seen }
        guard frames.count <= scanned.eventFrames.count else {
            return "dugong.index lists \(frames.count) frames before position \(seen), the segments hold \(scanned.eventFrames.count)" + advice
        }
        for (saved, found) in zip(frames, scanned.eventFrames)
        where saved.location != found.location || saved.firstPosition != found.firstPosition || saved.lastPosition != found.lastPosition
            || saved.checksum != found.checksum {
            return "dugong.index describes another frame than the one at \(segments[found.location.segment].name) offset \(found.location.offset)" + advice
        }
        for name in saved.index.streamOrder {
            let savedPositions = saved.index.positions(ofStream: name).filter { $0 < seen }
            guard !savedPositions.isEmpty else { continue }
            guard let savedStream = saved.index.stream(name), let foundStream = scanned.stream(name),
                scanned.positions(ofStream: name).starts(with: savedPositions),
                savedStream.removedThrough == foundStream.removedThrough
            else { return "dugong.index places the versions of '\(name)' elsewhere than the segments do" + advice }
        }
        return nil
    }

    /// What to say of a `dugong.index` that opens do not use although the head records a clean
    /// close (the index saved at that close would be used): another store's, or one from before
    /// a change to the segments or the head. Harmless (opens scan instead, and the next clean
    /// close replaces it), but worth knowing.
    private func unusedIndexFile(segments: [Segment]) -> String? {
        // (Only against the head this log opened or last refreshed with: beside a writer, a
        // later clean close saves an index of segments it has not mapped.)
        guard !options.useIndexFile, FileManager.default.fileExists(atPath: directory + "/" + Layout.indexName),
            let head = try? StoreFiles.readHead(in: directory), head.cleanClose,
            head.sequence == core.shared.withLock({ $0.followed.headSequence }),
            IndexFile.load(from: directory, segments: segments, head: head, registering: false) == nil
        else { return nil }
        let scanInstead = "opens do not use it and scan the segments instead; the next clean close of a writer replaces it"
        // One that cannot be read is said to be so, with why (not "another store's").
        do {
            _ = try File.contents(of: directory + "/" + Layout.indexName, limit: Int(Int32.max))
        } catch {
            return "dugong.index cannot be read (\(error)): \(scanInstead)"
        }
        // An index file of an earlier layout (an older build's) is not "another store's".
        if let layout = IndexFile.layoutVersion(in: directory), layout != IndexFile.version {
            let whose = layout < IndexFile.version ? "an older build's" : "a newer build's, or a damaged version field"
            return "dugong.index is of layout version \(layout), \(whose) (this one reads \(IndexFile.version)): \(scanInstead)"
        }
        return "dugong.index does not describe these segments and this head (another store's, or saved before or after a change to them): \(scanInstead)"
    }

    /// Sizes and counts of a store, for `dugong stats`.
    public struct Statistics: Sendable, Codable {
        public struct Segment: Sendable, Codable {
            public var name: String
            /// The bytes the file takes on disk (as `du` counts them: the unused, punched end of
            /// the active segment takes none).
            public var fileBytes: Int
            /// The global position the segment starts at.
            public var firstPosition: UInt64
            /// The segment's format version (FORMAT.md §11): the current one, or an older one
            /// this build reads as it is (compaction rewrites such segments in the current one).
            public var formatVersion: Int
        }

        public struct StreamSize: Sendable, Codable {
            public var stream: String
            public var version: Int
        }

        public var segments: [Segment]
        /// Events in the log, including those hidden by deletes and truncation.
        public var events: Int
        public var streams: Int
        /// The position the next event gets.
        public var headPosition: UInt64
        /// Bytes of the segment files.
        public var fileBytes: Int
        /// Bytes of frames (what the data takes, without preallocated space).
        public var frameBytes: Int
        /// Bytes of the frames' payloads before compression.
        public var rawPayloadBytes: Int
        /// The streams with the most versions, largest first (at most 10).
        public var largestStreams: [StreamSize]

        /// Raw payload bytes per stored frame byte.
        public var compressionRatio: Double { frameBytes == 0 ? 1 : Double(rawPayloadBytes) / Double(frameBytes) }
    }

    /// Counts and sizes of the store.
    public func statistics() throws -> Statistics {
        try prepareToRead()
        let (index, segments) = try core.withReadableState { shared in
            return (shared.index, shared.segments)
        }
        let files = segments.map { segment in
            Statistics.Segment(
                name: segment.name, fileBytes: (try? segment.file.allocatedSize()) ?? 0,
                firstPosition: segment.header.firstPosition, formatVersion: Int(segment.header.formatVersion))
        }
        let largest = index.streamOrder.indices.map { Statistics.StreamSize(stream: index.streamOrder[$0], version: index.table.version(of: $0)) }
            .sorted { ($0.version, $1.stream) > ($1.version, $0.stream) }
            .prefix(10)
        return Statistics(
            segments: files, events: index.eventCount, streams: index.streamOrder.count, headPosition: index.nextPosition,
            fileBytes: files.reduce(0) { $0 + $1.fileBytes }, frameBytes: index.frameBytes,
            rawPayloadBytes: index.rawPayloadBytes, largestStreams: Array(largest))
    }

    /// Every stream the store knows (with events, snapshots or lifecycle records), in the
    /// order it first appeared.
    public func streamNames() throws -> [String] {
        try prepareToRead()
        return try core.withReadableState { shared in
            return shared.index.streamOrder
        }
    }
}
