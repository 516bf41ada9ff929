import Foundation

/// Rebuilding the index from the segments, and telling a torn tail from damage. It reads and
/// reports; the caller decides what a writable open repairs (FORMAT.md §8, the decision table).
///
/// - Frames are read in order; each must pass its checksum (which covers its segment's salt and
///   its own offset), decode, continue the log's positions and each stream's versions.
/// - A sealed segment's frames end exactly where the next segment's header says; the bytes from
///   there to its capacity are zero.
/// - In the newest segment, the frames before the head's durable end were acknowledged: an
///   invalid frame there is damage. After it, an invalid region is a **torn tail** only when
///   no clean close was recorded and every valid frame after it belongs to one batch, the batch
///   the frames before it were writing (or the next one): one sync covers one batch, and the
///   writer starts a batch only after the previous one's sync, so frames of a later batch prove
///   the earlier ones were synced and acknowledged.
/// - Anything else invalid is **damage**: recorded with segment, offset, length and the
///   positions it held; scanning resumes at the next valid frame.
enum Recovery {
    struct Result {
        var index = StreamIndex()
        /// Where the valid frames of the last segment end: where the writer appends.
        var writeOffset = Layout.segmentHeaderSize
        /// Bytes of the last segment after `writeOffset` that hold a torn write (0 when the tail is
        /// clean): zeroed by a writable open, left alone (and not read) by a read-only one.
        var tornBytes = 0
        /// The batch of the last frame before `writeOffset` (nil: no frame yet).
        var lastBatch: UInt64?
        /// Whether the newest segment's last valid frame is a close marker.
        var endsWithCloseMarker = false
        /// Set when the disk failed a page of a scanned segment (its map shows zeros there):
        /// the result may rest on those zeros, so whoever scanned throws this instead of using
        /// it (a writer must not take them for a torn tail, nor a reader for the log's end).
        var unreadable: SystemError?

        /// Throws ``unreadable``.
        func checkReadable() throws(SystemError) {
            if let unreadable { throw unreadable }
        }
    }

    /// A listed segment that cannot be read: where the damage is named (the manifest for a
    /// missing file; the segment for a damaged header), and what is wrong.
    struct LostSegment {
        var file: String
        var offset: Int
        var reason: String
        /// The lost segment's name and salt as the manifest lists them, when it does.
        var listed: Manifest.Entry?

        /// The reasons of segments lost together, in one sentence.
        static func reason(of lost: [LostSegment]) -> String { lost.map(\.reason).joined(separator: "; ") }
    }

    /// What is known about a segment set beyond its files.
    struct Context {
        /// The head record, if intact (its durable end applies to the segment with its salt).
        var head: HeadRecord?
        /// Listed segments that are lost (missing, or with a damaged header), keyed by the index
        /// (in `segments`) of the segment that follows them (`segments.count` for trailing ones).
        var missing: [Int: [LostSegment]] = [:]
        /// Damage found before scanning (manifest, chain): reported first.
        var damage: [Damage] = []
        /// The manifest is missing, damaged or stale: segments the set does not hold may follow
        /// its last one (the positions after it count as lost to damage).
        var segmentsMayFollow = false
        /// Without a head: the next position the saved index file records (a hint that only
        /// ever trails the log, as the head does; ``IndexFile/summary(in:)``).
        var savedIndexNextPosition: UInt64?
        /// The store's directory, when ``readHints(in:lookingTwice:)`` read it: a scan of every
        /// segment (no index file used) then checks the saved index file's end too.
        var directory: String?
        /// A reader's scan after a clean close with nothing after the end its head records: it
        /// sees every frame there is, as a writer's scan and one with no writer do.
        var seesEveryFrame = false
        /// The head file is as writers leave it (verification names nothing in it). When it is
        /// missing or damaged, nothing tells which of the newest segment's frames were
        /// acknowledged: what is invalid after its last valid frame is damage, not a torn write.
        var headIsWhole = true

        /// Reads what `directory` says of the log's durable end: the head, and without one the
        /// saved index file's next position. `lookingTwice`: for a reader, which takes no lock
        /// (``StoreFiles/headProblems(in:lookingTwice:)``); a writer holds the lock, and no one
        /// else writes the head meanwhile.
        mutating func readHints(in directory: String, lookingTwice: Bool) throws {
            head = try StoreFiles.readHead(in: directory)
            self.directory = directory
            savedIndexNextPosition = head == nil ? try IndexFile.summary(in: directory)?.nextPosition : nil
            headIsWhole = StoreFiles.headProblems(in: directory, lookingTwice: lookingTwice).isEmpty
        }
        /// Unlisted segment files holding frames that do not continue the log, with their first
        /// positions and the position after their frames' last event: what a compaction or an
        /// upgrade replaced holds only events inside the log; one whose events reach past its
        /// end may hold acknowledged events the listed segments lost.
        var unlistedFrames: [(name: String, firstPosition: UInt64, end: UInt64)] = []
        /// The size of the newest segment's file before it was extended at open.
        var lastFileSize: Int?
        /// Check the unused space after a clean close too (verification). Without it, an open
        /// trusts a clean close's record that nothing follows its durable end and does not read
        /// the (punched, zero) rest of the segment.
        var thorough = false
        /// A writable open: the tail is examined fully, since what is torn is zeroed. A reader
        /// only needs to know where the valid frames end (a writer may be writing there).
        var repairing = false
        /// A reader found no writer holding the store: it serves the newest segment's whole
        /// batches past the head's durable end too, as the next writable open keeps them (a
        /// power cut may have left the head older than what was acknowledged), and tells a torn
        /// tail from damage there as that open does.
        var writerAbsent = false
    }

