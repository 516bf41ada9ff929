import Foundation

/// One append checked against the rules of the ``EventStore`` contract, so that every adapter
/// decides appends the same way.
///
/// An adapter calls ``init(events:stream:expected:)`` (which validates the request's shape),
/// then, holding whatever lock serializes appends to the stream, ``decide(currentVersion:storedEventID:)``.
public struct AppendRequest: Sendable {
    /// What the adapter must do with a valid append.
    public enum Decision: Sendable, Equatable {
        /// Store the events.
        case write
        /// The events are already stored; write nothing and report success.
        case duplicate
    }

    public let events: [SerializedDomainEvent]
    public let stream: StreamID
    public let expected: ExpectedVersion

    /// The longest stream name (``AggregateStreamName/name(of:)``) and event type, in bytes of
    /// UTF-8, that every adapter takes: the embedded store's limit, so that an application
    /// tested on the in-memory store meets it there first.
    public static let maximumNameLength = 1024

    /// Checks the request's shape: non-empty, every event of `stream` with a timestamp a store
    /// keeps (`Date.isStorable`), sequence numbers contiguous and starting at 1 or later (and not
    /// past `Int.max`), no event id twice; the stream's name and each event type 1 to
    /// ``maximumNameLength`` bytes of UTF-8 without NUL.
    ///
    /// - Throws: ``EventStoreError/invalidAppend(stream:reason:)``.
    public init(events: [SerializedDomainEvent], stream: StreamID, expected: ExpectedVersion) throws {
        guard let first = events.first else {
            throw EventStoreError.invalidAppend(stream: stream, reason: "no events")
        }
        let name = AggregateStreamName.name(of: stream).utf8
        guard name.count <= Self.maximumNameLength, !name.contains(0) else {
            throw EventStoreError.invalidAppend(
                stream: stream,
                reason: "the stream's name (origin, aggregate type, tenant and aggregate id) is \(name.count) bytes\(name.contains(0) ? " with a NUL" : ""): names take at most \(Self.maximumNameLength) bytes of UTF-8 without NUL")
        }
        guard first.sequenceNumber >= 1 else {
            throw EventStoreError.invalidAppend(
                stream: stream, reason: "sequence numbers start at 1, got \(first.sequenceNumber)")
        }
        for (offset, event) in events.enumerated() {
            guard event.timestamp.isStorable else {
                throw EventStoreError.invalidAppend(
                    stream: stream,
                    reason: "event \(event.id) has the timestamp \(event.timestamp.timeIntervalSince1970) s since 1970: stores keep milliseconds within ±\(Date.storableSecondsSince1970) s")
            }
            let type = event.eventType.utf8
            guard (1...Self.maximumNameLength).contains(type.count), !type.contains(0) else {
                throw EventStoreError.invalidAppend(
                    stream: stream,
                    reason: "event \(event.id) has an event type of \(type.count) bytes\(type.contains(0) ? " with a NUL" : ""): types take 1 to \(Self.maximumNameLength) bytes of UTF-8 without NUL")
            }
            guard event.stream == stream else {
                throw EventStoreError.invalidAppend(
                    stream: stream, reason: "event \(event.id) belongs to \(event.stream)")
            }
            guard event.sequenceNumber == first.sequenceNumber &+ offset, event.sequenceNumber >= first.sequenceNumber else {
                throw EventStoreError.invalidAppend(
                    stream: stream,
                    reason: "sequence numbers must be contiguous: expected \(first.sequenceNumber &+ offset), got \(event.sequenceNumber) at index \(offset)")
            }
        }
        if case .exact(let version) = expected, version < 0 {
            throw EventStoreError.invalidAppend(stream: stream, reason: "expected version \(version) is negative")
        }
        // An event id names one event (PostgreSQL kept the first of two and reported both).
        if events.count > 1, Set(events.map(\.id)).count < events.count {
            throw EventStoreError.invalidAppend(stream: stream, reason: "an event id appears twice in one append")
        }
        self.events = events
        self.stream = stream
        self.expected = expected
    }

    /// The sequence number of the last event.
    public var lastSequenceNumber: Int { events[events.count - 1].sequenceNumber }

    /// Decides the append against the stream's current state.
    ///
    /// - Parameters:
    ///   - currentVersion: the stream's version (sequence number of its last event, 0 if none).
    ///   - storedEventID: the id of the stored event at a sequence number ≤ `currentVersion`.
    /// - Throws: ``EventStoreError/conflict(stream:expected:actual:)``,
    ///   ``EventStoreError/partialDuplicate(stream:storedCount:appendedCount:)``, or
    ///   ``EventStoreError/invalidAppend(stream:reason:)`` for a gap.
    public func decide(
        currentVersion: Int, storedEventID: (Int) throws -> UUID?
    ) throws -> Decision {
        precondition(currentVersion >= 0)
        let first = events[0].sequenceNumber
        if first <= currentVersion {
            var stored = 0
            for event in events where event.sequenceNumber <= currentVersion {
                if try storedEventID(event.sequenceNumber) == event.id { stored += 1 } else { break }
            }
            if stored == events.count { return .duplicate }
            if stored > 0 {
                throw EventStoreError.partialDuplicate(stream: stream, storedCount: stored, appendedCount: events.count)
            }
            throw EventStoreError.conflict(stream: stream, expected: effectiveExpectation, actual: currentVersion)
        }
        guard expected.isSatisfied(byVersion: currentVersion) else {
            throw EventStoreError.conflict(stream: stream, expected: expected, actual: currentVersion)
        }
        guard first == currentVersion + 1 else {
            throw EventStoreError.invalidAppend(
                stream: stream,
                reason: "first sequence number \(first) leaves a gap after version \(currentVersion)")
        }
        return .write
    }

    /// The expectation to report in a conflict: the caller's own, or, for `any`, the version
    /// its sequence numbers imply.
    private var effectiveExpectation: ExpectedVersion {
        if case .any = expected { return .exact(events[0].sequenceNumber - 1) }
        return expected
    }
}
