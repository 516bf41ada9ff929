import Dugong
import Foundation
import Synchronization
import Testing

@Suite("In-memory message bus")
struct MessageBusTests {
    actor Seen {
        var ids: [UUID] = []
        func add(_ id: UUID) { ids.append(id) }
    }

    static func event(_ number: Int) -> SerializedDomainEvent {
        SerializedDomainEvent(
            origin: "bus", aggregateType: "Thing", eventType: "Happened", version: 1, id: UUID(), aggregateID: "t",
            payload: Data(#"{"n":\#(number)}"#.utf8), sequenceNumber: number + 1, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
    }

    // Publishes racing a handler that suspends: each message is delivered once (two delivery
    // loops for one consumer delivered its first message twice and dropped another, or trapped
    // on an empty queue), and a consumer subscribed again keeps its queued messages.
    @Test func concurrentPublishesDeliverEachMessageOnce() async throws {
        let bus = InMemoryMessageBus()
        let seen = Seen()
        await bus.subscribe(to: "c", as: "x") { event in
            try await Task.sleep(for: .milliseconds(2))
            await seen.add(event.id)
        }
        let events = (0..<20).map(Self.event)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for event in events { group.addTask { try await bus.publish([event], on: "c") } }
            try await group.waitForAll()
        }
        let ids = await seen.ids
        #expect(ids.count == events.count)
        #expect(Set(ids) == Set(events.map(\.id)))

        // A failing handler leaves its message queued; subscribing again keeps it.
        struct Refused: Error {}
        await bus.subscribe(to: "d", as: "y") { _ in throw Refused() }
        let kept = Self.event(99)
        await #expect(throws: Refused.self) { try await bus.publish([kept], on: "d") }
        let redelivered = Seen()
        await bus.subscribe(to: "d", as: "y") { event in await redelivered.add(event.id) }
        try await bus.redeliver()
        #expect(await redelivered.ids == [kept.id])
    }

    // Two instances of one consumer park messages in turn: each reads the parked stream's
    // version again when the other moved it (a version kept from before made every later park
    // of the first instance conflict, for good: a stuck consumer).
    @Test func instancesOfOneConsumerParkInTurn() async throws {
        struct Refused: Error {}
        let store = InMemoryEventStore()
        let failing: IdempotentHandler.Handler = { _, _ in throw Refused() }
        let first = IdempotentHandler(name: "twin", store: store, retry: RetryPolicy(maximumAttempts: 1), handle: failing)
        let second = IdempotentHandler(name: "twin", store: store, retry: RetryPolicy(maximumAttempts: 1), handle: failing)
        #expect(try await first.process(Self.event(1)) == .parked)
        #expect(try await second.process(Self.event(2)) == .parked)
        #expect(try await first.process(Self.event(3)) == .parked)
        #expect(try await second.parked().count == 3)
    }

    // The framework's own streams deleted as an operator would (every event hidden; the store
    // keeps the version): a projection replays from the start and saves its checkpoint again,
    // and a handler parks again (found by a review: both saved after version 0, refused with a
    // conflict for ever).
    @Test func readersGoOnAfterTheirOwnStreamsAreDeleted() async throws {
        struct Refused: Error {}
        let store = InMemoryEventStore()
        for number in 0..<3 { try await store.append([Self.event(number)], to: Self.event(number).stream, expecting: .exact(number)) }
        let seen = Seen()
        let projection = Projection(name: "totals", store: store) { recorded in await seen.add(recorded.event.id) }
        try await projection.catchUp()
        let checkpoint = StreamID(origin: Checkpoint.origin, aggregateType: "Checkpoint", aggregateID: projection.checkpointName)
        #expect(try await store.streamVersion(of: checkpoint) == 1)
        try await store.truncate(checkpoint, before: store.streamVersion(of: checkpoint) + 1)
        let restarted = Projection(name: "totals", store: store) { recorded in await seen.add(recorded.event.id) }
        try await restarted.catchUp()
        let replayed = await seen.ids.count
        #expect(replayed == 6, "the three events again, from the start: \(replayed) seen")
        try await store.append([Self.event(3)], to: Self.event(3).stream, expecting: .exact(3))
        try await restarted.catchUp()
        #expect(await seen.ids.count == 7)

        let handler = IdempotentHandler(name: "parker", store: store, retry: RetryPolicy(maximumAttempts: 1)) { _, _ in throw Refused() }
        #expect(try await handler.process(Self.event(10)) == .parked)
        let parked = StreamID(origin: Checkpoint.origin, aggregateType: "Parked", aggregateID: "parker")
        #expect(try await store.streamVersion(of: parked) == 1)
        try await store.truncate(parked, before: store.streamVersion(of: parked) + 1)
        let again = IdempotentHandler(name: "parker", store: store, retry: RetryPolicy(maximumAttempts: 1)) { _, _ in throw Refused() }
        #expect(try await again.parked().isEmpty)
        #expect(try await again.process(Self.event(11)) == .parked)
        #expect(try await again.parked().count == 1)
    }

    // A handler cancelled (the application stopping) is not a failure of its message: it is
    // not parked and not marked consumed (it was, on the last attempt). A parked record whose
    // position is out of bounds lists the message without one (a negative one stopped the process).
    @Test func aCancelledHandlerParksNothingAndBadParkedPositionsAreBounded() async throws {
        let store = InMemoryEventStore()
        let cancelled = IdempotentHandler(name: "stopping", store: store, retry: RetryPolicy(maximumAttempts: 1)) { _, _ in throw CancellationError() }
        await #expect(throws: CancellationError.self) { try await cancelled.process(Self.event(1)) }
        #expect(try await cancelled.parked().isEmpty)
        let event = Self.event(2)
        let record = SerializedDomainEvent(
            origin: Checkpoint.origin, aggregateType: "Parked", eventType: "MessageParked", version: 1, id: UUID(), aggregateID: "odd",
            payload: try JSONValue.object([
                "error": .string("failed"), "attempts": .int(1), "position": .int(-1),
                "event": try JSONValue(json: JSONEncoder().encode(event)),
            ]).jsonData(),
            sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
        try await store.append([record], to: record.stream, expecting: .noStream)
        let odd = IdempotentHandler(name: "odd", store: store) { _, _ in }
        let parked = try await odd.parked()
        #expect(parked.count == 1 && parked.first?.position == nil && parked.first?.event.id == event.id)
    }

    /// A read model that counts what it applied and its resets; it fails once at the event it
    /// is armed for.
    actor CountingModel {
        var applied = 0
        var resets = 0
        var failAt: Int?
        func apply() throws {
            if let failAt, applied + 1 == failAt {
                self.failAt = nil
                throw CancellationError()
            }
            applied += 1
        }
        func reset() {
            applied = 0
            resets += 1
        }
        func fail(at count: Int) { failAt = count }
        /// Applied, resets.
        var counts: [Int] { [applied, resets] }
    }

    // A rebuild that stops halfway (its replay failed after it emptied the model and applied
    // part of the log) is finished by the next catch-up, of this instance or a restarted one:
    // the model emptied again and replayed once (found by a review: the replay went on over
    // what it had applied, or, when its checkpoint's save failed, from the old checkpoint over
    // an emptied model).
    @Test func aRebuildThatStopsHalfwayIsFinishedByTheNextCatchUp() async throws {
        let store = InMemoryEventStore()
        for number in 0..<3 { try await store.append([Self.event(number)], to: Self.event(number).stream, expecting: .exact(number)) }
        let model = CountingModel()
        let make = { Projection(name: "sums", store: store, reset: { await model.reset() }) { _ in try await model.apply() } }
        let first = make()
        try await first.catchUp()
        await model.fail(at: 2)
        await #expect(throws: CancellationError.self) { try await first.rebuild() }
        #expect(await model.counts == [1, 1])
        // Rewound anywhere but the start, the rest of the log would go into the emptied model
        // (found by a review: the rewind's save cleared the rebuild's mark).
        let end = await store.endCursor()
        await first.pause()
        await #expect(throws: CheckpointError.unfinishedRebuild(name: "projection:sums")) { try await first.rewind(to: end) }
        try await first.rewind(to: .start)
        await first.resume()
        let restarted = make()
        try await restarted.catchUp()
        #expect(await model.counts == [3, 2], "replayed once more, from an emptied model")
        try await restarted.catchUp()
        #expect(await model.counts == [3, 2], "finished: no more resets")
    }

    /// A producer that counts what it was given, suspending in each publish.
    actor CountingProducer: MessageProducer {
        var published: [UUID] = []
        func publish(_ events: [SerializedDomainEvent], on channel: String) async throws {
            await Task.yield()
            published += events.map(\.id)
        }
    }

    // Relays called at once publish each event once (found by a review: both read the same
    // batch from the checkpoint they shared and published it twice); a relay checkpoint past
    // the log (a store moved with its checkpoints) is refused, as the readers' are.
    @Test func concurrentRelaysPublishEachEventOnceAndACheckpointPastTheLogIsRefused() async throws {
        let store = InMemoryEventStore()
        for number in 0..<5 { try await store.append([Self.event(number)], to: Self.event(number).stream, expecting: .exact(number)) }
        let producer = CountingProducer()
        let relay = MessageRelay(name: "out", store: store, producer: producer)
        async let first = relay.relay()
        async let second = relay.relay()
        let counts = try await [first, second]
        let published = await producer.published
        #expect(counts.reduce(0, +) == 5 && published.count == 5 && Set(published).count == 5, "\(counts), \(published.count) published")

        var moved = try await Checkpoint.load("relay:elsewhere", from: store)
        try await moved.save(LogCursor(position: 1_000), to: store)
        await #expect(throws: CheckpointError.self) {
            try await MessageRelay(name: "elsewhere", store: store, producer: producer).relay()
        }
    }

    /// The replaying instance's hook: run once, at its first message.
    actor Once {
        var action: (@Sendable () async throws -> Void)?
        func set(_ action: @escaping @Sendable () async throws -> Void) { self.action = action }
        func take() -> (@Sendable () async throws -> Void)? {
            defer { action = nil }
            return action
        }
    }

    // Two instances replay one handler's parked messages at once: B read the list, A replayed
    // every message meanwhile, B's first commit conflicted. Each message's effects commit once
    // (found by a review: B went on with its stale list at the fresh version and committed the
    // second message's effects again).
    @Test func twoInstancesReplayingParkedMessagesCommitEachMessagesEffectsOnce() async throws {
        let store = InMemoryEventStore()
        let failing = Runs()
        let once = Once()
        // Each commit's effect: an event in a stream of its own (two commits, two streams).
        let handler: @Sendable (String) -> IdempotentHandler.Handler = { instance in
            { event, unit in
                guard await failing.start() else { throw NotYet() }
                if let action = await once.take() { try await action() }
                let effect = StreamID(origin: "effects", aggregateType: "Effect", aggregateID: "\(event.id)-\(instance)-\(UUID())")
                unit.add(StreamAppend(stream: effect, events: [SerializedDomainEvent(
                    origin: "effects", aggregateType: "Effect", eventType: "Done", version: 1, id: UUID(), aggregateID: effect.aggregateID,
                    payload: Data("{}".utf8), sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))], expected: .noStream))
            }
        }
        let a = IdempotentHandler(name: "twin-replay", store: store, retry: RetryPolicy(maximumAttempts: 1), handle: handler("a"))
        let b = IdempotentHandler(name: "twin-replay", store: store, retry: RetryPolicy(maximumAttempts: 1), handle: handler("b"))
        #expect(try await a.process(Self.event(1)) == .parked)
        #expect(try await a.process(Self.event(2)) == .parked)
        await failing.succeed()
        await once.set { _ = try await a.replayParked() }
        _ = try await b.replayParked()
        let effects = await store.aggregateIDs(origin: "effects", aggregateType: "Effect", tenantID: nil)
        #expect(effects.count == 2, "effects committed: \(effects)")
        let left = try await a.parked().count + b.parked().count
        #expect(left == 0)
    }

