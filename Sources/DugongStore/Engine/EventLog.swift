import Dugong
import Foundation
import Glibc
import Synchronization

/// The embedded event store: an append-only log of segment files in one directory, with an
/// in-memory index of streams. One writer process per store (a `flock` on `dugong.lock`);
/// any number of concurrent readers and appenders inside it.
///
/// ```swift
/// let log = try EventLog.open(at: "/var/lib/app/events", options: .init(createIfMissing: true))
/// let commit = try await log.append(
///     [NewEvent(type: "MoneyDeposited", data: Data(#"{"amount":100}"#.utf8))],
///     to: "account/42", expecting: .noStream)
/// for event in try log.read(stream: "account/42") { print(event.version, event.type) }
/// log.close()
/// ```
///
/// An append returns once its frame is durable (``Durability/synchronous``); appends that
/// arrive together share a frame and one `fdatasync` (group commit). Reads see only durable
/// events. The on-disk format is specified in FORMAT.md.
public final class EventLog: Sendable {
    /// The store's directory.
    public let directory: String
    public let options: Options
    let core: LogCore
    /// The writer thread; `nil` for a read-only store.
    let writer: Writer?
    private let lock: Mutex<StoreLock?>
    /// Held by a refresh (one at a time); where it last looked at the segments before the newest (``refresh()``).
    let refreshing = Mutex(OlderSegmentsLook())

    /// When a read-only store's refresh last looked at the segments before the newest, and
    /// where its next look begins (it looks at a bounded number of them at a time, in turn).
    struct OlderSegmentsLook {
        var at: ContinuousClock.Instant?
        var next = 0
    }

    /// What recovery found when the store was opened.
    public let recovery: RecoveryReport
    /// The damage this open found: what a refresh finds besides it ends waits for new events
    /// (``waitForEvents(after:)``, ``subscribe(from:)``).
    let damageAtOpen: [DamagedRegion]

    /// What opening the store found and repaired.
    public struct RecoveryReport: Sendable, Equatable {
        /// Bytes after the last valid frame of the newest segment: zeroed as a torn write when
        /// opened for writing, left alone (and not read) when opened read-only.
        public var tornBytesDiscarded: Int
        /// Damaged regions found; their events throw ``StoreError/corruption(segment:offset:reason:)`` when read.
        public var corruptions: [StoreError]
        /// Segment files the manifest does not list that an open for writing removes once it
        /// found the store whole (what an interrupted compaction, upgrade or roll left): a
        /// read-only open leaves them in place and names them here.
        public var leftoverFiles: [String] = []
        /// Files under a segment's name that the manifest does not list and whose header cannot
        /// be read: never removed or written over (an interrupted compaction may leave one; so
        /// may damage to a segment that held events). Verification warns of each.
        public var unreadableFiles: [String] = []
        /// Why each of ``unreadableFiles`` was not read as a segment (what opening it said).
        var unreadableReasons: [String: String] = [:]
    }

    private init(
        directory: String, options: Options, lock: StoreLock?, recovered: Recovery.Result, set: SegmentSet,
        writerState: Writer.WriterState?, head: HeadFile?, seenHead: HeadRecord?, servedWithoutWriter: Bool = false
    ) {
        self.directory = directory
        self.options = options
        self.lock = Mutex(lock)
        core = LogCore(
            directory: directory, options: options, index: recovered.index, segments: set.segments, directoryIdentity: lock?.directoryIdentity)
        core.shared.withLock { shared in
            shared.scannedEnd = recovered.writeOffset
            shared.followed = .init(
                manifest: set.manifest, headSequence: seenHead?.sequence, servedWithoutWriter: servedWithoutWriter,
                markAtEnd: servedWithoutWriter ? set.segments.last?.frameMark(at: recovered.writeOffset, fileSize: set.segments.last?.originalSize ?? 0) : nil)
        }
        if let writerState, let head {
            writer = Writer(core: core, head: head, state: writerState)
        } else {
            writer = nil
        }
        recovery = RecoveryReport(
            tornBytesDiscarded: recovered.tornBytes, corruptions: recovered.index.damage.map(\.error), leftoverFiles: recovered.index.damage.isEmpty ? set.leftovers : [],
            unreadableFiles: set.unreadable.map(\.name), unreadableReasons: Dictionary(set.unreadable.map { ($0.name, $0.reason) }) { first, _ in first })
        damageAtOpen = DamagedRegion.regions(of: recovered.index.damage)
    }

    deinit { close() }

