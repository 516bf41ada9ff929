import Foundation

extension EventLog {
    /// Picks up what a writer (in this process or another) committed since this read-only store
    /// was opened or last refreshed: new batches of the newest segment, new segments, and a new
    /// set of segments after a compaction or an upgrade.
    ///
    /// It serves what the writer acknowledged and nothing else: batches up to the durable end
    /// the writer records in the head file after each sync (``Durability/synchronous``), or
    /// whole batches as soon as they are written (``Durability/unsafeNoSync``). A batch being
    /// written is "not yet", never damage. Global positions only grow: after a compaction, the
    /// events it removed are simply not there any more, and the positions of the others are
    /// unchanged, so a reader that goes on from the position after the last event it saw sees
    /// every later event once.
    ///
    /// The cost is proportional to what is new: with nothing new it reads the head file, one
    /// frame header and whether a writer holds the store (a lock test); the index is updated in
    /// place. Once the writer is gone without a clean close, the first refresh looks at the
    /// whole tail as a fresh open does (what follows may be batches no head records, or damage).
    ///
    /// - Returns: how many positions the log grew by (new events).
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when a new segment's header is
    ///   damaged, or when the store was put back from an older copy: it now ends before what
    ///   this reader already saw, or holds other events where it saw some (a writer appended
    ///   to the copy). On stores opened for writing it does nothing.
    @discardableResult
    public func refresh() throws -> Int {
        try core.checkOpen()
        guard options.readOnly else { return 0 }
        let grew = try refreshing.withLock { look in try refreshOnce(&look) }
        if grew > 0 { core.wakeWaiters() }
        return grew
    }

    /// Before a read: throws when the store is closed. A read-only store whose `refresh()` met
    /// a page the disk failed (``LogCore/Shared/unreadable``: its index may hold damage that is
    /// only the zeros read there) refreshes first, mapping the files anew; while the disk still
    /// fails the page, the read throws that I/O error. (Reads check the mark again in the lock
    /// in which they read the index: another thread's refresh may set it meanwhile.)
    func prepareToRead() throws {
        try core.checkOpen()
        if options.readOnly, core.shared.withLock({ $0.unreadable != nil }) { _ = try refresh() }
    }

    /// How often a refresh looks at segments before the newest (a `stat` and two `fstat`s
    /// each), at most ``Options/olderSegmentsPerLook`` of them each time, in turn: a follower
    /// finds one cut, removed or replaced within about a second in a store of up to 256
    /// segments (16 GiB of the default size), and at a bounded cost per second in a larger one.
    static let olderSegmentsLookInterval = Duration.seconds(1)