    // A parked message whose effects meet a conflict on their own stream during a replay (a
    // commit moved it while the handler ran) is run again; with no attempts left it stays
    // parked, and the replay goes on with the next message (found by a review: the conflict
    // ended the replay, and the messages after it were not replayed).
    @Test(arguments: [1, 3])
    func aConflictOnAMessagesEffectsDoesNotEndTheReplay(attempts: Int) async throws {
        let store = InMemoryEventStore()
        let failing = Runs()
        let counter = StreamID(origin: "effects", aggregateType: "Counter", aggregateID: "shared")
        @Sendable func counterEvent(_ number: Int) -> SerializedDomainEvent {
            SerializedDomainEvent(
                origin: counter.origin, aggregateType: counter.aggregateType, eventType: "Counted", version: 1, id: UUID(),
                aggregateID: counter.aggregateID, payload: Data("{}".utf8), sequenceNumber: number,
                timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
        }
        let interfered = Mutex(false)
        let handler = IdempotentHandler(name: "conflicted", store: store, retry: RetryPolicy(maximumAttempts: attempts, initialBackoff: .zero)) { event, unit in
            guard await failing.start() else { throw NotYet() }
            let version = try await store.streamVersion(of: counter)
            // The second message's first run: another commit moves the counter under it.
            if event.payload == Self.event(2).payload, !interfered.withLock({ $0 }) {
                interfered.withLock { $0 = true }
                try await store.append([counterEvent(version + 1)], to: counter, expecting: version == 0 ? .noStream : .exact(version))
            }
            unit.add(StreamAppend(stream: counter, events: [counterEvent(version + 1)], expected: version == 0 ? .noStream : .exact(version)))
        }
        for number in 1...3 { #expect(try await handler.process(Self.event(number)) == .parked) }
        await failing.succeed()
        let replayed = try await handler.replayParked()
        let parked = try await handler.parked().map(\.event.payload)
        if attempts == 1 {
            #expect(replayed == 2 && parked == [Self.event(2).payload], "\(replayed) replayed; parked: \(parked)")
        } else {
            #expect(replayed == 3 && parked.isEmpty, "\(replayed) replayed; parked: \(parked)")
        }
        #expect(try await store.streamVersion(of: counter) == 1 + replayed, "one count per replayed message, and the interfering one")
    }

    // Effects that cannot be committed for another reason than a conflict (here an invalid
    // append) leave their message parked, and the replay goes on (found by a review: the error
    // ended the replay, and the oldest such message blocked every later one for good).
    @Test func effectsThatCannotBeCommittedLeaveTheirMessageParkedAndTheReplayGoesOn() async throws {
        let store = InMemoryEventStore()
        let failing = Runs()
        let handler = IdempotentHandler(name: "invalid", store: store, retry: RetryPolicy(maximumAttempts: 2, initialBackoff: .zero)) { event, unit in
            guard await failing.start() else { throw NotYet() }
            let effect = StreamID(origin: "effects", aggregateType: "Effect", aggregateID: UUID().uuidString)
            // The first message's effect claims version 5 of a new stream: refused.
            let number = event.payload == Self.event(1).payload ? 5 : 1
            unit.add(StreamAppend(stream: effect, events: [SerializedDomainEvent(
                origin: "effects", aggregateType: "Effect", eventType: "Done", version: 1, id: UUID(), aggregateID: effect.aggregateID,
                payload: Data("{}".utf8), sequenceNumber: number, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))], expected: .noStream))
        }
        for number in 1...3 { #expect(try await handler.process(Self.event(number)) == .parked) }
        await failing.succeed()
        #expect(try await handler.replayParked() == 2)
        #expect(try await handler.parked().map(\.event.payload) == [Self.event(1).payload])
    }

    // Instance A's replay of a message whose effects conflict, while instance B replays the
    // same message and A's list is shown meanwhile (which read the parked stream's version
    // again): the message's effects commit once (found by a review: A ran it again and
    // committed its unpark at the version the listing read, after B's unpark).
    @Test func aReplayRunAgainAfterAConflictDoesNotCommitEffectsAnotherInstanceCommitted() async throws {
        let store = InMemoryEventStore()
        let failing = Runs()
        let once = Once()
        let counter = StreamID(origin: "effects", aggregateType: "Counter", aggregateID: "shared")
        let handler: @Sendable (String) -> IdempotentHandler.Handler = { instance in
            { event, unit in
                guard await failing.start() else { throw NotYet() }
                let version = try await store.streamVersion(of: counter)
                if let action = await once.take() { try await action() }
                unit.add(StreamAppend(stream: counter, events: [SerializedDomainEvent(
                    origin: counter.origin, aggregateType: counter.aggregateType, eventType: "Counted", version: 1, id: UUID(),
                    aggregateID: counter.aggregateID, payload: Data(instance.utf8), sequenceNumber: version + 1,
                    timestamp: Date(millisecondsSince1970: 1_700_000_000_000))], expected: version == 0 ? .noStream : .exact(version)))
            }
        }
        let retry = RetryPolicy(maximumAttempts: 3, initialBackoff: .zero)
        let a = IdempotentHandler(name: "twins", store: store, retry: retry, handle: handler("a"))
        let b = IdempotentHandler(name: "twins", store: store, retry: retry, handle: handler("b"))
        #expect(try await a.process(Self.event(1)) == .parked)
        await failing.succeed()
        // A's first run: B replays the message, then A's list is shown.
        await once.set {
            _ = try await b.replayParked()
            _ = try await a.parked()
        }
        #expect(try await a.replayParked() == 0, "B replayed it")
        #expect(try await store.streamVersion(of: counter) == 1, "its effects committed once")
        #expect(try await a.parked().isEmpty)
        #expect(try await b.parked().isEmpty)
    }

    struct NotYet: Error {}

    /// Counts a handler's runs; it fails until told to succeed.
    actor Runs {
        var count = 0
        var failing = true
        /// Whether this run may succeed (counted when it may).
        func start() -> Bool {
            if !failing { count += 1 }
            return !failing
        }
        func succeed() { failing = false }
    }

    // Two replays of one handler's parked messages at once: each message's handler runs once,
    // and its effects commit once (an actor is re-entered at every `await`: both calls read
    // the parked messages, then both ran the handler of each and committed its effects).
    @Test func concurrentReplaysRunEachParkedMessageOnce() async throws {
        struct Refused: Error {}
        let store = InMemoryEventStore()
        let runs = Runs()
        let handler = IdempotentHandler(name: "replayer", store: store, retry: RetryPolicy(maximumAttempts: 1)) { event, unit in
            guard await runs.start() else { throw Refused() }
            try await Task.sleep(for: .milliseconds(20))  // the other call's turn, if it has one
            // An effect of its own, committed with the message's removal from the parked list.
            let effect = StreamID(origin: "bus", aggregateType: "Effect", aggregateID: UUID().uuidString)
            unit.add(StreamAppend(
                stream: effect,
                events: [SerializedDomainEvent(
                    origin: effect.origin, aggregateType: effect.aggregateType, eventType: "Done", version: 1, id: UUID(),
                    aggregateID: effect.aggregateID, payload: nil, sequenceNumber: 1, timestamp: Date(millisecondsSince1970: 1_700_000_000_000))],
                expected: .noStream))
        }
        for number in 0..<3 { #expect(try await handler.process(Self.event(number)) == .parked) }
        await runs.succeed()
        async let first = handler.replayParked()
        async let second = handler.replayParked()
        let replayed = try await [first, second]
        #expect(replayed.reduce(0, +) == 3 && replayed.contains(0), "\(replayed)")
        #expect(await runs.count == 3, "each parked message's handler ran once")
        #expect(try await handler.parked().isEmpty)
        let effects = await store.events(from: .start, maxCount: 100).filter { $0.event.aggregateType == "Effect" }
        #expect(effects.count == 3)
    }

    // Two instances of one consumer (two processes: two handlers on one store) replaying the
    // same parked messages at once: both may run a message's handler, but its effects commit
    // once. The second instance's unpark conflicted on the parked stream, read its version
    // again and committed its own copy of the effects too.
    @Test func twoInstancesReplayingAtOnceCommitEachMessagesEffectsOnce() async throws {
        struct Refused: Error {}
        let store = InMemoryEventStore()
        let runs = Runs()
        func instance() -> IdempotentHandler {
            IdempotentHandler(name: "replayer", store: store, retry: RetryPolicy(maximumAttempts: 1)) { event, unit in
                guard await runs.start() else { throw Refused() }
                try await Task.sleep(for: .milliseconds(20))  // the other instance's turn
                let effect = StreamID(origin: "bus", aggregateType: "Effect", aggregateID: UUID().uuidString)
                unit.add(StreamAppend(
                    stream: effect,
                    events: [SerializedDomainEvent(
                        origin: effect.origin, aggregateType: effect.aggregateType, eventType: "Done", version: 1, id: UUID(),
                        aggregateID: effect.aggregateID, payload: Data(event.id.uuidString.utf8), sequenceNumber: 1,
                        timestamp: Date(millisecondsSince1970: 1_700_000_000_000))],
                    expected: .noStream))
            }
        }
        let one = instance(), other = instance()
        for number in 0..<3 { #expect(try await one.process(Self.event(number)) == .parked) }
        await runs.succeed()
        async let first = one.replayParked()
        async let second = other.replayParked()
        let replayed = try await [first, second]
        #expect(replayed.reduce(0, +) == 3, "\(replayed)")
        #expect(try await one.parked().isEmpty)
        #expect(try await other.parked().isEmpty)
        let effects = await store.events(from: .start, maxCount: 100).filter { $0.event.aggregateType == "Effect" }
        #expect(effects.count == 3, "effects committed: \(effects.count)")
        #expect(Set(effects.compactMap(\.event.payload)).count == 3, "one per message")
    }
}
