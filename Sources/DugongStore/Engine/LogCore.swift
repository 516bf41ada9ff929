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
    }

    /// The manifest the segments came from and the head record last read: a refresh with the
    /// same head and no new frame has nothing to do.
    struct Followed {
        var manifest: Manifest
        var headSequence: UInt64?
    }

    let directory: String
    let options: EventLog.Options
    let shared: Mutex<Shared>
    let cache: FrameCache

    init(directory: String, options: EventLog.Options, index: StreamIndex, segments: [Segment]) {
        self.directory = directory
        self.options = options
        shared = Mutex(Shared(index: index, segments: segments))
        cache = FrameCache(capacity: options.frameCacheCapacity)
    }

    /// Throws when the store is closed.
    func checkOpen() throws(StoreError) {
        if shared.withLock({ $0.isClosed }) { throw .closed }
    }

    // MARK: Reading events

    /// The events at `positions` (ascending or descending), decoded from their frames.
    func events(at positions: [UInt64]) throws -> [StoredEvent] {
        guard !positions.isEmpty else { return [] }
        // Resolve every position to its frame under the lock; decode outside it.
        let located: [(UInt64, Segment, EventFrame)] = try shared.withLock { shared in
            try positions.map { position in
                if position >= StreamIndex.damagedMarker {
                    let which = Int(position - StreamIndex.damagedMarker)
                    let damage = shared.index.damage.indices.contains(which) ? shared.index.damage[which] : shared.index.damage.last
                    throw damage?.error ?? StoreError.corruption(segment: "?", offset: 0, reason: "event lost to damage")
                }
                let frames = shared.index.eventFrames
                let frameIndex = shared.index.frameIndex(atOrAfter: position)
                guard frameIndex < frames.count, frames[frameIndex].firstPosition <= position else {
                    throw StoreError.corruption(segment: "?", offset: 0, reason: "position \(position) is indexed but in no frame")
                }
                let frame = frames[frameIndex]
                return (position, shared.segments[frame.location.segment], frame)
            }
        }
        var result: [StoredEvent] = []
        result.reserveCapacity(positions.count)
        for (position, segment, frame) in located {
            let events = try cache.events(of: frame, in: segment)
            result.append(try Self.event(at: position, in: events, segment: segment, frame: frame))
        }
        return result
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
        precondition(maxCount > 0)
        var result: [StoredEvent] = []
        var next = position
        while result.count < maxCount {
            let step: (Segment, EventFrame)? = try shared.withLock { shared in
                let index = shared.index
                let frameIndex = index.frameIndex(atOrAfter: next)
                let gapEnd = frameIndex < index.eventFrames.count ? index.eventFrames[frameIndex].firstPosition : index.nextPosition
                if next < gapEnd, let damage = index.damage.first(where: { $0.positions.overlaps(next..<gapEnd) }) {
                    if result.isEmpty { throw damage.error }
                    return nil
                }
                guard frameIndex < index.eventFrames.count else { return nil }
                let frame = index.eventFrames[frameIndex]
                return (shared.segments[frame.location.segment], frame)
            }
            guard let (segment, frame) = step else { break }
            let events: [StoredEvent]
            do {
                events = try cache.events(of: frame, in: segment, remember: false)
            } catch where !result.isEmpty {
                break  // the events before the damage first; the next read reports it
            }
            for event in events where event.position >= next {
                result.append(event)
                if result.count == maxCount { break }
            }
            next = max(next, frame.lastPosition + 1)
        }
        return result
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
                    if shared.isClosed || shared.index.nextPosition > position || Task.isCancelled { return true }
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
        let events = try Self.decode(at: location.offset, in: segment) { header, bytes, dictionary in
            try FrameReader.events(of: header, in: bytes, at: location.offset, dictionary: dictionary)
        }
        guard events.first?.position == frame.firstPosition, events.last?.position == frame.lastPosition else {
            throw StoreError.corruption(
                segment: segment.name, offset: location.offset,
                reason: "the frame holds positions \(events.first?.position ?? 0)...\(events.last?.position ?? 0), the index expects \(frame.firstPosition)...\(frame.lastPosition)")
        }
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
    static func records(at offset: Int, in segment: Segment) throws -> [Record] {
        try decode(at: offset, in: segment) { header, bytes, dictionary in
            try FrameReader.records(of: header, in: bytes, at: offset, dictionary: dictionary)
        }
    }

    /// Verifies the frame at `offset` and runs `decoder` on it; damage becomes a corruption error.
    private static func decode<R>(
        at offset: Int, in segment: Segment,
        _ decoder: (FrameHeader, UnsafeRawBufferPointer, [UInt8]) throws -> R
    ) throws -> R {
        try segment.withBytes { bytes in
            switch FrameReader.probe(bytes, at: offset, salt: segment.salt) {
            case .frame(let header):
                do {
                    return try decoder(header, bytes, segment.dictionary(before: offset))
                } catch {
                    throw StoreError.corruption(segment: segment.name, offset: offset, reason: "\(error)")
                }
            case .endOfData:
                throw StoreError.corruption(segment: segment.name, offset: offset, reason: "frame is all zeros")
            case .invalid(let reason):
                throw StoreError.corruption(segment: segment.name, offset: offset, reason: reason)
            }
        }
    }
}