    /// Scans `segments[first...]` into `index`, the first of them from `offset` (an index file or
    /// a read-only refresh resumes where an earlier scan ended).
    static func scan(
        _ segments: [Segment], from first: Int = 0, offset: Int = Layout.segmentHeaderSize,
        into index: consuming StreamIndex = StreamIndex(), lastBatch: UInt64? = nil, context: Context = Context()
    ) -> Result {
        var result = Result(index: consume index, lastBatch: lastBatch)
        for damage in context.damage { result.index.record(damage) }
        for segmentIndex in first..<segments.count {
            let segment = segments[segmentIndex]
            let isLast = segmentIndex == segments.count - 1
            let resuming = segmentIndex == first && offset > Layout.segmentHeaderSize
            if !resuming {
                checkPlace(of: segments, at: segmentIndex, context: context, into: &result.index)
                result.lastBatch = result.index.lastBatch
            }
            // The index moves into the scanner and back: never two references, never a copy.
            var scanner = SegmentScan(
                segment: segment, number: segmentIndex, index: result.index.take(), lastBatch: result.lastBatch,
                lastEndedBatch: true)
            if isLast {
                let durable = context.head.flatMap { $0.segmentSalt == segment.salt ? $0 : nil }
                scanner.durableEnd = durable.map { Int($0.durableEnd) } ?? Layout.segmentHeaderSize
                scanner.visibleEnd = context.writerAbsent ? .max : visibleEnd(of: segments, head: context.head)
                scanner.durableNextPosition = durable?.nextPosition
                scanner.cleanClose = durable?.cleanClose ?? false
                scanner.fileSize = context.lastFileSize ?? segment.capacity
                scanner.thorough = context.thorough
                scanner.repairing = context.repairing
                scanner.writerAbsent = context.writerAbsent
                scanner.headIsWhole = context.headIsWhole
                scanner.headNamesNoSegment = context.head.map { head in !segments.contains { $0.salt == head.segmentSalt } } ?? false
                scanner.headNamesLostSegment = context.head.flatMap { head in
                    context.missing.values.joined().first { $0.listed?.salt == head.segmentSalt }?.listed?.name
                }
                scanner.headNamesAnEarlierSegment = context.head.map { head in
                    segments[..<segmentIndex].contains { $0.salt == head.segmentSalt }
                } ?? false
            } else {
                let next = segments[segmentIndex + 1].header
                scanner.expectedEnd = next.previousSalt == segment.salt && context.missing[segmentIndex + 1] == nil
                    ? Int(next.previousEnd) : nil
                scanner.nextSegmentStart = next.firstPosition
            }
            // An index file is saved only after a clean close, which ends with a close marker.
            scanner.lastFrameWasCloseMarker = resuming && (context.head?.cleanClose ?? false)
            let end = scanner.run(from: resuming ? offset : Layout.segmentHeaderSize)
            result.index = scanner.index.take()
            do { try segment.checkReadable() } catch { result.unreadable = result.unreadable ?? error }
            result.lastBatch = scanner.lastBatch
            if isLast {
                result.writeOffset = end.offset
                result.tornBytes = end.tornBytes
                result.endsWithCloseMarker = scanner.lastFrameWasCloseMarker
            }
        }
        // Segments listed and missing at the end; or, without an intact, current manifest,
        // nothing says which segments followed the last one found: lost ones may have held
        // later events of any stream, or the records that hide earlier ones (a delete, a
        // truncation). The positions after the log's end count as lost: stream reads answer
        // with the damage.
        let lost = context.missing[segments.count]
        let trailing = lost.map(LostSegment.reason(of:)) ?? (context.segmentsMayFollow
            ? "segments after the last one found may be missing: the manifest that lists them is missing, damaged or stale" : nil)
        if let reason = trailing {
            let start = result.index.nextPosition
            let end = max(start + 1, context.head?.nextPosition ?? 0)
            result.index.record(Damage(
                segmentName: lost?.first?.file ?? Layout.manifestName, offset: lost?.first?.offset ?? 0, reason: reason, positions: start..<end))
        }
        // An unlisted segment whose frames begin past the log's end is not a replaced one (those
        // begin inside the log; a roll's new segment holds no frame before the manifest lists
        // it): its events may be acknowledged ones, and the segments between lost. It is kept.
        // Nor is one whose events reach past the log's end, wherever it begins: a compaction or
        // an upgrade copies only events the log holds (a black-box review: a backup restored
        // over a compacted store that had grown since, without removing the newer files, read
        // clean, and the next writer removed the only copy of the newer events as a leftover).
        // That is judged only where no writer can have rolled to that segment since this open
        // read the manifest: a writer's open; a reader's with no writer (it scans again if one
        // came); a reader's after a clean close with nothing after it, whose head has not moved
        // on since (a writer's open writes a head record before anything else).
        for (name, firstPosition, end) in context.unlistedFrames where end > result.index.nextPosition {
            let beginsPastTheEnd = firstPosition > result.index.nextPosition
            guard beginsPastTheEnd || context.repairing || context.writerAbsent
                || (context.seesEveryFrame && context.directory.map { (try? StoreFiles.readHead(in: $0))??.sequence == context.head?.sequence } == true)
            else { continue }
            result.index.record(Damage(
                segmentName: name, offset: 0,
                reason: beginsPastTheEnd
                    ? "segment \(name), which the manifest does not list, holds frames from position \(firstPosition), past the log's end \(result.index.nextPosition): the manifest is stale or segments are missing, and the events between may have been acknowledged"
                    : "segment \(name), which the manifest does not list, holds events up to position \(end - 1), past the log's end \(result.index.nextPosition): no compaction or upgrade leaves such a file (it copies only events the log holds), so acknowledged events are missing from the listed segments (files put back from an earlier copy beside newer ones?); it is kept",
                positions: result.index.nextPosition..<max(firstPosition, end)))
        }
        // The head only ever trails what was durable: positions it records that the log does
        // not hold were acknowledged and are gone (a segment or the manifest replaced by an
        // older version). A plain reader checks only a head about its own segments: a writer
        // may have added one since it read the manifest (verification, a writable open and a
        // reader that found no writer check always).
        if let head = context.head, head.nextPosition > result.index.nextPosition,
            context.repairing || context.thorough || context.writerAbsent || segments.contains(where: { $0.salt == head.segmentSalt })
        {
            result.index.record(Damage(
                segmentName: Layout.headName, offset: 0,
                reason: "the head records events up to \(Self.lastPosition(before: head.nextPosition)), the log's last is \(Self.lastPosition(before: result.index.nextPosition)): acknowledged events are missing",
                positions: result.index.nextPosition..<head.nextPosition))
        }
        if context.head == nil, let saved = context.savedIndexNextPosition, saved > result.index.nextPosition {
            result.index.record(Damage(
                segmentName: Layout.indexName, offset: 0,
                reason: "the head file is missing, and the index file a clean close saved records events up to \(Self.lastPosition(before: saved)), the log's last is \(Self.lastPosition(before: result.index.nextPosition)): acknowledged events are missing",
                positions: result.index.nextPosition..<saved))
        }
        // With a head, an index file this scan did not start from (an open uses one only when
        // it agrees with the head) still says where a clean close left the log: segments only
        // follow the ones it names, every writable open removes it, and the head only ever
        // moves on from the record that close wrote before saving it. A head older than that
        // record and a log that ends before the index's end lost acknowledged events: a head and
        // a segment both put back from an earlier copy (a backup of single files), which agree
        // with each other (a black-box review: reads and verify exited 0 without the newer
        // events, and the next append gave their versions to other events). The head is read
        // again after the index: a reader's may be older because a writer closed meanwhile.
        // Only for a scan of every segment that saw every frame: a writer's, a reader's with no
        // writer or after a clean close with nothing after it (beside a writer, a reader serves
        // what its head records, and its log may end before an index file a writer's clean
        // close saved meanwhile).
        if context.head != nil, context.repairing || context.writerAbsent || context.seesEveryFrame, first == 0, offset == Layout.segmentHeaderSize,
            let directory = context.directory,
            let saved = try? IndexFile.summary(in: directory), saved.nextPosition > result.index.nextPosition,
            Self.agree(segments.map(\.salt), saved.salts),
            let current = try? StoreFiles.readHead(in: directory), current.sequence < saved.headSequence
        {
            result.index.record(Damage(
                segmentName: Layout.indexName, offset: 0,
                reason: "the index file a clean close saved records events up to \(Self.lastPosition(before: saved.nextPosition)) in these segments\(saved.salts.count > segments.count ? " and \(saved.salts.count - segments.count) more after them" : "") and a head record \(saved.headSequence); the log's last event is \(Self.lastPosition(before: result.index.nextPosition)) and the head is record \(current.sequence), older: acknowledged events are missing (a segment and the head put back from an earlier copy?)",
                positions: result.index.nextPosition..<saved.nextPosition))
        }
        // The clean close that wrote the head in effect saved the index file just after it, and
        // until a writer opens (it writes a newer head record before anything else) every
        // segment's last frame is the one the file records. Another valid frame there means a
        // segment was put in place since, by something other than a writer (a black-box review:
        // a backup restored and written to, then the original's segment of the same salt put
        // back beside its head: reads served the original's events, and the copy's acknowledged
        // ones vanished without a word). Judged, as above, where no writer can have opened since.
        if let head = context.head, head.cleanClose, context.repairing || context.writerAbsent || context.seesEveryFrame,
            first == 0, offset == Layout.segmentHeaderSize, let directory = context.directory,
            let saved = try? IndexFile.summary(in: directory), saved.headSequence == head.sequence,
            Self.agree(segments.map(\.salt), saved.salts),
            let replaced = zip(segments, saved.lastFrames).first(where: { segment, last in
                last.offset >= Layout.segmentHeaderSize && last.offset < segment.capacity
                    && segment.withBytes { bytes in
                        if case .frame(let found) = FrameReader.probe(bytes, at: last.offset, salt: segment.salt) { return found.checksum != last.checksum }
                        return false
                    }
            })?.0,
            (try? StoreFiles.readHead(in: directory))?.sequence == head.sequence
        {
            let from = replaced.header.firstPosition
            result.index.record(Damage(
                segmentName: replaced.name, offset: 0,
                reason: "the segment is not the one the last clean close left: the index file saved at that close (with head record \(head.sequence), the one in effect) records another frame where it ends; a copy of it from another moment was put back (its events from position \(from) on may not be the acknowledged ones)",
                positions: from..<max(from + 1, result.index.nextPosition)))
        }
        return result
    }