    private func refreshOnce(_ look: inout OlderSegmentsLook) throws -> Int {
        // The head before the manifest: a writer lists a segment in the manifest before it
        // names it in the head, so the manifest read next lists the head's segment.
        let head = try StoreFiles.readHead(in: directory)
        let (known, scannedEnd, followed, unreadable) = core.shared.withLock { ($0.segments, $0.scannedEnd, $0.followed, $0.unreadable) }
        guard let active = known.last, unreadable == nil else { return try reopen() }
        // A map that read past its file's end while another program had the file shorter, or
        // a page the disk failed, holds zeros there for good (``MappedRegion``): the files are
        // mapped anew, whatever they hold now (a scan through the old maps would take the zeros
        // for the end of the log, or for damage).
        if MappedRegion.pagesReadPastTheEnd > 0 || MappedRegion.unreadablePages > 0,
            known.contains(where: { $0.map.wasPatched || $0.map.hadUnreadablePage })
        {
            return try reopen()
        }
        // A segment before the newest cut, removed or replaced under the follower (found by a
        // black-box run: `read-all --follow` waited on, silent, where a fresh reader reports
        // the missing segment): the files are opened anew and scanned as a fresh reader does,
        // which finds the damage (a compaction that removed it left a new manifest: no damage).
        let now = ContinuousClock.now
        let older = known.count - 1
        if older > 0, look.at.map({ now - $0 >= Self.olderSegmentsLookInterval }) ?? true {
            look.at = now
            let count = min(older, max(options.olderSegmentsPerLook, 1))
            for step in 0..<count {
                let segment = known[(look.next + step) % older]
                guard try segment.file.isStill(at: directory + "/" + segment.name), try segment.file.size() >= segment.capacity else {
                    return try reopen()
                }
            }
            look.next = (look.next + count) % older
        }
        let size = try active.file.size()
        // The newest segment shorter than its capacity: cut (a writer keeps the size, FORMAT.md
        // §8). With no writer, a fresh look finds it as a fresh reader does (a writer present
        // fails at its next batch, and goes); after a clean close, a fresh reader trusts the
        // recorded end and looks only when the cut reached the frames before it. Once found, the
        // damage is in the index: a look per refresh, not a scan.
        let closedCleanlyWithin = head.map { $0.cleanClose && $0.segmentSalt == active.salt && Int($0.durableEnd) <= size } ?? false
        let cutBeforeTheRecordedEnd = head.map { $0.segmentSalt == active.salt && Int($0.durableEnd) > size } ?? false
        if size < Int(active.header.capacity), size > Layout.segmentHeaderSize || cutBeforeTheRecordedEnd,
            active.header.formatVersion == Layout.formatVersion, !closedCleanlyWithin,
            core.shared.withLock({ $0.index.damage.isEmpty }), !StoreLock.writerIsPresent(in: directory)
        {
            return try reopen()
        }
        // The active segment's path naming another file: the store was put back from a copy
        // (or replaced by another store). Scanned where it stood, the old file would be read
        // against the new one's head. Checked before "nothing new" too: a copy's writer may
        // have brought its head to the very sequence this reader followed (a random history
        // found it often), and with nothing after the reader's end in its old file, the copy
        // went unseen for as long as nothing more was written. (A `stat` and an `fstat` per
        // refresh; a follower refreshes every 10 ms.)
        guard try active.file.isStill(at: directory + "/" + active.name) else { return try reopen() }
        // The last frame served, still in its place: a copy written over the files in place
        // (same inodes) has other frames there (``replacement(seen:in:now:in:)``).
        if let last = core.shared.withLock({ $0.index.eventFrames.last }), known.indices.contains(last.location.segment) {
            let segment = known[last.location.segment]
            let mark = segment.frameMark(at: last.location.offset, fileSize: segment === active ? size : try segment.file.size())
            if mark.map({ UInt32(truncatingIfNeeded: UInt64(littleEndian: $0)) }) != last.checksum { return try reopen() }  // (the checksum: its first 4 bytes)
        }
        if head?.sequence == followed.headSequence,
            followed.servedWithoutWriter ? active.frameMark(at: scannedEnd, fileSize: size) == followed.markAtEnd : !active.mayHoldFrame(at: scannedEnd, fileSize: size)
        {
            // Nothing new, unless the writer this reader followed went without a clean close: a
            // zero length at the end may then hide later batches (damage), which only a look at
            // the whole tail tells, as a fresh reader looks (once: it serves without a writer then).
            let closedCleanly = head.map { $0.cleanClose && $0.segmentSalt == active.salt } ?? false
            if followed.servedWithoutWriter || closedCleanly || StoreLock.writerIsPresent(in: directory) { return 0 }
            return try reopen()
        }
        guard case .intact(let manifest) = try StoreFiles.readManifest(in: directory),
            manifest.segments.starts(with: followed.manifest.segments)
        else {
            return try reopen()  // a compaction or an upgrade replaced the segments
        }
        var segments = known
        do {
            // The entries after those followed (not after the segments open: a listed segment
            // that is missing or damaged has an entry and no segment).
            for entry in manifest.segments.dropFirst(followed.manifest.segments.count) {
                let segment = try Segment.open(directory: directory, name: entry.name, writable: false)
                guard segment.salt == entry.salt else { return try reopen() }
                segments.append(segment)
            }
        } catch {
            return try reopen()  // its files went while they were opened
        }
        do {
            // With new segments after it, the size now: the writer extended the file before it
            // filled it and rolled to the next one.
            let activeSize = segments.count == known.count ? size : try active.file.size()
            if activeSize > active.capacity, active.capacity < Int(active.header.capacity) {
                // The file grew past what was mapped (a writer extended it, e.g. the short
                // segment a compaction leaves): map it again, keeping the dictionaries already
                // found. Scanned as mapped, its frames would end early: damage that is not there.
                let grown = try Segment.open(directory: directory, name: active.name, writable: false)
                guard grown.salt == active.salt else { return try reopen() }
                for (offset, bytes) in active.dictionaries { grown.register(dictionary: bytes, at: offset) }
                segments[known.count - 1] = grown
            }
        } catch {
            return try reopen()  // its file went (a compaction replaced the segments)
        }
        var context = Recovery.Context()
        context.head = head
        context.lastFileSize = segments.count == known.count ? size : try segments.last!.file.size()
        // Frames past where the head lets readers serve, and no writer to record them (it
        // stopped first, or a power cut took its head records): served as a fresh open serves them.
        let visible = Recovery.visibleEnd(of: segments, head: head)
        let recorded = visible == .max ? Layout.segmentHeaderSize : visible
        if segments.last!.mayHoldFrame(at: segments.count == known.count ? max(recorded, scannedEnd) : recorded, fileSize: context.lastFileSize!),
            !StoreLock.writerIsPresent(in: directory)
        {
            return try reopen()
        }
        options.incrementalScanHook?()
        return try core.shared.withLock { shared in
            let before = shared.index.nextPosition
            let (eventsBefore, damageBefore) = (shared.index.eventCount, shared.index.damage.count)
            let lastBatch = shared.index.lastBatch
            // The index is moved, not copied, into the scan: it is updated in place, at a cost
            // proportional to the new frames.
            let result = Recovery.scan(
                segments, from: known.count - 1, offset: shared.scannedEnd, into: shared.index.take(), lastBatch: lastBatch,
                context: context)
            shared.index = result.index
            shared.segments = segments
            shared.scannedEnd = result.writeOffset
            shared.followed = LogCore.Followed(manifest: manifest, headSequence: head?.sequence)
            if let unreadable = result.unreadable {
                // The index was updated in place and may hold damage that is only the zeros
                // the scan read: reads fail with the disk's error until the next refresh maps
                // the files anew (the map that failed is one it reopens for).
                shared.unreadable = LogCore.Unreadable(
                    error: unreadable, headPosition: before, eventCount: eventsBefore, damageCount: damageBefore)
                throw unreadable
            }
            assert(shared.index.nextPosition >= before, "an incremental scan only adds")
            return Int(shared.index.nextPosition - before)
        }
    }

