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
        Check("names that differ only in Unicode normalization are different streams in one unit", normalizationTwins),
        Check("one refused append stores none of the others", noneStored),
        Check("appends to one stream in one unit follow each other", sameStreamTwice),
        Check("a retried unit is an idempotent no-op", idempotentRetry),
        Check("of concurrent units sharing a stream exactly one commits", concurrentUnits),
        Check("an append that repeats an earlier one of its unit is an idempotent no-op", repeatedInOneUnit),
        Check("of several refused appends, the unit's error is the first one's", firstRefusalIsTheError),
        Check("retries of stored events in one unit report the stream's version", retriesReportTheVersion),
        Check("an event id stored at another version, below a truncation, is no retry", hiddenIDAtAnotherVersion),
    ]

    static func hiddenIDAtAnotherVersion(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let stored = events("s", count: 3)
        try await store.append([StreamAppend(stream: stream("s"), events: stored, expected: .noStream)])
        try await store.truncate(stream("s"), before: 3)
        // The third event's id again, at version 1 (which holds the first event, hidden). An
        // adapter read "from version 1", got the first visible event, the third, and took this
        // for a retry of it.
        var again = events("s")
        again[0].id = stored[2].id
        try await c.requireError("the third event's id at version 1, in a unit") {
            try await store.append([
                StreamAppend(stream: stream("t"), events: events("t"), expected: .noStream),
                StreamAppend(stream: stream("s"), events: again, expected: .any),
            ])
        } matches: { ($0 as? EventStoreError) == .conflict(stream: stream("s"), expected: .exact(0), actual: 3) }
        try c.requireEqual(try await store.read(stream("t")), [], "events of t")
    }

    static func firstRefusalIsTheError(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let a = events("a", count: 3)
        try await store.append([StreamAppend(stream: stream("a"), events: a, expected: .noStream)])
        try await store.append([StreamAppend(stream: stream("b"), events: events("b", count: 2), expected: .noStream)])
        // The first is stale (another event holds version 2 of a), the second expects b empty.
        // (An adapter that decided the second before the first reported b's conflict.)
        try await c.requireError("a unit with two refused appends") {
            try await store.append([
                StreamAppend(stream: stream("a"), events: events("a", from: 2), expected: .any),
                StreamAppend(stream: stream("b"), events: events("b", from: 3), expected: .noStream),
            ])
        } matches: { ($0 as? EventStoreError) == .conflict(stream: stream("a"), expected: .exact(1), actual: 3) }
        // The same stream twice: the first append is fine, the second stale.
        try await c.requireError("a unit whose second append to a stream is stale") {
            try await store.append([
                StreamAppend(stream: stream("a"), events: events("a", from: 4), expected: .exact(3)),
                StreamAppend(stream: stream("a"), events: events("a", from: 2), expected: .any),
                StreamAppend(stream: stream("b"), events: events("b", from: 1), expected: .exact(7)),
            ])
        } matches: { ($0 as? EventStoreError) == .conflict(stream: stream("a"), expected: .exact(1), actual: 4) }
        try c.requireEqual(try await store.read(stream("a")), a, "events of a")
    }

    static func retriesReportTheVersion(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let first = events("a", count: 3)
        let second = events("a", from: 4, count: 3)
        try await store.append([StreamAppend(stream: stream("a"), events: first, expected: .noStream)])
        try await store.append([StreamAppend(stream: stream("a"), events: second, expected: .exact(3))])
        let next = events("a", from: 7)
        // Both retries repeat stored events below the stream's version 6; the second's
        // expectation does not hold at its events' start. (An adapter took the first retry's
        // last number, 3, for the stream's version, and reported it for the second.)
        let results = try await store.append([
            StreamAppend(stream: stream("a"), events: first, expected: .any),
            StreamAppend(stream: stream("a"), events: Array(first[1...]), expected: .noStream),
            StreamAppend(stream: stream("a"), events: next, expected: .exact(6)),
        ])
        try c.requireEqual(
            results,
            [AppendResult(version: 6, wasDuplicate: true), AppendResult(version: 6, wasDuplicate: true), AppendResult(version: 7, wasDuplicate: false)],
            "results")
        try c.requireEqual(try await store.read(stream("a")), first + second + next, "events of a")
    }

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

    static func normalizationTwins(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        // `café` spelled NFC and NFD (see EventStoreContract): equal to `==`, different bytes.
        let nfc = stream(EventStoreContract.composed)
        let nfd = stream(EventStoreContract.decomposed)
        let nfcEvents = EventStoreContract.events(nfc, count: 2)
        let nfdEvents = EventStoreContract.events(nfd)
        let results = try await store.append([
            StreamAppend(stream: nfc, events: nfcEvents, expected: .noStream),
            StreamAppend(stream: nfd, events: nfdEvents, expected: .noStream),
        ])
        try c.requireEqual(results.map(\.version), [2, 1], "versions after the unit")
        try c.requireEqual(try await store.read(nfc).map(\.id), nfcEvents.map(\.id), "events of the NFC name")
        try c.requireEqual(try await store.read(nfd).map(\.id), nfdEvents.map(\.id), "events of the NFD name")
        // A stale expectation on the second name: its own conflict, and nothing of the unit stored.
        try await c.requireError("a unit whose append to the NFD name expects a version it does not have") {
            try await store.append([
                StreamAppend(stream: nfc, events: EventStoreContract.events(nfc, from: 3), expected: .exact(2)),
                StreamAppend(stream: nfd, events: EventStoreContract.events(nfd, from: 3), expected: .exact(2)),
            ])
        } matches: { error in
            guard case .conflict(let stream, let expected, let actual)? = error as? EventStoreError else { return false }
            return EventStoreContract.hasBytes(stream.aggregateID, of: EventStoreContract.decomposed) && expected == .exact(2) && actual == 1
        }
        try c.requireEqual(try await store.read(nfc).count, 2, "events of the NFC name after the refused unit")
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

    /// One aggregate staged twice in a unit of work: its second append repeats the first's
    /// events, which are stored once the unit commits, so it is a retry (the port's rule
    /// "checked against the streams as the appends before it leave them"). And a unit that
    /// appends to one stream twice, retried whole: both appends are retries.
    static func repeatedInOneUnit(_ store: any TransactionalEventStore, _ c: Check.Context) async throws {
        let a = events("a", count: 2)
        let staged = StreamAppend(stream: stream("a"), events: a, expected: .noStream)
        let results = try await store.append([staged, staged])
        try c.requireEqual(results, [AppendResult(version: 2, wasDuplicate: false), AppendResult(version: 2, wasDuplicate: true)], "results")
        try c.requireEqual(try await store.read(stream("a")), a, "events of a")

        let first = events("b", count: 2)
        let second = events("b", from: 3)
        let unit = [
            StreamAppend(stream: stream("b"), events: first, expected: .noStream),
            StreamAppend(stream: stream("b"), events: second, expected: .exact(2)),
        ]
        try await store.append(unit)
        let again = try await store.append(unit)
        try c.requireEqual(again, [AppendResult(version: 3, wasDuplicate: true), AppendResult(version: 3, wasDuplicate: true)], "the unit retried")
        try c.requireEqual(try await store.read(stream("b")), first + second, "events of b")

        // The repeat's own expectation holds only after the first append: still a retry. And a
        // retry's version is its stream's as the appends before it leave it, whatever follows.
        let d = events("d", count: 2)
        let repeated = try await store.append([
            StreamAppend(stream: stream("d"), events: d, expected: .noStream),
            StreamAppend(stream: stream("d"), events: d, expected: .streamExists),
            StreamAppend(stream: stream("d"), events: d, expected: .exact(2)),
            StreamAppend(stream: stream("d"), events: events("d", from: 3), expected: .exact(2)),
        ])
        try c.requireEqual(repeated.map(\.version), [2, 2, 2, 3], "versions of a unit repeating its first append")
        try c.requireEqual(repeated.map(\.wasDuplicate), [false, true, true, false], "which appends were retries")
        try c.requireEqual(try await store.read(stream("d")).count, 3, "events of d")

        // Two different events at one version in one unit: a conflict, and nothing stored.
        try await c.requireError("a unit appending two different events at version 1 of one stream") {
            try await store.append([
                StreamAppend(stream: stream("c"), events: events("c"), expected: .noStream),
                StreamAppend(stream: stream("c"), events: events("c"), expected: .noStream),
            ])
        } matches: { ($0 as? EventStoreError) == .conflict(stream: stream("c"), expected: .noStream, actual: 1) }
        try c.requireEqual(try await store.read(stream("c")), [], "events of c after the refused unit")
    }
}