    /// Where a reader stops serving frames of the newest segment that were written to be synced:
    /// the head's durable end when the head is about that segment (the writer acknowledges a
    /// batch only after recording it there); right after its header when the head is about an
    /// older segment of the set (a roll whose head record is not written yet); no limit when
    /// the head is unknown or about a segment the set does not hold (then every segment of the
    /// set is sealed, and sealing synced it). Frames written without syncs are acknowledged
    /// once written: readers serve them whole batches at a time, wherever they are.
    static func visibleEnd(of segments: [Segment], head: HeadRecord?) -> Int {
        guard let head, let found = segments.lastIndex(where: { $0.salt == head.segmentSalt }) else { return .max }
        return found == segments.count - 1 ? Int(head.durableEnd) : Layout.segmentHeaderSize
    }

    /// Checks that a segment follows the one before it (missing files, the chain of salts, the
    /// positions in between) and records what does not.
    private static func checkPlace(of segments: [Segment], at segmentIndex: Int, context: Context, into index: inout StreamIndex) {
        let segment = segments[segmentIndex]
        let start = segment.header.firstPosition
        if let lost = context.missing[segmentIndex], let first = lost.first {
            index.record(Damage(
                segmentName: first.file, offset: first.offset, reason: LostSegment.reason(of: lost),
                positions: index.nextPosition..<max(index.nextPosition, start)))
        } else if segmentIndex == 0, segment.header.previousSalt != 0 {
            index.record(Damage(
                segmentName: segment.name, offset: 56,
                reason: "segment follows another segment (sequence \(segment.header.sequence)) that is not in the store",
                positions: index.nextPosition..<max(index.nextPosition, start)))
        } else if segmentIndex > 0 {
            let previous = segments[segmentIndex - 1]
            if segment.header.previousSalt != previous.salt || segment.header.sequence != previous.header.sequence + 1 {
                index.record(Damage(
                    segmentName: segment.name, offset: 56,
                    reason: "segment does not follow \(previous.name) (a segment between them is missing or was replaced)",
                    positions: index.nextPosition..<max(index.nextPosition, start)))
            }
        }
        if index.nextPosition > start {
            index.record(Damage(
                segmentName: segment.name, offset: 16,
                reason: "segment starts at position \(start), before the previous segment's end \(index.nextPosition)",
                positions: index.nextPosition..<index.nextPosition))
        } else if index.nextPosition < start, segmentIndex > 0, !segment.header.followsCompactedPositions {
            index.record(Damage(
                segmentName: segment.name, offset: 0,
                reason: "positions \(index.nextPosition)..<\(start) are missing before this segment",
                positions: index.nextPosition..<start))
        }
        index.advance(to: start)
    }

