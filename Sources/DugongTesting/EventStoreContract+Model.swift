import Dugong
import Foundation

/// The event-store contract as a model: random appends (new, stale, past a gap, retried whole or
/// in part, under every kind of expectation), truncations (in and out of bounds) and reads of a
/// few streams (a tenant's, two whose ids differ only in Unicode normalization) are applied to the
/// adapter and to a plain model of the contract's rules, and every outcome is compared: each
/// append's result or error, each read's events field by field, every stream at the end.
///
/// The model is written from the contract's words (``Dugong/EventStore``), not from an adapter.
/// Where the contract leaves a choice open, the check accepts either answer and says so below.
extension EventStoreContract {
    /// Operations per run: `DUGONG_CONTRACT_OPERATIONS` (default 300). The seed is drawn per run
    /// and named in a failure; `DUGONG_CONTRACT_SEED` repeats one.
    static var modelOperations: Int {
        ProcessInfo.processInfo.environment["DUGONG_CONTRACT_OPERATIONS"].flatMap(Int.init) ?? 300
    }

    static func randomOperationsAgreeWithTheModel(_ store: any EventStore, _ c: Check.Context) async throws {
        let seed = ProcessInfo.processInfo.environment["DUGONG_CONTRACT_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        var model = ContractModel(seed: seed)
        for step in 0..<modelOperations {
            try await model.step(store, c, label: "seed \(seed) (DUGONG_CONTRACT_SEED), operation \(step)")
        }
        for index in model.streams.indices {
            try c.requireEqual(
                try await store.read(model.streams[index].id), model.streams[index].visible(from: 1),
                "seed \(seed): stream \(model.streams[index].id) at the end")
        }
    }
}

/// What the contract says the streams hold, and a random source of operations on them.
struct ContractModel {
    struct Stream {
        var id: StreamID
        /// Every event appended, at index sequence number − 1.
        var events: [SerializedDomainEvent] = []
        /// Events below this sequence number are hidden by truncation.
        var hiddenBelow = 1
        /// The appends that wrote, for retries.
        var appends: [[SerializedDomainEvent]] = []

        var version: Int { events.count }
        func visible(from sequenceNumber: Int) -> [SerializedDomainEvent] {
            Array(events.dropFirst(max(sequenceNumber, hiddenBelow, 1) - 1))
        }
    }

    var streams: [Stream] = [
        StreamID(origin: "contract", aggregateType: "Account", aggregateID: "m-1"),
        StreamID(origin: "contract", aggregateType: "Account", aggregateID: "m-1", tenantID: "t-1"),
        StreamID(origin: "contract", aggregateType: "Account", aggregateID: "caf\u{E9}"),
        StreamID(origin: "contract", aggregateType: "Account", aggregateID: "cafe\u{301}"),
        StreamID(origin: "contract", aggregateType: "Ledger", aggregateID: "m-1"),
    ].map { Stream(id: $0) }
    var random: SplitMix

    init(seed: UInt64) { random = SplitMix(seed: seed) }

    /// The outcome of an append as the contract states it.
    enum Outcome: Equatable, CustomStringConvertible {
        case written(version: Int)
        case duplicate(version: Int)
        case conflict(expected: ExpectedVersion, actual: Int)
        case partialDuplicate(stored: Int, appended: Int)
        case invalid
        /// The contract allows either of two (nothing is written with either).
        indirect case either(Outcome, Outcome)

        var description: String {
            switch self {
            case .written(let version): "written, version \(version)"
            case .duplicate(let version): "duplicate, version \(version)"
            case .conflict(let expected, let actual): "conflict (expected \(expected), actual \(actual))"
            case .partialDuplicate(let stored, let appended): "partial duplicate (\(stored) of \(appended) stored)"
            case .invalid: "invalid append"
            case .either(let a, let b): "\(a) or \(b)"
            }
        }

        func admits(_ actual: Outcome) -> Bool {
            if case .either(let a, let b) = self { return a.admits(actual) || b.admits(actual) }
            return self == actual
        }
    }

    mutating func step(_ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        let index = random.below(streams.count)
        let stream = streams[index]
        let roll = random.below(100)
        switch roll {
        case 0..<40: try await append(to: index, store, c, label: label)
        case 40..<55: try await retry(in: index, store, c, label: label)
        case 55..<65: try await truncate(index, store, c, label: label)
        case 65..<88:
            let from = random.below(stream.version + 5) - 2
            try c.requireEqual(try await store.read(stream.id, from: from), stream.visible(from: from), "\(label): read \(stream.id) from \(from)")
        case 88..<95:
            // "Not affected unless every event is hidden": then there is none.
            let expected = stream.hiddenBelow > stream.version ? nil : stream.events.last
            try c.requireEqual(try await store.lastEvent(of: stream.id), expected, "\(label): last event of \(stream.id)")
        default:
            try await listAggregates(store, c, label: label)
        }
    }

