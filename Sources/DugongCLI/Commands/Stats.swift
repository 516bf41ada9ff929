import ArgumentParser
import DugongStore
import Foundation

/// `dugong stats`: what a store holds and how big it is.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a store's segments, events, streams, sizes and compression.",
        discussion: """
            Reads without the write lock, so it runs beside a writer.

            Example:
              dugong stats /var/lib/app/events --json
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Flag(help: "Print the statistics as JSON.") var json = false

    func run() throws {
        let log = try StoreAccess.open(store)
        defer { log.close() }
        let stats = try log.statistics()
        if json {
            print(try Verify.encode(stats))
            return
        }
        print("store: \(store)")
        print("events: \(stats.events) in \(stats.streams) streams (next position \(stats.headPosition))")
        print("on disk: \(stats.fileBytes) bytes in \(stats.segments.count) segment(s); frames \(stats.frameBytes) bytes"
            + (stats.events > 0 ? String(format: " (%.1f bytes/event)", Double(stats.frameBytes) / Double(stats.events)) : ""))
        print(String(format: "compression: %.2f× (%d raw payload bytes)", stats.compressionRatio, stats.rawPayloadBytes))
        print("segments:")
        for (index, segment) in stats.segments.enumerated() {
            let end = index + 1 < stats.segments.count ? "\(stats.segments[index + 1].firstPosition)" : "\(stats.headPosition)"
            print("  \(segment.name)  positions \(segment.firstPosition)..<\(end)  \(segment.fileBytes) bytes")
        }
        if !stats.largestStreams.isEmpty {
            print("largest streams:")
            for stream in stats.largestStreams { print("  \(stream.stream)  \(stream.version) versions") }
        }
    }
}