    /// Candidates claiming more bytes than this have their checksum taken from
    /// ``RangeChecksums`` first; smaller ones are checked directly (as cheap).
    static let largeCandidate = 2 * RangeChecksums.blockSize

    /// The last position before `next`, in words: "position 43", or "none" before 0.
    static func lastPosition(before next: UInt64) -> String { next == 0 ? "none" : "position \(next - 1)" }

    /// Whether the salts of an index file's segments and the store's agree as far as both go,
    /// from the first: the index was saved for this store's segments, or for more of them (the
    /// store has lost segments since: a black-box review put back a backup's files beside the
    /// index file a later clean close had saved for the segments that followed).
    static func agree(_ store: [UInt64], _ index: [UInt64]) -> Bool {
        !store.isEmpty && !index.isEmpty && zip(store, index).allSatisfy { $0 == $1 }
    }

    /// The position after the last event of the valid frames of `segment` (found one after the
    /// other as after damage, §8), or nil when it holds no event frame.
    static func eventsEnd(of segment: Segment) -> UInt64? {
        segment.withBytes { bytes -> UInt64? in
            var end: UInt64?
            var after = Layout.segmentHeaderSize - 1
            while let (offset, header) = resynchronize(bytes, after: after, salt: segment.salt, in: segment) {
                // (Bounded: the header's fields are the disk's.)
                if header.eventCount > 0, header.firstPosition <= Layout.maximumPosition {
                    end = max(end ?? 0, header.firstPosition + UInt64(header.eventCount))
                }
                assert(offset + header.totalLength > after, "the search moves on")
                after = offset + header.totalLength - 1
            }
            return end
        }
    }

    /// The next offset after `offset` where a valid frame of `segment` starts, with its header.
    /// Zero runs are skipped eight bytes at a time, and cheap header checks come before the
    /// checksum, so that megabytes of zeros or garbage scan fast.
    static func resynchronize(
        _ bytes: UnsafeRawBufferPointer, after offset: Int, salt: UInt64, limit: Int? = nil, in segment: Segment? = nil
    ) -> (Int, FrameHeader)? {
        var hashed = 0
        return resynchronize(bytes, after: offset, salt: salt, limit: limit, in: segment, hashed: &hashed)
    }

