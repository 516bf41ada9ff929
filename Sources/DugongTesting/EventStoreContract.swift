import Dugong
import Foundation

/// The contract suite of the ``Dugong/EventStore`` port. Every adapter, ours or yours, runs it:
///
/// ```swift
/// @Test(arguments: EventStoreContract.checks)
/// func myStore(_ check: ContractCheck<any EventStore>) async throws {
///     try await check.run { try await MyEventStore.temporary() }
/// }
/// ```
public enum EventStoreContract {
    public typealias Check = ContractCheck<any EventStore>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("a stream without events reads as empty", emptyReads),
        Check("events read back in sequence order across appends", ordering),
        Check("reading from a sequence number includes it", fromInclusive),
        Check("the last event is the stream's last", lastEvent),
        Check("truncating hides earlier events and appends continue", truncation),
        Check("truncating before version 0 or past the version + 1 is refused", truncationBounds),
        Check("every envelope field round-trips", envelopeRoundTrip),
        Check("re-appending stored events is an idempotent no-op", idempotentReappend),
        Check("a different event at a stored sequence number is a conflict", conflictingSequenceNumber),
        Check("a partly stored append is a partial duplicate", partialDuplicate),
        Check("expected version 'any'", expectedAny),
        Check("expected version 'no stream'", expectedNoStream),
        Check("expected version 'stream exists'", expectedStreamExists),
        Check("expected version 'exact'", expectedExact),
        Check("malformed appends are refused and write nothing", malformedAppends),
        Check("of 100 concurrent appends at one sequence number exactly one wins", concurrentAppends),
        Check("tenants are isolated", tenantIsolation),
        Check("names that differ only in Unicode normalization are different streams", normalizationTwins),
        Check("aggregate ids are listed once per aggregate", distinctAggregateIDs),
        Check("random appends, retries, truncations and reads agree with a model of the contract", randomOperationsAgreeWithTheModel),
    ]

    // MARK: Fixtures

    static let account = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "a-1")

    /// `count` events of `stream` numbered from `first`, each with a fresh id.
    static func events(_ stream: StreamID, from first: Int = 1, count: Int = 1, type: String = "Deposited")
        -> [SerializedDomainEvent]
    {
        (0..<count).map { offset in
            SerializedDomainEvent(
                origin: stream.origin, aggregateType: stream.aggregateType, eventType: type, version: 1,
                id: UUID(), aggregateID: stream.aggregateID,
                payload: Data(#"{"amount":\#(first + offset)}"#.utf8), sequenceNumber: first + offset,
                timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(first + offset)),
                tenantID: stream.tenantID)
        }
    }

    static func isConflict(_ stream: StreamID, expected: ExpectedVersion, actual: Int) -> (any Error) -> Bool {
        { error in
            (error as? EventStoreError) == .conflict(stream: stream, expected: expected, actual: actual)
        }
    }

    static func isInvalidAppend(_ error: any Error) -> Bool {
        if case .invalidAppend = error as? EventStoreError { return true }
        return false
    }

    // MARK: Checks

    static func emptyReads(_ store: any EventStore, _ c: Check.Context) async throws {
        try c.requireEqual(try await store.read(account), [], "read of an unknown stream")
        try c.requireEqual(try await store.read(account, from: 5), [], "read from 5 of an unknown stream")
        let ids = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: nil)
        try c.requireEqual(ids, [], "aggregate ids of an unused type")
    }

    static func ordering(_ store: any EventStore, _ c: Check.Context) async throws {
        let first = events(account, from: 1, count: 3)
        let second = events(account, from: 4, count: 2)
        try await store.append(first, to: account, expecting: .noStream)
        let result = try await store.append(second, to: account, expecting: .exact(3))
        try c.requireEqual(result, AppendResult(version: 5, wasDuplicate: false), "result of the second append")
        try c.requireEqual(try await store.read(account), first + second, "events read")
    }

    static func fromInclusive(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 5)
        try await store.append(stored, to: account, expecting: .noStream)
        try c.requireEqual(try await store.read(account, from: 3), Array(stored[2...]), "read from 3")
        try c.requireEqual(try await store.read(account, from: 5), [stored[4]], "read from the last")
        try c.requireEqual(try await store.read(account, from: 6), [], "read past the end")
        try c.requireEqual(try await store.read(account, from: 1), stored, "read from 1")
        try c.requireEqual(try await store.read(account, from: 0), stored, "read from 0")
    }

    static func lastEvent(_ store: any EventStore, _ c: Check.Context) async throws {
        try c.requireEqual(try await store.lastEvent(of: account), nil, "last event of an unknown stream")
        let stored = events(account, count: 4)
        try await store.append(stored, to: account, expecting: .noStream)
        try c.requireEqual(try await store.lastEvent(of: account), stored.last, "last event")
    }

    static func truncation(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 5)
        try await store.append(stored, to: account, expecting: .noStream)
        try await store.truncate(account, before: 4)
        try c.requireEqual(try await store.read(account), Array(stored[3...]), "events after truncating before 4")
        try c.requireEqual(try await store.read(account, from: 2), Array(stored[3...]), "events from 2 after truncating before 4")
        try c.requireEqual(try await store.lastEvent(of: account), stored[4], "last event")
        let next = events(account, from: 6)
        let result = try await store.append(next, to: account, expecting: .exact(5))
        try c.requireEqual(result.version, 6, "version after appending to a truncated stream")
        try c.requireEqual(try await store.read(account), Array(stored[3...]) + next, "events after the append")
    }

    static func truncationBounds(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 3)
        try await store.append(stored, to: account, expecting: .noStream)
        for before in [0, -1, Int.min, 5, Int.max] {
            try await c.requireError("truncating a stream at version 3 before \(before)") {
                try await store.truncate(account, before: before)
            } matches: { _ in true }  // each adapter's own error
        }
        try c.requireEqual(try await store.read(account), stored, "events after the refused truncations")
        let next = events(account, from: 4)
        try await store.append(next, to: account, expecting: .exact(3))
        try c.requireEqual(try await store.read(account), stored + next, "events appended after the refused truncations")
        // The bounds themselves: before 1 hides nothing, before the version + 1 everything (and
        // the next append is read).
        try await store.truncate(account, before: 1)
        try c.requireEqual(try await store.read(account), stored + next, "events after truncating before 1")
        try await store.truncate(account, before: 5)
        try c.requireEqual(try await store.read(account), [], "events after truncating before the version + 1")
        // Every event hidden (a delete): no last event, the version kept (a reader of the
        // framework's own streams saves after it; it tried 0, refused for ever).
        try c.requireEqual(try await store.lastEvent(of: account), nil, "last event after truncating everything")
        try c.requireEqual(try await store.streamVersion(of: account), 4, "version after truncating everything")
        let last = events(account, from: 5)
        try await store.append(last, to: account, expecting: .exact(4))
        try c.requireEqual(try await store.read(account), last, "events appended after truncating everything")
        // A stream without events: before 1 only.
        let empty = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "a-empty")
        try await store.truncate(empty, before: 1)
        try await c.requireError("truncating a stream without events before 2") {
            try await store.truncate(empty, before: 2)
        } matches: { _ in true }
        let first = events(empty)
        try c.requireEqual(try await store.streamVersion(of: empty), 0, "version of a stream without events")
        try await store.append(first, to: empty, expecting: .noStream)
        try c.requireEqual(try await store.read(empty), first, "events of the stream that had none")
        try c.requireEqual(try await store.streamVersion(of: empty), 1, "version of a stream with one event")
    }

    static func envelopeRoundTrip(_ store: any EventStore, _ c: Check.Context) async throws {
        let stream = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "ünïcødé/1 ✓", tenantID: "tenant-α")
        let full = SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Opened", version: 3,
            id: UUID(), aggregateID: stream.aggregateID,
            payload: Data(#"{"owner":"Zoë","limits":[1,2.5,null],"nested":{"ok":true}}"#.utf8),
            sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1_732_862_695_123),
            tenantID: stream.tenantID, correlationID: "corr-42", triggeredByEventID: UUID(),
            triggeredByUserID: "user-7",
            metadata: ["source": "web", "attempt": 2, "ratio": 0.5, "tags": ["a", "b"], "trace": ["id": "x"], "none": nil])
        let bare = SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Pinged", version: 1,
            id: UUID(), aggregateID: stream.aggregateID, payload: nil, sequenceNumber: 2,
            timestamp: Date(millisecondsSince1970: 0), tenantID: stream.tenantID)
        try await store.append([full, bare], to: stream, expecting: .noStream)
        let read = try await store.read(stream)
        try c.requireEqual(read.count, 2, "events read")
        for (actual, expected) in zip(read, [full, bare]) {
            try c.requireEqual(actual.origin, expected.origin, "origin")
            try c.requireEqual(actual.aggregateType, expected.aggregateType, "aggregate type")
            try c.requireEqual(actual.eventType, expected.eventType, "event type")
            try c.requireEqual(actual.version, expected.version, "version")
            try c.requireEqual(actual.id, expected.id, "id")
            try c.requireEqual(actual.aggregateID, expected.aggregateID, "aggregate id")
            try c.requireEqual(actual.payload, expected.payload, "payload bytes")
            try c.requireEqual(actual.sequenceNumber, expected.sequenceNumber, "sequence number")
            try c.requireEqual(
                actual.timestamp.millisecondsSince1970, expected.timestamp.millisecondsSince1970, "timestamp (ms)")
            try c.requireEqual(actual.tenantID, expected.tenantID, "tenant id")
            try c.requireEqual(actual.correlationID, expected.correlationID, "correlation id")
            try c.requireEqual(actual.triggeredByEventID, expected.triggeredByEventID, "triggered-by event id")
            try c.requireEqual(actual.triggeredByUserID, expected.triggeredByUserID, "triggered-by user id")
            try c.requireEqual(actual.metadata, expected.metadata, "metadata")
            try c.requireEqual(actual, expected, "whole event")
        }
    }

    static func idempotentReappend(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 3)
        try await store.append(stored, to: account, expecting: .noStream)
        for expected in [ExpectedVersion.noStream, .any, .exact(0), .exact(3), .streamExists] {
            let again = try await store.append(stored, to: account, expecting: expected)
            try c.requireEqual(again, AppendResult(version: 3, wasDuplicate: true), "re-append expecting \(expected)")
        }
        let tail = try await store.append(Array(stored[1...]), to: account, expecting: .any)
        try c.requireEqual(tail, AppendResult(version: 3, wasDuplicate: true), "re-append of the last two")
        try c.requireEqual(try await store.read(account), stored, "events after re-appends")
    }

    static func conflictingSequenceNumber(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 2)
        try await store.append(stored, to: account, expecting: .noStream)
        let rival = events(account, from: 2, count: 1)
        try await c.requireError("a different event at sequence number 2") {
            try await store.append(rival, to: account, expecting: .any)
        } matches: { isConflict(account, expected: .exact(1), actual: 2)($0) }
        try await c.requireError("a different event at sequence number 1, expecting version 0") {
            try await store.append(events(account), to: account, expecting: .exact(0))
        } matches: { isConflict(account, expected: .exact(0), actual: 2)($0) }
        try c.requireEqual(try await store.read(account), stored, "events after the conflicts")
    }

    static func partialDuplicate(_ store: any EventStore, _ c: Check.Context) async throws {
        let stored = events(account, count: 2)
        try await store.append(stored, to: account, expecting: .noStream)
        let overlapping = stored + events(account, from: 3, count: 1)
        try await c.requireError("stored events followed by a new one") {
            try await store.append(overlapping, to: account, expecting: .any)
        } matches: {
            ($0 as? EventStoreError) == .partialDuplicate(stream: account, storedCount: 2, appendedCount: 3)
        }
        try c.requireEqual(try await store.read(account), stored, "events after the partial duplicate")
    }

    static func expectedAny(_ store: any EventStore, _ c: Check.Context) async throws {
        try await store.append(events(account, from: 1), to: account, expecting: .any)
        let result = try await store.append(events(account, from: 2), to: account, expecting: .any)
        try c.requireEqual(result.version, 2, "version after two appends expecting any")
    }

    static func expectedNoStream(_ store: any EventStore, _ c: Check.Context) async throws {
        try await store.append(events(account, from: 1), to: account, expecting: .noStream)
        try await c.requireError("expecting no stream on a stream with one event") {
            try await store.append(events(account, from: 2), to: account, expecting: .noStream)
        } matches: { isConflict(account, expected: .noStream, actual: 1)($0) }
        try c.requireEqual(try await store.read(account).count, 1, "events stored")
    }

    static func expectedStreamExists(_ store: any EventStore, _ c: Check.Context) async throws {
        try await c.requireError("expecting the stream to exist on an empty stream") {
            try await store.append(events(account, from: 1), to: account, expecting: .streamExists)
        } matches: { isConflict(account, expected: .streamExists, actual: 0)($0) }
        try c.requireEqual(try await store.read(account), [], "events after the refused append")
        try await store.append(events(account, from: 1), to: account, expecting: .noStream)
        let result = try await store.append(events(account, from: 2), to: account, expecting: .streamExists)
        try c.requireEqual(result.version, 2, "version after appending to an existing stream")
    }

    static func expectedExact(_ store: any EventStore, _ c: Check.Context) async throws {
        try await store.append(events(account, from: 1, count: 2), to: account, expecting: .exact(0))
        try await store.append(events(account, from: 3), to: account, expecting: .exact(2))
        try await c.requireError("expecting version 5 on a stream at 3") {
            try await store.append(events(account, from: 4), to: account, expecting: .exact(5))
        } matches: { isConflict(account, expected: .exact(5), actual: 3)($0) }
        try c.requireEqual(try await store.read(account).count, 3, "events stored")
    }

    static func malformedAppends(_ store: any EventStore, _ c: Check.Context) async throws {
        let other = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "a-2")
        try await c.requireError("an empty append") {
            try await store.append([], to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        try await c.requireError("an event of another stream") {
            try await store.append(events(other), to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        // Its name differs from the target's only in Unicode normalization: another stream.
        let composed = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "caf\u{E9}")
        let decomposed = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "cafe\u{301}")
        try await c.requireError("an event of the stream whose name is the target's in another normalization") {
            try await store.append(events(decomposed), to: composed, expecting: .any)
        } matches: { isInvalidAppend($0) }
        try c.requireEqual(try await store.read(composed) + (try await store.read(decomposed)), [], "events of the twins")
        var skipping = events(account, count: 3)
        skipping[2].sequenceNumber = 4
        try await c.requireError("non-contiguous sequence numbers") {
            try await store.append(skipping, to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        try await c.requireError("a gap after the stream's version") {
            try await store.append(events(account, from: 2), to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        try await c.requireError("sequence number 0") {
            try await store.append(events(account, from: 0), to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        var repeated = events(account, count: 2)
        repeated[1].id = repeated[0].id
        try await c.requireError("an event id twice in one append") {
            try await store.append(repeated, to: account, expecting: .any)
        } matches: { isInvalidAppend($0) }
        for second in [Int.max, Int.min] {
            var huge = events(account, count: 2)
            huge[0].sequenceNumber = .max
            huge[1].sequenceNumber = second
            try await c.requireError("sequence numbers \(Int.max), \(second)") {
                try await store.append(huge, to: account, expecting: .any)
            } matches: { isInvalidAppend($0) }
        }
        for seconds in [Double.nan, .infinity, 1e17] {
            var timeless = events(account, count: 2)
            timeless[1].timestamp = Date(timeIntervalSince1970: seconds)
            try await c.requireError("a timestamp of \(seconds) s since 1970") {
                try await store.append(timeless, to: account, expecting: .any)
            } matches: { isInvalidAppend($0) }
        }
        // Names every adapter takes: the embedded store's bounds (an application tested in
        // memory met them first in production).
        for (label, type) in [("an empty event type", ""), ("an event type of 1,025 bytes", String(repeating: "t", count: 1025)), ("a NUL in an event type", "a\u{0}b")] {
            let named = events(account, type: type)
            try await c.requireError(label) {
                try await store.append(named, to: account, expecting: .any)
            } matches: { isInvalidAppend($0) }
        }
        let longest = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "")
        let room = AppendRequest.maximumNameLength - AggregateStreamName.name(of: longest).utf8.count
        for (label, id) in [("a stream name of 1,025 bytes", String(repeating: "i", count: room + 1)), ("a NUL in an aggregate id", "a\u{0}b")] {
            let stream = StreamID(origin: "contract", aggregateType: "Account", aggregateID: id)
            try await c.requireError(label) {
                try await store.append(events(stream), to: stream, expecting: .any)
            } matches: { isInvalidAppend($0) }
        }
        try c.requireEqual(try await store.read(account), [], "events after malformed appends")
        try c.requireEqual(try await store.read(other), [], "events of the other stream")
        // The longest name and type are taken.
        let atTheLimit = StreamID(origin: "contract", aggregateType: "Account", aggregateID: String(repeating: "i", count: room))
        let longType = events(atTheLimit, type: String(repeating: "t", count: AppendRequest.maximumNameLength))
        try await store.append(longType, to: atTheLimit, expecting: .noStream)
        try c.requireEqual(try await store.read(atTheLimit).map(\.eventType), longType.map(\.eventType), "the longest name and type")
    }

    static func concurrentAppends(_ store: any EventStore, _ c: Check.Context) async throws {
        try await store.append(events(account), to: account, expecting: .noStream)
        let contenders = (0..<100).map { _ in events(account, from: 2) }
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for (index, contender) in contenders.enumerated() {
                group.addTask {
                    do {
                        try await store.append(contender, to: account, expecting: .exact(1))
                        return (index, true)
                    } catch {
                        return (index, false)
                    }
                }
            }
            return await group.reduce(into: [(Int, Bool)]()) { $0.append($1) }
        }
        let winners = outcomes.filter(\.1).map(\.0)
        try c.requireEqual(winners.count, 1, "winners among 100 concurrent appends")
        let stored = try await store.read(account)
        try c.requireEqual(stored.count, 2, "events stored")
        try c.requireEqual(stored.last?.id, contenders[winners[0]][0].id, "the stored event is the winner's")
    }

    static func tenantIsolation(_ store: any EventStore, _ c: Check.Context) async throws {
        let untenanted = account
        var red = account
        red.tenantID = "red"
        var blue = account
        blue.tenantID = "blue"
        let redEvents = events(red, count: 2)
        let blueEvents = events(blue, count: 1)
        let plainEvents = events(untenanted, count: 3)
        try await store.append(redEvents, to: red, expecting: .noStream)
        try await store.append(blueEvents, to: blue, expecting: .noStream)
        try await store.append(plainEvents, to: untenanted, expecting: .noStream)
        try c.requireEqual(try await store.read(red), redEvents, "red tenant's events")
        try c.requireEqual(try await store.read(blue), blueEvents, "blue tenant's events")
        try c.requireEqual(try await store.read(untenanted), plainEvents, "untenanted events")
        var green = red
        green.aggregateID = "a-green"
        green.tenantID = "green"
        try await store.append(events(green), to: green, expecting: .noStream)
        let redIDs = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: "red")
        let greenIDs = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: "green")
        let plainIDs = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: nil)
        try c.requireEqual(redIDs, ["a-1"], "red tenant's aggregate ids")
        try c.requireEqual(greenIDs, ["a-green"], "green tenant's aggregate ids")
        try c.requireEqual(plainIDs, ["a-1"], "untenanted aggregate ids")
    }

    /// `café` composed (U+00E9) and decomposed (`e`, U+0301): equal to `String`'s `==`
    /// (canonical equivalence, as `StreamID`'s), with different bytes. Stores tell names apart
    /// by their bytes (the embedded store's names and PostgreSQL's keys are bytes).
    static let composed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    /// Whether `name` has exactly the bytes of `expected`.
    static func hasBytes(_ name: String?, of expected: String) -> Bool {
        name?.utf8.elementsEqual(expected.utf8) == true
    }

    static func normalizationTwins(_ store: any EventStore, _ c: Check.Context) async throws {
        let nfc = StreamID(origin: "contract", aggregateType: "Account", aggregateID: composed)
        let nfd = StreamID(origin: "contract", aggregateType: "Account", aggregateID: decomposed)
        try c.require(composed == decomposed && !hasBytes(composed, of: decomposed) && nfc != nfd, "the two names are canonically equivalent, with different bytes, and two streams")
        let nfcEvents = events(nfc, count: 2)
        let nfdEvents = events(nfd, count: 1)
        try await store.append(nfcEvents, to: nfc, expecting: .noStream)
        let result = try await store.append(nfdEvents, to: nfd, expecting: .noStream)
        try c.requireEqual(result.version, 1, "version of the NFD name's stream after its first append")
        // (Events compare their names by `==` too: compared here by id, and the names by bytes.)
        try c.requireEqual(try await store.read(nfc).map(\.id), nfcEvents.map(\.id), "events of the NFC name")
        let read = try await store.read(nfd)
        try c.requireEqual(read.map(\.id), nfdEvents.map(\.id), "events of the NFD name")
        try c.require(read.allSatisfy { hasBytes($0.aggregateID, of: decomposed) }, "the NFD name's events keep its bytes")
        try c.requireEqual(try await store.lastEvent(of: nfd)?.id, nfdEvents[0].id, "last event of the NFD name")
        let ids = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: nil)
        try c.require(
            ids.count == 2 && ids.contains { hasBytes($0, of: composed) } && ids.contains { hasBytes($0, of: decomposed) },
            "aggregate ids: both names once, got \(ids.map { $0.unicodeScalars.map { String($0.value, radix: 16) } })")
        try await store.truncate(nfc, before: 3)
        try c.requireEqual(try await store.read(nfc), [], "events of the NFC name after truncating it")
        try c.requireEqual(try await store.read(nfd).map(\.id), nfdEvents.map(\.id), "events of the NFD name after truncating the NFC one")

        // Tenants too.
        var tenantNFC = account
        tenantNFC.tenantID = composed
        var tenantNFD = account
        tenantNFD.tenantID = decomposed
        try await store.append(events(tenantNFC, count: 2), to: tenantNFC, expecting: .noStream)
        try await store.append(events(tenantNFD), to: tenantNFD, expecting: .noStream)
        try c.requireEqual(try await store.read(tenantNFD).count, 1, "events of the NFD tenant's stream")
        try c.require(try await store.read(tenantNFD).allSatisfy { hasBytes($0.tenantID, of: decomposed) }, "the NFD tenant's events keep its bytes")
        for (tenant, spelling) in [(composed, "NFC"), (decomposed, "NFD")] {
            let tenantIDs = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: tenant)
            try c.requireEqual(tenantIDs, ["a-1"], "aggregate ids of the \(spelling) tenant")
        }
    }

    static func distinctAggregateIDs(_ store: any EventStore, _ c: Check.Context) async throws {
        for id in ["b", "a", "c"] {
            let stream = StreamID(origin: "contract", aggregateType: "Account", aggregateID: id)
            try await store.append(events(stream, from: 1), to: stream, expecting: .noStream)
            try await store.append(events(stream, from: 2), to: stream, expecting: .exact(1))
        }
        let loan = StreamID(origin: "contract", aggregateType: "Loan", aggregateID: "l-1")
        try await store.append(events(loan), to: loan, expecting: .noStream)
        let elsewhere = StreamID(origin: "other", aggregateType: "Account", aggregateID: "x")
        try await store.append(events(elsewhere), to: elsewhere, expecting: .noStream)
        let accounts = try await store.aggregateIDs(origin: "contract", aggregateType: "Account", tenantID: nil)
        try c.requireEqual(accounts.sorted(), ["a", "b", "c"], "account ids")
        try c.requireEqual(
            try await store.aggregateIDs(origin: "contract", aggregateType: "Loan", tenantID: nil), ["l-1"], "loan ids")
        try c.requireEqual(
            try await store.aggregateIDs(origin: "other", aggregateType: "Account", tenantID: nil), ["x"],
            "ids of another origin")
    }
}