    /// Opens (or, with ``Options/createIfMissing``, creates) the store in `directory`: takes the
    /// lock, reads the manifest, scans the segments (from the saved index when it is current) and
    /// decides what a crash left: a torn last batch is cut off, anything else invalid is damage.
    /// Before it returns, what it recovered is durable (FORMAT.md §8).
    ///
    /// - Throws: ``StoreError/locked(directory:)`` when another writer has it open,
    ///   ``StoreError/notFound(directory:)``, ``StoreError/notAStore(directory:reason:)``,
    ///   ``StoreError/unsupportedFormat(segment:version:)`` for a store of another format version,
    ///   ``StoreError/corruption(segment:offset:reason:)`` for a damaged segment header, and
    ///   ``SystemError`` for failed system calls.
    public static func open(at directory: String, options: Options = Options()) throws -> EventLog {
        try validate(options)
        if !Directory.exists(directory) {
            try refuseAsAFile(directory)
            guard options.createIfMissing else { throw StoreError.notFound(directory: directory) }
            try Directory.create(directory)
        } else if !options.readOnly, !options.createIfMissing, try SegmentSet.holdsNoStore(directory) {
            // (Checked before the lock too, so that a refused open leaves no lock file behind.)
            // A writer creating the store right now holds its lock: that is `locked`, as it will
            // be a moment later, not `notFound`.
            if Directory.fileExists(directory + "/" + Layout.lockFileName) { _ = try StoreLock.take(in: directory) }
            throw StoreError.notFound(directory: directory)
        }
        // A directory of other files is refused before the lock, which would leave a lock file
        // in it (the open under the lock refuses it too, should one appear meanwhile).
        if !options.readOnly, let foreign = try SegmentSet.foreignFiles(in: directory) {
            throw SegmentSet.notAStore(directory, holding: foreign)
        }
        let lock = options.readOnly ? nil : try StoreLock.take(in: directory)
        let writable = !options.readOnly
        var attempt = 0
        var set: SegmentSet
        var context: Recovery.Context
        var recovered: Recovery.Result
        var withoutWriter = false
        while true {
            attempt += 1
            set = writable
                ? try SegmentSet.open(
                    directory: directory, writable: true, createWithCapacity: options.createIfMissing ? options.segmentSize : nil)
                : try SegmentSet.openForReading(directory: directory, afterReadingManifest: options.readingHook)
            // A writer that may not create a store and found none (it went between the check
            // above and the lock) makes none.
            if writable, set.segments.isEmpty, set.isIntact { throw StoreError.notFound(directory: directory) }
            context = set.context
            if writable { try context.readHints(in: directory, lookingTwice: false) }
            context.lastFileSize = set.segments.last?.originalSize
            context.thorough = !options.useIndexFile
            context.repairing = writable
            let segments = set.segments
            let intact = set.isIntact
            func scan(_ context: Recovery.Context) -> Recovery.Result {
                if !writable { options.scanningHook?() }
                if options.useIndexFile, intact, let saved = IndexFile.load(from: directory, segments: segments, head: context.head) {
                    return Recovery.scan(
                        segments, from: saved.segmentCount - 1, offset: saved.scannedEnd, into: saved.index,
                        lastBatch: saved.index.lastBatch, context: context)
                }
                return Recovery.scan(segments, context: context)
            }
            if writable {
                recovered = scan(context)
            } else {
                // nil: a writer opened while it scanned; the files and the head are read again.
                guard let scanned = try scanForReading(
                    segments, context: context, in: directory, lastAttempt: attempt >= Self.writerRaceAttempts, scan: scan)
                else { continue }
                (recovered, withoutWriter) = scanned
            }
            // A reader's scan that found damage may have raced a writer (one that reopened the
            // store after the clean close the head recorded, or rolled a segment): when the head
            // changed meanwhile, it looks again.
            guard !writable, !recovered.index.damage.isEmpty, attempt < SegmentSet.maximumOpenAttempts,
                try StoreFiles.readHead(in: directory)?.sequence != context.head?.sequence
            else { break }
        }
        // Zeros in place of pages the disk failed: not the log's end, nor a torn tail to zero.
        try recovered.checkReadable()
        let acceptsWrites = recovered.index.damage.isEmpty || options.acceptWritesDespiteDamage
        guard writable, acceptsWrites, let found = set.segments.last else {
            // A damaged store opened for writing holds the lock but has no writer: nothing is
            // written, trimmed, extended or recorded, even at close.
            return EventLog(directory: directory, options: options, lock: lock, recovered: recovered, set: set, writerState: nil, head: nil,
                seenHead: context.head, servedWithoutWriter: withoutWriter)
        }
        // The writer's segment, as long as its capacity again (it was scanned at the size found).
        let last = try found.extendedToCapacity()
        set.segments[set.segments.count - 1] = last
        // What a crash left out of the manifest goes once the scan found the listed set whole.
        if recovered.index.damage.isEmpty { try set.removeLeftovers(in: directory, locked: lock?.directoryIdentity) }
        // The saved index describes the store as it is now; once appends begin it would not.
        try IndexFile.remove(from: directory)
        // The directory moved while the open scanned: the files below would go to the path's.
        try Directory.checkStill(directory, is: lock?.directoryIdentity)
        // A head file gone wrong (verification names it) is a hint the scan did without: it is
        // made whole again before the writer uses it, or `verify` would name it for ever.
        if recovered.index.damage.isEmpty, Directory.fileExists(directory + "/" + Layout.headName),
            !StoreFiles.headProblems(in: directory, lookingTwice: false).isEmpty
        {
            try StoreFiles.rewriteHead(in: directory, keeping: context.head)
        }
        let head = try HeadFile(directory: directory)
        // Batches continue after the highest seen (FORMAT.md §8). In a whole store a head's next
        // batch is never higher (it is written after its batch): a higher one (a head made or
        // changed with its checksum made good) would make the next batch read as damage after
        // it was acknowledged. With damage accepted, the head's number stays: a batch the
        // damage took stays in evidence.
        let afterSeen = recovered.lastBatch.map { $0 + 1 }
        let nextBatch = recovered.index.damage.isEmpty
            ? afterSeen ?? context.head?.nextBatch ?? 0 : max(context.head?.nextBatch ?? 0, afterSeen ?? 0)
        var state = Writer.WriterState(
            activeSegment: set.segments.count - 1, writeOffset: recovered.writeOffset, nextBatch: nextBatch,
            manifest: set.manifest, headSequence: context.head?.sequence ?? 0)
        state.needsCloseMarker = !recovered.endsWithCloseMarker
        try makeRecoveredDurable(last, recovered: &recovered, context: context, head: head, state: &state)
        try lock?.markWriter()
        // New segments as large as the store's, unless a size was set.
        return EventLog(
            directory: directory, options: options.adoptingSegmentSize(of: set.segments), lock: lock, recovered: recovered, set: set,
            writerState: state, head: head, seenHead: context.head)
    }

