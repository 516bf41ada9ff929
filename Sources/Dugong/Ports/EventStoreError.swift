/// Why an event store refused an append.
public enum EventStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stream is not at the expected version, or another event already holds one of the
    /// sequence numbers. `actual` is the stream's version when the append was refused.
    case conflict(stream: StreamID, expected: ExpectedVersion, actual: Int)
    /// Some of the appended events are already stored at their sequence numbers and some are
    /// not: neither a clean retry nor a new append.
    case partialDuplicate(stream: StreamID, storedCount: Int, appendedCount: Int)
    /// The append itself is malformed (empty, mixed streams, non-contiguous sequence numbers).
    case invalidAppend(stream: StreamID, reason: String)

    public var description: String {
        switch self {
        case .conflict(let stream, let expected, let actual):
            "concurrency conflict on \(stream): expected \(expected), actual version \(actual)"
        case .partialDuplicate(let stream, let stored, let appended):
            "partial duplicate on \(stream): \(stored) of \(appended) events are already stored, the rest are not"
        case .invalidAppend(let stream, let reason):
            "invalid append to \(stream): \(reason)"
        }
    }
}
