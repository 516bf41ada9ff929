import ArgumentParser
import Dugong
import DugongExample
import DugongStore
import Foundation
#if Studio
import DugongStudio
#endif

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
              dugong demo --studio
            """
    )

    @Option(help: "Store directory to use (created if missing) and keep, or a postgres:// URL (tables created if missing).")
    var store: String?

    @Flag(help: "Use the in-memory event store instead of a DugongStore.")
    var inMemory = false

    @Flag(help: "Then serve Dugong Studio on the store, with the accounts' states and diffs, until Ctrl-C (a dugong built with the Studio trait).")
    var studio = false

    @Option(parsing: .unconditional, help: "The Studio's port with --studio (0: a free one).")
    var port: Int?

    func validate() throws {
        if inMemory && store != nil { throw ValidationError("--in-memory and --store exclude each other") }
        if studio && (inMemory || store.map(PostgresAccess.isURL) == true) {
            throw ValidationError("--studio shows a directory store: leave out --in-memory and postgres:// URLs")
        }
        // (A port without --studio served nothing, silently.)
        if port != nil && !studio { throw ValidationError("--port is the Studio's: it goes with --studio") }
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535, not \(port)") }
    }

    func run() async throws {
        if inMemory {
            Terminal.emit("Dugong demo: a bank account on the in-memory event store\n")
            try await BankAccountStory.run(on: InMemoryEventStore(), snapshots: InMemorySnapshotStore()) { Terminal.emit($0) }
            return
        }
        if let store, PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let scratch = store == nil ? ScratchDirectory(prefix: "dugong-demo", catchingInterrupts: !studio) : nil
        defer { scratch?.remove() }
        let directory = store ?? scratch!.path
        let log = try StoreAccess.open(directory, forWriting: true, creating: true)
        defer { log.close() }
        Terminal.emit("Dugong demo: a bank account on a DugongStore in \(directory)\n")
        try await BankAccountStory.run(on: EventLogStore(log: log), snapshots: EventLogSnapshotStore(log: log)) { Terminal.emit($0) }
        Terminal.emit("\nThe store holds \(log.eventCount) events in \(log.frameBytes) bytes of frames (\(log.segmentNames.joined(separator: ", "))).")
        if studio {
            #if Studio
            Terminal.emit("\nOpen a BankAccount stream in the Studio and select an event: its state before and after, and what changed.")
            try await StudioCommand.serve(try StudioCommand.studio { try Studio(log: log, aggregates: [BankAccount.self], options: .init(port: port ?? 0)) })
            #else
            throw Terminal.fail("this dugong was built without the Studio: build it with `swift build --traits Studio`", code: ExitStatus.usage.rawValue)
            #endif
        }
    }
}
