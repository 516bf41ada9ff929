import Dugong
import Foundation
import Synchronization

/// The single writer: a dedicated thread that takes every queued operation, decides each one
/// against the index, packs the accepted ones into frames (group commit) and writes them; then
/// the syncer syncs them once, publishes them to the index and only then completes the
/// operations.
///
/// Two stages, so that deciding and compressing the next batch overlaps the sync of the one
/// before it; the file still sees one batch at a time: a batch is written only after the
/// syncer made the one before it durable (FORMAT.md §4, "Batches"). The next batch is decided
/// on top of the one in flight (its streams as it left them), and its results, refusals and
/// duplicates too, reach their callers only after that one is durable.
final class Writer: Sendable {
    enum Operation: Sendable {
        /// One or more appends, all or none, in one frame.
        case append([EventLog.Append], done: @Sendable (Result<[Commit], StoreError>) -> Void)
        case streamMetadata(stream: String, change: StreamChange, done: @Sendable (Result<Void, StoreError>) -> Void)
        case snapshot(StoredSnapshot, done: @Sendable (Result<Void, StoreError>) -> Void)

        func fail(_ error: StoreError) {
            switch self {
            case .append(_, let done): done(.failure(error))
            case .streamMetadata(_, _, let done): done(.failure(error))
            case .snapshot(_, let done): done(.failure(error))
            }
        }
    }

    enum StreamChange: Sendable {
        case delete, truncateBefore(Int), tombstone, beginAt(Int)
    }

    private struct Queue {
        var operations: [Operation] = []
        var isStopping = false
    }

    private let core: LogCore
    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    /// The second stage: one batch at a time, in order.
    private let syncer = DispatchQueue(label: "dugong-syncer")
    /// The batch handed to the syncer last (perhaps published already); the writer thread's.
    private let inFlight = Mutex<InFlight?>(nil)
    /// The writer thread's own state; touched by that thread only.
    private let state: Mutex<WriterState>
    /// The payload size of the last frame the writer thread built: the next frame's buffer starts
    /// that large (starting at 4 KiB, a frame of 100 events grew and was copied three times).
    private let lastPayloadSize = Atomic<Int>(0)

    struct WriterState {
        var activeSegment: Int
        var writeOffset: Int
        /// The number the next batch (the frames of one sync) gets.
        var nextBatch: UInt64
        /// The manifest on disk: a new segment is added to it before frames go into it.
        var manifest: Manifest
        /// The sequence of the last head record written.
        var headSequence: UInt64
        /// The raw payload written last, up to twice the dictionary's size: its last
        /// `dictionarySize` bytes (the writer's) are the next segment's dictionary.
        var recentPayload: [UInt8] = []
        /// Whether frames were written after the last close marker (a clean close writes one).
        var needsCloseMarker = true
        /// The dictionary frames were compressed with last, prepared for its codec.
        var lastPreset: PresetDictionary?

        /// `bytes` (a segment's current dictionary; empty: none) prepared for `codec`: the one
        /// used last when it holds the same bytes (the same array each frame, whose comparison
        /// then stops at its storage), else a new one.
        /// Keeps `payload` as the payload written last (``recentPayload``), in room of twice
        /// `size` bytes: the oldest bytes go in one move when they would overflow it, instead
        /// of two new arrays and a copy of `size` bytes per frame.
        mutating func remember(_ payload: UnsafeRawBufferPointer, keeping size: Int) {
            if payload.count >= size {
                recentPayload.removeAll(keepingCapacity: true)
                recentPayload.append(contentsOf: UnsafeRawBufferPointer(rebasing: payload[(payload.count - size)...]))
            } else {
                if recentPayload.count + payload.count > 2 * size { recentPayload.removeFirst(recentPayload.count - size) }
                recentPayload.append(contentsOf: payload)
            }
            assert(recentPayload.count <= 2 * size)
        }

        /// The last `size` bytes of payload written, once so many were.
        func recentBytes(_ size: Int) -> [UInt8]? {
            recentPayload.count >= size ? Array(recentPayload.suffix(size)) : nil
        }

        mutating func preset(_ bytes: [UInt8], _ codec: Codec) -> PresetDictionary? {
            guard !bytes.isEmpty else { return nil }
            if let lastPreset, lastPreset.codec == codec, lastPreset.bytes == bytes { return lastPreset }
            lastPreset = PresetDictionary(bytes, codec: codec)
            return lastPreset
        }
    }

    /// How much recent payload a segment's dictionary holds: 4 KiB, less for tiny segments.
    private let dictionarySize: Int
    private let head: HeadFile

    init(core: LogCore, head: HeadFile, state: WriterState) {
        self.core = core
        self.head = head
        dictionarySize = min(Layout.dictionarySize, core.options.segmentSize / 8)
        var state = state
        Self.recallRecentPayload(into: &state, from: core, keeping: dictionarySize)
        self.state = Mutex(state)
        let thread = Thread { [self] in run() }
        thread.name = "dugong-writer"
        thread.start()
    }

