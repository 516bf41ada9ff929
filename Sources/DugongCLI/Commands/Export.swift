import ArgumentParser
import DugongStore
import Foundation

/// `dugong export`: the log as JSON Lines that `import` takes.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every event as JSON Lines that `dugong import` accepts.",
        discussion: """
            Events in log order (stream, version, id, type, timestamp, data, metadata), then one \
            line per truncated, deleted or tombstoned stream, by stream name. `dugong import` \
            recreates the same streams, versions, ids, order and stream states from it, \
            compacted stores included: exporting, importing into a new store and exporting \
            again gives identical output (for a store exported from position 0). Reads without \
            the write lock.

            Example:
              dugong export /var/lib/app/events > events.jsonl
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Option(help: "First global position to export.") var from: UInt64 = 0

    func run() throws {
        let log = try StoreAccess.open(store)
        defer { log.close() }
        do {
            var position = from
            while true {
                let page = try log.readAll(from: position, maxCount: 4096)
                guard let last = page.last else { break }
                for event in page { Terminal.emit(JSONLines.line(for: event, withPosition: false)) }
                position = last.position + 1
            }
            // Sorted by name (bytes): the same lines whatever order the streams began in.
            for stream in try log.streamNames().sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                guard let info = try log.info(stream: stream) else { continue }
                if info.isTombstoned {
                    Terminal.emit("{\"stream\":\(JSONLines.quoted(stream)),\"tombstone\":true}")
                } else if info.firstVisibleVersion > 1 {
                    Terminal.emit("{\"stream\":\(JSONLines.quoted(stream)),\"truncateBefore\":\(info.firstVisibleVersion)}")
                }
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }
}