    /// Opens the segments anew and scans them all (after a compaction or an upgrade replaced
    /// them). Positions never go back: a store that now ends before what was seen is refused.
    private func reopen() throws -> Int {
        var attempt = 0
        var set: SegmentSet
        var context: Recovery.Context
        var scanned: (Recovery.Result, withoutWriter: Bool)?
        repeat {
            attempt += 1
            set = try SegmentSet.openForReading(directory: directory, afterReadingManifest: options.readingHook)
            context = set.context
            context.lastFileSize = try set.segments.last?.file.size()
            let segments = set.segments
            scanned = try Self.scanForReading(segments, context: context, in: directory, lastAttempt: attempt >= Self.writerRaceAttempts) {
                options.scanningHook?()
                return Recovery.scan(segments, context: $0)
            }
        } while scanned == nil
        let (result, withoutWriter) = scanned!
        try result.checkReadable()
        return try core.shared.withLock { shared in
            let before = shared.index.nextPosition
            guard result.index.nextPosition >= before else {
                // (Damage found is the cause to name: a cut through what was seen, not a copy.)
                if let damage = result.index.damage.first { throw damage.error }
                throw StoreError.corruption(
                    segment: Layout.manifestName, offset: 0,
                    reason: "the store now ends at position \(result.index.nextPosition), before position \(before) this reader already saw (it was replaced by an older copy of it, or by another store)")
            }
            if let replaced = Self.replacement(seen: shared.index, in: shared.segments, now: result.index, in: set) {
                throw replaced
            }
            shared.index = result.index
            shared.segments = set.segments
            shared.scannedEnd = result.writeOffset
            shared.unreadable = nil
            shared.followed = LogCore.Followed(
                manifest: set.manifest, headSequence: context.head?.sequence, servedWithoutWriter: withoutWriter,
                markAtEnd: set.segments.last?.frameMark(at: result.writeOffset, fileSize: context.lastFileSize ?? 0))
            return Int(result.index.nextPosition - before)
        }
    }

