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

/// An error an adapter throws when its store could not be reached for a while (a connection
/// lost, a server restarting or failing over): nothing about the operation itself was wrong, and
/// it may succeed when tried again. What was written is said by the error: an append whose
/// outcome is unknown is recognized as a retry when sent again with the same events.
///
/// The framework's long-running readers treat it as an outage, not as a failure of what they
/// read: ``GlobalLogReader/run()`` waits and reads on from its checkpoint; an
/// ``IdempotentHandler`` does not count it as the message's failure (it is never parked for it).
public protocol TransientStoreError: Error {}
