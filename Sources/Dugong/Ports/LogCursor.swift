/// Where an event stands in the global log, and where a reader of it stands: cursors are totally
/// ordered, and a store's events come in the order of their cursors.
///
/// A reader treats a cursor as opaque: it compares cursors, stores them (a ``Checkpoint``) and
/// reads from the one an event gives as ``RecordedEvent/next``; it never computes one. An
/// embedded store's cursor is its event's global position; a server store whose positions
/// become visible out of order (PostgreSQL, where a transaction that began earlier may commit
/// later) orders by the writing transaction first, then the position. Ordered by `transaction`,
/// then `position`.
public struct LogCursor: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The writing transaction's place among the store's transactions; 0 in stores whose
    /// positions alone give the order.
    public let transaction: UInt64
    /// The event's global position (unique and increasing within a transaction; gaps allowed).
    public let position: UInt64

    /// Before every event: where a new reader starts.
    public static let start = LogCursor(position: 0)

    /// The cursor of a store ordered by positions alone.
    public init(position: UInt64) {
        self.init(transaction: 0, position: position)
    }

    public init(transaction: UInt64, position: UInt64) {
        self.transaction = transaction
        self.position = position
    }

    /// The next cursor after this one: where a reader that has seen this event goes on.
    public var successor: LogCursor {
        precondition(position < UInt64.max, "a cursor's position is below 2^64 - 1")
        return LogCursor(transaction: transaction, position: position + 1)
    }

    public static func < (a: LogCursor, b: LogCursor) -> Bool {
        (a.transaction, a.position) < (b.transaction, b.position)
    }

    /// `position`, or `transaction:position` when the transaction is not 0 (what
    /// ``init(_:)`` reads back).
    public var description: String {
        transaction == 0 ? "\(position)" : "\(transaction):\(position)"
    }

    /// Reads ``description``'s form; `nil` for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            let position = UInt64(parts[parts.count - 1])
        else { return nil }
        if parts.count == 2 {
            guard let transaction = UInt64(parts[0]) else { return nil }
            self.init(transaction: transaction, position: position)
        } else {
            self.init(position: position)
        }
    }
}
