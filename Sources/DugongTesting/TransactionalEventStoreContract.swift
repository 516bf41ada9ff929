import Dugong
import Foundation

/// The contract suite of the ``Dugong/TransactionalEventStore`` port (units of work). Run it
/// beside ``EventStoreContract``:
///
/// ```swift
/// @Test(arguments: TransactionalEventStoreContract.checks)
/// func myUnits(_ check: TransactionalEventStoreContract.Check) async throws {
///     try await check.run { MyEventStore() }
/// }
/// ```
public enum TransactionalEventStoreContract {
    public typealias Check = ContractCheck<any TransactionalEventStore>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("appends to several streams are all stored", allStored),
        Check("one refused append stores none of the others", noneStored),
        Check("appends to one stream in one unit follow each other", sameStreamTwice),
        Check("a retried unit is an idempotent no-op", idempotentRetry),
        Check("of concurrent units sharing a stream exactly one commits", concurrentUnits),
    ]

    static func stream(_ id: String) -> StreamID {
        StreamID(origin: "contract", aggregateType: "Account", aggregateID: id)
    }

    static func events(_ id: String, from first: Int = 1, count: Int = 1) -> [SerializedDomainEvent] {
        EventStoreContract.events(stream(id), from: first, count: count)
    }

    static func allStored(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let a = events("a", count: 2)
        let b = events("b", count: 3)
        let results = try await store.append([
            StreamAppend(stream: stream("a"), events: a, expected: .noStream),
            StreamAppend(stream: stream("b"), events: b, expected: .noStream),
        ])
        try c.requireEqual(results, [AppendResult(version: 2, wasDuplicate: false), AppendResult(version: 3, wasDuplicate: false)], "results")
        try c.requireEqual(try await store.read(stream("a")), a, "events of a")
        try c.requireEqual(try await store.read(stream("b")), b, "events of b")
    }

    static func noneStored(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        try await store.append(events("b"), to: stream("b"), expecting: .noStream)
        try await c.requireError("a unit whose second append conflicts") {
            try await store.append([
                StreamAppend(stream: stream("a"), events: events("a"), expected: .noStream),
                StreamAppend(stream: stream("b"), events: events("b", from: 2), expected: .exact(5)),
            ])
        } matches: { ($0 as? EventStoreError) == .conflict(stream: stream("b"), expected: .exact(5), actual: 1) }
        try c.requireEqual(try await store.read(stream("a")), [], "events of a after the refused unit")
        try c.requireEqual(try await store.read(stream("b")).count, 1, "events of b after the refused unit")
        let ids = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: nil)
        try c.requireEqual(ids, ["b"], "aggregate ids after the refused unit")
    }

    static func sameStreamTwice(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let first = events("a", count: 2)
        let second = events("a", from: 3, count: 1)
        let results = try await store.append([
            StreamAppend(stream: stream("a"), events: first, expected: .noStream),
            StreamAppend(stream: stream("a"), events: second, expected: .exact(2)),
        ])
        try c.requireEqual(results.map(\.version), [2, 3], "versions after each append")
        try c.requireEqual(try await store.read(stream("a")), first + second, "events of a")
    }

    static func idempotentRetry(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let unit = [
            StreamAppend(stream: stream("a"), events: events("a", count: 2), expected: .noStream),
            StreamAppend(stream: stream("b"), events: events("b"), expected: .noStream),
        ]
        try await store.append(unit)
        let again = try await store.append(unit)
        try c.requireEqual(again, [AppendResult(version: 2, wasDuplicate: true), AppendResult(version: 1, wasDuplicate: true)], "retry")
        try c.requireEqual(try await store.read(stream("a")).count, 2, "events of a after the retry")
    }

    static func concurrentUnits(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        try await store.append(events("shared"), to: stream("shared"), expecting: .noStream)
        let winners = await withTaskGroup(of: Int?.self) { group in
            for index in 0..<20 {
                group.addTask {
                    do {
                        try await store.append([
                            StreamAppend(stream: stream("own-\(index)"), events: events("own-\(index)"), expected: .noStream),
                            StreamAppend(stream: stream("shared"), events: events("shared", from: 2), expected: .exact(1)),
                        ])
                        return index
                    } catch {
                        return nil
                    }
                }
            }
            return await group.reduce(into: [Int]()) { if let index = $1 { $0.append(index) } }
        }
        try c.requireEqual(winners.count, 1, "units that committed")
        for index in 0..<20 {
            let own = try await store.read(stream("own-\(index)"))
            try c.requireEqual(own.count, winners.contains(index) ? 1 : 0, "events of own-\(index)")
        }
    }
}