    /// Whether the files opened anew are the store this reader followed, grown, rolled or
    /// compacted, and not an older copy put back in its place (the positions it served would
    /// hold other events once a writer appended to the copy). A writer never changes a frame it
    /// wrote, and a compaction keeps every event it keeps at its position. So:
    /// - while the segment (salt) of the last frame this reader served is in the new set, that
    ///   frame must be there, at its offset with its checksum;
    /// - otherwise (a compaction or an upgrade since, or a copy from before a roll or before a
    ///   compaction this reader followed), the last event it served must be at its position
    ///   with its id, or no event may be there (a compaction removed it).
    /// Damage in the new files, or a set that is not whole, is left to the reads to report.
    /// (The manifest's generation is no clock for this: a copy's writer raises it at each roll.)
    /// - Returns: the error to throw, or nil.
    static func replacement(seen: StreamIndex, in seenSegments: [Segment], now: StreamIndex, in set: SegmentSet) -> (any Error)? {
        guard set.isIntact, now.damage.isEmpty else { return nil }
        guard let last = seen.eventFrames.last, seenSegments.indices.contains(last.location.segment) else { return nil }
        let seenSegment = seenSegments[last.location.segment]
        let found = now.frameIndex(atOrAfter: last.lastPosition)
        let frame = found < now.eventFrames.count ? now.eventFrames[found] : nil
        let replaced = StoreError.corruption(
            segment: seenSegment.name, offset: last.location.offset,
            reason: "the events this reader served up to position \(last.lastPosition) are not the ones the store holds now: the store was replaced by an older copy of it or by another store, and positions it served hold other events")
        if let segment = set.segments.firstIndex(where: { $0.salt == seenSegment.salt }) {
            guard let frame, frame.location == FrameLocation(segment: segment, offset: last.location.offset), frame.checksum == last.checksum,
                frame.firstPosition == last.firstPosition, frame.lastPosition == last.lastPosition
            else { return replaced }
            return nil
        }
        // The newest event the new files hold at or before the last position served, and the
        // event this reader served there: the same, or the new files are another history (a
        // compaction removes events, it never brings back one this reader saw removed).
        func events(of frame: EventFrame, in segment: Segment) -> [StoredEvent]? {
            guard let records = try? FrameCache.records(at: frame.location.offset, in: segment, checksum: frame.checksum) else { return nil }
            return records.compactMap { if case .event(let event) = $0 { event } else { nil } }
        }
        var candidate = found < now.eventFrames.count && now.eventFrames[found].firstPosition <= last.lastPosition ? found : found - 1
        var newest: StoredEvent?
        while newest == nil, candidate >= 0, found - candidate < 3 {
            let frame = now.eventFrames[candidate]
            guard let decoded = events(of: frame, in: set.segments[frame.location.segment]) else { return nil }  // damage: reads report it
            newest = decoded.last { $0.position <= last.lastPosition }
            candidate -= 1
        }
        guard let newest else { return nil }  // nothing at or before it (a compaction removed it all)
        // What this reader served there, from its own files: written over in place, they may
        // be shorter now (a read through the mapping past a file's end is `SIGBUS`).
        let served = seen.frameIndex(atOrAfter: newest.position)
        guard served < seen.eventFrames.count else { return replaced }
        let servedFrame = seen.eventFrames[served]
        // A map that had a page the disk failed shows zeros there for good: the same file (its
        // name may be gone by now, after a compaction) in a new map reads it again.
        let servedSegment = seenSegments[servedFrame.location.segment].mappedAnewIfUnreadable() ?? seenSegments[servedFrame.location.segment]
        guard let size = try? servedSegment.file.size(), servedSegment.holdsWholeFrame(at: servedFrame.location.offset, fileSize: size),
            let mine = events(of: servedFrame, in: servedSegment)
        else {
            // What it served cannot be read again: the disk failed a page of it (nothing can be
            // compared: an I/O error, which a new open of the store does not meet), or its own
            // files changed under it (written over in place).
            do { try servedSegment.checkReadable() } catch { return error }
            return replaced
        }
        return mine.first { $0.position == newest.position }?.id == newest.id ? nil : replaced
    }

