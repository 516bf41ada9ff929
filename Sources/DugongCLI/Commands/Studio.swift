import ArgumentParser
import Dugong
import DugongExample
import DugongStore
import Foundation
import Glibc
import Logging
import Synchronization
#if Studio
import DugongStudio
#endif

/// `dugong studio`: the web inspector on a store.
struct StudioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "studio",
        abstract: "Inspect a store in the browser: streams, events, the log live, health, checkpoints.",
        discussion: """
            Serves Dugong Studio on http://127.0.0.1:PORT/ until interrupted (Ctrl-C) and prints \
            its URL. Read-only: the store is opened as a reader, beside a running application \
            (a directory that holds no store yet is shown once the application creates the store \
            there, with a warning at start). \
            With --allow-maintenance the store is opened for writing (stop the application \
            first) and the page offers verify and compact, each after a confirmation. A \
            postgres:// URL in place of the directory shows that database, read-only (a dugong \
            built with the Postgres trait too).

            Only this machine can reach it unless --host names another address; then every \
            request needs the access token in the printed URL. Event data may hold personal data: \
            share a Studio only with people allowed to see it.

            States and diffs of aggregates need the application's aggregate types: embed \
            DugongStudio (README, "Studio"). `dugong demo --studio` shows them on the bank example.

            Examples:
              dugong studio /var/lib/app/events
              dugong studio /var/lib/app/events --port 8080
              dugong studio /var/lib/app/events --allow-maintenance
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Option(parsing: .unconditional, help: "The port to listen on (0: a free one).") var port = 0
    @Option(help: "The address to listen on; other than a loopback one, requests need the printed token.") var host = "127.0.0.1"
    @Flag(help: "Open the store for writing and offer verify and compact.") var allowMaintenance = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, not \(port)") }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { throw ValidationError("--host must be an address or a name, not '\(host)'") }
    }

    func run() async throws {
        if PostgresAccess.isURL(store) {
            if allowMaintenance {
                throw Terminal.fail(
                    "\(PostgresAccess.redacted(store)): a Studio of PostgreSQL is read-only (PostgreSQL verifies and reclaims space itself)",
                    code: ExitStatus.usage.rawValue)
            }
            return try await runOnPostgres()
        }
        #if Studio
        // Read-only, it follows the log: it may start before the application makes the store.
        // It says so (a mistyped path looked like a healthy, empty store).
        let empty = !allowMaintenance && StoreAccess.holdsNoStore(at: store)
        let log = try StoreAccess.open(store, forWriting: allowMaintenance, waitingForStore: !allowMaintenance)
        defer { log.close() }
        if empty {
            Terminal.error(
                "dugong: warning: \(store) holds no store yet (no manifest and no segment file in it): the Studio shows it once an application creates it there; check the path if that is not what you meant")
        }
        if allowMaintenance, let first = log.recovery.corruptions.first {
            // Opened for writing, a damaged store takes no writes: nothing to maintain but to look.
            Terminal.error(
                "dugong: warning: \(store) has damage (\(log.recovery.corruptions.count) region(s); the first: \(first)); it takes no writes, and the Studio's compact is refused: `dugong verify` names the damage, `dugong export --skip-damage` copies out what is readable")
        }
        try await Self.serve(try Self.studio { try Studio(log: log, options: options) })
        #else
        throw Terminal.fail("this dugong was built without the Studio: build it with `swift build --traits Studio`", code: ExitStatus.usage.rawValue)
        #endif
    }

    #if Studio
    /// The tool owns the store it opens: maintenance includes compaction.
    var options: Studio.Options { .init(host: host, port: port, allowMaintenance: allowMaintenance, allowCompaction: allowMaintenance) }

    /// The Studio `make` makes; its refusal (maintenance on a read-only store) is a usage error.
    static func studio(_ make: () throws -> Studio) throws -> Studio {
        do {
            return try make()
        } catch {
            throw Terminal.fail("\(error)", code: ExitStatus.usage.rawValue)
        }
    }

    /// Serves until SIGINT or SIGTERM.
    static func serve(_ studio: Studio) async throws {
        var logger = Logger(label: "dugong.studio")
        logger.logLevel = .warning
        let listening = Mutex(false)
        let serving = Task {
            try await studio.run(logger: logger) { url in
                listening.withLock { $0 = true }
                Terminal.emit("Dugong Studio: \(url.absoluteString)  (Ctrl-C stops it)")
                // A wildcard address is where it listens, not an address another machine opens.
                if ["0.0.0.0", "::", "[::]", "::0"].contains(studio.options.host) {
                    Terminal.emit(
                        "  (listening on every address of this machine: from another machine, open it with this machine's name or address in place of \(studio.options.host))"
                    )
                }
            }
        }
        // Ctrl-C and SIGTERM stop the server; the caller then closes the store.
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { serving.cancel() }
            source.resume()
            return source
        }
        defer { for source in signals { source.cancel() } }
        do {
            try await serving.value
        } catch is CancellationError {
            // Stopped by a signal.
        } catch {
            let place = "\(studio.options.host) port \(studio.options.port == 0 ? "(any free one)" : "\(studio.options.port)")"
            guard listening.withLock({ $0 }) else {
                // (A host name that does not resolve is a wrong argument; an address in use or
                // not this machine's, a failed call.)
                let unknownHost = "\(error)".hasPrefix("SocketAddressError")
                throw Terminal.fail(
                    "the Studio could not listen on \(place): \(Self.reason(error))",
                    code: unknownHost ? ExitStatus.usage.rawValue : ExitStatus.ioFailure.rawValue)
            }
            throw Terminal.fail("the Studio stopped on \(place): \(Self.reason(error))", code: ExitStatus.ioFailure.rawValue)
        }
    }

    /// An error's text, a failed system call's as its reason and number (SwiftNIO's read
    /// "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)").
    static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        if let found = text.firstMatch(of: /\(errno: ([0-9]+)\)/), let code = Int32(found.1) {
            return "\(String(cString: strerror(code))) (errno \(code))"
        }
        return text
    }
    #endif
}

#if Postgres
extension StudioCommand {
    /// The Studio on a PostgreSQL database (read-only).
    func runOnPostgres() async throws {
        #if Studio
        try await PostgresAccess.with(store) { database in
            try await Self.serve(try Self.studio { try Studio(postgres: database, label: PostgresAccess.redacted(store), options: options) })
        }
        #else
        throw Terminal.fail("this dugong was built without the Studio: build it with `swift build --traits Studio`", code: ExitStatus.usage.rawValue)
        #endif
    }
}
#endif