    /// ``resynchronize(_:after:salt:limit:in:)``, adding to `hashed` the bytes whose checksum
    /// it took (what the search cost: at most about the bytes searched, plus two blocks per
    /// large candidate, whatever the candidates claim).
    static func resynchronize(
        _ bytes: UnsafeRawBufferPointer, after offset: Int, salt: UInt64, limit: Int? = nil, in segment: Segment? = nil,
        hashed: inout Int
    ) -> (Int, FrameHeader)? {
        let end = min(limit ?? bytes.count, bytes.count)
        var candidate = offset + 1
        let last = end - Layout.frameHeaderSize
        // Checksums of candidates claiming many bytes, from prefixes made once (event data may
        // hold many headers claiming megabytes each: checked directly, quadratic time).
        var ranges = RangeChecksums(origin: candidate)
        while candidate <= last {
            // A frame's stored length (bytes 4 ..< 8) is never zero.
            let nonzero = segment?.firstNonzero(in: bytes, (candidate + 4)..<bytes.count) ?? Zeros.firstNonzero(in: bytes, from: candidate + 4)
            if nonzero > candidate + 7 {
                candidate = nonzero - 7
                continue
            }
            defer { candidate += 1 }
            let stored = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: candidate + 4, as: UInt32.self)))
            guard stored > 0, candidate + Layout.frameHeaderSize + stored <= end,
                bytes[candidate + 12] & ~Layout.frameKnownFlags == 0, bytes[candidate + 13] == 0
            else { continue }
            let bounded = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
            if stored > Self.largeCandidate {
                var seed = (salt.littleEndian, UInt64(candidate).littleEndian)
                let crc = withUnsafeBytes(of: &seed) { Checksum.crc32c($0) }
                let expected = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: candidate, as: UInt32.self))
                let covered = (candidate + 4)..<(candidate + Layout.frameHeaderSize + stored)
                let before = ranges.bytesHashed
                defer { hashed += ranges.bytesHashed - before }
                guard Checksum.mask(ranges.crc32c(of: covered, in: bounded, continuing: crc)) == expected else { continue }
            }
            hashed += Layout.frameHeaderSize + stored  // the probe's own check
            guard case .frame(let header) = FrameReader.probe(bounded, at: candidate, salt: salt) else { continue }
            return (candidate, header)
        }
        return nil
    }
}

/// The scan of one segment's frames.
private struct SegmentScan {
    let segment: Segment
    /// The segment's index in the store's list (frame locations name it).
    let segmentNumber: Int
    var index: StreamIndex
    var lastBatch: UInt64?
    /// Whether the last valid frame ended its batch.
    var lastEndedBatch: Bool
    /// After damage the batch of the next valid frame is only bounded below: what lies between
    /// is unknown.
    var afterDamage = false
    /// Sealed segments: where the next segment's header says the frames end (nil: unknown).
    var expectedEnd: Int?
    /// Sealed segments: the next segment's first position.
    var nextSegmentStart: UInt64?
    /// The newest segment: where the head says the durable frames end, what it says the next
    /// position is, whether a clean close wrote it, and the file's size before extension.
    var durableEnd = Layout.segmentHeaderSize
    /// Readers: where frames written to be synced stop being served (``Recovery/visibleEnd(of:head:)``).
    var visibleEnd = Int.max
    var durableNextPosition: UInt64?
    var cleanClose = false
    var fileSize = Int.max
    var thorough = false
    var repairing = false
    /// A reader with no writer present: the tail is told apart as a writable open tells it
    /// (nothing written), not taken for a write in progress.
    var writerAbsent = false
    /// The head file is whole (``Recovery/Context/headIsWhole``): only then is an invalid tail
    /// after its durable end a torn write.
    var headIsWhole = true
    /// The head in effect is about no segment of the set: what a compaction's or an upgrade's
    /// switch leaves (its newest segment holds no frame until a writer's open has written a
    /// head about it), or another store's head put in place.
    var headNamesNoSegment = false
    /// The lost segment (listed in the manifest, missing or damaged) that the head names, if any.
    var headNamesLostSegment: String?
    /// The newest segment: the head in effect is about an earlier segment of the set (a roll
    /// whose head record is not written yet: the roll made this segment at its capacity).
    var headNamesAnEarlierSegment = false
    /// Whether the last frame applied was a close marker.
    var lastFrameWasCloseMarker = false
    /// The frames of a batch whose last frame has not been seen yet: applied when it is, dropped
    /// when the batch turns out to be the torn last one (it was never acknowledged).
    private var pending: [(header: FrameHeader, offset: Int, records: [IndexRecord])] = []

    init(segment: Segment, number: Int, index: StreamIndex, lastBatch: UInt64?, lastEndedBatch: Bool) {
        self.segment = segment
        segmentNumber = number
        self.index = index
        self.lastBatch = lastBatch
        self.lastEndedBatch = lastEndedBatch
    }

    var isLast: Bool { nextSegmentStart == nil }

