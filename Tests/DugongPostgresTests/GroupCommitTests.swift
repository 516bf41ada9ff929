#if Postgres
import Dugong
@testable import DugongPostgres
import Foundation
import PostgresNIO
import Testing

/// Concurrent single-stream appends share transactions (``GroupCommit``): each is still decided
/// against its own stream, answered with its own cursor, and refused alone.
@Suite("PostgreSQL: appends committed together", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct GroupCommitTests {
    static func event(_ stream: StreamID, _ sequenceNumber: Int, id: UUID = UUID()) -> SerializedDomainEvent {
        SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Happened", version: 1, id: id,
            aggregateID: stream.aggregateID, payload: Data("\(stream.aggregateID) #\(sequenceNumber)".utf8), sequenceNumber: sequenceNumber,
            timestamp: Date(millisecondsSince1970: 1_700_000_000_000 + Int64(sequenceNumber)))
    }

    static func stream(_ name: String) -> StreamID {
        StreamID(origin: "batches", aggregateType: "Account", aggregateID: name)
    }

    /// Every event of `store`'s global log, in order, once every commit so far is readable
    /// (transactions of other tests on the server hold readers back a little).
    static func log(_ store: PostgresEventStore) async throws -> [RecordedEvent] {
        try await store.waitForCommittedEvents()
        var log: [RecordedEvent] = []
        var cursor = LogCursor.start
        while true {
            let page = try await store.events(from: cursor, maxCount: 1000)
            guard let next = page.last?.next else { return log }
            log += page
            cursor = next
        }
    }

    @Test func concurrentAppendsShareTransactionsAndEachIsAnsweredWithItsOwnCursor() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            // 48 writers, 8 appends each, of 1–3 events to streams of their own.
            let answers = try await withThrowingTaskGroup(of: [(UUID, AppendResult)].self) { group in
                for writer in 0..<48 {
                    group.addTask {
                        let stream = Self.stream("w\(writer)")
                        var answers: [(UUID, AppendResult)] = []
                        var version = 0
                        for round in 0..<8 {
                            let events = (1...(1 + (writer + round) % 3)).map { Self.event(stream, version + $0) }
                            let result = try await store.append(events, to: stream, expecting: version == 0 ? .noStream : .exact(version))
                            #expect(result.version == version + events.count && !result.wasDuplicate)
                            version += events.count
                            answers.append((events.last!.id, result))
                        }
                        return answers
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let log = try await Self.log(store)
            let cursors = Dictionary(uniqueKeysWithValues: log.map { ($0.event.id, $0.cursor) })
            for (id, result) in answers {
                #expect(result.cursor != nil && result.cursor == cursors[id], "an append answered with \(String(describing: result.cursor)), its last event logged at \(String(describing: cursors[id]))")
            }
            for writer in 0..<48 {
                let events = try await store.read(Self.stream("w\(writer)"))
                #expect(events.map(\.sequenceNumber) == Array(1...events.count) && events.allSatisfy { $0.payload == Data("w\(writer) #\($0.sequenceNumber)".utf8) })
            }
            let counts = store.groupCommit.counts
            let transactions = Set(log.map(\.cursor.transaction)).count
            #expect(counts.appends == answers.count)
            #expect(counts.batches < counts.appends && transactions < answers.count,
                    "no two appends shared a transaction: \(counts.batches) batches for \(counts.appends) appends, \(transactions) transactions")
        }
    }

    /// An append its batch cannot hold (an id stored in another stream, a version taken, a
    /// tombstoned stream) rolls the batch back, or is kept out by its guard; each is decided
    /// again alone: the others are written, it alone is refused, with its own reason. The
    /// append at a taken version carries the id of another append's event (of the same batch,
    /// mostly): it must not be answered with that event's row. (Odd rounds have no append of
    /// an id stored elsewhere: it rolls every batch it is in back, and the batches must commit.)
    @Test func anAppendThatFailsFailsAloneAndTheOthersOfItsBatchAreWritten() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let taken = Self.event(Self.stream("taken"), 1)
            try await store.append([taken], to: Self.stream("taken"), expecting: .noStream)
            try await store.append([Self.event(Self.stream("ahead"), 1)], to: Self.stream("ahead"), expecting: .noStream)
            try await store.tombstone(streamNamed: AggregateStreamName.name(of: Self.stream("gone")))
            enum Answer: Sendable, Equatable { case written, storedElsewhere, conflict, tombstoned, other(String) }
            for round in 0..<6 {
                let ids = (0..<40).map { _ in UUID() }
                let answers = await withTaskGroup(of: (Int, Answer).self) { group in
                    for index in 0..<40 {
                        group.addTask {
                            let stream: StreamID
                            let event: SerializedDomainEvent
                            switch index % 10 {
                            case 3 where round.isMultiple(of: 2): (stream, event) = (Self.stream("r\(round)-\(index)"), Self.event(Self.stream("r\(round)-\(index)"), 1, id: taken.id))
                            case 6: (stream, event) = (Self.stream("ahead"), Self.event(Self.stream("ahead"), 1, id: ids[index - 1]))
                            case 9: (stream, event) = (Self.stream("gone"), Self.event(Self.stream("gone"), 1))
                            default: (stream, event) = (Self.stream("r\(round)-\(index)"), Self.event(Self.stream("r\(round)-\(index)"), 1, id: ids[index]))
                            }
                            do {
                                try await store.append([event], to: stream, expecting: .any)
                                return (index, .written)
                            } catch EventStoreError.invalidAppend(_, let reason) where reason.contains("already stored") {
                                return (index, .storedElsewhere)
                            } catch EventStoreError.conflict {
                                return (index, .conflict)
                            } catch PostgresStoreError.streamTombstoned {
                                return (index, .tombstoned)
                            } catch {
                                return (index, .other("\(error)"))
                            }
                        }
                    }
                    return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
                }
                for (index, answer) in answers {
                    let expected: Answer = switch index % 10 {
                    case 3 where round.isMultiple(of: 2): .storedElsewhere
                    case 6: .conflict
                    case 9: .tombstoned
                    default: .written
                    }
                    #expect(answer == expected, "round \(round), append \(index)")
                }
            }
            let log = try await Self.log(store)
            let written: Int = 2 + 3 * 28 + 3 * 32  // the first two; 28 of 40 in even rounds, 32 in odd ones
            #expect(log.count == written, "\(log.count) events in the log")
            let ahead = try await store.read(Self.stream("ahead"))
            #expect(ahead.count == 1)
            let counts = store.groupCommit.counts
            #expect(counts.batches < counts.appends, "no two appends shared a batch: \(counts.batches) batches for \(counts.appends) appends")
        }
    }

    /// Writers racing for the same versions of the same streams: one append per version wins,
    /// the others are refused with a conflict, and the streams hold exactly the winners' events.
    @Test func racesForOneVersionHaveOneWinner() async throws {
        try await TestServer.withFreshDatabase { client in
            let store = PostgresEventStore(client: client)
            let streams = (0..<3).map { Self.stream("contended-\($0)") }
            var winners: [StreamID: [UUID]] = [:]
            for version in 0..<12 {
                let results = await withTaskGroup(of: (StreamID, UUID, Bool).self) { group in
                    for racer in 0..<24 {
                        let stream = streams[racer % streams.count]
                        let event = Self.event(stream, version + 1)
                        group.addTask {
                            do {
                                try await store.append([event], to: stream, expecting: version == 0 ? .noStream : .exact(version))
                                return (stream, event.id, true)
                            } catch {
                                #expect(error is EventStoreError, "\(error)")
                                return (stream, event.id, false)
                            }
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                for stream in streams {
                    let won = results.filter { $0.0 == stream && $0.2 }
                    #expect(won.count == 1, "\(stream) at version \(version): \(won.count) winners")
                    winners[stream, default: []] += won.map(\.1)
                }
            }
            for stream in streams {
                let stored = try await store.read(stream)
                #expect(stored.map(\.id) == winners[stream])
            }
        }
    }
}
#endif
