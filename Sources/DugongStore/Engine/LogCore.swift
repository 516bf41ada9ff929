import Dugong
import Foundation
import Synchronization

/// The state readers and the writer share: segments, the index, failure and waiters for new
/// events. Everything mutable sits behind one mutex; decoding happens outside it.
final class LogCore: Sendable {
    struct Shared {
        var index: StreamIndex
        var segments: [Segment]
        var failure: String?
        var isClosed = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID = 0
        /// Where the scan of the newest segment ended (a read-only refresh continues there).
        var scannedEnd = Layout.segmentHeaderSize
        /// What a read-only store last saw of the writer's files.
        var followed = Followed(manifest: Manifest(generation: 0, segments: []), headSequence: nil)
        /// Set when a read-only store's refresh met a page the disk failed after it had
        /// updated the index in place (the index may hold damage that is only the zeros it
        /// read): reads throw its error until a refresh maps the files anew.
        var unreadable: Unreadable?

        /// Throws ``unreadable``'s error: called in the same lock as a read of the index.
        func checkReadable() throws(SystemError) {
            if let unreadable { throw unreadable.error }
        }

        /// The index's head position, event count and damage found, as they were before a
        /// refresh that met a failed page changed the index: what it added may rest on zeros.
        var headPosition: UInt64 { unreadable?.headPosition ?? index.nextPosition }
        var eventCount: Int { unreadable?.eventCount ?? index.eventCount }
        var damage: ArraySlice<Damage> { index.damage.prefix(unreadable?.damageCount ?? index.damage.count) }
    }

    /// The error of a refresh that met a page the disk failed, and the index's figures before it.
    struct Unreadable {
        var error: SystemError
        var headPosition: UInt64
        var eventCount: Int
        var damageCount: Int
    }

    /// The manifest the segments came from and the head record last read: a refresh with the
    /// same head and no new frame has nothing to do.
    struct Followed {
        var manifest: Manifest
        var headSequence: UInt64?
        /// The last scan found no writer (and served what lay past the head's durable end):
        /// until the head changes (a writer's open writes it) or the bytes at that scan's end
        /// (`markAtEnd`, ``Segment/frameMark(at:fileSize:)``) do, nothing after it is new.
        var servedWithoutWriter = false
        var markAtEnd: UInt64?
    }

    let directory: String
    let options: EventLog.Options
    let shared: Mutex<Shared>
    let cache: FrameCache
    /// The frames stream reads decoded last: reads of streams written together find them here.
    let lentFrames = LentFrameCache(capacity: 8)

    /// The directory a writer locked (nil for readers): it creates files by path, and checks
    /// that the path still leads there first (see ``checkDirectoryIsInPlace()``).
    let directoryIdentity: [UInt64]?

    init(directory: String, options: EventLog.Options, index: StreamIndex, segments: [Segment], directoryIdentity: [UInt64]? = nil) {
        self.directory = directory
        self.directoryIdentity = directoryIdentity
        self.options = options
        shared = Mutex(Shared(index: index, segments: segments))
        cache = FrameCache(capacity: options.frameCacheCapacity)
    }

    /// Throws when the store's directory was moved or replaced since the open: files created
    /// by path (a new segment, the manifest, the saved index) would land in another directory,
    /// perhaps another store, while the segments and head open here stay in the moved one.
    func checkDirectoryIsInPlace() throws(SystemError) {
        try Directory.checkStill(directory, is: directoryIdentity)
    }

    /// Segment `number`, to read from. A segment whose map had a page the disk failed, which
    /// shows zeros there for good (``MappedRegion/hadUnreadablePage``), is mapped anew first
    /// (the same file, the same length): the disk may give the page now, and if not, the new map
    /// is marked in its turn. The segment a writer writes too: it takes it from here for each
    /// batch, and writes through either to the same file; the two share their dictionaries
    /// (``Segment/mappedAnew()``). One load of a process-wide counter while no page ever failed.
    func segmentForReading(_ number: Int, in shared: inout Shared) -> Segment {
        guard let fresh = shared.segments[number].mappedAnewIfUnreadable() else { return shared.segments[number] }
        shared.segments[number] = fresh
        return fresh
    }