    /// A writable open's repair: everything after the valid frames is zeroed (a torn last batch,
    /// and, torn or not, what the disk may hold under pages that read as zeros: an earlier
    /// open's zeroing whose sync failed left its pages marked clean, and the torn bytes came
    /// back at the next power cut, after the segment was sealed), unless a clean close recorded
    /// that nothing follows (it punched the rest and synced before it wrote that record); the
    /// frames after the head's
    /// durable end, which may never have reached the disk (no sync, or a sync that failed and
    /// left their pages marked clean), are written again and synced; the head records the new
    /// durable end. Only then is anything served or appended.
    private static func makeRecoveredDurable(
        _ last: Segment, recovered: inout Recovery.Result, context: Recovery.Context, head: HeadFile,
        state: inout Writer.WriterState
    ) throws {
        let durable = context.head.flatMap { $0.segmentSalt == last.salt ? Int($0.durableEnd) : nil } ?? Layout.segmentHeaderSize
        let closedCleanlyHere = recovered.tornBytes == 0
            && context.head.map { $0.cleanClose && $0.segmentSalt == last.salt && Int($0.durableEnd) == recovered.writeOffset } == true
        // (With damage accepted, what lies after the valid frames may be damage, not a torn
        // write: it stays, as nothing is changed in a damaged store but what it appends.)
        let damaged = !recovered.index.damage.isEmpty
        if damaged ? recovered.tornBytes > 0 : !closedCleanlyHere { try last.zero(from: recovered.writeOffset) }
        try last.makeDurable(min(durable, recovered.writeOffset)..<recovered.writeOffset)
        state.headSequence += 1
        var record = HeadRecord(
            sequence: state.headSequence, segmentSalt: last.salt, durableEnd: UInt64(recovered.writeOffset),
            nextPosition: recovered.index.nextPosition, nextBatch: state.nextBatch, cleanClose: false)
        try head.write(record, durably: true)
        if record.sequence < 2 {
            // A head without an intact record (a lost file, an upgrade cut after its switch)
            // starts again at 1, its other slot zeros. The writer's next records are not synced:
            // a power cut could keep a later one and lose the one before it, leaving zeros in a
            // slot, which recovery takes for a damaged head. Both slots get a synced record.
            state.headSequence += 1
            record.sequence = state.headSequence
            try head.write(record, durably: true)
        }
    }

    /// For a store path that is not a directory: throws the lookup's error (a parent without
    /// search permission, a loop of symbolic links), or ``StoreError/notAStore(directory:reason:)``
    /// when it is a file; returns when nothing is there.
    static func refuseAsAFile(_ directory: String) throws {
        try Directory.checkLookup(directory)
        guard !Directory.fileExists(directory) else {
            throw StoreError.notAStore(directory: directory, reason: "it is a file, not a directory")
        }
    }

    static func validate(_ options: Options) throws(StoreError) {
        guard options.segmentSize >= 4096, options.segmentSize <= 1 << 30 else {
            throw .invalidArgument("segment size \(options.segmentSize) is outside 4 KiB ... 1 GiB")
        }
        guard options.maximumEventSize >= 1, options.maximumEventSize <= 256 << 20 else {
            throw .invalidArgument("maximum event size \(options.maximumEventSize) is outside 1 B ... 256 MiB")
        }
        guard options.targetFrameSize >= 1024, options.targetFrameSize <= 64 << 20 else {
            throw .invalidArgument("target frame size \(options.targetFrameSize) is outside 1 KiB ... 64 MiB")
        }
    }

