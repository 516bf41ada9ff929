import Dugong
import Foundation

/// The contract of ``Dugong/GlobalEventLog``: what projections, consumers and the message relay
/// rely on to see every committed event once, in one order, on every adapter.
public enum GlobalEventLogContract {
    public typealias Store = any TransactionalEventStore & GlobalEventLog
    public typealias Check = ContractCheck<Store>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("pages from each event's next cursor deliver every commit once, in commit order", everyEventOnceInOrder),
        Check("an append's cursor is its last event's", appendCursors),
        Check("the end cursor is past every readable event and before every later one", endCursor),
        Check("a wait for events returns when one is committed", waiting),
        Check("a cursor past the store's transactions reads nothing", laterTransaction),
        Check("once the end cursor reaches the committed end, every earlier commit is readable", committedEnd),
    ]

    static let streams = (1...3).map { StreamID(origin: "contract", aggregateType: "Account", aggregateID: "log-\($0)") }

    /// Returns once every event up to `cursor` is readable: once ``GlobalEventLog/endCursor()``
    /// is past it (at once on an embedded store; on a server store once every transaction older
    /// than the event's has ended, which other clients' transactions may delay).
    public static func settle(_ store: Store, past cursor: LogCursor?, file: StaticString = #fileID, line: UInt = #line) async throws {
        guard let cursor else { return }
        let deadline = ContinuousClock.now + .seconds(30)
        while try await store.endCursor() <= cursor {
            guard ContinuousClock.now < deadline else {
                throw ContractViolation(check: "settle", message: "the event at \(cursor) was not readable within 30 s", location: "\(file):\(line)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Commits of one stream, then of two streams in one unit of work, interleaved, until all are
    /// readable; returns the (stream, sequence number) of every event in commit order.
    static func commitSome(_ store: Store, rounds: Int = 4) async throws -> [(StreamID, Int)] {
        var order: [(StreamID, Int)] = []
        var versions = [Int](repeating: 0, count: streams.count)
        var last: LogCursor?
        for round in 0..<rounds {
            let single = round % streams.count
            let count = round % 3 + 1
            try await store.append(
                EventStoreContract.events(streams[single], from: versions[single] + 1, count: count), to: streams[single],
                expecting: .exact(versions[single]))
            for offset in 1...count { order.append((streams[single], versions[single] + offset)) }
            versions[single] += count
            var unit = UnitOfWork()
            for index in [(round + 1) % streams.count, (round + 2) % streams.count] {
                unit.add(StreamAppend(
                    stream: streams[index], events: EventStoreContract.events(streams[index], from: versions[index] + 1),
                    expected: .exact(versions[index])))
                versions[index] += 1
                order.append((streams[index], versions[index]))
            }
            last = try await unit.commit(to: store).compactMap(\.cursor).max()
        }
        try await settle(store, past: last)
        return order
    }

    /// The log from `cursor` on, in pages of `page`, each read from the last event's `next`.
    static func readAll(_ store: Store, from cursor: LogCursor = .start, page: Int) async throws -> [RecordedEvent] {
        var all: [RecordedEvent] = []
        var next = cursor
        while true {
            let batch = try await store.events(from: next, maxCount: page)
            guard let last = batch.last else { return all }
            guard batch.count <= page else {
                throw ContractViolation(check: "paging", message: "\(batch.count) events for maxCount \(page)", location: #fileID)
            }
            all += batch
            next = last.next
        }
    }

    static func everyEventOnceInOrder(_ store: Store, _ c: Check.Context) async throws {
        let order = try await commitSome(store)
        for page in [1, 2, 5, 1000] {
            let read = try await readAll(store, page: page).filter { $0.event.origin == "contract" }
            try c.requireEqual(
                read.map { "\($0.event.aggregateID)#\($0.event.sequenceNumber)" }, order.map { "\($0.0.aggregateID)#\($0.1)" },
                "events in pages of \(page)")
            try c.require(zip(read, read.dropFirst()).allSatisfy { $0.cursor < $1.cursor }, "cursors increase (pages of \(page))")
            try c.require(read.allSatisfy { $0.cursor < $0.next }, "each event's next cursor is past it")
        }
        let again = try await readAll(store, page: 3)
        try c.requireEqual(again.map(\.cursor), try await readAll(store, page: 7).map(\.cursor), "cursors never change")
        // The largest page: the rest of the log (an adapter added it to the start and trapped).
        let rest = try await store.events(from: again[1].cursor, maxCount: .max).filter { $0.event.origin == "contract" }
        try c.requireEqual(rest.map(\.cursor), Array(again.dropFirst().filter { $0.event.origin == "contract" }.map(\.cursor)), "a page of Int.max events")
    }

    static func appendCursors(_ store: Store, _ c: Check.Context) async throws {
        let stream = streams[0]
        let first = try await store.append(EventStoreContract.events(stream, count: 3), to: stream, expecting: .noStream)
        let second = try await store.append(EventStoreContract.events(stream, from: 4), to: stream, expecting: .exact(3))
        try await settle(store, past: second.cursor)
        let read = try await readAll(store, page: 10).filter { $0.event.origin == "contract" }
        try c.requireEqual(read.count, 4, "events (\(read.map { "\($0.event.aggregateID)#\($0.event.sequenceNumber)@\($0.cursor) \($0.event.id)" }), appended at \(first.cursor.map(String.init(describing:)) ?? "-") and \(second.cursor.map(String.init(describing:)) ?? "-"))")
        try c.requireEqual(first.cursor, read[2].cursor, "the first append's cursor")
        try c.requireEqual(second.cursor, read[3].cursor, "the second append's cursor")
        let retry = try await store.append(EventStoreContract.events(stream, from: 4).map {
            var event = $0
            event.id = read[3].event.id
            return event
        }, to: stream, expecting: .exact(3))
        try c.require(retry.wasDuplicate && retry.cursor == nil, "an idempotent retry has no cursor: \(retry)")
    }

    static func endCursor(_ store: Store, _ c: Check.Context) async throws {
        let empty = try await store.endCursor()
        try c.requireEqual(try await store.events(from: empty, maxCount: 10).count, 0, "events from an empty store's end")
        _ = try await commitSome(store, rounds: 2)
        let end = try await store.endCursor()
        try c.requireEqual(try await store.events(from: end, maxCount: 10).count, 0, "events from the end")
        let before = try await readAll(store, page: 100)
        try c.require(before.allSatisfy { $0.cursor < end }, "every readable event is before the end")
        let stream = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "late")
        let result = try await store.append(EventStoreContract.events(stream), to: stream, expecting: .noStream)
        try await settle(store, past: result.cursor)
        let after = try await store.events(from: end, maxCount: 10)
        try c.requireEqual(after.map(\.event.aggregateID), ["late"], "events from the old end")
        try c.require(after[0].cursor >= end && after[0].cursor == result.cursor, "the new event's cursor: \(after[0].cursor)")
    }

    static func waiting(_ store: Store, _ c: Check.Context) async throws {
        let end = try await store.endCursor()
        let stream = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "awaited")
        let returned = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await store.waitForEvents(from: end)
                return true
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(50))
                try await store.append(EventStoreContract.events(stream), to: stream, expecting: .noStream)
                try await Task.sleep(for: .seconds(20))
                return false
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        try c.require(returned, "the wait did not return within 20 s of the commit")
        try c.requireEqual(try await store.events(from: end, maxCount: 10).map(\.event.aggregateID), ["awaited"], "the awaited event")
    }

    static func committedEnd(_ store: Store, _ c: Check.Context) async throws {
        let stream = StreamID(origin: "contract", aggregateType: "Committed", aggregateID: "end")
        var cursors: [LogCursor?] = []
        for version in 1...3 {
            cursors.append(try await store.append(EventStoreContract.events(stream, from: version), to: stream, expecting: .exact(version - 1)).cursor)
        }
        let end = try await store.committedEnd()
        for cursor in cursors {
            try c.require(cursor.map { $0 < end } == true, "an append's cursor \(cursor.map(String.init(describing:)) ?? "-") is not before the committed end \(end)")
        }
        try await store.waitForCommittedEvents()
        try c.require(try await store.endCursor() >= end, "the wait returned before the end cursor reached the committed end")
        let read = try await readAll(store, page: 100).filter { $0.event.aggregateType == "Committed" }
        try c.requireEqual(read.map(\.event.sequenceNumber), [1, 2, 3], "the committed events, readable")
    }

    static func laterTransaction(_ store: Store, _ c: Check.Context) async throws {
        _ = try await commitSome(store, rounds: 1)
        let later = LogCursor(transaction: .max, position: 0)
        try c.requireEqual(try await store.events(from: later, maxCount: 10).count, 0, "events from a later transaction")
        try c.require(try await store.endCursor() <= later, "the end cursor is not past every transaction")
    }
}