    /// Runs `body` on the shared state in its lock, once the mark of a refresh that met a page
    /// the disk failed (``Shared/unreadable``) is checked in that same lock: every read of the
    /// index goes through here (a refresh in another thread may set the mark at any time).
    func withReadableState<R>(_ body: (inout Shared) throws -> R) throws -> R {
        try shared.withLock { shared in
            try shared.checkReadable()
            return try body(&shared)
        }
    }

    /// Throws when the store is closed.
    func checkOpen() throws(StoreError) {
        if shared.withLock({ $0.isClosed }) { throw .closed }
    }

    // MARK: Reading events

    /// The events of `slice` (its positions ascending or descending), decoded from their frames,
    /// each checked to be the stream's version the index says.
    func events(_ slice: StreamSlice) throws -> [StoredEvent] {
        guard !slice.positions.isEmpty else { return [] }
        var result: [StoredEvent] = []
        result.reserveCapacity(slice.positions.count)
        let (runs, segments) = try locate(slice.positions)
        try withExtendedLifetime(segments) {
            for run in runs {
                let segment = run.segment.takeUnretainedValue()
                let events = try cache.events(of: run.frame, in: segment)
                for index in run.indices {
                    let event = try Self.event(at: slice.positions[index], in: events, segment: segment, frame: run.frame)
                    if let problem = slice.problem(stream: event.stream, version: event.version, at: index) {
                        throw StoreError.corruption(segment: segment.name, offset: run.frame.location.offset, reason: problem)
                    }
                    result.append(event)
                }
            }
        }
        return result
    }

    /// Lends the events of `slice` (its positions ascending or descending) to `body`, each frame
    /// decoded once per run of positions in it, into one scratch buffer (no copies, no cache),
    /// each checked to be the stream's version the index says.
    func lendEvents(_ slice: StreamSlice, _ body: (borrowing EventView) throws -> Void) throws {
        let positions = slice.positions
        guard !positions.isEmpty else { return }
        let reading = FrameLending(cache: lentFrames)
        let (located, segments) = try locate(positions)
        // Through a buffer: an element's fields read from it in place (each `runs[i].field` of the
        // array copied the whole run). The segments, held by `segments` for the read, are used
        // without a retain and release each per frame.
        try withExtendedLifetime(segments) {
            try located.withUnsafeBufferPointer { runs in
                try lend(runs, of: slice, reading, body)
            }
        }
    }

    /// ``lendEvents(_:_:)`` for the runs ``locate(_:)`` made, whose segments the caller holds.
    private func lend(
        _ runs: UnsafeBufferPointer<FrameRun>, of slice: StreamSlice, _ reading: FrameLending, _ body: (borrowing EventView) throws -> Void
    ) throws {
        let positions = slice.positions
        for number in runs.indices {
            let run = runs.baseAddress! + number
            let (frame, indices) = (run.pointee.frame, run.pointee.indices)
            // The next frame's first bytes on their way while this one is decoded: frames of a
            // stream written in small commits lie far apart, and each one's header was a miss
            // to memory (~17 % of such a read's time).
            if number + 1 < runs.count {
                let next = (run + 1).pointee.frame.location.offset
                (run + 1).pointee.segment._withUnsafeGuaranteedRef { $0.map.prefetch(next..<(next + Self.prefetchedFrameBytes)) }
            }
            // A frame mostly of other streams' events (a burst of commits written together) is
            // kept for the next reads, which likely want its other events; one this read mostly
            // wants (its stream's commit) is decoded into the read's scratch buffer.
            let share = UInt64(indices.count) * 4 <= frame.lastPosition - frame.firstPosition + 1
            _ = try run.pointee.segment._withUnsafeGuaranteedRef { segment in
                try reading.lend(frame, in: segment, keeping: share) { fields, names in
                    for number in indices {
                        let position = positions[number]
                        let guess = Int(position - frame.firstPosition)
                        let index = guess < fields.count && fields[guess].position == position
                            ? guess : fields.firstIndex { $0.position == position }
                        guard let index else {
                            throw StoreError.corruption(
                                segment: segment.name, offset: frame.location.offset, reason: "frame does not hold position \(position)")
                        }
                        let event = fields.baseAddress! + index
                        if let problem = slice.problem(stream: names[Int(event.pointee.streamName)], version: event.pointee.version, at: number) {
                            throw StoreError.corruption(segment: segment.name, offset: frame.location.offset, reason: problem)
                        }
                        try body(EventView(event, names: names))
                    }
                }
            }
        }
    }