    /// Completes the queued appends, stops the writer and releases the lock. Reads and appends
    /// after this throw ``StoreError/closed``. Calling it again does nothing.
    public func close() {
        let wasOpen = core.shared.withLock { shared -> Bool in
            defer { shared.isClosed = true }
            return !shared.isClosed
        }
        guard wasOpen else { return }
        if let writer {
            writer.stop()
            saveIndex(scannedEnd: writer.writeOffset, headSequence: writer.closingHeadSequence)
        }
        core.wakeWaiters()
        lock.withLock { $0 = nil }
    }

    /// Saves the index for the next open; best effort (without it the next open scans).
    private func saveIndex(scannedEnd: Int, headSequence: UInt64) {
        let (index, segments, failed) = core.shared.withLock { ($0.index, $0.segments, $0.failure != nil) }
        guard !failed, recovery.corruptions.isEmpty, (try? core.checkDirectoryIsInPlace()) != nil else { return }
        do {
            try IndexFile.write(index, segments: segments, scannedEnd: scannedEnd, headSequence: headSequence, to: directory)
        } catch {
            try? IndexFile.remove(from: directory)
        }
    }

    // MARK: Writing

    /// Appends `events` to `stream` as one atomic commit, if the stream is at the expected version.
    ///
    /// Idempotent retries: when the same event ids are already stored at the versions
    /// `expected` implies (`.exact(n)`: from n + 1; `.noStream`: from 1; `.any` and
    /// `.streamExists`: the stream's last events), nothing is written and the stored commit is
    /// returned with ``Commit/wasDuplicate`` set. When only some of them are stored, it throws
    /// ``StoreError/partialDuplicate(stream:storedCount:appendedCount:)``.
    ///
    /// - Throws: ``StoreError/wrongExpectedVersion(stream:expected:actual:)``,
    ///   ``StoreError/streamTombstoned(stream:)``, ``StoreError/eventTooLarge(stream:index:size:maximum:)``,
    ///   ``StoreError/invalidArgument(_:)`` (bad names, no events, timestamps a store cannot keep), ``StoreError/failed(reason:)``
    ///   after a failed write or sync, ``StoreError/closed``.
    @discardableResult
    public func append(
        _ events: [NewEvent], to stream: String, expecting expected: ExpectedVersion = .any
    ) async throws(StoreError) -> Commit {
        try await append([Append(stream: stream, events: events, expected: expected)])[0]
    }

    /// Events for one stream, as part of an atomic append to several streams.
    public struct Append: Sendable {
        public var stream: String
        public var events: [NewEvent]
        public var expected: ExpectedVersion

        public init(stream: String, events: [NewEvent], expected: ExpectedVersion = .any) {
            self.stream = stream
            self.events = events
            self.expected = expected
        }
    }

    /// Appends to several streams atomically (a unit of work): each append is checked as
    /// ``append(_:to:expecting:)`` checks it, against the streams as the appends before it leave
    /// them (so an append that repeats events an earlier one of the call appends is an
    /// idempotent retry of them); if any is refused, nothing is written. They are written in one
    /// frame.
    ///
    /// - Returns: one commit per append, in order.
    @discardableResult
    public func append(_ appends: [Append]) async throws(StoreError) -> [Commit] {
        try check(appends)
        return try await submit { done in .append(appends, done: done) }
    }

    /// What ``append(_:)`` checks before it sends the appends to the writer.
    func check(_ appends: [Append]) throws(StoreError) {
        guard !appends.isEmpty else { throw .invalidArgument("an atomic append needs at least one stream") }
        var commitSize = 0
        for append in appends {
            commitSize += try checked(append.events, for: append.stream)
            if case .exact(let version) = append.expected, version < 0 {
                throw .invalidArgument("expected version \(version) is negative")
            }
        }
        guard commitSize <= Layout.maximumCommitSize else { throw .commitTooLarge(size: commitSize, maximum: Layout.maximumCommitSize) }
        try checkWritable()
    }

    /// Checks `events` for `stream` as an append does, without writing anything: the stream
    /// name and event types (1 to ``Options/maximumNameLength`` bytes of UTF-8 without NUL), at
    /// least one event, each event's data and metadata within ``Options/maximumEventSize``, and
    /// each timestamp one a store keeps (`Date.isStorable`).
    ///
    /// - Throws: ``StoreError/invalidArgument(_:)`` or ``StoreError/eventTooLarge(stream:index:size:maximum:)``.
    public func validate(_ events: [NewEvent], for stream: String) throws(StoreError) {
        _ = try checked(events, for: stream)
    }

