/// The identity of one aggregate's event stream: origin, aggregate type, aggregate id and
/// tenant. Two tenants may hold the same aggregate id; they are different streams.
public struct StreamID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var origin: String
    public var aggregateType: String
    public var aggregateID: String
    /// The tenant; `nil` is "no tenant", which matches only untenanted streams.
    public var tenantID: String?

    public init(origin: String, aggregateType: String, aggregateID: String, tenantID: String? = nil) {
        self.origin = origin
        self.aggregateType = aggregateType
        self.aggregateID = aggregateID
        self.tenantID = tenantID
    }

    /// The stream of aggregate `id` of type `State`.
    public init<State: Aggregate>(_: State.Type, id: String, tenantID: String? = nil) {
        self.init(origin: State.origin, aggregateType: State.aggregateType, aggregateID: id, tenantID: tenantID)
    }

    /// Streams are told apart by the bytes of their names' parts, as every store keeps them:
    /// names that differ only in Unicode normalization (`café` composed and decomposed) are
    /// two streams, though Swift's `String ==` takes them as one. (Hashing stays `String`'s:
    /// equal bytes hash alike.)
    public static func == (a: StreamID, b: StreamID) -> Bool {
        guard a.aggregateID.utf8.elementsEqual(b.aggregateID.utf8), a.aggregateType.utf8.elementsEqual(b.aggregateType.utf8),
            a.origin.utf8.elementsEqual(b.origin.utf8)
        else { return false }
        switch (a.tenantID, b.tenantID) {
        case (nil, nil): return true
        case (let first?, let second?): return first.utf8.elementsEqual(second.utf8)
        default: return false
        }
    }

    /// `origin:aggregateType/aggregateID` (`origin:aggregateType@tenant/aggregateID` with a
    /// tenant), as ``AggregateStreamName`` spells it: how the stores name the stream and the
    /// `dugong` tool prints it, with `%`, `:`, `@` and `/` percent-encoded in the first three
    /// parts. (The parts were joined as they are: an error about `o%3Ax:T/b` named `o:x:T/b`,
    /// another stream's name. Found by a black-box run.)
    public var description: String { AggregateStreamName.name(of: self) }
}

/// The version a stream must be at for an append to go through (optimistic concurrency).
/// A stream's version is the sequence number of its last event, 0 when it has none.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must have no events.
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream's last event must have exactly this sequence number (0: no events).
    case exact(Int)

    /// Whether a stream at `version` satisfies this expectation.
    public func isSatisfied(byVersion version: Int) -> Bool {
        switch self {
        case .any: true
        case .noStream: version == 0
        case .streamExists: version > 0
        case .exact(let expected): version == expected
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .streamExists: "stream exists"
        case .exact(let version): "version \(version)"
        }
    }
}
