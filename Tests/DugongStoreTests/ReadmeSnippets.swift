import Dugong
import DugongStore
import Foundation
import Testing

// The README's storage-engine snippets as they stand there (indentation aside), so that they
// compile and run; DugongTests' ReadmeTests checks that each one is here.

@Suite("README snippets: the storage engine")
struct StoreReadmeSnippets {
    @Test func theEngineOnItsOwn() async throws {
        let temporary = TemporaryDirectory("readme")
        defer { temporary.remove() }
        let directory = temporary.path
        do {
            let log = try EventLog.open(at: directory, options: .init(createIfMissing: true))
            defer { log.close() }
            let commit = try await log.append(
                [NewEvent(type: "MoneyDeposited", data: Data(#"{"amount":100}"#.utf8))],
                to: "account/42", expecting: .noStream)        // durable (fdatasync) when it returns
            print(commit.lastVersion, commit.lastPosition)   // 1 0
            for event in try log.read(stream: "account/42") { print(event.version, event.type) }
            var bytes = 0                                    // a replay: each event lent in place, not copied
            try log.forEachEvent(from: 0) { event in bytes += event.withData { $0.count } }
            let tail = Task {                                // catch-up, then live; ends when the log closes
                for try await event in log.subscribe(from: 0) { print(event.position, event.type) }
            }
            #expect(commit.lastVersion == 1 && commit.lastPosition == 0)
            #expect(bytes == 14)
            _ = tail

            let store = EventLogStore(log: log)              // an EventStore
            let snapshots = EventLogSnapshotStore(log: log)  // a SnapshotStore
            #expect(try await store.aggregateIDs(origin: "x", aggregateType: "y", tenantID: nil).isEmpty)
            #expect(try await snapshots.latest(for: StreamID(origin: "x", aggregateType: "y", aggregateID: "z")) == nil)
        }
    }

    @Test func aReaderBesideAWriter() async throws {
        let temporary = TemporaryDirectory("readme-reader")
        defer { temporary.remove() }
        let directory = temporary.path
        let writer = try EventLog.open(at: directory, options: .init(createIfMissing: true))
        defer { writer.close() }
        try await writer.append([NewEvent(type: "A", data: Data())], to: "s/1")
        var projected: [UInt64] = []
        func project(_ event: StoredEvent) async throws {
            projected.append(event.position)
            if projected.count == 2 { throw CancellationError() }
        }
        var checkpoint: UInt64 = 0
        let second = Task {
            try await Task.sleep(for: .milliseconds(50))
            try await writer.append([NewEvent(type: "B", data: Data())], to: "s/1")
        }
        do {
            var options = EventLog.Options()
            options.readOnly = true                          // no lock: a writer may have the store open
            let reader = try EventLog.open(at: directory, options: options)
            for try await event in reader.subscribe(from: checkpoint) {
                try await project(event)                     // every event once, in log order
                checkpoint = event.position + 1
            }
        } catch is CancellationError {}
        try await second.value
        #expect(projected == [0, 1] && checkpoint == 1)
    }
}