    /// Queues an operation; it completes on the writer's thread or the syncer's.
    func submit(_ operation: Operation) {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.isStopping else { return false }
            queue.operations.append(operation)
            return true
        }
        guard accepted else { return operation.fail(.closed) }
        wakeUp.signal()
    }

    /// Where the valid frames of the active segment end (after ``stop()``: for good).
    var writeOffset: Int { state.withLock { $0.writeOffset } }

    /// Completes what is queued, then stops the thread and waits for it.
    func stop() {
        let first = queue.withLock { queue -> Bool in
            defer { queue.isStopping = true }
            return !queue.isStopping
        }
        guard first else { return }
        wakeUp.signal()
        stopped.wait()
    }

    private func run() {
        // Two arrays take turns as the queue (swapped, not copied: emptying a copy kept its
        // capacity by allocating, and the writer wakes once per submit, most often to an empty
        // queue when commits come in groups).
        var batch: [Operation] = []
        while true {
            wakeUp.wait()
            let stopping = queue.withLock { queue in
                swap(&queue.operations, &batch)
                return queue.isStopping
            }
            if !batch.isEmpty {
                process(batch)
                batch.removeAll(keepingCapacity: true)
            }
            if stopping {
                // Anything queued after the last drain is refused by submit; drain once more.
                let rest = queue.withLock { queue in
                    defer { queue.operations.removeAll() }
                    return queue.operations
                }
                if !rest.isEmpty { process(rest) }
                trimActiveSegment()
                syncer.sync {}
                stopped.signal()
                return
            }
        }
    }

    /// At a clean close, gives the unused preallocated tail of the active segment back to the
    /// file system by punching a hole (the file keeps its size: a reader in another process may
    /// have it mapped, and a shrunk file would make its reads fault); the next open allocates it
    /// again. Best effort: a failure leaves zeros, which read the same.
    /// Then records the clean close in the head file (synced): the next open knows that nothing
    /// follows the last frame, so damage to the last batch is damage, not a torn write.
    private func trimActiveSegment() {
        syncer.sync {}
        guard core.shared.withLock({ $0.failure == nil }) else { return }
        if state.withLock({ $0.needsCloseMarker }) {
            // The close marker: a last batch of its own, synced, so that the frames before it are
            // known to be acknowledged whatever happens to the head file.
            do {
                var marker = FrameBuilder(nextPosition: core.shared.withLock { $0.index.nextPosition })
                marker.appendCloseMarker()
                let written = try write([marker], forceSync: true)
                assert(written.pending == nil, "a forced sync is not deferred")
                publish(written.frames)
            } catch {
                return  // no clean close: the next open recovers as after a crash, losing nothing
            }
        }
        state.withLock { state in
            let (segment, nextPosition) = core.shared.withLock { ($0.segments[state.activeSegment], $0.index.nextPosition) }
            do {
                try segment.file.punchHole(state.writeOffset..<segment.capacity)
            } catch {
                // The zeros stay; nothing is lost.
            }
            do {
                // fsync above made every frame durable, also without synchronous durability.
                try segment.file.synchronize()
                try writeHead(&state, segment: segment, nextPosition: nextPosition, cleanClose: true)
            } catch {
                // Without the record the next open treats an invalid tail as torn: nothing is lost.
            }
        }
    }

    /// The sequence of the head record written by a clean close (the index file names it).
    var closingHeadSequence: UInt64 { state.withLock { $0.headSequence } }

    /// Records in the head file that the frames of `segment` up to the write offset are durable.
    private func writeHead(_ state: inout WriterState, segment: Segment, nextPosition: UInt64, cleanClose: Bool) throws {
        try head.write(headRecord(&state, segment: segment, nextPosition: nextPosition, cleanClose: cleanClose), durably: cleanClose)
    }

    /// The next head record: `segment`'s frames up to the write offset are durable.
    private func headRecord(_ state: inout WriterState, segment: Segment, nextPosition: UInt64, cleanClose: Bool) -> HeadRecord {
        state.headSequence += 1
        return HeadRecord(
            sequence: state.headSequence, segmentSalt: segment.salt, durableEnd: UInt64(state.writeOffset),
            nextPosition: nextPosition, nextBatch: state.nextBatch, cleanClose: cleanClose)
    }

    // MARK: Deciding and packing

    /// A stream's state as the batch sees it: the index plus what the batch already accepted.
    /// Plain values: the ids and positions of the versions not yet in the index are in the
    /// batches' ``Accepted`` lists, looked up only for retries.
    private struct StreamView: Sendable {
        var version: Int
        var isTombstoned: Bool
        var lastEventID: UUID?
        /// The first version not in the index: from here on, the versions are the batch's or
        /// the one in flight's.
        var pendingFrom: Int
        /// The first version this batch may add: what is pending from here on is this batch's.
        var batchFrom: Int
    }

    /// The events a batch accepted, for the lookups of versions that are not in the index yet
    /// (a retry's ids, a duplicate's positions: rare): one run per accepted append.
    private struct Accepted: Sendable {
        struct Run: Sendable {
            var stream: HashedStreamKey
            var firstVersion: Int
            var firstPosition: UInt64
            var count: Int
            /// Where the run's ids start in ``ids``.
            var firstID: Int
        }

        var runs: [Run] = []
        var ids: [UUID] = []

        mutating func append(_ events: [NewEvent], to stream: HashedStreamKey, firstVersion: Int, firstPosition: UInt64) {
            runs.append(Run(stream: stream, firstVersion: firstVersion, firstPosition: firstPosition, count: events.count, firstID: ids.count))
            // Through the buffer: a copy of each event (to read its id) retained its four fields.
            events.withUnsafeBufferPointer { events in
                for index in events.indices { ids.append(events[index].id) }
            }
        }

        /// Forgets what was appended after the list had `runs` runs and `ids` ids.
        mutating func roll(backTo runs: Int, ids: Int) {
            self.runs.removeSubrange(runs...)
            self.ids.removeSubrange(ids...)
        }

        /// The id and position of `version` of `stream`, if accepted here.
        func event(_ version: Int, of stream: HashedStreamKey) -> (id: UUID, position: UInt64)? {
            for run in runs.reversed() where version >= run.firstVersion && version - run.firstVersion < run.count && run.stream == stream {
                let offset = version - run.firstVersion
                return (ids[run.firstID + offset], run.firstPosition + UInt64(offset))
            }
            return nil
        }
    }

    private struct Batch {
        var frames: [FrameBuilder] = []
        var builder: FrameBuilder
        /// The streams the batch touched, as it leaves them.
        var views: [HashedStreamKey: StreamView]
        /// The streams as the batch in flight left them.
        var before: [HashedStreamKey: StreamView]
        /// The events the batch accepted, and the batch in flight.
        var accepted = Accepted()
        var acceptedBefore: Accepted
        var completions: [@Sendable () -> Void] = []
        var nextPosition: UInt64
        /// Each call's decision, from the index the call's part starts at (emptied only with the
        /// batch: emptying them at every call cost more than keeping them): the streams it
        /// touches, their trial views, its plans.
        var callStreams: [HashedStreamKey] = []
        var callViews: [StreamView] = []
        var plans: [Plan] = []

        /// The id and position of a version that is not in the index yet.
        func pendingEvent(_ version: Int, of stream: HashedStreamKey) -> (id: UUID, position: UInt64)? {
            accepted.event(version, of: stream) ?? acceptedBefore.event(version, of: stream)
        }
    }

    /// What a call's append will be: by index (a copy of an append retains its name and events).
    private struct Plan {
        var append: Int
        var slot: Int
        var firstVersion: Int
        var duplicate: Commit?
    }

    /// A batch written and handed to the syncer: its streams as it left them, what it accepted,
    /// and the position after it.
    private struct InFlight: Sendable {
        var views: [HashedStreamKey: StreamView]
        var accepted: Accepted
        var nextPosition: UInt64
    }

    private func process(_ operations: [Operation]) {
        if failedAlready(operations) { return }
        let previous = inFlight.withLock { $0 }
        let start = previous?.nextPosition ?? core.shared.withLock { $0.index.nextPosition }
        var batch = Batch(
            builder: newFrame(at: start), views: Dictionary(minimumCapacity: operations.count), before: previous?.views ?? [:],
            acceptedBefore: previous?.accepted ?? Accepted(), nextPosition: start)
        for operation in operations {
            switch operation {
            case .append(let appends, let done):
                let result = decideAppends(appends, in: &batch)
                batch.completions.append { done(result) }
            case .streamMetadata(let stream, let change, let done):
                let result = changeStream(stream, change, in: &batch)
                batch.completions.append { done(result) }
            case .snapshot(let snapshot, let done):
                batch.builder.append(snapshot)
                closeFrameIfFull(&batch)
                batch.completions.append { done(.success(())) }
            }
        }
        if !batch.builder.isEmpty { finishFrame(&batch) }
        let written: (frames: [WrittenFrame], pending: PendingSync?)
        do {
            written = try write(batch.frames)
        } catch {
            fail(operations, error)
            return
        }
        // A batch that wrote nothing changed no stream and waited for nothing: the one in flight
        // (perhaps still syncing, its views still needed) stays what the next batch starts from.
        if !batch.frames.isEmpty {
            inFlight.withLock { $0 = InFlight(views: batch.views, accepted: batch.accepted, nextPosition: batch.nextPosition) }
        }
        let completions = batch.completions
        let end = batch.nextPosition
        let finish: @Sendable () -> Void = { [self] in
            // After the batch before: its failure fails this one (which was decided on top of it).
            if failedAlready(operations) { return }
            do {
                if let pending = written.pending { try makeDurable(pending) }
            } catch {
                fail(operations, error)
                return
            }
            publish(written.frames)
            assert(core.shared.withLock { $0.index.nextPosition } == end)
            for completion in completions { completion() }
            if end > start { core.wakeWaiters() }
        }
        // With nothing else queued there is no next batch to overlap: finish here (`sync` runs
        // the block on this thread, after the batch before), sparing a lone writer's commit a
        // hand-off to another thread; with more queued, hand it on and decide the next meanwhile.
        if queue.withLock({ $0.operations.isEmpty }) {
            syncer.sync(execute: finish)
        } else {
            syncer.async(execute: finish)
        }
    }

    /// Fails `operations` when the store has failed already; whether it had.
    private func failedAlready(_ operations: [Operation]) -> Bool {
        guard let failure = core.shared.withLock({ $0.failure }) else { return false }
        for operation in operations { operation.fail(.failed(reason: failure)) }
        return true
    }

    /// Fails the store (keeping the first failure's reason) and `operations`.
    private func fail(_ operations: [Operation], _ error: any Error) {
        // A failure already told as one (`failed(reason:)`) keeps its reason: the message says
        // "the store failed" once.
        let told: String
        if case .failed(let reason)? = error as? StoreError { told = reason } else { told = "\(error)" }
        let reason = core.shared.withLock { shared in
            if shared.failure == nil { shared.failure = told }
            return shared.failure!
        }
        for operation in operations { operation.fail(.failed(reason: reason)) }
    }

    private func view(of stream: HashedStreamKey, in batch: inout Batch) -> StreamView {
        if let view = batch.views[stream] { return view }
        if !batch.before.isEmpty, var view = batch.before[stream] {
            // The batch before the one in flight is in the index by now (a batch is written only
            // after the one before it is durable, and this one is decided after that write).
            view.pendingFrom = view.batchFrom
            view.batchFrom = view.version + 1
            return view
        }
        let indexed = core.shared.withLock { $0.index.stream(stream) }
        let version = indexed?.version ?? 0
        return StreamView(
            version: version, isTombstoned: indexed?.isTombstoned ?? false, lastEventID: indexed?.lastEventID,
            pendingFrom: version + 1, batchFrom: version + 1)
    }

    /// The id of the event at `version` of `stream`, stored or accepted earlier in the batch.
    private func storedID(_ stream: HashedStreamKey, version: Int, view: StreamView, in batch: Batch) throws -> UUID? {
        if version >= view.pendingFrom { return batch.pendingEvent(version, of: stream)?.id }
        let stream = stream.name
        let position = core.shared.withLock { shared -> UInt64? in
            shared.index.position(of: version, in: stream)
        }
        guard let position else { return nil }
        return try core.events(StreamSlice(stream: stream, positions: [position], firstVersion: version, forward: true)).first?.id
    }

    /// Decides appends that commit together: each is checked against the streams as the ones
    /// before it leave them; if any fails, none is written. All go into the current frame.
    private func decideAppends(_ appends: [EventLog.Append], in batch: inout Batch) -> Result<[Commit], StoreError> {
        let (runs, ids) = (batch.accepted.runs.count, batch.accepted.ids.count)
        let (firstPlan, firstSlot) = (batch.plans.count, batch.callStreams.count)
        switch checkAppends(appends, in: &batch) {
        case .success:
            return .success(packAppends(appends, plansFrom: firstPlan, slotsFrom: firstSlot, in: &batch))
        case .failure(let error):
            batch.accepted.roll(backTo: runs, ids: ids)
            batch.plans.removeSubrange(firstPlan...)
            batch.callStreams.removeSubrange(firstSlot...)
            batch.callViews.removeSubrange(firstSlot...)
            return .failure(error)
        }
    }

    /// The first half of ``decideAppends(_:in:)``: checks each append and plans it (appended to
    /// `batch.plans`, its streams' trial views to `batch.callViews`), adding its events to
    /// `batch.accepted` (which the caller rolls back on a failure).
    private func checkAppends(_ appends: [EventLog.Append], in batch: inout Batch) -> Result<Void, StoreError> {
        // The streams this call touches, each hashed once: `slots` maps a stream to its trial
        // view (an import sends a thousand appends to a thousand streams at a time); a call of
        // a few appends (most: one) finds its streams by comparing, with no table.
        let hashed = appends.count > 8
        var slots: [HashedStreamKey: Int] = [:]
        if hashed { slots.reserveCapacity(appends.count) }
        let firstSlot = batch.callStreams.count
        // The positions the accepted events get: in order, after the batch's (duplicates get none).
        var nextPosition = batch.nextPosition
        for index in appends.indices {
            let append = appends[index]
            let key = HashedStreamKey(append.stream)
            let slot: Int
            if let known = hashed ? slots[key] : batch.callStreams[firstSlot...].firstIndex(of: key) {
                slot = known
            } else {
                slot = batch.callViews.count
                if hashed { slots[key] = slot }
                let view = view(of: key, in: &batch)
                batch.callStreams.append(key)
                batch.callViews.append(view)
            }
            let view = batch.callViews[slot]
            if view.isTombstoned { return .failure(.streamTombstoned(stream: append.stream)) }
            do {
                // Also events an earlier append of this call accepted (the same aggregate staged
                // twice in a unit of work, or a retried unit that appends to one stream twice):
                // they are stored once the call commits, so this one is a retry, as the ports
                // have it. (It was refused, with an error no port has.)
                if let duplicate = try duplicateCommit(stream: key, events: append.events, expected: append.expected, view: view, in: batch) {
                    batch.plans.append(Plan(append: index, slot: slot, firstVersion: duplicate.firstVersion, duplicate: duplicate))
                    continue
                }
            } catch let error as StoreError {
                return .failure(error)
            } catch {
                return .failure(.failed(reason: "\(error)"))
            }
            guard append.expected.isSatisfied(byVersion: view.version) else {
                return .failure(.wrongExpectedVersion(stream: append.stream, expected: append.expected, actual: view.version))
            }
            guard append.events.count <= Layout.maximumVersion - view.version else {
                return .failure(.invalidArgument(
                    "'\(append.stream)' is at version \(view.version): \(append.events.count) more would pass the largest version, \(Layout.maximumVersion) (2^62 - 1)"))
            }
            batch.plans.append(Plan(append: index, slot: slot, firstVersion: view.version + 1, duplicate: nil))
            batch.accepted.append(append.events, to: key, firstVersion: view.version + 1, firstPosition: nextPosition)
            nextPosition += UInt64(append.events.count)
            // (By index: `last?.id` copied the whole event.)
            batch.callViews[slot].lastEventID = append.events[append.events.count - 1].id
            batch.callViews[slot].version += append.events.count
        }
        return .success(())
    }

    /// The second half of ``decideAppends(_:in:)``: encodes the planned appends into the frame
    /// and keeps the trial views.
    private func packAppends(_ appends: [EventLog.Append], plansFrom firstPlan: Int, slotsFrom firstSlot: Int, in batch: inout Batch) -> [Commit] {
        var commits: [Commit] = []
        commits.reserveCapacity(batch.plans.count - firstPlan)
        for plan in batch.plans[firstPlan...] {
            if let duplicate = plan.duplicate {
                commits.append(duplicate)
                continue
            }
            let stream = appends[plan.append].stream
            let count = appends[plan.append].events.count
            let firstPosition = batch.nextPosition
            assert(batch.pendingEvent(plan.firstVersion, of: batch.callStreams[plan.slot])?.position == firstPosition)
            batch.builder.append(appends[plan.append].events, stream: stream, firstVersion: plan.firstVersion)
            batch.nextPosition += UInt64(count)
            commits.append(Commit(
                stream: stream, firstVersion: plan.firstVersion, lastVersion: plan.firstVersion + count - 1,
                firstPosition: firstPosition, lastPosition: batch.nextPosition - 1, wasDuplicate: false,
                streamVersion: plan.firstVersion + count - 1))
        }
        // Grown geometrically: reserving exactly one more per call rehashed the whole table at
        // every append of a group commit.
        let needed = batch.views.count + batch.callStreams.count - firstSlot
        if needed > batch.views.capacity { batch.views.reserveCapacity(max(needed, batch.views.capacity * 2)) }
        for slot in firstSlot..<batch.callStreams.count { batch.views[batch.callStreams[slot]] = batch.callViews[slot] }
        closeFrameIfFull(&batch)
        return commits
    }

    /// The commit these events already are, if they are stored at the versions the expectation
    /// implies; throws a partial duplicate when only a prefix is stored.
    private func duplicateCommit(
        stream: HashedStreamKey, events: [NewEvent], expected: ExpectedVersion, view: StreamView, in batch: Batch
    ) throws -> Commit? {
        let current = view.version
        let base: Int
        switch expected {
        case .exact(let version) where version < current: base = version
        case .noStream where current > 0: base = 0
        case .any, .streamExists:
            // A retry with no fixed version is recognized when it is the stream's last commit;
            // the last ids differ for every other append, so the log is read only for retries.
            guard current >= events.count, view.lastEventID == events[events.count - 1].id else { return nil }
            base = current - events.count
        default: return nil
        }
        var matched = 0
        for (offset, event) in events.enumerated() where base + 1 + offset <= current {
            guard try storedID(stream, version: base + 1 + offset, view: view, in: batch) == event.id else { break }
            matched += 1
        }
        if matched == events.count {
            let positions = try (base + 1...base + events.count).map { try position(of: stream, version: $0, view: view, in: batch) }
            return Commit(
                stream: stream.name, firstVersion: base + 1, lastVersion: base + events.count,
                firstPosition: positions.first!, lastPosition: positions.last!, wasDuplicate: true, streamVersion: current)
        }
        if matched > 0, expected != .any, expected != .streamExists {
            throw StoreError.partialDuplicate(stream: stream.name, storedCount: matched, appendedCount: events.count)
        }
        return nil
    }

    private func position(of stream: HashedStreamKey, version: Int, view: StreamView, in batch: Batch) throws -> UInt64 {
        if version >= view.pendingFrom {
            guard let pending = batch.pendingEvent(version, of: stream) else {
                throw StoreError.failed(reason: "version \(version) of '\(stream.name)' is neither in the index nor in the batches being written")
            }
            return pending.position
        }
        return try core.shared.withLock { shared in
            guard let position = shared.index.position(of: version, in: stream.name) else {
                throw StoreError.failed(reason: "version \(version) of '\(stream.name)' vanished from the index")
            }
            return position
        }
    }

    private func changeStream(_ stream: String, _ change: StreamChange, in batch: inout Batch) -> Result<Void, StoreError> {
        let key = HashedStreamKey(stream)
        var view = view(of: key, in: &batch)
        if view.isTombstoned {
            if case .tombstone = change { return .success(()) }
            return .failure(.streamTombstoned(stream: stream))
        }
        switch change {
        case .delete:
            if view.version == 0 { return .success(()) }  // nothing to hide: nothing written
            batch.builder.appendStreamMetadata(stream: stream, operation: .delete, version: view.version + 1)
        case .truncateBefore(let version):
            // No version is below 1: nothing to hide, nothing written (a record would make a
            // stream of a name never used, which a compaction then dropped again).
            if version <= 1 { return .success(()) }
            // Hiding versions the stream does not have yet would hide its next appends.
            guard version <= view.version + 1 else {
                return .failure(.invalidArgument(
                    "truncate '\(stream)' before version \(version): the stream is at version \(view.version), so at most \(view.version + 1) (which hides every version it has)"))
            }
            batch.builder.appendStreamMetadata(stream: stream, operation: .truncateBefore, version: version)
        case .beginAt(let version):
            if view.version == version - 1 { return .success(()) }  // already so: nothing to write
            guard view.version == 0 else {
                return .failure(.invalidArgument(
                    "stream '\(stream)' cannot begin at version \(version): it is at version \(view.version) already"))
            }
            batch.builder.appendStreamMetadata(stream: stream, operation: .versionsStartAt, version: version)
            view.version = version - 1
            view.pendingFrom = version
            view.batchFrom = version
        case .tombstone:
            batch.builder.appendStreamMetadata(stream: stream, operation: .tombstone, version: 0)
            view.isTombstoned = true
        }
        batch.views[key] = view
        closeFrameIfFull(&batch)
        return .success(())
    }

    private func closeFrameIfFull(_ batch: inout Batch) {
        guard batch.builder.payloadSize >= core.options.targetFrameSize else { return }
        finishFrame(&batch)
        batch.builder = newFrame(at: batch.nextPosition)
    }

    private func finishFrame(_ batch: inout Batch) {
        lastPayloadSize.store(batch.builder.payloadSize, ordering: .relaxed)
        batch.frames.append(batch.builder)
    }

    /// A frame builder with room for a frame like the last one (within 4 KiB ... twice the
    /// target frame size; the buffer still grows for a larger one).
    private func newFrame(at position: UInt64) -> FrameBuilder {
        let last = lastPayloadSize.load(ordering: .relaxed)
        let capacity = min(max(4096, last + last / 8), 2 * core.options.targetFrameSize)
        return FrameBuilder(nextPosition: position, capacity: capacity)
    }

    // MARK: Writing

    /// Applies frames that are durable to the index: from now on readers see them.
    private func publish(_ written: [WrittenFrame]) {
        core.shared.withLock { shared in
            for frame in written {
                shared.index.apply(
                    frame.records, in: frame.location, length: frame.length, rawLength: frame.rawLength, batch: frame.batch,
                    checksum: frame.checksum)
            }
        }
    }

    /// A frame as written, for the index.
    struct WrittenFrame: Sendable {
        var records: [IndexRecord]
        var location: FrameLocation
        var length: Int
        var rawLength: Int
        var batch: UInt64
        var checksum: UInt32
    }

    /// Frames planned for the active segment, written together as one batch.
    private struct Group {
        var frames: [SealedFrame] = []
        var bytes = 0
    }

    /// Writes the frames in order as batches (one per segment they land in), each with one
    /// `pwrite` and one sync, rolling segments as needed.
    ///
    /// Frames go only into segments of the current format version: the first frame written to
    /// a store whose active segment is older (a store of version 2 or 3) starts a segment of the
    /// current version, whose codec it is compressed with (FORMAT.md §8, §11).
    ///
    /// A segment gets a dictionary frame (the last 4 KiB of payload written before it) before
    /// its first other frame, or, in the first segment, as soon as 4 KiB of payload exist; the
    /// frames after it are compressed with it.
    private func write(_ frames: [FrameBuilder], forceSync: Bool = false) throws -> (frames: [WrittenFrame], pending: PendingSync?) {
        try state.withLock { state in
            var written: [WrittenFrame] = []
            var group = Group()
            for frame in frames {
                var segment = core.shared.withLock { $0.segments[state.activeSegment] }
                let olderFormat = segment.header.formatVersion < Layout.formatVersion
                var dictionary = olderFormat ? nil : dictionaryFrame(for: segment, before: frame, state)
                let version = segment.header.formatVersion
                var sealed = frame.sealed(
                    dictionary: state.preset(dictionary?.bytes ?? segment.dictionary(before: state.writeOffset + group.bytes), Codec(formatVersion: version)),
                    formatVersion: version)
                let dictionaryLength = dictionary?.frame.totalLength ?? 0
                // A frame never ends exactly at the capacity: a segment whose frames do is a
                // compaction's sealed one to a later open, which then does not learn the store's
                // segment size from it (``EventLog/Options/adoptingSegmentSize(of:)``).
                if olderFormat || state.writeOffset + group.bytes + dictionaryLength + sealed.totalLength >= segment.capacity {
                    written += try flush(&group, &state, forceSync: forceSync, deferringSync: false).frames
                    // A new segment large enough for a dictionary frame and this frame stored as is.
                    let dictionaryRoom = Layout.frameHeaderSize + 4 + dictionarySize
                    let needed = Layout.segmentHeaderSize + dictionaryRoom + Layout.frameHeaderSize + frame.payloadSize
                    segment = try roll(&state, firstPosition: frame.firstPosition, capacity: max(core.options.segmentSize, needed))
                    dictionary = dictionaryFrame(for: segment, before: frame, state)
                    sealed = frame.sealed(dictionary: dictionary == nil ? nil : state.preset(dictionary!.bytes, .current), formatVersion: Layout.formatVersion)
                }
                assert(segment.header.formatVersion == Layout.formatVersion, "frames go only into segments of the current version")
                if let dictionary {
                    segment.register(dictionary: dictionary.bytes, at: state.writeOffset + group.bytes)
                    group.frames.append(dictionary.frame)
                    group.bytes += dictionary.frame.totalLength
                }
                group.frames.append(sealed)
                group.bytes += sealed.totalLength
                frame.payload.withUnsafeBytes { state.remember($0, keeping: dictionarySize) }
            }
            let last = try flush(&group, &state, forceSync: forceSync, deferringSync: !forceSync)
            return (written + last.frames, last.pending)
        }
    }

    /// A batch written and not yet synced: the sync, then the head record that says so.
    struct PendingSync: Sendable {
        var segment: Segment
        var head: HeadRecord
    }

    /// Syncs a written batch and records its durable end in the head file (not synced: it
    /// trails the data).
    private func makeDurable(_ pending: PendingSync) throws {
        try core.options.faults?(.sync)
        try pending.segment.file.synchronizeData()
        try pending.segment.checkStillWritable()
        try head.write(pending.head, durably: false)
    }

    /// Waits until the syncer is done with the batch before (a batch is written only after the
    /// one before it is durable); throws when that failed.
    private func waitForSyncer() throws {
        syncer.sync {}
        if let failure = core.shared.withLock({ $0.failure }) { throw StoreError.failed(reason: failure) }
    }

    /// Fills `state`'s recent payload (the next dictionary's source) from the last event frames
    /// of the active segment, when it has no dictionary yet: a process that opens the store for
    /// a few small commits (the tool's `append`, a short job) otherwise never wrote enough
    /// since its open to make one, and the segment's frames stayed uncompressed however many
    /// such processes wrote. Best effort: a frame that does not verify ends the recall.
    private static func recallRecentPayload(into state: inout WriterState, from core: LogCore, keeping size: Int) {
        let (segment, frames) = core.shared.withLock { shared -> (Segment, [EventFrame]) in
            let number = state.activeSegment
            var frames: [EventFrame] = []
            for frame in shared.index.eventFrames.reversed() {
                guard frame.location.segment == number, frames.count < 2 * size / Layout.frameHeaderSize else { break }
                frames.append(frame)
            }
            return (shared.segments[number], frames)
        }
        guard segment.header.formatVersion == Layout.formatVersion, !segment.hasDictionary, !frames.isEmpty else { return }
        var payloads: [[UInt8]] = []
        var total = 0
        segment.withBytes { bytes in
            for frame in frames where total < 2 * size {
                let offset = frame.location.offset
                guard offset + Layout.frameHeaderSize <= bytes.count, case .frame(let header) = FrameReader.probe(bytes, at: offset, salt: segment.salt),
                    header.checksum == frame.checksum, !header.usesDictionary,
                    let payload = try? FrameReader.payload(of: header, in: bytes, at: offset, dictionary: [], formatVersion: Layout.formatVersion, { Array($0) })
                else { break }
                payloads.append(payload)
                total += payload.count
            }
        }
        guard (try? segment.checkReadable()) != nil else { return }
        for payload in payloads.reversed() { payload.withUnsafeBytes { state.remember($0, keeping: size) } }
    }

    /// The dictionary frame to write before `frame`, and its dictionary, when `segment` has no
    /// dictionary yet and enough payload has been written to make one.
    private func dictionaryFrame(for segment: Segment, before frame: FrameBuilder, _ state: WriterState) -> (frame: SealedFrame, bytes: [UInt8])? {
        guard !segment.hasDictionary, let bytes = state.recentBytes(dictionarySize) else { return nil }
        var dictionary = FrameBuilder(nextPosition: frame.firstPosition)
        dictionary.appendDictionary(bytes)
        return (dictionary.sealed(formatVersion: segment.header.formatVersion), bytes)
    }

    /// Writes a group's frames at the end of the active segment as one batch, syncs, and records
    /// the new durable end in the head file (not synced: it trails the data); `deferringSync`,
    /// leaves the sync and the record to the syncer (returned as pending).
    private func flush(
        _ group: inout Group, _ state: inout WriterState, forceSync: Bool, deferringSync: Bool
    ) throws -> (frames: [WrittenFrame], pending: PendingSync?) {
        guard !group.frames.isEmpty else { return ([], nil) }
        defer { group = Group() }
        try waitForSyncer()
        let segment = core.shared.withLock { $0.segments[state.activeSegment] }
        let start = state.writeOffset
        precondition(start + group.bytes <= segment.capacity, "a batch must fit its segment")
        let batch = state.nextBatch
        var bytes: [UInt8] = []
        bytes.reserveCapacity(group.bytes)
        var written: [WrittenFrame] = []
        for (number, frame) in group.frames.enumerated() {
            let offset = start + bytes.count
            let checksum = frame.write(
                into: &bytes, base: start, salt: segment.salt, batch: batch, endsBatch: number == group.frames.count - 1,
                unsynced: core.options.durability != .synchronous && !forceSync)
            written.append(WrittenFrame(
                records: frame.records, location: FrameLocation(segment: state.activeSegment, offset: offset),
                length: frame.totalLength, rawLength: frame.rawLength, batch: batch, checksum: checksum))
        }
        assert(bytes.count == group.bytes)
        try core.options.faults?(.write)
        try bytes.withUnsafeBytes { try segment.file.write($0, at: start) }
        if core.options.durability != .synchronous, !forceSync { try segment.checkStillWritable() }  // (else after the sync)
        state.writeOffset += bytes.count
        state.nextBatch += 1
        state.needsCloseMarker = group.frames.last?.records != [.record(.close, index: 0)]
        let nextPosition = group.frames.map { $0.firstPosition + UInt64($0.eventCount) }.max()!
        if core.options.durability == .synchronous || forceSync {
            let pending = PendingSync(segment: segment, head: headRecord(&state, segment: segment, nextPosition: nextPosition, cleanClose: false))
            if deferringSync { return (written, pending) }
            try makeDurable(pending)
        }
        return (written, nil)
    }

    /// Seals the active segment (syncing it, whatever the durability) and makes a new one
    /// starting at `firstPosition`, chained to it; the manifest lists it before any frame goes in.
    private func roll(_ state: inout WriterState, firstPosition: UInt64, capacity: Int) throws -> Segment {
        try waitForSyncer()
        let previous = core.shared.withLock { $0.segments[state.activeSegment] }
        try core.options.faults?(.sync)
        try previous.file.synchronizeData()
        let previousName = Layout.SegmentName(fileName: previous.name)
        var generation = previousName?.firstPosition == firstPosition ? (previousName?.generation ?? 0) + 1 : 0
        // A file the manifest does not list may hold the name: one the open left alone because
        // it could not read its header (an interrupted compaction's output, or damage that may
        // hold events). It stays as it is; the new segment takes the next free generation.
        while Directory.fileExists(core.directory + "/" + Layout.SegmentName(firstPosition: firstPosition, generation: generation).fileName),
            generation <= Layout.SegmentName.maximumGeneration
        {
            generation += 1
        }
        guard generation <= Layout.SegmentName.maximumGeneration else {
            throw StoreError.corruption(
                segment: previous.name, offset: 0,
                reason: "a segment after it would need generation \(generation), beyond \(Layout.SegmentName.maximumGeneration) (the file name was not written by this engine)")
        }
        let name = Layout.SegmentName(firstPosition: firstPosition, generation: generation)
        let header = SegmentHeader(
            firstPosition: firstPosition, capacity: UInt64(capacity),
            createdMilliseconds: Date.currentMillisecond.millisecondsSince1970, salt: SegmentHeader.newSalt(),
            sequence: previous.header.sequence + 1, previousSalt: previous.salt, previousEnd: UInt64(state.writeOffset))
        try core.checkDirectoryIsInPlace()
        let segment = try Segment.create(directory: core.directory, header: header, name: name.fileName)
        var manifest = state.manifest
        manifest.generation += 1
        manifest.segments.append(Manifest.Entry(name: name.fileName, salt: header.salt))
        try StoreFiles.writeManifest(manifest, in: core.directory)
        state.manifest = manifest
        core.shared.withLock { $0.segments.append(segment) }
        state.activeSegment += 1
        state.writeOffset = Layout.segmentHeaderSize
        try writeHead(&state, segment: segment, nextPosition: firstPosition, cleanClose: false)
        return segment
    }
}