    /// Bytes of a frame a stream read asks to have loaded before it reaches the frame: the
    /// header and, for a small commit, most of its payload.
    static let prefetchedFrameBytes = 256

    /// Positions `indices` of a read's list, all in `frame` of `segment`. The segment is not
    /// retained: ``locate(_:)`` returns the segments its runs name, which the read holds.
    private struct FrameRun {
        let segment: Unmanaged<Segment>
        let frame: EventFrame
        var indices: Range<Int>
    }

    /// The frames holding `positions`, in order, each with the run of positions it holds;
    /// resolved under the lock (decoding happens outside it). One entry per frame, not per
    /// position: a tuple per position (its segment retained, destroyed through the generic
    /// tuple witness) was ~100 instructions per event read.
    private func locate(_ positions: [UInt64]) throws -> (runs: [FrameRun], segments: [Segment]) {
        precondition(!positions.isEmpty)
        return try withReadableState { shared in
            let frames = shared.index.eventFrames
            var runs: [FrameRun] = []
            // The segments the runs name, each once (a read's frames mostly lie in one or two).
            var segments: [Segment] = []
            var segmentNumber = -1
            var current: Unmanaged<Segment>?
            // The current run's frame's positions (a stream's positions come in runs within a
            // frame, a commit: the frame found for one position is tried first for the next).
            var first: UInt64 = 1
            var last: UInt64 = 0
            var start = 0
            var found = -1  // the current run's frame's index
            for (number, position) in positions.enumerated() {
                if first <= position, position <= last { continue }
                if position >= StreamIndex.damagedMarker {
                    let which = Int(position - StreamIndex.damagedMarker)
                    let damage = shared.index.damage.indices.contains(which) ? shared.index.damage[which] : shared.index.damage.last
                    throw damage?.error ?? StoreError.corruption(segment: "?", offset: 0, reason: "event lost to damage")
                }
                // The search starts past the frame found last (up the log), or below it (down).
                let bounds = found < 0 ? 0..<frames.count : position > last ? (found + 1)..<frames.count : 0..<found
                let frameIndex = shared.index.frameIndex(atOrAfter: position, within: bounds)
                guard frameIndex < frames.count, frames[frameIndex].firstPosition <= position else {
                    throw StoreError.corruption(segment: "?", offset: 0, reason: "position \(position) is indexed but in no frame")
                }
                if !runs.isEmpty { runs[runs.count - 1].indices = start..<number }
                let frame = frames[frameIndex]
                if frame.location.segment != segmentNumber || current == nil {
                    segmentNumber = frame.location.segment
                    let segment = segmentForReading(segmentNumber, in: &shared)
                    if !segments.contains(where: { $0 === segment }) { segments.append(segment) }
                    current = Unmanaged.passUnretained(segment)  // held by `segments`
                }
                runs.append(FrameRun(segment: current!, frame: frame, indices: number..<(number + 1)))
                (first, last, start, found) = (frame.firstPosition, frame.lastPosition, number, frameIndex)
            }
            runs[runs.count - 1].indices = start..<positions.count
            return (runs, segments)
        }
    }

