/// The event-store port: where aggregates' events are kept.
///
/// Every adapter honours this contract, which `DugongTesting.EventStoreContract` checks:
///
/// - **Append** (``append(_:to:expecting:)``): the events all belong to `stream` and carry
///   contiguous sequence numbers. The append is atomic: all its events are stored or none.
///   - If the first event's sequence number is the stream's version + 1, the append goes
///     through when `expecting` is satisfied by the stream's version; otherwise it throws
///     ``EventStoreError/conflict(stream:expected:actual:)``.
///   - If the events' ids are already stored at the same sequence numbers, the append is an
///     idempotent retry: it succeeds without writing, whatever `expecting` says.
///   - If a *different* event already holds one of the sequence numbers, it throws
///     ``EventStoreError/conflict(stream:expected:actual:)``; if only some of the events are
///     stored, ``EventStoreError/partialDuplicate(stream:storedCount:appendedCount:)``.
///   - Sequence numbers past version + 1 (a gap), an empty list or events of another stream
///     throw ``EventStoreError/invalidAppend(stream:reason:)``.
///   - Of concurrent appends at the same sequence number, exactly one succeeds.
/// - **Read** (``read(_:from:)``): the stream's events with sequence number ≥ `from`, in
///   ascending order, every field as it was appended; `[]` for an unknown stream.
/// - **List** (``aggregateIDs(origin:aggregateType:tenantID:)``): the distinct aggregate ids
///   that have events, for exactly that tenant (`nil` matches only untenanted streams).
///
/// A stream is identified by ``StreamID``, tenant included: the same aggregate id and sequence
/// number may exist under two tenants. Its parts are told apart by their UTF-8 bytes, not by
/// `String`'s `==` (canonical equivalence): `café` spelled NFC and NFD are two streams.
public protocol EventStore: Sendable {
    /// Appends `events` to `stream` atomically if the stream is at the expected version.
    /// - Returns: what was done; see ``AppendResult``.
    @discardableResult
    func append(
        _ events: [SerializedDomainEvent], to stream: StreamID, expecting expected: ExpectedVersion
    ) async throws -> AppendResult

    /// The events of `stream` from sequence number `from` (inclusive), in order.
    func read(_ stream: StreamID, from sequenceNumber: Int) async throws -> [SerializedDomainEvent]

    /// The ids of the aggregates of one origin and type that have events, for one tenant.
    func aggregateIDs(origin: String, aggregateType: String, tenantID: String?) async throws -> [String]

    /// The last event of `stream`, or `nil`. Has a default (reading the whole stream) that
    /// adapters able to read backwards replace.
    func lastEvent(of stream: StreamID) async throws -> SerializedDomainEvent?

    /// The stream's version: the sequence number its next append follows, hidden events
    /// included (a stream whose events are all hidden, as a delete leaves it, keeps its version;
    /// 0 when it never had an event). Has a default (``lastEvent(of:)``'s sequence number, which
    /// is 0 for such a stream) that adapters replace.
    func streamVersion(of stream: StreamID) async throws -> Int

    /// Hides the events of `stream` below sequence number `version` from reads (a store may
    /// reclaim their space); later appends continue the sequence. ``lastEvent(of:)`` is not
    /// affected unless every event is hidden.
    ///
    /// `version` is 1 ... the stream's version + 1 (which hides every event it has; more would
    /// hide its next appends). Outside that, it throws and changes nothing; the error is the
    /// adapter's own (`DugongTesting.EventStoreContract` checks that every adapter refuses).
    func truncate(_ stream: StreamID, before version: Int) async throws
}

extension EventStore {
    /// All events of `stream`, in order.
    public func read(_ stream: StreamID) async throws -> [SerializedDomainEvent] {
        try await read(stream, from: 1)
    }

    /// The last event of `stream`, or `nil`. Adapters that can read backwards override it;
    /// this default reads the whole stream.
    public func lastEvent(of stream: StreamID) async throws -> SerializedDomainEvent? {
        try await read(stream).last
    }

    /// The stream's version as far as reads show it: adapters that hide events replace it.
    public func streamVersion(of stream: StreamID) async throws -> Int {
        try await lastEvent(of: stream)?.sequenceNumber ?? 0
    }
}

/// The outcome of an accepted append.
public struct AppendResult: Sendable, Hashable {
    /// The stream's version after the append: the sequence number of its last event.
    public var version: Int
    /// `true` when the events were already stored and nothing was written.
    public var wasDuplicate: Bool
    /// Where the last event written stands in the global log (stores with a
    /// ``GlobalEventLog``); `nil` for a duplicate or a store without global order. For
    /// read-your-writes: `if let cursor = result.cursor { try await projection.waitUntilCaughtUp(with: cursor) }`.
    public var cursor: LogCursor?
    /// The global position of the last event written (``cursor``'s).
    public var position: UInt64? { cursor?.position }

    public init(version: Int, wasDuplicate: Bool, cursor: LogCursor? = nil) {
        self.version = version
        self.wasDuplicate = wasDuplicate
        self.cursor = cursor
    }

    public static func == (a: Self, b: Self) -> Bool {
        // The cursor says where, not what: two results are equal by version and duplication.
        a.version == b.version && a.wasDuplicate == b.wasDuplicate
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(version)
        hasher.combine(wasDuplicate)
    }
}
