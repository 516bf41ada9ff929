#if Studio
import Dugong
#if Postgres
import DugongPostgres
#endif
import DugongStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Dugong Studio: a web inspector of an embedded store, served to a browser on this machine.
///
/// ```swift
/// let log = try EventLog.open(at: "/var/lib/app/events", options: .init(readOnly: true))
/// let studio = try Studio(log: log, aggregates: [BankAccount.self])
/// try await studio.run { url in print("Dugong Studio: \(url)") }   // until cancelled
/// ```
///
/// With the application's aggregate types it also shows, for any aggregate event, the state
/// before and after it, what changed, and the command context that caused it.
///
/// Read-only unless ``Options/allowMaintenance``: then verify and compact are offered (the
/// store must be open for writing: the application stopped). Bound to 127.0.0.1 by default;
/// every request's `Host` must name this server (no DNS rebinding); bound to another address,
/// every request must carry the access token the URL given to `ready` holds; requests that
/// change something carry the page's CSRF token.
public struct Studio: Sendable {
    public struct Options: Sendable {
        /// The address to listen on: a loopback address unless you mean to share the store.
        public var host = "127.0.0.1"
        /// 0: a free port.
        public var port = 0
        /// Offers verify, and the running readers' controls (pause, resume, rewind, replay
        /// parked messages).
        public var allowMaintenance = false
        /// With maintenance, offers compaction too: it closes the store and opens it again, so
        /// only for a Studio that owns the store (`dugong studio`), never beside an application
        /// that appends to it.
        public var allowCompaction = false
        /// How long open answers (live tails) get to end after a stop before they are cut off
        /// (tests that stop a Studio on a loaded machine give them longer).
        var stopGrace: Duration = .seconds(2)

        public init(host: String = "127.0.0.1", port: Int = 0, allowMaintenance: Bool = false, allowCompaction: Bool = false) {
            self.host = host
            self.port = port
            self.allowMaintenance = allowMaintenance
            self.allowCompaction = allowCompaction
        }
    }

    let source: any StudioSource
    let readers: ReaderControls
    public let options: Options
    let guardian: RequestGuard
    /// Set when `run` is cancelled: open live tails end then.
    let stopping = StopSignal()

    /// - Parameters:
    ///   - log: the store, open read-only (or for writing, with ``Options/allowMaintenance``).
    ///   - aggregates: the application's aggregate types (states, diffs, command context).
    ///   - readers: the application's running projections and consumers: listed, and with
    ///     maintenance paused, resumed, rewound, their parked messages replayed.
    /// - Throws: ``StudioError`` for maintenance on a read-only store; ``EventRegistryError``
    ///   when the aggregates' event types conflict.
    public init(
        log: EventLog, aggregates: [any Aggregate.Type] = [], readers: [any GlobalLogReader] = [], options: Options = Options()
    ) throws {
        if options.allowMaintenance, log.options.readOnly { throw StudioError.maintenanceNeedsAWritableStore }
        source = try StoreBrowser(log: log, aggregates: aggregates)
        self.readers = ReaderControls(readers: readers)
        self.options = options
        guardian = RequestGuard(host: options.host)
    }

    /// A Studio of `source` (tests give one of their own).
    init(source: any StudioSource, options: Options = Options()) {
        self.source = source
        readers = ReaderControls(readers: [])
        self.options = options
        guardian = RequestGuard(host: options.host)
    }

    #if Postgres
    /// A Studio of a PostgreSQL database: it never changes the database (verify and compaction
    /// are PostgreSQL's own); with maintenance, the running readers' controls.
    ///
    /// - Parameter label: what the page calls the database (its URL without the password).
    /// - Throws: ``StudioError/maintenanceNeedsAWritableStore`` with ``Options/allowMaintenance``.
    public init(
        postgres store: PostgresEventStore, label: String, aggregates: [any Aggregate.Type] = [], readers: [any GlobalLogReader] = [],
        options: Options = Options()
    ) throws {
        if options.allowCompaction { throw StudioError.noMaintenanceOnPostgres }
        source = try PostgresBrowser(store: store, label: label, aggregates: aggregates)
        self.readers = ReaderControls(readers: readers)
        self.options = options
        guardian = RequestGuard(host: options.host)
    }
    #endif

    /// Serves until the task is cancelled. `ready` gets the page's URL (with the access token
    /// when the address is not a loopback one) once the server listens.
    public func run(logger: Logger = Logger(label: "dugong.studio"), ready: @escaping @Sendable (URL) async -> Void = { _ in }) async throws {
        let guardian = self.guardian
        // HEAD answers as GET does, without the body (it was 404: `curl -I` said "not found").
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: guardian)
        addRoutes(to: router)
        let app = Application(
            router: router,
            // A connection that sends no byte for 30 s while its request is unfinished, or
            // between requests, is closed (answers being sent, the live tail's, are not idle).
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(RequestGuard.bare(options.host), port: options.port), serverName: "Dugong Studio"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                guardian.listening(on: port)
                if let url = guardian.pageURL() { await ready(url) }
            },
            logger: logger)
        let services = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
        // Cancelling the caller shuts the server down gracefully (open answers end, the live
        // tails among them); what is still open 2 s later (`stopGrace`: a client that stopped reading, so a
        // write waits for ever) is cut off by cancelling the server's own task.
        let serving = Task { try await services.run() }
        try await withTaskCancellationHandler {
            try await serving.value
        } onCancel: { [stopping] in
            stopping.stop()
            Task { [grace = options.stopGrace] in
                await services.triggerGracefulShutdown()
                try? await Task.sleep(for: grace)
                serving.cancel()
            }
        }
    }
}

/// Set once, when the Studio stops; what waits for it (a live tail) then ends.
final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)

    func stop() { stopped.store(true, ordering: .releasing) }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Returns once stopped (looking every 100 ms); throws when the task is cancelled.
    func wait() async throws {
        while !isStopped { try await Task.sleep(for: .milliseconds(100)) }
    }
}

/// Why a Studio cannot start.
public enum StudioError: Error, Sendable, Equatable, CustomStringConvertible {
    case maintenanceNeedsAWritableStore
    case noMaintenanceOnPostgres

    public var description: String {
        switch self {
        case .maintenanceNeedsAWritableStore: "maintenance (verify, compact) needs the store open for writing: stop the application first"
        case .noMaintenanceOnPostgres: "a Studio of PostgreSQL does not compact: PostgreSQL reclaims space itself (VACUUM)"
        }
    }
}
#endif