    /// ``validate(_:for:)``, returning what the events add to a commit's size
    /// (``commitSize(of:in:)``): one pass over them.
    private func checked(_ events: [NewEvent], for stream: String) throws(StoreError) -> Int {
        try Self.validate(stream: stream)
        guard !events.isEmpty else { throw .invalidArgument("an append to '\(stream)' needs at least one event") }
        let nameSize = stream.utf8.count
        var commitSize = 0
        // Through the buffer: no copy of each event (its fields are only looked at). A type is
        // checked once per append: an event's type is most often one of a few strings, the very
        // same ones from event to event (told apart by representation, without comparing bytes).
        let problem = events.withUnsafeBufferPointer { events -> StoreError? in
            var checkedTypes = RecentStrings()
            for index in events.indices {
                if !checkedTypes.contains(events[index].type) {
                    do throws(StoreError) { try Self.validate(name: events[index].type, what: "event type") } catch { return error }
                    checkedTypes.insert(events[index].type)
                }
                // Stored as milliseconds in a signed 64-bit integer (the conversion traps beyond).
                guard events[index].timestamp.isStorable else {
                    return .invalidArgument(
                        "event \(index) of '\(stream)' has the timestamp \(events[index].timestamp.timeIntervalSince1970) s since 1970: a store keeps milliseconds within ±\(Date.storableSecondsSince1970) s")
                }
                let size = events[index].data.count + events[index].metadata.count
                guard size <= options.maximumEventSize else {
                    return .eventTooLarge(stream: stream, index: index, size: size, maximum: options.maximumEventSize)
                }
                commitSize += Self.commitSize(dataSize: size, nameSizes: nameSize + events[index].type.utf8.count)
            }
            return nil
        }
        if let problem { throw problem }
        return commitSize
    }

    /// The last four strings inserted, found by representation (``String/hasSameRepresentation(as:)``).
    private struct RecentStrings {
        private var strings = ("", "", "", "")
        private var count = 0

        @inline(__always)
        func contains(_ string: String) -> Bool {
            (count > 0 && string.hasSameRepresentation(as: strings.0)) || (count > 1 && string.hasSameRepresentation(as: strings.1))
                || (count > 2 && string.hasSameRepresentation(as: strings.2)) || (count > 3 && string.hasSameRepresentation(as: strings.3))
        }

        mutating func insert(_ string: String) {
            switch count % 4 {
            case 0: strings.0 = string
            case 1: strings.1 = string
            case 2: strings.2 = string
            default: strings.3 = string
            }
            count += 1
        }
    }

    /// Soft-deletes `stream`: it reads as empty at once; later appends continue its version
    /// numbers and are visible. Compaction reclaims the deleted events.
    public func delete(stream: String) async throws(StoreError) {
        try Self.validate(stream: stream)
        try checkWritable()
        try await submit { done in .streamMetadata(stream: stream, change: .delete, done: done) }
    }

    /// Hides the versions of `stream` below `version` (they are reclaimed by compaction).
    ///
    /// - Throws: ``StoreError/invalidArgument(_:)`` when `version` is beyond the stream's
    ///   version + 1 (that would hide its next appends).
    public func truncate(stream: String, before version: Int) async throws(StoreError) {
        try Self.validate(stream: stream)
        guard version >= 1 else { throw .invalidArgument("truncate before version \(version): versions start at 1") }
        guard version <= Int(Layout.maximumPosition) else {
            throw .invalidArgument("truncate before version \(version): versions are below 2^62")
        }
        try checkWritable()
        try await submit { done in .streamMetadata(stream: stream, change: .truncateBefore(version), done: done) }
    }

    /// Declares that `stream`, which has no events yet, begins at `version`: versions below it
    /// are not in this store (they were removed where the stream came from, e.g. a compacted
    /// store that `dugong export` read), and its first append gets `version`. Doing it again with
    /// the same version does nothing, so an import can be re-run.
    ///
    /// - Throws: ``StoreError/invalidArgument(_:)`` when the stream has events or began
    ///   elsewhere already, or `version` is outside 1 ... 2^62 (2^62: the stream is at the last
    ///   version, 2^62 − 1, and takes no appends: what a compaction keeps of a stream deleted there).
    public func beginStream(_ stream: String, atVersion version: Int) async throws(StoreError) {
        try Self.validate(stream: stream)
        guard version >= 1, version <= Layout.maximumVersion + 1 else {
            throw .invalidArgument("a stream begins at a version in 1 ... \(Layout.maximumVersion + 1) (2^62), not \(version)")
        }
        try checkWritable()
        try await submit { done in .streamMetadata(stream: stream, change: .beginAt(version), done: done) }
    }

    /// Tombstones `stream`: it reads as empty and can never be appended to again.
    public func tombstone(stream: String) async throws(StoreError) {
        try Self.validate(stream: stream)
        try checkWritable()
        try await submit { done in .streamMetadata(stream: stream, change: .tombstone, done: done) }
    }