    mutating func run(from start: Int) -> (offset: Int, tornBytes: Int) {
        segment.withBytes { bytes in
            // A reader never looks past the file's size as it last saw it: a file shrunk by
            // another program would fault there (a Dugong writer never shrinks one).
            let limit = expectedEnd.map { min($0, bytes.count) } ?? (repairing ? bytes.count : min(bytes.count, fileSize))
            var offset = start
            while true {
                let problem: String
                let probe = FrameReader.probe(UnsafeRawBufferPointer(rebasing: bytes[0..<limit]), at: offset, salt: segment.salt)
                let examinesTail = repairing || writerAbsent
                if isLast, offset >= durableEnd, !thorough, !examinesTail || (cleanClose && offset == durableEnd && pending.isEmpty) {
                    // The end of the newest segment's frames, as far as this open needs to know:
                    // a reader stops where a writer may be writing (before a batch it has not
                    // finished); after a clean close nothing follows the durable end
                    // (verification checks that).
                    if case .endOfData = probe {
                        // A writable open (or a reader with no writer) checks that only zeros
                        // follow a clean close: bytes there are damage, which the writer's next
                        // close would otherwise punch away unseen. (Holes are skipped unread.)
                        return examinesTail ? tailEnd(bytes, at: offset) : (discardPending() ?? offset, 0)
                    }
                    if !examinesTail, case .invalid = probe {
                        // A write in progress, or what a writable open will cut off: counted up to
                        // the first 4 KiB block of zeros after it, not to the segment's end (a
                        // reader reported "67106515 bytes after the last valid frame" for 45
                        // bytes of garbage; a writable open zeroes all the rest anyway).
                        let end = discardPending() ?? offset
                        return (end, Self.nonzeroRun(in: UnsafeRawBufferPointer(rebasing: bytes[0..<limit]), from: end))
                    }
                    if !examinesTail, offset >= visibleEnd, case .frame(let header) = probe, !header.unsynced {
                        // Written, perhaps synced, but not acknowledged yet: the writer records
                        // the batch in the head first. Not yet, and never damage.
                        return (discardPending() ?? offset, 0)
                    }
                }
                switch probe {
                case .frame(let header):
                    if let reason = apply(header, in: bytes, at: offset) {
                        commitPending()
                        index.record(Damage(
                            segmentName: segment.name, offset: offset, reason: reason,
                            positions: damagedPositions(header), length: header.totalLength))
                        afterDamage = true
                    }
                    offset += header.totalLength
                    continue
                case .endOfData:
                    if offset >= limit { return finish(bytes, at: offset) }
                    problem = "zeros where a frame should be"
                case .invalid(let reason):
                    problem = reason
                }
                if let next = handle(problem, in: bytes, at: offset, limit: limit) {
                    offset = next
                    continue
                }
                return isLast ? tailEnd(bytes, at: offset) : (offset, 0)
            }
        }
    }

    /// Bytes from `start` to the end of the 4 KiB block before the first block (at or after
    /// `start`'s) that holds nothing but zeros, or to the end of `bytes`; at least 1.
    static func nonzeroRun(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        precondition(start >= 0 && start < bytes.count, "a run starts within the bytes")
        var block = start / 4096 * 4096 + 4096
        while block < bytes.count {
            let end = min(block + 4096, bytes.count)
            if Zeros.firstNonzero(in: UnsafeRawBufferPointer(rebasing: bytes[..<end]), from: block) >= end { return block - start }
            block = end
        }
        return bytes.count - start
    }