    // MARK: Appends

    mutating func expectation(version: Int) -> ExpectedVersion {
        switch random.below(10) {
        case 0..<4: .any
        case 4..<7: .exact(version)
        case 7: .exact(random.below(version + 3))
        case 8: .noStream
        default: .streamExists
        }
    }

    mutating func append(to index: Int, _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        let stream = streams[index]
        let version = stream.version
        let first: Int
        switch random.below(10) {
        case 0: first = version + 2  // a gap
        case 1 where version > 0: first = 1 + random.below(version)  // stale: new events at stored numbers
        default: first = version + 1
        }
        let events = (0..<(1 + random.below(4))).map { makeEvent(stream.id, sequenceNumber: first + $0) }
        let expected = expectation(version: version)
        let outcome: Outcome
        if first <= version {
            // "A different event already holds one of the sequence numbers": a conflict, which
            // reports the caller's expectation or, for `any`, the version its numbers imply.
            if case .any = expected { outcome = .conflict(expected: .exact(first - 1), actual: version) }
            else { outcome = .conflict(expected: expected, actual: version) }
        } else if first == version + 1 {
            outcome = expected.isSatisfied(byVersion: version) ? .written(version: version + events.count) : .conflict(expected: expected, actual: version)
        } else if expected.isSatisfied(byVersion: version) {
            outcome = .invalid
        } else {
            // A gap under an expectation that does not hold: the contract names both errors.
            outcome = .either(.invalid, .conflict(expected: expected, actual: version))
        }
        try await check(events, to: index, expecting: expected, outcome: outcome, store, c, label: label)
    }

    mutating func retry(in index: Int, _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        let stream = streams[index]
        guard let chosen = stream.appends.isEmpty ? nil : stream.appends[random.below(stream.appends.count)] else {
            return try await append(to: index, store, c, label: label)
        }
        let expected = expectation(version: stream.version)
        let hidden = chosen[0].sequenceNumber < stream.hiddenBelow
        if random.below(3) == 0, let last = stream.appends.last, last.last?.sequenceNumber == stream.version {
            // The stream's last append again with new events after it: a partial duplicate
            // (only the stored ones are the same; part of it may be hidden by truncation now).
            let fresh = (0..<(1 + random.below(3))).map { makeEvent(stream.id, sequenceNumber: stream.version + 1 + $0) }
            let outcome: Outcome = .partialDuplicate(stored: last.count, appended: last.count + fresh.count)
            let hiddenLast = last[0].sequenceNumber < stream.hiddenBelow
            let conflict: Outcome =
                if case .any = expected { .conflict(expected: .exact(last[0].sequenceNumber - 1), actual: stream.version) }
                else { .conflict(expected: expected, actual: stream.version) }
            return try await check(
                last + fresh, to: index, expecting: expected, outcome: hiddenLast ? .either(outcome, conflict) : outcome, store, c, label: label)
        }
        // Stored events retried whole: a duplicate whatever the expectation, reporting the
        // stream's version. Events a truncation hid may no longer be known to the store: the
        // contract does not say, so a conflict is accepted for them (nothing is written).
        let duplicate: Outcome = .duplicate(version: stream.version)
        let conflict: Outcome =
            if case .any = expected { .conflict(expected: .exact(chosen[0].sequenceNumber - 1), actual: stream.version) }
            else { .conflict(expected: expected, actual: stream.version) }
        try await check(chosen, to: index, expecting: expected, outcome: hidden ? .either(duplicate, conflict) : duplicate, store, c, label: label)
    }