    /// Saves a snapshot of a stream; the one with the highest version wins (a later save at the
    /// same version replaces an earlier one).
    public func saveSnapshot(_ snapshot: StoredSnapshot) async throws(StoreError) {
        try Self.validate(stream: snapshot.stream)
        guard snapshot.version >= 0, snapshot.version <= Int(Layout.maximumPosition) else {
            throw .invalidArgument("snapshot version \(snapshot.version) is outside 0 ... 2^62")
        }
        guard snapshot.data.count + snapshot.metadata.count <= options.maximumEventSize else {
            // (Not `eventTooLarge`, whose message speaks of an append's event.)
            throw .invalidArgument(
                "the snapshot of '\(snapshot.stream)' at version \(snapshot.version) is \(snapshot.data.count + snapshot.metadata.count) bytes (data + metadata), over the maximum of \(options.maximumEventSize) (Options.maximumEventSize)")
        }
        try checkWritable()
        try await submit { done in .snapshot(snapshot, done: done) }
    }

    /// Throws when the store is closed, or damaged and not opened to accept writes anyway.
    private func checkWritable() throws(StoreError) {
        try core.checkOpen()
        if options.readOnly { throw .readOnly }
        if !options.acceptWritesDespiteDamage, let damage = recovery.corruptions.first {
            throw .damaged(first: damage)
        }
        // Damage accepted, but no segment to write to (the only one listed is missing or its
        // header damaged): the open made no writer.
        guard writer != nil else { throw .damaged(first: recovery.corruptions.first ?? .readOnly) }
    }

