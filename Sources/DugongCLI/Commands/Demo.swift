import ArgumentParser
import Dugong
import DugongExample
import DugongStore
import Foundation

/// `dugong demo`: the bank-account example end to end.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bank-account example end to end and tell what happens.",
        discussion: """
            Opens an account, deposits and withdraws, has a withdrawal refused, lets two tellers \
            race on the same account so that one hits an optimistic-concurrency conflict and \
            retries, prints the stored events, then shows snapshots, time travel and a \
            projection ("total balance per owner").

            By default the events go to a DugongStore in a new temporary directory, removed \
            afterwards; --store keeps them in a directory of your choice, or in a PostgreSQL \
            database named by a postgres:// URL (with a dugong built with the Postgres trait).

            Examples:
              dugong demo
              dugong demo --store /tmp/bank
              dugong demo --in-memory
            """
    )

    @Option(help: "Store directory to use (created if missing) and keep, or a postgres:// URL (tables created if missing).")
    var store: String?

    @Flag(help: "Use the in-memory event store instead of a DugongStore.")
    var inMemory = false

    func validate() throws {
        if inMemory && store != nil { throw ValidationError("--in-memory and --store exclude each other") }
    }

    func run() async throws {
        if inMemory {
            Terminal.emit("Dugong demo: a bank account on the in-memory event store\n")
            try await BankAccountStory.run(on: InMemoryEventStore(), snapshots: InMemorySnapshotStore()) { Terminal.emit($0) }
            return
        }
        if let store, PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let directory = store ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("dugong-demo-\(UUID().uuidString.prefix(8))").path
        defer { if store == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let log = try EventLog.open(at: directory, options: .init(createIfMissing: true))
        defer { log.close() }
        Terminal.emit("Dugong demo: a bank account on a DugongStore in \(directory)\n")
        try await BankAccountStory.run(on: EventLogStore(log: log), snapshots: EventLogSnapshotStore(log: log)) { Terminal.emit($0) }
        Terminal.emit("\nThe store holds \(log.eventCount) events in \(log.frameBytes) bytes of frames (\(log.segmentNames.joined(separator: ", "))).")
    }
}
