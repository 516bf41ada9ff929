import Dugong
import Foundation
import Synchronization

/// The single writer: a dedicated thread that takes every queued operation, decides each one
/// against the index, packs the accepted ones into frames (group commit), writes them, syncs
/// once, publishes them to the index and only then completes the operations.
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
        case delete, truncateBefore(Int), tombstone
    }

    private struct Queue {
        var operations: [Operation] = []
        var isStopping = false
    }

    private let core: LogCore
    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    /// The writer thread's own state; touched by that thread only.
    private let state: Mutex<WriterState>

    struct WriterState {
        var activeSegment: Int
        var writeOffset: Int
        var isDirty = false
        /// The last ``Layout/dictionarySize`` bytes of raw payload written: the next segment's
        /// dictionary.
        var recentPayload: [UInt8] = []
    }

    /// How much recent payload a segment's dictionary holds: 4 KiB, less for tiny segments.
    private let dictionarySize: Int

    init(core: LogCore, activeSegment: Int, writeOffset: Int) {
        self.core = core
        dictionarySize = min(Layout.dictionarySize, core.options.segmentSize / 8)
        state = Mutex(WriterState(activeSegment: activeSegment, writeOffset: writeOffset))
        let thread = Thread { [self] in run() }
        thread.name = "dugong-writer"
        thread.start()
    }

    /// Queues an operation; it completes on the writer thread.
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
        while true {
            wakeUp.wait()
            let (batch, stopping) = queue.withLock { queue in
                defer { queue.operations.removeAll(keepingCapacity: true) }
                return (queue.operations, queue.isStopping)
            }
            if !batch.isEmpty { process(batch) }
            if stopping {
                // Anything queued after the last drain is refused by submit; drain once more.
                let rest = queue.withLock { queue in
                    defer { queue.operations.removeAll() }
                    return queue.operations
                }
                if !rest.isEmpty { process(rest) }
                trimActiveSegment()
                stopped.signal()
                return
            }
        }
    }

    /// At a clean close, gives the unused preallocated tail of the active segment back to the
    /// file system (it is preallocated again at the next open). Best effort: a failure leaves
    /// zeros, which read the same.
    private func trimActiveSegment() {
        guard core.shared.withLock({ $0.failure == nil }) else { return }
        state.withLock { state in
            let segment = core.shared.withLock { $0.segments[state.activeSegment] }
            do {
                try segment.file.truncate(to: state.writeOffset)
                try segment.file.synchronize()
            } catch {
                // The zeros stay; nothing is lost.
            }
        }
    }

    // MARK: Deciding and packing

    /// A stream's state as the batch sees it: the index plus what the batch already accepted.
    private struct StreamView {
        var version: Int
        var isTombstoned: Bool
        var lastEventID: UUID?
        /// Ids and positions of the versions the batch accepted, from `pendingFrom`.
        var pendingIDs: [UUID] = []
        var pendingPositions: [UInt64] = []
        var pendingFrom: Int
    }

    private struct Batch {
        var frames: [FrameBuilder] = []
        var builder: FrameBuilder
        var views: [String: StreamView] = [:]
        var completions: [@Sendable () -> Void] = []
        var nextPosition: UInt64
    }

    private func process(_ operations: [Operation]) {
        if let failure = core.shared.withLock({ $0.failure }) {
            for operation in operations { operation.fail(.failed(reason: failure)) }
            return
        }
        let start = core.shared.withLock { $0.index.nextPosition }
        var batch = Batch(builder: FrameBuilder(nextPosition: start), nextPosition: start)
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
        if !batch.builder.isEmpty { batch.frames.append(batch.builder) }
        do {
            let written = try write(batch.frames)
            core.shared.withLock { shared in
                for (records, location, length, rawLength) in written {
                    shared.index.apply(records, in: location, length: length, rawLength: rawLength)
                }
                assert(shared.index.nextPosition == batch.nextPosition)
            }
        } catch {
            let reason = "\(error)"
            core.shared.withLock { $0.failure = reason }
            for operation in operations { operation.fail(.failed(reason: reason)) }
            return
        }
        for completion in batch.completions { completion() }
        if batch.nextPosition > start { core.wakeWaiters() }
    }

    private func view(of stream: String, in batch: inout Batch) -> StreamView {
        if let view = batch.views[stream] { return view }
        let indexed = core.shared.withLock { $0.index.stream(stream) }
        let version = indexed?.version ?? 0
        return StreamView(
            version: version, isTombstoned: indexed?.isTombstoned ?? false, lastEventID: indexed?.lastEventID,
            pendingFrom: version + 1)
    }

    /// The id of the event at `version` of `stream`, stored or accepted earlier in the batch.
    private func storedID(_ stream: String, version: Int, view: StreamView) throws -> UUID? {
        if version >= view.pendingFrom {
            let offset = version - view.pendingFrom
            return offset < view.pendingIDs.count ? view.pendingIDs[offset] : nil
        }
        let position = core.shared.withLock { shared -> UInt64? in
            guard let positions = shared.index.stream(stream)?.positions, version >= 1, version <= positions.count else { return nil }
            return positions[version - 1]
        }
        guard let position else { return nil }
        return try core.events(at: [position]).first?.id
    }

    /// Decides appends that commit together: each is checked against the streams as the ones
    /// before it leave them; if any fails, none is written. All go into the current frame.
    private func decideAppends(_ appends: [EventLog.Append], in batch: inout Batch) -> Result<[Commit], StoreError> {
        var views: [String: StreamView] = [:]
        var plans: [(append: EventLog.Append, firstVersion: Int, duplicate: Commit?)] = []
        for append in appends {
            var view = views[append.stream] ?? view(of: append.stream, in: &batch)
            if view.isTombstoned { return .failure(.streamTombstoned(stream: append.stream)) }
            do {
                if let duplicate = try duplicateCommit(stream: append.stream, events: append.events, expected: append.expected, view: view) {
                    guard views[append.stream] == nil else {
                        return .failure(.invalidArgument("the same events appear twice in one atomic append to '\(append.stream)'"))
                    }
                    plans.append((append, duplicate.firstVersion, duplicate))
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
            plans.append((append, view.version + 1, nil))
            // Positions are assigned below; the trial view needs ids and a count here.
            view.pendingIDs += append.events.map(\.id)
            view.pendingPositions += Array(repeating: 0, count: append.events.count)
            view.lastEventID = append.events.last?.id
            view.version += append.events.count
            views[append.stream] = view
        }
        var commits: [Commit] = []
        for plan in plans {
            if let duplicate = plan.duplicate {
                commits.append(duplicate)
                continue
            }
            let stream = plan.append.stream
            let firstPosition = batch.nextPosition
            var view = views[stream]!
            for (offset, event) in plan.append.events.enumerated() {
                let version = plan.firstVersion + offset
                let stored = StoredEvent(
                    stream: stream, version: version, position: batch.nextPosition, id: event.id,
                    type: event.type, timestampMilliseconds: event.timestamp.millisecondsSince1970,
                    data: event.data, metadata: event.metadata, endsCommit: offset == plan.append.events.count - 1)
                batch.builder.append(stored)
                view.pendingPositions[version - view.pendingFrom] = batch.nextPosition
                batch.nextPosition += 1
            }
            views[stream] = view
            commits.append(Commit(
                stream: stream, firstVersion: plan.firstVersion, lastVersion: plan.firstVersion + plan.append.events.count - 1,
                firstPosition: firstPosition, lastPosition: batch.nextPosition - 1, wasDuplicate: false))
        }
        batch.views.merge(views) { _, new in new }
        closeFrameIfFull(&batch)
        return .success(commits)
    }

    /// The commit these events already are, if they are stored at the versions the expectation
    /// implies; throws a partial duplicate when only a prefix is stored.
    private func duplicateCommit(
        stream: String, events: [NewEvent], expected: ExpectedVersion, view: StreamView
    ) throws -> Commit? {
        let current = view.version
        let base: Int
        switch expected {
        case .exact(let version) where version < current: base = version
        case .noStream where current > 0: base = 0
        case .any, .streamExists:
            // A retry with no fixed version is recognized when it is the stream's last commit;
            // the last ids differ for every other append, so the log is read only for retries.
            guard current >= events.count, view.lastEventID == events.last?.id else { return nil }
            base = current - events.count
        default: return nil
        }
        var matched = 0
        for (offset, event) in events.enumerated() where base + 1 + offset <= current {
            guard try storedID(stream, version: base + 1 + offset, view: view) == event.id else { break }
            matched += 1
        }
        if matched == events.count {
            let positions = try (base + 1...base + events.count).map { try position(of: stream, version: $0, view: view) }
            return Commit(
                stream: stream, firstVersion: base + 1, lastVersion: base + events.count,
                firstPosition: positions.first!, lastPosition: positions.last!, wasDuplicate: true)
        }
        if matched > 0, expected != .any, expected != .streamExists {
            throw StoreError.partialDuplicate(stream: stream, storedCount: matched, appendedCount: events.count)
        }
        return nil
    }

    private func position(of stream: String, version: Int, view: StreamView) throws -> UInt64 {
        if version >= view.pendingFrom { return view.pendingPositions[version - view.pendingFrom] }
        return core.shared.withLock { $0.index.stream(stream)!.positions[version - 1] }
    }

    private func changeStream(_ stream: String, _ change: StreamChange, in batch: inout Batch) -> Result<Void, StoreError> {
        var view = view(of: stream, in: &batch)
        if view.isTombstoned {
            if case .tombstone = change { return .success(()) }
            return .failure(.streamTombstoned(stream: stream))
        }
        switch change {
        case .delete:
            batch.builder.appendStreamMetadata(stream: stream, operation: .delete, version: view.version + 1)
        case .truncateBefore(let version):
            batch.builder.appendStreamMetadata(stream: stream, operation: .truncateBefore, version: version)
        case .tombstone:
            batch.builder.appendStreamMetadata(stream: stream, operation: .tombstone, version: 0)
            view.isTombstoned = true
        }
        batch.views[stream] = view
        closeFrameIfFull(&batch)
        return .success(())
    }

    private func closeFrameIfFull(_ batch: inout Batch) {
        guard batch.builder.payloadSize >= core.options.targetFrameSize else { return }
        batch.frames.append(batch.builder)
        batch.builder = FrameBuilder(nextPosition: batch.nextPosition)
    }

    // MARK: Writing

    /// Writes the frames in order, rolling segments as needed, and syncs once.
    ///
    /// A segment gets a dictionary frame (the last 4 KiB of payload written before it) before
    /// its first other frame, or, in the first segment, as soon as 4 KiB of payload exist; the
    /// frames after it are compressed with it.
    /// - Returns: each frame written (dictionary frames included) with its records, location,
    ///   length and raw payload length.
    private func write(_ frames: [FrameBuilder]) throws -> [([Record], FrameLocation, Int, Int)] {
        try state.withLock { state in
            var written: [([Record], FrameLocation, Int, Int)] = []
            for frame in frames {
                var segment = core.shared.withLock { $0.segments[state.activeSegment] }
                var dictionary = dictionaryFrame(for: segment, before: frame, state)
                var dictionaryBytes = dictionary?.encoded() ?? []
                var bytes = frame.encoded(
                    dictionary: dictionary == nil ? segment.dictionary(before: state.writeOffset) : state.recentPayload)
                if state.writeOffset + dictionaryBytes.count + bytes.count > segment.capacity {
                    // A new segment large enough for a dictionary frame and this frame stored as is.
                    let dictionaryRoom = Layout.frameHeaderSize + 4 + dictionarySize
                    let needed = Layout.segmentHeaderSize + dictionaryRoom + Layout.frameHeaderSize + frame.payloadSize
                    segment = try roll(&state, firstPosition: frame.firstPosition, capacity: max(core.options.segmentSize, needed))
                    dictionary = dictionaryFrame(for: segment, before: frame, state)
                    dictionaryBytes = dictionary?.encoded() ?? []
                    bytes = frame.encoded(dictionary: dictionary == nil ? [] : state.recentPayload)
                }
                if let dictionary {
                    let offset = try append(dictionaryBytes, to: segment, &state)
                    segment.register(dictionary: state.recentPayload, at: offset)
                    written.append((
                        dictionary.records, FrameLocation(segment: state.activeSegment, offset: offset),
                        dictionaryBytes.count, dictionary.payloadSize))
                }
                let offset = try append(bytes, to: segment, &state)
                written.append((
                    frame.records, FrameLocation(segment: state.activeSegment, offset: offset), bytes.count, frame.payloadSize))
                let payload = frame.payload.bytes
                if payload.count >= dictionarySize {
                    state.recentPayload = Array(payload.suffix(dictionarySize))
                } else {
                    state.recentPayload = Array((state.recentPayload + payload).suffix(dictionarySize))
                }
            }
            try synchronize(&state)
            return written
        }
    }

    /// The dictionary frame to write before `frame` when `segment` has no dictionary yet and
    /// enough payload has been written to make one.
    private func dictionaryFrame(for segment: Segment, before frame: FrameBuilder, _ state: WriterState) -> FrameBuilder? {
        guard !segment.hasDictionary, state.recentPayload.count == dictionarySize else { return nil }
        var dictionary = FrameBuilder(nextPosition: frame.firstPosition)
        dictionary.appendDictionary(state.recentPayload)
        return dictionary
    }

    /// Writes one encoded frame at the end of the active segment.
    /// - Returns: its offset.
    private func append(_ bytes: [UInt8], to segment: Segment, _ state: inout WriterState) throws -> Int {
        precondition(state.writeOffset + bytes.count <= segment.capacity, "frame must fit its segment")
        try core.options.faults?(.write)
        try bytes.withUnsafeBytes { try segment.file.write($0, at: state.writeOffset) }
        let offset = state.writeOffset
        state.writeOffset += bytes.count
        state.isDirty = true
        return offset
    }

    private func synchronize(_ state: inout WriterState) throws {
        guard state.isDirty else { return }
        if core.options.durability == .synchronous {
            let segment = core.shared.withLock { $0.segments[state.activeSegment] }
            try core.options.faults?(.sync)
            try segment.file.synchronizeData()
        }
        state.isDirty = false
    }

    /// Seals the active segment (syncing it) and makes a new one starting at `firstPosition`.
    private func roll(_ state: inout WriterState, firstPosition: UInt64, capacity: Int) throws -> Segment {
        try synchronize(&state)
        let previous = core.shared.withLock { $0.segments[state.activeSegment] }
        let previousName = Layout.SegmentName(fileName: previous.name)
        let generation = previousName?.firstPosition == firstPosition ? (previousName?.generation ?? 0) + 1 : 0
        let name = Layout.SegmentName(firstPosition: firstPosition, generation: generation)
        let segment = try Segment.create(
            directory: core.directory, firstPosition: firstPosition, capacity: capacity, name: name.fileName)
        core.shared.withLock { $0.segments.append(segment) }
        state.activeSegment += 1
        state.writeOffset = Layout.segmentHeaderSize
        return segment
    }
}