    private func submit<T: Sendable>(
        _ operation: (@escaping @Sendable (Result<T, StoreError>) -> Void) -> Writer.Operation
    ) async throws(StoreError) -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, StoreError>, Never>) in
            // checkWritable ran first: a read-only store never gets here.
            writer!.submit(operation { continuation.resume(returning: $0) })
        }
        return try result.get()
    }

    /// A stream name from raw bytes (read from a file or the network), checked: 1 to
    /// ``Options/maximumNameLength`` bytes of valid UTF-8 without NUL.
    ///
    /// - Throws: ``StoreError/invalidArgument(_:)`` saying what is wrong.
    public static func streamName(validating bytes: some Collection<UInt8>) throws(StoreError) -> String {
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw .invalidArgument("stream name is not valid UTF-8")
        }
        try validate(stream: name)
        return name
    }

    /// Checks that `stream` is a name a stream can have: 1 to ``Options/maximumNameLength``
    /// UTF-8 bytes, no NUL.
    /// - Throws: ``StoreError/invalidArgument(_:)`` naming what is wrong.
    public static func validate(stream: String) throws(StoreError) {
        try validate(name: stream, what: "stream name")
    }

    static func validate(name: String, what: String) throws(StoreError) {
        let bytes = name.utf8.count
        guard bytes > 0 else { throw .invalidArgument("\(what) is empty") }
        guard bytes <= Options.maximumNameLength else {
            throw .invalidArgument("\(what) is \(bytes) bytes long, over the maximum of \(Options.maximumNameLength)")
        }
        let hasNUL = name.utf8.withContiguousStorageIfAvailable { memchr($0.baseAddress!, 0, $0.count) != nil } ?? name.utf8.contains(0)
        guard !hasNUL else { throw .invalidArgument("\(what) contains a NUL byte") }
    }

    // MARK: Reading

    /// The direction of a stream read.
    public enum Direction: Sendable {
        case forward, backward
    }

    /// Events of `stream` starting at version `from`: forward up to the last version, or
    /// backward down to the first visible one (`from` defaults to the last version then).
    /// A deleted or tombstoned stream, or an unknown one, reads as empty.
    ///
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when an event to return lies in
    ///   a damaged frame, or when damage found at open lies after the first event to return (it
    ///   may have held a record that hides it, or the stream's later events); with nothing to
    ///   return (a deleted or truncated stream, a read past its last version), when damage lies
    ///   after the stream's last event; for a stream with no events, when the store has any damage.
    public func read(
        stream: String, from version: Int? = nil, maxCount: Int = .max, direction: Direction = .forward
    ) throws -> [StoredEvent] {
        let slice = try slice(of: stream, from: version, maxCount: maxCount, direction: direction)
        return try core.events(slice)
    }

    /// The events a stream read returns, in its order (see ``read(stream:from:maxCount:direction:)``).
    func slice(of stream: String, from version: Int?, maxCount: Int, direction: Direction) throws -> StreamSlice {
        try prepareToRead()
        let empty = StreamSlice(stream: stream, positions: [], firstVersion: 1, forward: true)
        guard maxCount > 0 else { return empty }
        return try core.withReadableState { shared in
            let entry = shared.index.stream(stream)
            guard let entry, !entry.isTombstoned, entry.version > 0 else {
                // Damage may have held this stream's events or its lifecycle records.
                if let damage = shared.index.damage.first { throw damage.error }
                return empty
            }
            let first = max(entry.truncateBefore, entry.removedThrough + 1)
            let last = entry.version
            // Nothing to return: unless damage after the stream's last event may have held its
            // later events (a deleted or truncated stream may be appended to again).
            func nothing() throws(StoreError) -> StreamSlice {
                let lastPosition = last > entry.removedThrough ? shared.index.positions(of: last...last, in: stream).first : nil
                if let damage = shared.index.damage.first(where: { damage in lastPosition.map { damage.positions.upperBound > $0 } ?? true }) {
                    throw damage.error
                }
                return empty
            }
            let range: ClosedRange<Int>
            switch direction {
            case .forward:
                let start = max(version ?? 1, first, 1)
                guard start <= last else { return try nothing() }
                range = start...(start + min(maxCount, last - start + 1) - 1)
            case .backward:
                let start = min(version ?? last, last)
                guard start >= first, start >= 1 else { return try nothing() }
                range = max(first, start - min(maxCount, start) + 1)...start
            }
            let positions = shared.index.positions(of: range, in: stream)
            // Damage after the first event returned may have held a record that hides it (a
            // delete, a truncation, a tombstone) or, at the end, the stream's later events: a
            // damaged store answers such a read with the damage, never with what may be wrong.
            let earliest = positions.lazy.filter { $0 < StreamIndex.damagedMarker }.min()
            if let damage = shared.index.damage.first(where: { damage in earliest.map { damage.positions.upperBound > $0 } ?? true }) {
                throw damage.error
            }
            return direction == .forward
                ? StreamSlice(stream: stream, positions: Array(positions), firstVersion: range.lowerBound, forward: true)
                : StreamSlice(stream: stream, positions: positions.reversed(), firstVersion: range.upperBound, forward: false)
        }
    }

    /// The event at `version` of `stream` whether reads show it or not (a deleted, truncated or
    /// tombstoned stream keeps its events until compaction); `nil` when the log does not hold
    /// that version (never written, or removed by compaction or a later beginning).
    ///
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when damage holds it.
    public func storedEvent(of stream: String, version: Int) throws -> StoredEvent? {
        try prepareToRead()
        guard let position = try core.withReadableState({ shared in
            return shared.index.position(of: version, in: stream)
        }) else { return nil }
        return try core.events(StreamSlice(stream: stream, positions: [position], firstVersion: version, forward: true)).first
    }

    /// Up to `maxCount` events in log order from global position `position` (inclusive),
    /// including those of deleted streams that compaction has not reclaimed yet. Fewer than
    /// `maxCount` does not mean the log ends there: a page stops before a frame it cannot read,
    /// and the next call (from the position after its last event) throws; read on until a page
    /// is empty.
    ///
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when the first event to
    ///   return lies in a damaged frame; events before damage are returned first.
    public func readAll(from position: UInt64 = 0, maxCount: Int = 4096) throws -> [StoredEvent] {
        try prepareToRead()
        guard maxCount > 0 else { return [] }
        return try core.eventsInLog(from: position, maxCount: maxCount)
    }

    /// The latest snapshot of `stream`, or `nil` (also when the stream was deleted after it or
    /// tombstoned).
    public func latestSnapshot(of stream: String) throws -> StoredSnapshot? {
        try prepareToRead()
        let found: (Segment, StreamIndex.SnapshotReference)? = try core.withReadableState { shared in
            // Damage may have held a later snapshot or a delete that hides this one.
            if let damage = shared.index.damage.first { throw damage.error }
            guard let entry = shared.index.stream(stream), !entry.isTombstoned, let reference = entry.snapshot,
                reference.version > entry.snapshotsHiddenThrough
            else { return nil }
            return (core.segmentForReading(reference.location.segment, in: &shared), reference)
        }
        guard let (segment, reference) = found else { return nil }
        let records = try FrameCache.records(at: reference.location.offset, in: segment)
        guard records.indices.contains(reference.recordIndex), case .snapshot(let snapshot) = records[reference.recordIndex],
            snapshot.version == reference.version, StreamKey(snapshot.stream) == StreamKey(stream)
        else {
            throw StoreError.corruption(segment: segment.name, offset: reference.location.offset, reason: "snapshot record moved")
        }
        return snapshot
    }

    /// What the index knows about a stream.
    public struct StreamInfo: Sendable, Equatable {
        /// The version of its last event (0: none). Deleting keeps it; appends continue from it.
        public var version: Int
        /// The first version reads return.
        public var firstVisibleVersion: Int
        public var isTombstoned: Bool
        /// The first version the log holds: 1, or later when compaction removed the versions
        /// before it or the stream was declared to begin later (``EventLog/beginStream(_:atVersion:)``).
        public var firstStoredVersion = 1
        /// Whether no version is visible (deleted, truncated past the end, or tombstoned).
        public var readsAsEmpty: Bool { isTombstoned || firstVisibleVersion > version }

        public init(version: Int, firstVisibleVersion: Int, isTombstoned: Bool, firstStoredVersion: Int = 1) {
            self.version = version
            self.firstVisibleVersion = firstVisibleVersion
            self.isTombstoned = isTombstoned
            self.firstStoredVersion = firstStoredVersion
        }
    }

    /// The stream's version and lifecycle, or `nil` when the store has never seen it.
    public func info(stream: String) throws -> StreamInfo? {
        try prepareToRead()
        return try core.withReadableState { shared in
            return shared.index.stream(stream).map {
                StreamInfo(
                    version: $0.version, firstVisibleVersion: $0.truncateBefore, isTombstoned: $0.isTombstoned,
                    firstStoredVersion: $0.removedThrough + 1)
            }
        }
    }

    /// The names of the streams of a category (the part of a stream name before its first
    /// `/`), in the order of their first event. Deleted and tombstoned streams are included.
    ///
    /// - Complexity: O(k) for k streams in the category; no event is read.
    public func streams(inCategory category: String) throws -> [String] {
        try prepareToRead()
        return try core.withReadableState { shared in
            return shared.index.streams(inCategory: category)
        }
    }

    /// The global position the next event will get; every durable event is below it.
    public var headPosition: UInt64 {
        core.shared.withLock { $0.headPosition }
    }

    /// The number of events in the log (including those hidden by deletes and truncation).
    public var eventCount: Int {
        core.shared.withLock { $0.eventCount }
    }

    /// Bytes of frames in the segments: what the events, snapshots and stream metadata take on
    /// disk, without segment headers and unused preallocated space.
    public var frameBytes: Int {
        core.shared.withLock { $0.index.frameBytes }
    }

    /// Frames that hold events (those holding only snapshots or stream metadata not counted).
    public var eventFrameCount: Int {
        core.shared.withLock { $0.index.eventFrames.count }
    }

    /// Forgets the decoded frames kept for reads (for measuring cold reads).
    public func dropCaches() {
        core.cache.removeAll()
    }

    /// The largest commit an append (or an atomic append to several streams) may make, in bytes
    /// of its frame's payload: event data, metadata, stream names and types, and about 40 bytes
    /// per event. Larger ones throw ``StoreError/commitTooLarge(size:maximum:)``.
    public static let maximumCommitSize = Layout.maximumCommitSize

    /// The largest version a stream may reach, 2^62 - 1; an append past it is refused.
    public static let maximumVersion = Layout.maximumVersion

    /// The store format version this build writes (FORMAT.md); it reads versions
    /// ``oldestReadableFormatVersion`` through this one as they are.
    public static let formatVersion = Int(Layout.formatVersion)
    /// The oldest store format version this build reads as it is (older stores are converted by
    /// ``EventLog/upgrade(at:options:)`` or refused with a message that names it).
    public static let oldestReadableFormatVersion = Int(Layout.oldestReadableFormatVersion)

    /// What `event` appended to `stream` counts toward ``maximumCommitSize``.
    public static func commitSize(of event: NewEvent, in stream: String) -> Int {
        commitSize(dataSize: event.data.count + event.metadata.count, nameSizes: stream.utf8.count + event.type.utf8.count)
    }

    /// ``commitSize(of:in:)`` from an event's data and metadata bytes and its stream name and
    /// type bytes.
    @inline(__always)
    static func commitSize(dataSize: Int, nameSizes: Int) -> Int { dataSize + nameSizes + 40 }

    /// The names of the segment files, oldest first.
    public var segmentNames: [String] {
        core.shared.withLock { $0.segments.map(\.name) }
    }
}