    private static func event(
        at position: UInt64, in events: [StoredEvent], segment: Segment, frame: EventFrame
    ) throws -> StoredEvent {
        let guess = Int(position - frame.firstPosition)
        if guess < events.count, events[guess].position == position { return events[guess] }
        var low = 0
        var high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].position < position { low = middle + 1 } else { high = middle }
        }
        guard low < events.count, events[low].position == position else {
            throw StoreError.corruption(
                segment: segment.name, offset: frame.location.offset, reason: "frame does not hold position \(position)")
        }
        return events[low]
    }

    /// Up to `maxCount` events from `position` on, in log order. Stops before damage if it has
    /// events to return, and throws the damage's error if the damage comes first.
    func eventsInLog(from position: UInt64, maxCount: Int) throws -> [StoredEvent] {
        var result: [StoredEvent] = []
        _ = try lendEventsInLog(from: position, maxCount: maxCount) { result.append($0.stored) }
        return result
    }

    /// Lends up to `maxCount` events from `position` on, in log order, to `body`. Stops before
    /// damage if it has lent events, and throws the damage's error if the damage comes first.
    /// - Returns: the position after the last event lent (`position` when none was).
    func lendEventsInLog(from position: UInt64, maxCount: Int, _ body: (borrowing EventView) throws -> Void) throws -> UInt64 {
        precondition(maxCount > 0)
        var lent = 0
        var next = position
        let reading = FrameLending()
        while lent < maxCount {
            let step: (Segment, EventFrame)? = try withReadableState { shared in
                let index = shared.index
                let frameIndex = index.frameIndex(atOrAfter: next)
                let gapEnd = frameIndex < index.eventFrames.count ? index.eventFrames[frameIndex].firstPosition : index.nextPosition
                // Damage between here and the next frame stops the read (``Damage/stopsARead(from:before:)``).
                if let damage = index.damage.first(where: { $0.stopsARead(from: next, before: gapEnd) }) {
                    if lent == 0 { throw damage.error }
                    return nil
                }
                guard frameIndex < index.eventFrames.count else { return nil }
                let frame = index.eventFrames[frameIndex]
                return (segmentForReading(frame.location.segment, in: &shared), frame)
            }
            guard let (segment, frame) = step else { break }
            let decoded = try reading.lend(frame, in: segment, failingQuietly: lent > 0) { fields, names in
                for index in fields.indices where fields[index].position >= next {
                    try body(EventView(fields.baseAddress! + index, names: names))
                    lent += 1
                    next = fields[index].position + 1
                    if lent == maxCount { return }
                }
            }
            // A damaged frame after lent events: those first; the next read reports it.
            guard decoded else { break }
            if lent < maxCount { next = max(next, frame.lastPosition + 1) }
        }
        return lent == 0 ? position : next
    }

    // MARK: Waiting for new events

    /// Returns once an event at `position` or later is readable, or the store closes.
    func waitForEvents(after position: UInt64) async {
        let id = shared.withLock { shared -> Int in
            shared.nextWaiterID += 1
            return shared.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = shared.withLock { shared -> Bool in
                    if shared.isClosed || shared.index.hasEvents(atOrAfter: position) || Task.isCancelled { return true }
                    shared.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            shared.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Resumes every waiter; called after new events are published and at close.
    func wakeWaiters() {
        let waiters = shared.withLock { shared in
            defer { shared.waiters.removeAll() }
            return Array(shared.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Decodes frames for lending reads: one scratch buffer and one name table for a whole read.
/// With a cache (stream reads), a frame the read mostly does not want (other streams' commits
/// written with its stream's) is decoded into memory of its own and kept for the next reads.
final class FrameLending {
    @exclusivity(unchecked) private var scratch = ScratchBuffer()
    /// The dictionary in effect at the frames read last, kept for the next ones.
    @exclusivity(unchecked) private var dictionary = LentDictionary()
    // Unchecked: a FrameLending belongs to one read, on one thread, and only `lend` touches these,
    // never re-entered (`body` has no way to it). The runtime's checks of these accesses (the
    // three passed `inout` to the decoder per frame) were ~375 instructions per frame, 4 % of
    // a stream read from 2-event frames.
    @exclusivity(unchecked) private var names = NameTable()
    @exclusivity(unchecked) private var events = FrameEvents()
    @exclusivity(unchecked) private var frameNames = FrameNames()
    // Unmanaged: the store's core holds the cache and outlives every read (a strong reference
    // was retained and released per frame read).
    private let cache: Unmanaged<LentFrameCache>?

    init(cache: LentFrameCache? = nil) { self.cache = cache.map { Unmanaged.passUnretained($0) } }

    /// Verifies and decodes `frame`, checks it holds the positions the index expects, and calls
    /// `body` with its events (lent from the scratch buffer, valid during the call) and the
    /// names they refer to. Decoding failures throw ``StoreError/corruption(segment:offset:reason:)``, or
    /// with `failingQuietly` return false; what `body` throws passes through.
    @discardableResult
    func lend(
        _ frame: EventFrame, in segment: Segment, failingQuietly: Bool = false, keeping: Bool = false,
        _ body: (UnsafeBufferPointer<EventFields>, UnsafeBufferPointer<String>) throws -> Void
    ) throws -> Bool {
        let offset = frame.location.offset
        if let cache, keeping || cache._withUnsafeGuaranteedRef({ $0.holds(LentFrameCache.Key(salt: segment.salt, offset: offset, checksum: frame.checksum)) }) {
            let cache = cache.takeUnretainedValue()
            let key = LentFrameCache.Key(salt: segment.salt, offset: offset, checksum: frame.checksum)
            let decoded: DecodedFrame
            if let found = cache.frame(key) {
                decoded = found
            } else {
                do {
                    var stored = 0
                    decoded = try segment.withBytes { bytes in
                        try FrameCache.verified(at: offset, in: segment, bytes: bytes, checksum: frame.checksum) { header, bytes in
                            stored = Layout.frameHeaderSize + Int(header.storedLength)
                            return try DecodedFrame(
                                header, in: bytes, at: offset, dictionary: dictionary.inEffect(at: offset, in: segment),
                                formatVersion: segment.header.formatVersion)
                        }
                    }
                    // Decoded into memory of its own: the frame's mapped pages are not needed
                    // (reads of one event from each of a million streams otherwise kept the
                    // whole store mapped in the process). With the 64 KiB on either side: a
                    // fault maps the pages around it too (Linux's fault-around, 64 KiB).
                    segment.map.releasePages((offset - 65536)..<(offset + stored + 65536))
                    try FrameCache.check(decoded.fields.first?.position, decoded.fields.last?.position, against: frame, in: segment)
                } catch where failingQuietly {
                    return false
                }
                cache.keep(decoded, as: key)
            }
            try withExtendedLifetime(decoded) {
                try decoded.fields.withUnsafeBufferPointer { fields in
                    try decoded.names.withUnsafeBufferPointer { try body(fields, $0) }
                }
            }
            return true
        }
        // The bytes without a closure (`withBytes`): one had the segment and this object retained
        // and released per frame. The caller holds the segment for the call.
        // (Nor a closure for the decoding: the segment captured in one was retained too.)
        let bytes = segment.bytesWhileHeld
        do {
            let header = try FrameCache.verifiedHeader(at: offset, in: segment, bytes: bytes, checksum: frame.checksum)
            do {
                try FrameReader.eventFields(
                    of: header, in: bytes, at: offset, dictionary: dictionary.inEffect(at: offset, in: segment), scratch: &scratch,
                    formatVersion: segment.header.formatVersion, names: &names, into: &events, frameNames: &frameNames)
            } catch {
                throw try FrameCache.damage(error, at: offset, in: segment)
            }
            try FrameCache.decodedUndisturbed(segment)
            try FrameCache.check(events.firstPosition, events.lastPosition, against: frame, in: segment)
        } catch where failingQuietly {
            return false
        }
        try events.withEvents { fields in try frameNames.withNames { try body(fields, $0) } }
        return true
    }
}

/// A frame decoded for stream reads and kept for the next ones: its payload in memory of its
/// own (never the mapped segment, which a compaction unmaps), its events lent from it.
final class DecodedFrame: @unchecked Sendable {  // immutable after init
    private let payload: UnsafeMutableRawBufferPointer
    let fields: [EventFields]
    /// The names `fields` refer to.
    let names: [String]

    init(
        _ header: FrameHeader, in bytes: UnsafeRawBufferPointer, at offset: Int,
        dictionary: (bytes: UnsafeRawBufferPointer, check: UInt16), formatVersion: UInt16
    ) throws {
        var scratch = ScratchBuffer()
        var names = NameTable()
        var events = FrameEvents()
        var frameNames = FrameNames()
        try FrameReader.eventFields(
            of: header, in: bytes, at: offset, dictionary: dictionary, scratch: &scratch, formatVersion: formatVersion,
            names: &names, into: &events, frameNames: &frameNames)
        fields = events.withEvents { Array($0) }
        self.names = frameNames.names
        // The events point into the scratch buffer (the payload inflated, or copied from the
        // map, for this frame alone): it becomes the frame's.
        payload = scratch.handOver()
    }

    /// Bytes of payload it holds (frames above ``LentFrameCache/largestKept`` are not kept).
    var size: Int { payload.count }

    deinit { payload.deallocate() }
}

/// The dictionary (FORMAT.md §6.4) in effect at the frames a read decodes, in memory of the
/// read's own, looked up in the segment's list again only when a frame lies outside the offsets
/// it is in effect for, in another segment, or the list changed since (its generation). A
/// lookup per frame took the list's lock, and the array it returned a retain and a release.
struct LentDictionary: ~Copyable {
    private var list: ObjectIdentifier?
    private var generation = 0
    private var offsets = 0..<0
    private var check: UInt16 = 0
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var count = 0

    init() {}

    deinit { storage.deallocate() }

    /// The dictionary in effect at the frame at `offset` of `segment`, and its check; the bytes
    /// are valid until the next call.
    @inline(__always)
    mutating func inEffect(at offset: Int, in segment: Segment) -> (bytes: UnsafeRawBufferPointer, check: UInt16) {
        if generation != segment.dictionaryGeneration || !offsets.contains(offset) || list != segment.dictionaryListIdentity {
            lookUp(offset, in: segment)
        }
        return (UnsafeRawBufferPointer(start: storage.baseAddress, count: count), check)
    }

    private mutating func lookUp(_ offset: Int, in segment: Segment) {
        let found = segment.dictionaryInEffect(at: offset)
        assert(found.offsets.contains(offset), "a dictionary is in effect where it was looked up")
        if found.bytes.count > storage.count {
            storage.deallocate()
            storage = .allocate(byteCount: found.bytes.count, alignment: 16)
        }
        found.bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        (list, generation, offsets, check, count) = (segment.dictionaryListIdentity, found.generation, found.offsets, found.check, found.bytes.count)
    }
}

/// The last few frames stream reads decoded (``DecodedFrame``), shared by every read of a store.
final class LentFrameCache: Sendable {
    /// A frame: its segment's salt, its offset, and its checksum (a frame rewritten in place is
    /// another frame).
    struct Key: Hashable, Sendable {
        var salt: UInt64
        var offset: Int
        var checksum: UInt32
    }

    /// Frames whose payload is larger (one large commit) are decoded for their read alone.
    static let largestKept = 1 << 20

    private let capacity: Int
    private let frames = Mutex<[(Key, DecodedFrame)]>([])
    /// Whether any frame was ever kept: until one is, a read asks without taking the lock (a
    /// stream of small commits, each frame wholly its own, keeps none).
    private let everKept = Atomic<Bool>(false)

    init(capacity: Int) { self.capacity = capacity }

    func holds(_ key: Key) -> Bool {
        guard everKept.load(ordering: .acquiring) else { return false }
        return frames.withLock { frames in frames.contains { $0.0 == key } }
    }

    func frame(_ key: Key) -> DecodedFrame? {
        frames.withLock { frames in frames.first { $0.0 == key }?.1 }
    }

    func keep(_ frame: DecodedFrame, as key: Key) {
        guard frame.size <= Self.largestKept else { return }
        frames.withLock { frames in
            guard !frames.contains(where: { $0.0 == key }) else { return }
            if frames.count == capacity { frames.removeFirst() }
            frames.append((key, frame))
            everKept.store(true, ordering: .releasing)
        }
    }

}

/// Decoded frames, most recently loaded kept, bounded by count. A frame is known by its
/// segment's salt and its offset: after a compaction or an upgrade replaced the segments, the
/// same segment number and offset name another frame.
final class FrameCache: Sendable {
    private struct Key: Hashable {
        var salt: UInt64
        var offset: Int
    }

    private struct State {
        var frames: [Key: [StoredEvent]] = [:]
        var order: [Key] = []
        var head = 0
    }

    private let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
    }

    /// Forgets every decoded frame.
    func removeAll() {
        state.withLock { $0 = State() }
    }

    /// The events of `frame`, decoded (and checksum-verified) on first use, and checked
    /// against the index entry that led to them: a valid frame of other positions at that offset
    /// is damage, never data. With `remember` off (a sequential scan), a frame not in the cache
    /// is not added to it.
    func events(of frame: EventFrame, in segment: Segment, remember: Bool = true) throws -> [StoredEvent] {
        let location = frame.location
        let key = Key(salt: segment.salt, offset: location.offset)
        if let cached = state.withLock({ $0.frames[key] }) { return cached }
        let events = try Self.decode(at: location.offset, in: segment, checksum: frame.checksum) { header, bytes, dictionary in
            try FrameReader.events(
                of: header, in: bytes, at: location.offset, dictionary: dictionary.bytes, dictionaryCheck: dictionary.check,
                formatVersion: segment.header.formatVersion)
        }
        try Self.check(events.first?.position, events.last?.position, against: frame, in: segment)
        guard remember else { return events }
        state.withLock { state in
            guard state.frames[key] == nil else { return }
            if state.order.count < capacity {
                state.order.append(key)
            } else {
                state.frames.removeValue(forKey: state.order[state.head])
                state.order[state.head] = key
                state.head = (state.head + 1) % capacity
            }
            state.frames[key] = events
        }
        return events
    }

    /// Verifies and decodes the frame at `offset` of `segment`.
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when it fails its checks.
    static func records(at offset: Int, in segment: Segment, checksum: UInt32? = nil) throws -> [Record] {
        try decode(at: offset, in: segment, checksum: checksum) { header, bytes, dictionary in
            try FrameReader.records(
                of: header, in: bytes, at: offset, dictionary: dictionary.bytes, dictionaryCheck: dictionary.check,
                formatVersion: segment.header.formatVersion)
        }
    }

    /// A decoded frame's positions (first and last event) against the index entry that led to
    /// it: a valid frame of other positions at that offset is damage, never data.
    static func check(_ first: UInt64?, _ last: UInt64?, against frame: EventFrame, in segment: Segment) throws {
        guard first == frame.firstPosition, last == frame.lastPosition else {
            throw StoreError.corruption(
                segment: segment.name, offset: frame.location.offset,
                reason: "the frame holds positions \(first ?? 0)...\(last ?? 0), the index expects \(frame.firstPosition)...\(frame.lastPosition)")
        }
    }

    /// Verifies the frame at `offset` and runs `decoder` on it; damage becomes a corruption error.
    private static func decode<R>(
        at offset: Int, in segment: Segment, checksum: UInt32? = nil,
        _ decoder: (FrameHeader, UnsafeRawBufferPointer, (bytes: [UInt8], check: UInt16)) throws -> R
    ) throws -> R {
        try segment.withBytes { bytes in
            try verified(at: offset, in: segment, bytes: bytes, checksum: checksum) { header, bytes in
                try decoder(header, bytes, segment.dictionaryAndCheck(before: offset))
            }
        }
    }

    /// ``decode(at:in:_:)`` on the segment's bytes, mapped by the caller. With `checksum` (the
    /// index's record of the frame), a valid frame with another checksum is damage: the index
    /// was built from a frame that is no longer there.
    static func verified<R>(
        at offset: Int, in segment: Segment, bytes: UnsafeRawBufferPointer, checksum: UInt32? = nil,
        _ decoder: (FrameHeader, UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let header = try verifiedHeader(at: offset, in: segment, bytes: bytes, checksum: checksum)
        let decoded: R
        do {
            decoded = try decoder(header, bytes)
        } catch {
            throw try damage(error, at: offset, in: segment)
        }
        try decodedUndisturbed(segment)
        return decoded
    }

    /// The header of the frame at `offset`, whose checksum holds (and is `checksum` when given).
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when there is none there, or
    ///   an I/O error when a page of it could not be read.
    @inline(__always)
    static func verifiedHeader(at offset: Int, in segment: Segment, bytes: UnsafeRawBufferPointer, checksum: UInt32?) throws -> FrameHeader {
        switch FrameReader.probe(bytes, at: offset, salt: segment.salt) {
        case .frame(let header):
            if let checksum, header.checksum != checksum {
                try segment.checkReadable()
                throw StoreError.corruption(
                    segment: segment.name, offset: offset,
                    reason: "the frame here is not the one the index was built from (checksum \(String(header.checksum, radix: 16)), the index has \(String(checksum, radix: 16))): the index file does not describe the segments (remove dugong.index to rebuild it) or the frame was rewritten\(segment.shortenedNote)")
            }
            return header
        case .endOfData:
            try segment.checkReadable()
            throw StoreError.corruption(segment: segment.name, offset: offset, reason: "frame is all zeros\(segment.shortenedNote)")
        case .invalid(let reason):
            try segment.checkReadable()
            throw StoreError.corruption(segment: segment.name, offset: offset, reason: reason + segment.shortenedNote)
        }
    }

    /// What a decoder's failure on a verified frame is: an I/O error when a page of it could
    /// not be read, else damage (a checksum that holds over bytes that do not decode).
    @inline(never)
    static func damage(_ error: any Error, at offset: Int, in segment: Segment) throws -> StoreError {
        try segment.checkReadable()
        return StoreError.corruption(segment: segment.name, offset: offset, reason: "\(error)\(segment.shortenedNote)")
    }

    /// After a frame's decoding: the checksum held, but the decoder read the bytes again, and a
    /// page that failed in between shows zeros the checksum never saw (one load while no page
    /// ever failed).
    @inline(__always)
    static func decodedUndisturbed(_ segment: Segment) throws {
        try segment.checkReadable()
    }
}