    /// How often a reader opens the files again after finding that a writer opened while it
    /// scanned, before it serves only what the head it read records.
    static let writerRaceAttempts = 3

    /// A reader's scan of `segments` (`scan` scans them with a context). It serves what the
    /// writer acknowledged: up to the durable end the head records. When frames follow that end
    /// and no writer has the store open (it stopped before it recorded them, or a power cut took
    /// the head's record: the head is written without a sync), nothing will record them until a
    /// writable open, which keeps every whole batch there; the reader serves them as that open
    /// keeps them (a torn tail is not served, damage is damage), after a sync of the segment so
    /// that what it serves is durable. (A writer marks itself present only once its open has
    /// recorded what it recovered: a reader racing that recovery serves what it will keep.)
    /// - Returns: the scan, and whether it was made without a writer (then nothing after its
    ///   end is new until the head changes or a frame is written there: ``LogCore/Followed``);
    ///   nil when a writer opened meanwhile (there now, or come and gone: its open wrote a head
    ///   record): the caller opens the files again, and reads the head that writer wrote. On
    ///   the `lastAttempt`, it serves only what the old head records instead.
    static func scanForReading(
        _ segments: [Segment], context: Recovery.Context, in directory: String, lastAttempt: Bool,
        scan: (Recovery.Context) -> Recovery.Result
    ) throws -> (Recovery.Result, withoutWriter: Bool)? {
        guard let last = segments.last else { return (scan(context), false) }
        let visible = Recovery.visibleEnd(of: segments, head: context.head)
        // Without a head (or one about no segment of the set) readers serve every frame; with
        // no writer they tell the tail apart too. After a clean close nothing follows the end
        // it recorded (a writable open trusts that too, when it finds nothing there). Anything
        // else is looked at whole: a zero length where a frame should be may hide frames after
        // it (damage).
        let recorded = visible == .max ? Layout.segmentHeaderSize : visible
        let closedCleanly = context.head.map { $0.cleanClose && $0.segmentSalt == last.salt } ?? false
        let nothingAfterTheCleanClose = closedCleanly && !last.mayHoldFrame(at: recorded, fileSize: context.lastFileSize ?? last.capacity)
        if nothingAfterTheCleanClose {
            // Every frame there is lies before the end the head records: the scan sees them all.
            var everything = context
            everything.seesEveryFrame = true
            return (scan(everything), false)
        }
        guard !StoreLock.writerIsPresent(in: directory) else { return (scan(context), false) }
        var withoutWriter = context
        withoutWriter.writerAbsent = true
        let result = scan(withoutWriter)
        if result.writeOffset > recorded { try last.file.synchronizeData() }
        if !StoreLock.writerIsPresent(in: directory), try StoreFiles.readHead(in: directory)?.sequence == context.head?.sequence {
            return (result, true)
        }
        guard lastAttempt else { return nil }
        // Scanned again from the start: what the first scan registered (the segments'
        // dictionaries) is registered again.
        for segment in segments { segment.forgetDictionaries(from: 0) }
        return (scan(context), false)
    }