/// An accepted append: where its events went.
public struct Commit: Sendable, Hashable {
    public var stream: String
    public var firstVersion: Int
    public var lastVersion: Int
    public var firstPosition: UInt64
    public var lastPosition: UInt64
    /// `true` when the events were already stored (an idempotent retry) and nothing was written.
    public var wasDuplicate: Bool
    /// The stream's version once this append was decided, as the appends before it (in this
    /// call and before) left it: ``lastVersion`` for events written now; for a retry, the
    /// version the stream had when the retry was recognized (later appends may have added to
    /// it since: read after the call, the stream's version would count them too).
    public var streamVersion: Int
}

/// The positions a stream read returns and what the events there must be: the index says which
/// positions hold a stream's versions, and a read checks that the frames agree (an index file
/// that does not describe the segments, or a frame rewritten since, is damage, never data).
struct StreamSlice {
    let stream: String
    let positions: [UInt64]
    /// The version of the event at `positions[0]`; the next ones count up (forward) or down.
    let firstVersion: Int
    let forward: Bool

    /// Nil when the event read at `positions[index]` is of this stream at the version the index
    /// gives it; otherwise what is wrong.
    func problem(stream: String, version: Int, at index: Int) -> String? {
        let expected = forward ? firstVersion + index : firstVersion - index
        if version == expected, StreamKey(stream) == StreamKey(self.stream) { return nil }
        return "the event at position \(positions[index]) is \(stream) version \(version), where the index has \(self.stream) version \(expected): the index does not describe the segments (remove dugong.index to rebuild it) or a frame was changed"
    }
}
