import Foundation

/// A region of a store that could not be read: where it is, why, and the global positions it
/// held as far as the frames around it tell.
public struct DamagedRegion: Sendable, Equatable, CustomStringConvertible {
    /// The file (a segment, the manifest or the head file).
    public var file: String
    public var offset: Int
    /// What is wrong with it.
    public var reason: String
    /// The positions the region held (empty when it held none or they cannot be told).
    public var positions: Range<UInt64>

    /// Whether `regions` holds this damage: a region of the same file at the same offset,
    /// whatever its reason and positions say now (a scan again describes damage anew: its
    /// reason may name the durable end as it is then, its positions end where the log then
    /// goes on).
    public func isAmong(_ regions: [DamagedRegion]) -> Bool {
        regions.contains { $0.file == file && $0.offset == offset }
    }

    /// The engine's damage entries as regions.
    static func regions(of damage: some Collection<Damage>) -> [DamagedRegion] {
        damage.map { DamagedRegion(file: $0.segmentName, offset: $0.offset, reason: $0.reason, positions: $0.positions) }
    }

    public var description: String {
        // With no positions known, where they would begin: the reason may say events from
        // there on were lost (it read "no position known … from position 6760 on").
        "\(file) at offset \(offset) (\(heldPositions ?? "positions from \(positions.lowerBound) on, if any")): \(reason)"
    }

    /// "position P" or "positions P...Q"; nil when none is known.
    var heldPositions: String? {
        positions.isEmpty ? nil : positions.count == 1 ? "position \(positions.lowerBound)" : "positions \(positions.lowerBound)...\(positions.upperBound - 1)"
    }
}

extension EventLog {
    /// The damage found when the store was opened, in the order it was found.
    public var damageFoundAtOpen: [DamagedRegion] {
        core.shared.withLock { shared in DamagedRegion.regions(of: shared.damage) }
    }

    /// Up to `maxCount` readable events in log order from `position` on, stepping over damage
    /// instead of stopping at it: for copying what a damaged store still holds (`dugong export
    /// --skip-damage`). Every event is checked as every read checks it.
    ///
    /// - Returns: the events; the damage stepped over (regions found at open, once each as the
    ///   read passes them, and frames that fail their checks now); and the position to go on
    ///   from (``headPosition`` once everything was read).
    /// - Throws: ``StoreError/closed``, or the I/O error (`SystemError`, `EIO`) of a page the
    ///   disk failed: what could not be read is not damage, and is not stepped over.
    public func readAllSkippingDamage(
        from position: UInt64, maxCount: Int = 4096
    ) throws -> (events: [StoredEvent], skipped: [DamagedRegion], next: UInt64) {
        try prepareToRead()
        precondition(maxCount > 0)
        var events: [StoredEvent] = []
        var skipped: [DamagedRegion] = []
        var next = position
        while events.count < maxCount {
            let step = try core.withReadableState { shared -> (gap: [Damage], gapEnd: UInt64, frame: (Segment, EventFrame)?) in
                let index = shared.index
                let frameIndex = index.frameIndex(atOrAfter: next)
                let frame = frameIndex < index.eventFrames.count ? index.eventFrames[frameIndex] : nil
                let gapEnd = frame?.firstPosition ?? index.nextPosition
                // Damage that held positions from `next` to the next readable frame (or, at the
                // end, damage whose positions cannot be told).
                let gap = index.damage.filter { $0.stopsARead(from: next, before: gapEnd) }
                return (gap, gapEnd, frame.map { (core.segmentForReading($0.location.segment, in: &shared), $0) })
            }
            for damage in step.gap {
                skipped.append(DamagedRegion(file: damage.segmentName, offset: damage.offset, reason: damage.reason, positions: damage.positions))
            }
            next = max(next, step.gapEnd)
            guard let (segment, frame) = step.frame else { break }
            do {
                let decoded = try core.cache.events(of: frame, in: segment, remember: false)
                for event in decoded where event.position >= next {
                    events.append(event)
                    if events.count == maxCount {
                        return (events, skipped, event.position + 1)
                    }
                }
            } catch let error as SystemError {
                throw error  // the disk's error (a page it failed): not damage
            } catch {
                var reason = "\(error)"
                if case .corruption(_, _, let why) = error as? StoreError { reason = why }
                let positions = max(next, frame.firstPosition)..<(frame.lastPosition + 1)
                skipped.append(DamagedRegion(file: segment.name, offset: frame.location.offset, reason: reason, positions: positions))
            }
            assert(frame.lastPosition + 1 > next, "each step moves past a frame")
            next = frame.lastPosition + 1
        }
        return (events, skipped, next)
    }
}