    /// Returns once an event at `position` or later is readable, the store closes, or the task
    /// is cancelled. A read-only store looks for new commits every ``Options/followInterval``.
    ///
    /// - Throws: what ``refresh()`` throws (read-only stores), e.g. damage in the new frames;
    ///   and ``StoreError/corruption(segment:offset:reason:)`` for damage that a refresh found
    ///   since the store was opened, wherever it lies (a segment cut, removed or put back from
    ///   an older copy while the store was followed: a follower would otherwise wait at the end
    ///   for ever, silent, where a fresh reader reports the damage), whichever refresh found it.
    public func waitForEvents(after position: UInt64) async throws {
        guard options.readOnly else { return await core.waitForEvents(after: position) }
        try throwDamageFoundSinceOpen()
        while !Task.isCancelled, core.shared.withLock({ !$0.isClosed && !$0.index.hasEvents(atOrAfter: position) }) {
            let grew = try refresh()
            try throwDamageFoundSinceOpen()
            if grew > 0 { continue }
            try? await Task.sleep(for: options.followInterval)
        }
    }

    /// Throws the first damage found since the open (told from the open's by file and offset:
    /// a scan again describes the same damage anew, its reason naming the durable end as it is
    /// now).
    func throwDamageFoundSinceOpen() throws {
        guard let found = damageFoundAtOpen.first(where: { !$0.isAmong(damageAtOpen) }) else { return }
        throw StoreError.corruption(
            segment: found.file, offset: found.offset,
            reason: "\(found.reason)\(found.heldPositions.map { " (\($0))" } ?? ""); found while the store was followed, \(StoreError.damagedStoreAdvice)")
    }
}

extension Segment {
    /// Whether something that may be a frame starts at `offset` (its stored length is not zero):
    /// the cheap test a follower makes before it scans. Never reads past `fileSize`.
    func mayHoldFrame(at offset: Int, fileSize: Int) -> Bool {
        guard offset + Layout.frameHeaderSize <= min(fileSize, capacity) else { return false }
        return withBytes { bytes in bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) != 0 }
    }

    /// Whether the header and the stored bytes of a frame at `offset` lie within `fileSize`
    /// (and the mapping): checked before a frame of a file that may have been written over in
    /// place, and shortened, is read again (a read through the mapping past a file's end is
    /// `SIGBUS`).
    func holdsWholeFrame(at offset: Int, fileSize: Int) -> Bool {
        let end = min(fileSize, map.count)
        guard offset >= 0, offset + Layout.frameHeaderSize <= end else { return false }
        let stored = withBytes { bytes in UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)) }
        return offset + Layout.frameHeaderSize + Int(stored) <= end
    }

    /// The first 8 bytes at `offset` (a frame's checksum and stored length; nil past the file):
    /// a reader that found no writer and stopped at `offset` looks again only when they change
    /// (a writer wrote a frame there; its checksum covers the salt and the offset).
    func frameMark(at offset: Int, fileSize: Int) -> UInt64? {
        guard offset + 8 <= min(fileSize, capacity) else { return nil }
        return withBytes { bytes in bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
    }
}

extension StreamIndex {
    /// Moves the index out, leaving an empty one: the moved value is the only reference to its
    /// storage, so changing it copies nothing.
    mutating func take() -> StreamIndex {
        let moved = self
        self = StreamIndex()
        return moved
    }
}
