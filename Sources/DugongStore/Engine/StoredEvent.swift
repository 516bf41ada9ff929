import Foundation
import Dugong

/// An event to append: the engine assigns its stream version and global position.
public struct NewEvent: Sendable, Hashable {
    /// Unique id; appending the same ids again at the same versions is an idempotent retry.
    public var id: UUID
    /// The event's type name (UTF-8, at most ``EventLog/Options/maximumNameLength`` bytes).
    public var type: String
    /// When it happened; stored to the millisecond.
    public var timestamp: Date
    /// The event's body, usually JSON.
    public var data: Data
    /// Free-form metadata bytes, usually JSON; empty when there is none.
    public var metadata: Data

    public init(id: UUID = EventID.random(), type: String, timestamp: Date = .currentMillisecond, data: Data, metadata: Data = Data()) {
        self.id = id
        self.type = type
        self.timestamp = timestamp
        self.data = data
        self.metadata = metadata
    }
}

/// An event as stored: where it is (stream, version, global position) and what it is.
public struct StoredEvent: Sendable, Hashable {
    /// The stream's name.
    public var stream: String
    /// The event's version in its stream: 1 for the first event, contiguous after that.
    public var version: Int
    /// The event's global position: gapless and increasing at append time, from 0.
    public var position: UInt64
    public var id: UUID
    public var type: String
    /// Milliseconds since 1970-01-01 UTC.
    public var timestampMilliseconds: Int64
    public var data: Data
    public var metadata: Data
    /// Whether this is the last event of the append it belongs to: one ``EventLog/append(_:to:expecting:)``
    /// call, or one ``EventLog/Append`` of an atomic ``EventLog/append(_:)`` (which may name a
    /// stream more than once: each one's last event has it).
    public var endsCommit: Bool

    /// When the event happened.
    public var timestamp: Date { Date(millisecondsSince1970: timestampMilliseconds) }

    public init(
        stream: String, version: Int, position: UInt64, id: UUID, type: String, timestampMilliseconds: Int64, data: Data, metadata: Data,
        endsCommit: Bool = true
    ) {
        self.stream = stream
        self.version = version
        self.position = position
        self.id = id
        self.type = type
        self.timestampMilliseconds = timestampMilliseconds
        self.data = data
        self.metadata = metadata
        self.endsCommit = endsCommit
    }
}

/// The latest snapshot of a stream, as the engine stores it.
public struct StoredSnapshot: Sendable, Hashable {
    public var stream: String
    /// The stream version the snapshot covers.
    public var version: Int
    public var data: Data
    public var metadata: Data

    public init(stream: String, version: Int, data: Data, metadata: Data = Data()) {
        self.stream = stream
        self.version = version
        self.data = data
        self.metadata = metadata
    }
}
