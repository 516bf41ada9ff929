import Foundation

// Reads that lend each event to a closure instead of returning copies: the frame is inflated
// into one buffer for the whole read and each event is a view of it (no `Data` or array per
// event). For replays, projections and exports that look at each event once.
extension EventLog {
    /// Lends up to `maxCount` events in log order from global position `position` (inclusive)
    /// to `body`, one at a time, as ``readAll(from:maxCount:)`` would return them, without
    /// copying them.
    ///
    /// ```swift
    /// var next: UInt64 = 0
    /// var total = 0
    /// next = try log.forEachEvent(from: next) { event in total += event.dataCount }
    /// ```
    ///
    /// - Returns: the position to continue from: after the last event lent, or `position` when
    ///   none was (the end of the log for now).
    /// - Throws: ``StoreError/corruption(segment:offset:reason:)`` when the first event to lend
    ///   lies in a damaged frame (events before damage are lent first; the next call, from the
    ///   position returned, throws), or what `body` throws (the events after it are not lent).
    @discardableResult
    public func forEachEvent(
        from position: UInt64 = 0, maxCount: Int = .max, _ body: (borrowing EventView) throws -> Void
    ) throws -> UInt64 {
        try prepareToRead()
        guard maxCount > 0 else { return position }
        return try core.lendEventsInLog(from: position, maxCount: maxCount, body)
    }

    /// Lends the events of `stream` that ``read(stream:from:maxCount:direction:)`` would return,
    /// in its order, to `body`, one at a time, without copying them.
    ///
    /// - Returns: how many events were lent.
    /// - Throws: as ``read(stream:from:maxCount:direction:)`` does, or what `body` throws.
    ///   Unlike `read`, which returns nothing when it throws, the events before a damaged frame
    ///   found during the read have been lent by then (damage found at open is reported first).
    @discardableResult
    public func forEachEvent(
        in stream: String, from version: Int? = nil, maxCount: Int = .max, direction: Direction = .forward,
        _ body: (borrowing EventView) throws -> Void
    ) throws -> Int {
        let slice = try slice(of: stream, from: version, maxCount: maxCount, direction: direction)
        try core.lendEvents(slice, body)
        return slice.positions.count
    }
}
