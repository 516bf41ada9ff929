import ArgumentParser
import DugongStore
import Foundation

/// `dugong read`: one stream as JSON Lines.
struct Read: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a stream's events as JSON Lines.",
        discussion: """
            One event per line: stream, version, position, id, type, timestamp (ISO 8601, UTC, \
            milliseconds), data and metadata (the stored bytes as JSON when they are JSON, \
            otherwise {"base64": "…"}; null when empty). Reads without the write lock. A stream \
            the store has never seen exits with status 66.

            Example:
              dugong read /var/lib/app/events account/42 --from 10 --limit 5
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @Option(parsing: .unconditional, help: "First version to print (the last one with --backward).") var from: Int?
    @Option(parsing: .unconditional, help: "Print at most this many events.") var limit: Int?
    @Flag(help: "Newest first.") var backward = false

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let from, from < 1 { throw ValidationError("--from is a version, 1 or more") }
    }

    func run() throws {
        let log = try StoreAccess.open(store)
        defer { log.close() }
        do {
            guard let info = try log.info(stream: stream) else {
                throw Terminal.fail("\(store) has no stream '\(stream)'", code: ExitStatus.notFound.rawValue)
            }
            let events = try log.read(
                stream: stream, from: from, maxCount: limit ?? .max, direction: backward ? .backward : .forward)
            for event in events { Terminal.emit(JSONLines.line(for: event)) }
            if events.isEmpty, info.readsAsEmpty {
                Terminal.error(info.isTombstoned ? "stream '\(stream)' is tombstoned" : "stream '\(stream)' is deleted or truncated: no version is visible")
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }
}

/// `dugong read-all`: the whole log as JSON Lines, optionally following new events.
struct ReadAll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-all",
        abstract: "Print every event in log order as JSON Lines.",
        discussion: """
            Same lines as `dugong read`, from global position --from on. With --follow it keeps \
            printing new events as a writer in another process commits them (it reads without \
            the write lock, and looks for new commits every 10 ms), through the writer's \
            restarts and compactions: every event once, in order; events a compaction removed \
            before they were printed are skipped. Stop it with Ctrl-C.

            Example:
              dugong read-all /var/lib/app/events --from 1000 --follow
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Option(help: "First global position to print.") var from: UInt64 = 0
    @Option(parsing: .unconditional, help: "Print at most this many events.") var limit: Int?
    @Flag(help: "Keep printing events as they are committed.") var follow = false

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
    }

    func run() throws {
        let log = try StoreAccess.open(store)
        defer { log.close() }
        var position = from
        var remaining = limit ?? .max
        do {
            while remaining > 0 {
                let page = try log.readAll(from: position, maxCount: min(remaining, 4096))
                for event in page { Terminal.emit(JSONLines.line(for: event)) }
                remaining -= page.count
                if let last = page.last {
                    position = last.position + 1
                    continue
                }
                guard follow else { break }
                if try log.refresh() == 0 {
                    let (seconds, attoseconds) = log.options.followInterval.components
                    usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
                }
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }
}
