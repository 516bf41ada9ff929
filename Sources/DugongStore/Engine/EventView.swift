import Foundation

/// An event lent by a read (``EventLog/forEachEvent(from:maxCount:_:)``,
/// ``EventLog/forEachEvent(in:from:maxCount:_:)``): its fields, and its data and metadata where
/// they lie in the decoded frame, not copied.
///
/// A view lives only as long as the closure it is lent to: it is `~Copyable` and lent
/// `borrowing`, so it cannot be stored or returned. Take ``stored`` (or ``data``) for a copy that
/// can; do not keep the pointers ``withData(_:)`` and ``withMetadata(_:)`` lend.
public struct EventView: ~Copyable {
    // The accessors are inlinable: a replay calls them per event, from another module.
    /// The decoded fields, in the read's buffer of them (no copy per event lent).
    @usableFromInline let pointer: UnsafePointer<EventFields>
    /// The names the fields refer to, in the read's list of them.
    @usableFromInline let names: UnsafeBufferPointer<String>

    init(_ pointer: UnsafePointer<EventFields>, names: UnsafeBufferPointer<String>) {
        self.pointer = pointer
        self.names = names
    }

    @inlinable var fields: EventFields { _read { yield pointer.pointee } }

    /// The stream's name.
    @inlinable public var stream: String { names[Int(fields.streamName)] }
    /// The event's version in its stream.
    @inlinable public var version: Int { fields.version }
    /// The event's global position.
    @inlinable public var position: UInt64 { fields.position }
    @inlinable public var id: UUID { fields.id }
    @inlinable public var type: String { names[Int(fields.typeName)] }
    /// Milliseconds since 1970-01-01 UTC.
    @inlinable public var timestampMilliseconds: Int64 { fields.timestampMilliseconds }
    /// When the event happened.
    public var timestamp: Date { Date(millisecondsSince1970: fields.timestampMilliseconds) }
    /// Whether this is the last event of its append (``StoredEvent/endsCommit``).
    @inlinable public var endsCommit: Bool { fields.endsCommit }
    /// Bytes of data.
    @inlinable public var dataCount: Int { fields.data.count }
    /// Bytes of metadata.
    @inlinable public var metadataCount: Int { fields.metadata.count }

    /// Calls `body` with the event's data, in place (valid only during the call).
    @inlinable public func withData<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(fields.data) }

    /// Calls `body` with the event's metadata, in place (valid only during the call).
    @inlinable public func withMetadata<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(fields.metadata) }

    /// The event's data, copied.
    @inlinable public var data: Data { Data(fields.data) }

    /// The event's metadata, copied.
    @inlinable public var metadata: Data { Data(fields.metadata) }

    /// The whole event, copied: what ``EventLog/readAll(from:maxCount:)`` returns for it.
    @inlinable public var stored: StoredEvent { fields.stored(names: names) }
}
