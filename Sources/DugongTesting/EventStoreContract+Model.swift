import Dugong
import Foundation

/// The event-store contract as a model: random appends (new, stale, past a gap, retried whole or
/// in part, under every kind of expectation), truncations (in and out of bounds), versions and reads of a
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
            try c.requireEqual(
                try await store.streamVersion(of: model.streams[index].id), model.streams[index].version,
                "seed \(seed): version of \(model.streams[index].id) at the end")
        }
        if let log = store as? any GlobalEventLog { try await model.checkGlobalOrder(log, c, label: "seed \(seed)") }
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
    var random: SeededRandom
    /// Every event written, in the order written, with its stream's index.
    var written: [(Int, SerializedDomainEvent)] = []

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

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

        /// Whether the append may go through (write or be a duplicate).
        var mayGoThrough: Bool {
            switch self {
            case .written, .duplicate: true
            case .either(let a, let b): a.mayGoThrough || b.mayGoThrough
            default: false
            }
        }

        /// Whether the append may be refused.
        var mayBeRefused: Bool {
            switch self {
            case .written, .duplicate: false
            case .either(let a, let b): a.mayBeRefused || b.mayBeRefused
            default: true
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
        case 0..<30: try await perform([plan(index)], store, c, label: label)
        case 30..<45: try await perform([plan(index, retrying: true)], store, c, label: label)
        case 45..<55:
            // A unit of work (several appends, to one stream or several, atomically), where the
            // adapter takes them; otherwise appends one after the other.
            try await performUnit(of: 2 + random.below(3), store, c, label: label)
        case 55..<65: try await truncate(index, store, c, label: label)
        case 65..<88:
            let from = random.below(stream.version + 5) - 2
            try c.requireEqual(try await store.read(stream.id, from: from), stream.visible(from: from), "\(label): read \(stream.id) from \(from)")
        case 88..<92:
            // "Not affected unless every event is hidden": then there is none.
            let expected = stream.hiddenBelow > stream.version ? nil : stream.events.last
            try c.requireEqual(try await store.lastEvent(of: stream.id), expected, "\(label): last event of \(stream.id)")
        case 92..<95:
            // Hidden events included: a stream truncated past its end keeps its version.
            try c.requireEqual(try await store.streamVersion(of: stream.id), stream.version, "\(label): version of \(stream.id)")
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

    /// One append: its events, the caller's expectation, and what the contract says comes of it.
    struct Planned {
        var index: Int
        var events: [SerializedDomainEvent]
        var expected: ExpectedVersion
        var outcome: Outcome
    }

    /// An append to stream `index` (new events, or with `retrying` stored ones again) and its
    /// outcome against the streams as the model holds them now.
    mutating func plan(_ index: Int, retrying: Bool = false) -> Planned {
        let stream = streams[index]
        let version = stream.version
        let expected = expectation(version: version)
        func conflict(at first: Int) -> Outcome {
            // A conflict reports the caller's expectation or, for `any`, the version the
            // events' numbers imply.
            if case .any = expected { return .conflict(expected: .exact(first - 1), actual: version) }
            return .conflict(expected: expected, actual: version)
        }
        if retrying, let chosen = stream.appends.isEmpty ? nil : stream.appends[random.below(stream.appends.count)] {
            if random.below(3) == 0, let last = stream.appends.last, last.last?.sequenceNumber == version {
                // The stream's last append again with new events after it: a partial duplicate.
                let fresh = (0..<(1 + random.below(3))).map { makeEvent(stream.id, sequenceNumber: version + 1 + $0) }
                let partial: Outcome = .partialDuplicate(stored: last.count, appended: last.count + fresh.count)
                let hidden = last[0].sequenceNumber < stream.hiddenBelow
                return Planned(index: index, events: last + fresh, expected: expected, outcome: hidden ? .either(partial, conflict(at: last[0].sequenceNumber)) : partial)
            }
            // Stored events retried whole: a duplicate whatever the expectation, reporting the
            // stream's version. Events a truncation hid may no longer be known to the store: the
            // contract does not say, so a conflict is accepted for them (nothing is written).
            let duplicate: Outcome = .duplicate(version: version)
            let hidden = chosen[0].sequenceNumber < stream.hiddenBelow
            return Planned(index: index, events: chosen, expected: expected, outcome: hidden ? .either(duplicate, conflict(at: chosen[0].sequenceNumber)) : duplicate)
        }
        let first: Int
        switch random.below(10) {
        case 0: first = version + 2  // a gap
        case 1 where version > 0: first = 1 + random.below(version)  // stale: new events at stored numbers
        default: first = version + 1
        }
        let events = (0..<(1 + random.below(4))).map { makeEvent(stream.id, sequenceNumber: first + $0) }
        let outcome: Outcome
        if first <= version {
            outcome = conflict(at: first)  // a different event holds the number
        } else if first == version + 1 {
            outcome = expected.isSatisfied(byVersion: version) ? .written(version: version + events.count) : conflict(at: first)
        } else if expected.isSatisfied(byVersion: version) {
            outcome = .invalid
        } else {
            // A gap under an expectation that does not hold: the contract names both errors.
            outcome = .either(.invalid, conflict(at: first))
        }
        return Planned(index: index, events: events, expected: expected, outcome: outcome)
    }

    /// What the model holds after a planned append that wrote.
    mutating func apply(_ planned: Planned) {
        guard case .written = planned.outcome else { return }
        streams[planned.index].events += planned.events
        streams[planned.index].appends.append(planned.events)
        written += planned.events.map { (planned.index, $0) }
    }

    /// The global log holds every written event in the order they were written (one at a
    /// time, so commit order), each once, with ascending cursors; events a truncation hid may
    /// be left out (the contract says readable events). An event may show up late, never not:
    /// PostgreSQL's log shows a commit once every transaction that began before it has ended,
    /// and the tests beside this one hold transactions of their own on the same server (one
    /// read to the end lost the last events now and then); the reads go on from where they
    /// stopped, for up to 30 s, until every written event is there.
    func checkGlobalOrder(_ log: any GlobalEventLog, _ c: EventStoreContract.Check.Context, label: String) async throws {
        var recorded: [RecordedEvent] = []
        var cursor = LogCursor.start
        let deadline = ContinuousClock.now + .seconds(30)
        let readable = written.filter { $0.1.sequenceNumber >= streams[$0.0].hiddenBelow }.map(\.1.id)
        var seen = Set<UUID>()
        while true {
            while true {
                let page = try await log.events(from: cursor, maxCount: 1000)
                guard let last = page.last else { break }
                recorded += page
                seen.formUnion(page.map(\.event.id))
                cursor = last.next
            }
            guard readable.contains(where: { !seen.contains($0) }), ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        for (a, b) in zip(recorded, recorded.dropFirst()) {
            try c.require(a.cursor < b.cursor, "\(label): global log: cursor \(b.cursor) after \(a.cursor)")
        }
        var expected = written[...]
        for event in recorded.map(\.event) {
            while let (index, next) = expected.first, next.id != event.id, next.sequenceNumber < streams[index].hiddenBelow {
                expected.removeFirst()  // hidden, and left out
            }
            try c.require(
                expected.first?.1 == event,
                "\(label): global log: \(event.stream) version \(event.sequenceNumber) where \(expected.first.map { "\($0.1.stream) version \($0.1.sequenceNumber)" } ?? "the end") was written")
            expected.removeFirst()
        }
        let missing = expected.filter { $0.1.sequenceNumber >= streams[$0.0].hiddenBelow }
        try c.require(missing.isEmpty, "\(label): global log: \(missing.count) written events missing, the first \(missing.first.map { "\($0.1.stream) version \($0.1.sequenceNumber)" } ?? "")")
    }

    /// A unit of `count` appends: each planned against the streams as the ones before it leave
    /// them; the first refused one's error is the unit's, and then nothing of it is stored.
    mutating func performUnit(of count: Int, _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        guard store is any TransactionalEventStore else {
            for _ in 0..<count { try await perform([plan(random.below(streams.count), retrying: random.below(3) == 0)], store, c, label: label) }
            return
        }
        let (streamsBefore, writtenBefore) = (streams, written)
        var unit: [Planned] = []
        for _ in 0..<count {
            let planned = plan(random.below(streams.count), retrying: random.below(3) == 0)
            unit.append(planned)
            apply(planned)
        }
        (streams, written) = (streamsBefore, writtenBefore)
        // A unit holding an append the contract leaves open (a retry of events a truncation hid)
        // could go either way as a whole: its appends go one by one instead.
        if unit.contains(where: { $0.outcome.mayGoThrough && $0.outcome.mayBeRefused }) {
            for planned in unit { try await perform([plan(planned.index, retrying: random.below(3) == 0)], store, c, label: label) }
            return
        }
        try await perform(unit, store, c, label: label)
    }

    /// Performs the appends (one alone, or several as one unit) and compares each outcome.
    mutating func perform(_ unit: [Planned], _ store: any EventStore, _ c: EventStoreContract.Check.Context, label: String) async throws {
        let what =
            "\(label): " + unit.map { "append of \($0.events.count) at \($0.events[0].sequenceNumber) to \(streams[$0.index].id) expecting \($0.expected)" }
            .joined(separator: ", ") + (unit.count > 1 ? " in one unit" : "")
        let refused = unit.firstIndex { !$0.outcome.mayGoThrough }
        var results: [AppendResult] = []
        let actual: Outcome?
        do {
            if unit.count == 1 {
                results = [try await store.append(unit[0].events, to: streams[unit[0].index].id, expecting: unit[0].expected)]
            } else {
                guard let units = store as? any TransactionalEventStore else { preconditionFailure("units only where the adapter takes them") }
                results = try await units.append(unit.map { StreamAppend(stream: streams[$0.index].id, events: $0.events, expected: $0.expected) })
            }
            actual = nil
        } catch let error as EventStoreError {
            let stream: StreamID
            switch error {
            case .conflict(let id, let expected, let version): (stream, actual) = (id, .conflict(expected: expected, actual: version))
            case .partialDuplicate(let id, let stored, let appended): (stream, actual) = (id, .partialDuplicate(stored: stored, appended: appended))
            case .invalidAppend(let id, _): (stream, actual) = (id, .invalid)
            }
            if let refused { try c.requireEqual(stream, streams[unit[refused].index].id, "\(what): the refused append's stream") }
        }
        if let refused {
            try c.require(actual.map { unit[refused].outcome.admits($0) } ?? false, "\(what): expected \(unit[refused].outcome), got \(actual.map { "\($0)" } ?? "\(results)")")
            return  // nothing of the unit is stored: the model keeps its streams
        }
        if let actual {
            // Only an append the contract leaves open may be refused here (a unit holds none).
            try c.require(unit.count == 1 && unit[0].outcome.admits(actual), "\(what): expected \(unit.map(\.outcome)), got \(actual)")
            return
        }
        try c.requireEqual(results.count, unit.count, "\(what): results")
        for (planned, result) in zip(unit, results) {
            let got: Outcome = result.wasDuplicate ? .duplicate(version: result.version) : .written(version: result.version)
            try c.require(
                planned.outcome.admits(got),
                "\(what): expected \(planned.outcome), got \(got) (all: expected \(unit.map(\.outcome)), got \(results.map { "\($0.wasDuplicate ? "duplicate" : "written"), version \($0.version)" }))")
            apply(planned)
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