    /// Decodes and checks a frame whose checksum holds, and applies it with the rest of its
    /// batch once the batch's last frame is there. - Returns: why it is damage, or nil.
    private mutating func apply(_ header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int) -> String? {
        let next = pending.last.map { max(index.nextPosition, $0.header.firstPosition + UInt64($0.header.eventCount)) } ?? index.nextPosition
        guard header.firstPosition >= next else {
            return "frame starts at position \(header.firstPosition), before \(next)"
        }
        // The next batch is the last one + 1 (FORMAT §4): a skipped number was accepted (after
        // damage, here or in an earlier segment, which may have held batches, only an earlier
        // one is damage).
        if let lastBatch,
            afterDamage || !index.damage.isEmpty
                ? header.batch < lastBatch
                : header.batch != (lastEndedBatch ? lastBatch + 1 : lastBatch)
        {
            return lastEndedBatch
                ? "frame of batch \(header.batch) follows the end of batch \(lastBatch)"
                : "frame of batch \(header.batch) follows batch \(lastBatch), which did not end"
        }
        do {
            let dictionary = segment.dictionaryAndCheck(before: offset)
            let records = try FrameReader.records(
                of: header, in: bytes, at: offset, dictionary: dictionary.bytes, dictionaryCheck: dictionary.check,
                formatVersion: segment.header.formatVersion)
            // A frame that ends its batch alone (the usual case) is checked without copying.
            let grouped = IndexRecord.grouping(records)
            let batch = pending.isEmpty ? grouped : pending.flatMap(\.records) + grouped
            if let problem = index.problem(applying: batch) { return problem }
            for case .dictionary(let dictionary) in records {
                segment.register(dictionary: dictionary, at: offset)
            }
            pending.append((header, offset, grouped))
            lastBatch = header.batch
            lastEndedBatch = header.endsBatch
            afterDamage = false
            if header.endsBatch { commitPending() }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Applies the frames of the pending batch to the index.
    private mutating func commitPending() {
        for (header, offset, records) in pending {
            index.apply(
                records, in: FrameLocation(segment: segmentNumber, offset: offset), length: header.totalLength,
                rawLength: Int(header.rawLength), batch: header.batch, checksum: header.checksum)
            index.advance(to: header.firstPosition)
            lastFrameWasCloseMarker = records == [.record(.close, index: 0)]
        }
        pending.removeAll()
    }

    /// Drops the pending batch (the torn last one, or one a writer is still writing).
    /// - Returns: where it started, or nil when there is none.
    private mutating func discardPending() -> Int? {
        guard let first = pending.first else { return nil }
        segment.forgetDictionaries(from: first.offset)
        pending.removeAll()
        lastBatch = index.lastBatch
        lastEndedBatch = true
        return first.offset
    }

    private func damagedPositions(_ header: FrameHeader) -> Range<UInt64> {
        let first = min(max(header.firstPosition, index.nextPosition), Layout.maximumPosition)
        return first..<min(first + UInt64(header.eventCount), Layout.maximumPosition)
    }

    /// An invalid region at `offset`: damage (returns where scanning resumes) or the end.
    private mutating func handle(_ problem: String, in bytes: UnsafeRawBufferPointer, at offset: Int, limit: Int) -> Int? {
        let next = Recovery.resynchronize(bytes, after: offset, salt: segment.salt, limit: limit, in: segment)
        if isLast && offset >= durableEnd && (next == nil || tailIsTorn(bytes, after: next!.0)) {
            return nil  // the tail: decided by tailEnd
        }
        if !isLast && next == nil && expectedEnd == nil && segment.areAllZero(bytes, in: offset..<bytes.count) {
            return nil  // a sealed segment of unknown end (broken chain) ends in zeros
        }
        // Damage: the frames of the batch before it are real (their batch was synced).
        commitPending()
        let resume = next?.0 ?? (isLast ? max(durableEnd, offset) : limit)
        let upper = next.map { $0.1.firstPosition } ?? nextSegmentStart ?? durableNextPosition ?? min(index.nextPosition + 1, Layout.maximumPosition)
        index.record(Damage(
            segmentName: segment.name, offset: offset,
            reason: isLast && offset < durableEnd ? "\(problem) (before the durable end \(durableEnd): acknowledged data)" : problem,
            positions: index.nextPosition..<max(index.nextPosition, upper), length: resume - offset))
        afterDamage = true
        if next == nil {
            // In the newest segment, scanning goes on at the durable end: what follows is the tail.
            return isLast && resume > offset ? resume : nil
        }
        return resume
    }

    /// Whether the valid frames from `offset` on can all be unsynced: the last batch, or frames
    /// written in the mode without syncs (none of which was synced).
    private func tailIsTorn(_ bytes: UnsafeRawBufferPointer, after offset: Int) -> Bool {
        guard !cleanClose else { return false }
        var batches = Set<UInt64>()
        var cursor = offset
        while let (found, header) = FrameReader.probe(bytes, at: cursor, salt: segment.salt).frame(at: cursor)
            ?? Recovery.resynchronize(bytes, after: cursor, salt: segment.salt, in: segment)
        {
            if !header.unsynced { batches.insert(header.batch) }
            if batches.count > 1 { return false }
            cursor = found + header.totalLength
        }
        guard let batch = batches.first else { return true }
        guard let lastBatch else { return true }
        return lastEndedBatch ? batch == lastBatch + 1 : batch == lastBatch
    }

    /// The frames of a sealed segment ended at `offset` (the limit): what follows must be zeros.
    private mutating func finish(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (offset: Int, tornBytes: Int) {
        if !isLast && !pending.isEmpty {
            commitPending()
            index.record(Damage(
                segmentName: segment.name, offset: offset, reason: "batch \(lastBatch ?? 0) does not end in its segment (its last frame is missing)",
                positions: index.nextPosition..<index.nextPosition, length: 0))
        }
        if isLast && offset < durableEnd {
            commitPending()
            // The file ends before the frames the head says were durable.
            index.record(Damage(
                segmentName: segment.name, offset: offset,
                reason: "the segment ends at \(offset), before the durable end \(durableEnd): acknowledged frames are missing",
                positions: index.nextPosition..<max(index.nextPosition, durableNextPosition ?? index.nextPosition + 1),
                length: durableEnd - offset))
            return (durableEnd, 0)
        }
        if isLast { return tailEnd(bytes, at: offset) }
        if let expectedEnd, offset != expectedEnd {
            index.record(Damage(
                segmentName: segment.name, offset: offset,
                reason: "frames end at \(offset), the next segment says \(expectedEnd)",
                positions: index.nextPosition..<max(index.nextPosition, nextSegmentStart ?? 0), length: max(expectedEnd - offset, 0)))
        } else if offset < bytes.count, !segment.areAllZero(bytes, in: offset..<bytes.count) {
            let nonzero = segment.firstNonzero(in: bytes, offset..<bytes.count)
            index.record(Damage(
                segmentName: segment.name, offset: nonzero, reason: "nonzero bytes after the segment's last frame",
                positions: index.nextPosition..<index.nextPosition, length: bytes.count - nonzero))
        }
        return (offset, 0)
    }

    /// Whether the newest segment, shorter than its capacity, is a header alone that a writer is
    /// extending to its capacity, or was when it stopped: no frame after the header and nothing
    /// but zeros, and the head (whole) names this segment with nothing durable after its header.
    /// A writer extends the header alone that a compaction or an upgrade leaves, and syncs that,
    /// before it writes a frame there; `posix_fallocate` grows a file's size a step at a time
    /// (ext4: a chunk of blocks at a time), so a reader beside it (`dugong verify` beside an
    /// application's first commit after a compaction) may find the file part way, and a power
    /// cut may leave it so. Nothing acknowledged can be missing from such a file: not a cut.
    private func isHeaderAloneBeingExtended(_ bytes: UnsafeRawBufferPointer, at offset: Int, end: Int) -> Bool {
        offset == Layout.segmentHeaderSize && pending.isEmpty && headIsWhole && durableNextPosition != nil
            && durableEnd == Layout.segmentHeaderSize && segment.areAllZero(bytes, in: offset..<end)
    }

    /// The newest segment's frames end at `offset`: a clean end (zeros), a torn tail, or damage
    /// (acknowledged frames missing, or bytes written after a clean close).
    private mutating func tailEnd(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (offset: Int, tornBytes: Int) {
        if offset < durableEnd || (pending.first.map { $0.offset < durableEnd } ?? false) {
            // Before the durable end everything was acknowledged (damage there was recorded).
            commitPending()
            return (offset, 0)
        }
        let end = min(fileSize, bytes.count)
        if cleanClose && offset == durableEnd && !thorough && !repairing && !writerAbsent && pending.isEmpty { return (offset, 0) }
        let capacity = Int(segment.header.capacity)
        // (Builds of earlier format versions did not keep that size: their segments are not judged by it.)
        if end < capacity, end > Layout.segmentHeaderSize || headNamesAnEarlierSegment, segment.header.formatVersion == Layout.formatVersion,
            !isHeaderAloneBeingExtended(bytes, at: offset, end: end)
        {
            // The file was cut: a writer keeps its newest segment at its capacity, synced before
            // it writes a frame there, and a clean close keeps the size (only a compaction or an
            // upgrade leaves one shorter, as its header alone, and names it in the head, or the
            // head still names a segment it replaced; no power cut shortens a file; a header
            // alone part way to its capacity is not judged here). What
            // followed the cut may have been acknowledged, whatever the head says (it may be
            // older than the truth, an older copy, or lost): the frames there are kept as found,
            // and nothing is zeroed or extended.
            commitPending()
            index.record(Damage(
                segmentName: segment.name, offset: end,
                reason: "the segment file ends at \(end), short of its capacity \(capacity): it was cut, and what followed may have been acknowledged events",
                positions: index.nextPosition..<index.nextPosition, length: capacity - end))
            return (offset, 0)
        }
        let clean = offset >= end || segment.areAllZero(bytes, in: offset..<end)
        // Whether the head tells which frames were acknowledged: not when it is missing or
        // damaged, nor when it names no segment of the set while this one holds frames (no
        // switch leaves that: it is another store's head).
        let headTells = headIsWhole && !(headNamesNoSegment && (offset > Layout.segmentHeaderSize || !pending.isEmpty))
        let headProblem =
            !headIsWhole ? "is missing or damaged"
            : headNamesLostSegment.map { "names \($0), which is missing or damaged" } ?? "names none of the store's segments (another store's)"
        if clean && pending.isEmpty {
            if !headTells, !lastFrameWasCloseMarker, end > Layout.segmentHeaderSize, thorough || repairing || writerAbsent {
                // Frames (or none) that end in zeros at a frame's end, with no close marker
                // after them: a crash, or a cut of acknowledged frames at a frame boundary. Only
                // the head tells the two apart (every writable open, compaction and upgrade
                // leaves it whole, and a power cut leaves it older, never damaged), and it is
                // missing or damaged. (A compaction's or an upgrade's newest segment is its
                // header alone; a clean close ends the frames with its marker.) Kept as found.
                index.record(Damage(
                    segmentName: segment.name, offset: offset,
                    reason: "the newest segment's frames end at \(offset) without the marker of a clean close, and the head file that records how far acknowledged frames reached \(headProblem): acknowledged events from position \(index.nextPosition) on may have been lost",
                    positions: index.nextPosition..<index.nextPosition))
            }
            return (offset, 0)
        }
        if cleanClose {
            commitPending()
            let nonzero = clean ? offset : segment.firstNonzero(in: bytes, offset..<bytes.count)
            index.record(Damage(
                segmentName: segment.name, offset: nonzero,
                reason: clean ? "the last batch before a clean close did not end" : "bytes after the end recorded by a clean close",
                positions: index.nextPosition..<index.nextPosition, length: end - nonzero))
            return (offset, 0)
        }
        if !headTells {
            // The head that would tell a torn write from lost acknowledged frames is missing or
            // damaged (every store has one from its creation; a power cut leaves it older, never
            // damaged): the frames after it may have been acknowledged. Kept as found.
            commitPending()
            let nonzero = clean ? offset : segment.firstNonzero(in: bytes, offset..<bytes.count)
            index.record(Damage(
                segmentName: segment.name, offset: nonzero,
                reason: clean
                    ? "the last batch did not end, and the head file that would tell whether it was acknowledged \(headProblem)"
                    : "invalid bytes after the last valid frame, and the head file that would tell a torn write from lost acknowledged frames \(headProblem)",
                positions: index.nextPosition..<index.nextPosition, length: end - nonzero))
            return (offset, 0)
        }
        // The torn last batch: from its first frame (frames of it that survived are dropped too),
        // counted up to the first 4 KiB block of zeros, as a reader counts it (the rest of the
        // segment was counted: `verify` said "1042597 bytes after the last valid frame" for a
        // torn batch of ~7.5 KB; a writable open zeroes everything after `start` anyway).
        let start = discardPending() ?? offset
        return (start, start < bytes.count ? Self.nonzeroRun(in: bytes, from: start) : 0)
    }
}

extension FrameProbe {
    /// The frame's offset and header when this probe found one at `offset`.
    func frame(at offset: Int) -> (Int, FrameHeader)? {
        if case .frame(let header) = self { return (offset, header) }
        return nil
    }
}
