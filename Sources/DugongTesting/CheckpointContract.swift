import Dugong
import Foundation

/// The contract of ``Dugong/Checkpoint``s on a ``Dugong/TransactionalEventStore``: checkpoints
/// are events of the store, so any store that passes ``EventStoreContract`` and
/// ``TransactionalEventStoreContract`` passes this too; it states what readers rely on.
public enum CheckpointContract {
    public typealias Check = ContractCheck<any TransactionalEventStore>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("a new checkpoint is at the start", fresh),
        Check("a saved checkpoint loads back", roundTrip),
        Check("a checkpoint advanced in a refused unit does not move", refusedUnit),
        Check("two writers of one checkpoint conflict", twoWriters),
        Check("a checkpoint's history is truncated as it grows", truncatedHistory),
    ]

    static func fresh(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        try c.requireEqual(try await Checkpoint.load("reader", from: store).cursor, .start, "cursor")
    }

    static func roundTrip(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        var checkpoint = try await Checkpoint.load("reader", from: store)
        try await checkpoint.save(LogCursor(position: 42), to: store)
        try await checkpoint.save(LogCursor(position: 99), to: store)
        try c.requireEqual(try await Checkpoint.load("reader", from: store).cursor, LogCursor(position: 99), "cursor after two saves")
        try c.requireEqual(try await Checkpoint.load("other", from: store).cursor, .start, "another reader's cursor")
        // A server store's cursor: a transaction and a position, each up to 2^64 - 1.
        for cursor in [LogCursor(transaction: 7_000_000_123, position: 12), LogCursor(transaction: .max, position: .max - 1)] {
            try await checkpoint.save(cursor, to: store)
            try c.requireEqual(try await Checkpoint.load("reader", from: store).cursor, cursor, "cursor \(cursor)")
        }
    }

    static func refusedUnit(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let taken = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "taken")
        try await store.append(EventStoreContract.events(taken), to: taken, expecting: .noStream)
        var checkpoint = try await Checkpoint.load("reader", from: store)
        var unit = UnitOfWork()
        unit.add(StreamAppend(stream: taken, events: EventStoreContract.events(taken), expected: .noStream))
        try checkpoint.advance(to: LogCursor(position: 7), in: &unit)
        try await c.requireError("a unit with a conflicting append") {
            try await unit.commit(to: store)
        } matches: { $0 is EventStoreError }
        try c.requireEqual(try await Checkpoint.load("reader", from: store).cursor, .start, "cursor after the refused unit")
    }

    static func truncatedHistory(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        var checkpoint = try await Checkpoint.load("reader", from: store)
        for position in 1...(2 * Checkpoint.truncationInterval + 1) { try await checkpoint.save(LogCursor(position: UInt64(position)), to: store) }
        let visible = try await store.read(StreamID(origin: Checkpoint.origin, aggregateType: "Checkpoint", aggregateID: "reader"))
        try c.require(visible.count <= Checkpoint.truncationInterval + 1, "\(visible.count) checkpoint events visible")
        try c.requireEqual(
            try await Checkpoint.load("reader", from: store).cursor, LogCursor(position: UInt64(2 * Checkpoint.truncationInterval + 1)), "cursor")
    }

    static func twoWriters(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        var first = try await Checkpoint.load("reader", from: store)
        var second = try await Checkpoint.load("reader", from: store)
        try await first.save(LogCursor(position: 5), to: store)
        try await c.requireError("a stale writer's save") {
            try await second.save(LogCursor(position: 6), to: store)
        } matches: { if case .conflict = $0 as? EventStoreError { true } else { false } }
        try c.requireEqual(try await Checkpoint.load("reader", from: store).cursor, LogCursor(position: 5), "cursor")
    }
}