    mutating func check(
        _ events: [SerializedDomainEvent], to index: Int, expecting expected: ExpectedVersion, outcome: Outcome,
        _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String
    ) async throws {
        let id = streams[index].id
        let what = "\(label): append of \(events.count) at \(events[0].sequenceNumber) to \(id) (version \(streams[index].version)) expecting \(expected)"
        let actual: Outcome
        do {
            let result = try await store.append(events, to: id, expecting: expected)
            actual = result.wasDuplicate ? .duplicate(version: result.version) : .written(version: result.version)
        } catch let error as EventStoreError {
            switch error {
            case .conflict(let stream, let expected, let version):
                try c.requireEqual(stream, id, "\(what): the conflict's stream")
                actual = .conflict(expected: expected, actual: version)
            case .partialDuplicate(let stream, let stored, let appended):
                try c.requireEqual(stream, id, "\(what): the partial duplicate's stream")
                actual = .partialDuplicate(stored: stored, appended: appended)
            case .invalidAppend(let stream, _):
                try c.requireEqual(stream, id, "\(what): the invalid append's stream")
                actual = .invalid
            }
        }
        try c.require(outcome.admits(actual), "\(what): expected \(outcome), got \(actual)")
        if case .written = actual {
            streams[index].events += events
            streams[index].appends.append(events)
        }
    }

    // MARK: Truncation and listing

    mutating func truncate(_ index: Int, _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        let stream = streams[index]
        let before = random.below(stream.version + 4) - 1
        let what = "\(label): truncate \(stream.id) (version \(stream.version), hidden below \(stream.hiddenBelow)) before \(before)"
        do {
            try await store.truncate(stream.id, before: before)
            try c.require((1...stream.version + 1).contains(before), "\(what): accepted, but out of bounds")
            // Hides; never shows again what an earlier truncation hid.
            streams[index].hiddenBelow = max(stream.hiddenBelow, before)
        } catch let violation as ContractViolation {
            throw violation
        } catch {
            try c.require(!(1...stream.version + 1).contains(before), "\(what): refused within bounds: \(error)")
        }
    }

    func listAggregates(_ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        for (type, tenant) in [("Account", nil), ("Account", "t-1"), ("Ledger", nil)] as [(String, String?)] {
            let listed = try await store.aggregateIDs(origin: "contract", aggregateType: type, tenantID: tenant)
            let what = "\(label): aggregate ids of \(type) for tenant \(tenant ?? "none"): \(listed)"
            try c.require(Set(listed.map { Array($0.utf8) }).count == listed.count, "\(what): listed twice")
            let mine = streams.filter { $0.id.aggregateType == type && $0.id.tenantID == tenant }
            // Streams with visible events are listed; streams without any event are not. One
            // whose events a truncation hid all of: the contract does not say.
            for stream in mine where stream.version > 0 && stream.hiddenBelow <= stream.version {
                try c.require(listed.contains { $0.utf8.elementsEqual(stream.id.aggregateID.utf8) }, "\(what): \(stream.id.aggregateID) missing")
            }
            for id in listed {
                let stream = mine.first { $0.id.aggregateID.utf8.elementsEqual(id.utf8) }
                try c.require((stream?.version ?? 0) > 0, "\(what): \(id) has no events")
            }
        }
    }

    // MARK: Events

    mutating func makeEvent(_ stream: StreamID, sequenceNumber: Int) -> SerializedDomainEvent {
        let texts = ["", "a", "Zoë", "ünï/cødé ✓", "caf\u{E9}", "cafe\u{301}", "\u{1F600}", String(repeating: "x", count: 300)]
        func text() -> String { texts[random.below(texts.count)] }
        func maybe<T>(_ make: () -> T) -> T? { random.below(3) == 0 ? make() : nil }
        let payload: Data? =
            switch random.below(6) {
            case 0: nil
            case 1: Data(#"{"blob":"\#(String(repeating: "q", count: 5000 + random.below(3000)))"}"#.utf8)
            default: Data(#"{"n":\#(random.below(1_000_000)),"s":"\#(text())","list":[1,2,true,null]}"#.utf8)
            }
        var metadata: JSONObject?
        if random.below(3) == 0 { metadata = ["source": .string(text()), "attempt": .int(random.below(9)), "flag": .bool(true)] }
        let milliseconds = random.below(4) == 0 ? -Int64(random.below(1_000_000_000)) : 1_700_000_000_000 + Int64(random.below(1_000_000_000))
        return SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: ["Deposited", "Withdrawn", "Ünïcode✓"][random.below(3)],
            version: 1 + random.below(3), id: UUID(), aggregateID: stream.aggregateID, payload: payload, sequenceNumber: sequenceNumber,
            timestamp: Date(millisecondsSince1970: milliseconds), tenantID: stream.tenantID,
            correlationID: maybe(text), triggeredByEventID: maybe { UUID() }, triggeredByUserID: maybe(text), metadata: metadata)
    }
}

/// A small seeded generator (SplitMix64), so that a failing run can be repeated.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in 0 ..< bound.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
