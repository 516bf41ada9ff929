import ArgumentParser
import DugongStore
import Foundation

/// `dugong stats`: what a store holds and how big it is.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a store's segments, events, streams, sizes and compression.",
        discussion: """
            Reads without the write lock, so it runs beside a writer. When the open finds \
            damage it prints the statistics of the rest, then names the damage and exits 1 (an \
            open checks the frames written since the last clean close, every frame when the \
            store has no saved index; `dugong verify` checks them all). Each segment's \
            format version is shown; segments of an older version are read as they are, and \
            `dugong compact` rewrites them in the current one.

            Example:
              dugong stats /var/lib/app/events --json
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Flag(help: "Print the statistics as JSON.") var json = false

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let log = try StoreAccess.open(store)
        defer { log.close() }
        let stats = try log.statistics()
        if json {
            Terminal.emit(try Verify.encode(stats))
            try StoreAccess.failIfDamaged(log, path: store, what: "the counts above")
            return
        }
        Terminal.emit("store: \(store)")
        Terminal.emit("events: \(stats.events) in \(stats.streams) streams (next position \(stats.headPosition))")
        Terminal.emit("on disk: \(Self.size(stats.fileBytes)) in \(stats.segments.count) segment(s); frames \(Self.size(stats.frameBytes))"
            + (stats.events > 0 ? String(format: " (%.1f bytes/event)", Double(stats.frameBytes) / Double(stats.events)) : ""))
        // (Without events the ratio is of the store's bookkeeping frames alone: it says nothing.)
        Terminal.emit(
            stats.events == 0
                ? "compression: none yet (no events)"
                : String(format: "compression: %.2f× (%@ of raw payload)", stats.compressionRatio, Self.size(stats.rawPayloadBytes)))
        Terminal.emit("segments:")
        for (index, segment) in stats.segments.enumerated() {
            let end = index + 1 < stats.segments.count ? "\(stats.segments[index + 1].firstPosition)" : "\(stats.headPosition)"
            Terminal.emit(
                "  \(segment.name)  positions \(segment.firstPosition)..<\(end)  \(Self.size(segment.fileBytes))  format version \(segment.formatVersion)")
        }
        let older = stats.segments.filter { $0.formatVersion < EventLog.formatVersion }.count
        if older > 0 {
            Terminal.emit(
                "\(older) segment(s) of an older format version: read as they are and never written again; "
                    + "`dugong compact \(store)` rewrites them in format version \(EventLog.formatVersion)")
        }
        if !stats.largestStreams.isEmpty {
            Terminal.emit("streams with the most versions (deleted and truncated ones too):")
            for stream in stats.largestStreams { Terminal.emit("  \(Streams.escaped(stream.stream))  \(Terminal.count(stream.version, "version"))") }
        }
        try StoreAccess.failIfDamaged(log, path: store, what: "the counts above")
    }
}

extension Stats {
    /// A byte count for people: `512 B`, `4.0 KiB`, `61.2 MiB`, `1.5 GiB`.
    static func size(_ bytes: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        guard bytes >= 1024 else { return "\(bytes) B" }
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f %@", value, units[unit])
    }
}
