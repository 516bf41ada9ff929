import ArgumentParser
import DugongStore
import Foundation

/// `dugong export`: the log as JSON Lines that `import` takes.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every event as JSON Lines that `dugong import` accepts.",
        discussion: """
            Events in log order (stream, version, id, type, timestamp, data, metadata), then one \
            line per truncated, deleted or tombstoned stream, by stream name. `dugong import` \
            recreates the same streams, versions, ids, order and stream states from it, \
            compacted stores included: exporting, importing into a new store and exporting \
            again gives identical output (for a store exported from position 0). Reads without \
            the write lock.

            A damaged store stops the export at the damage (exit 1) unless --skip-damage is \
            given: then every event that can still be read is exported, and each damaged region \
            stepped over is named on stderr (file, offset, the positions it held). A stream keeps \
            an unbroken run of versions: once one of its versions is lost, its later events are \
            not exported but listed (and written to --rejects FILE when given). Exits 1 when \
            anything was skipped, 0 when the store was clean.

            Examples:
              dugong export /var/lib/app/events > events.jsonl
              dugong export /var/lib/app/events --skip-damage | dugong import salvaged
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Option(parsing: .unconditional, help: "First global position to export (a directory store only).") var from: UInt64 = 0
    @Flag(help: "Step over damaged data: export every event that can still be read, and report what was skipped.")
    var skipDamage = false
    @Option(help: ArgumentHelp("With --skip-damage: write the events left out after a lost version of their stream here.", valueName: "file"))
    var rejects: String?

    func validate() throws {
        if rejects != nil && !skipDamage { throw ValidationError("--rejects goes with --skip-damage") }
        if PostgresAccess.isURL(store) && skipDamage {
            throw ValidationError("--skip-damage salvages a damaged directory store; it does not apply to PostgreSQL")
        }
        if PostgresAccess.isURL(store) && from != 0 { throw ValidationError("--from is a directory store's position; a PostgreSQL export is always whole") }
    }

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let log = try StoreAccess.open(store)
        defer { log.close() }
        if skipDamage {
            var salvage = try Salvage(log: log, store: store, rejects: rejects)
            try salvage.run(from: from)
            return
        }
        do {
            var position = from
            while true {
                let page = try log.readAll(from: position, maxCount: 4096)
                guard let last = page.last else { break }
                for event in page { Terminal.emit(JSONLines.line(for: event, withPosition: false)) }
                position = last.position + 1
            }
            // Every stored event was printed: a stream's last version is its version.
            try Self.lifecycleLines(in: log) { _, info in (info.version, info.version >= info.firstStoredVersion) }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        // Damage the reads did not meet (of the store as a whole: a manifest) may have held
        // what the lines above lack.
        try StoreAccess.failIfDamaged(log, path: store, what: "lines above")
    }

    /// The lines that give an imported copy each stream's state, sorted by name (bytes: the same
    /// lines whatever order the streams began in). `exported` tells a stream's last version in
    /// the event lines (or where its versions end when it has none) and whether it has any.
    /// A stream without event lines whose versions end above 0 (compaction removed them) begins
    /// after them; one that only a lifecycle command made (version 0) is made again; a
    /// truncation never goes past the versions exported.
    static func lifecycleLines(in log: EventLog, exported: (String, EventLog.StreamInfo) -> (last: Int, hasEvents: Bool)) throws {
        let streams = try log.streamNames().compactMap { name in try log.info(stream: name).map { (name, $0) } }
        lifecycleLines(of: streams, exported: exported)
    }

    /// ``lifecycleLines(in:exported:)`` of streams and their states, from any store.
    static func lifecycleLines(of streams: [(name: String, info: EventLog.StreamInfo)], exported: (String, EventLog.StreamInfo) -> (last: Int, hasEvents: Bool)) {
        for (stream, info) in streams.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            let (last, hasEvents) = exported(stream, info)
            var before = min(info.firstVisibleVersion, last + 1)
            if !hasEvents && last > 0 { before = last + 1 }
            if before > 1 || (info.version == 0 && !info.isTombstoned) {
                Terminal.emit(JSONLines.truncation(of: stream, before: max(before, 1)))
            }
            if info.isTombstoned { Terminal.emit(JSONLines.tombstone(of: stream)) }
        }
    }
}
