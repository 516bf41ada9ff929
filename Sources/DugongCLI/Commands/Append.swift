import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// Reads stdin line by line, numbering lines from 1 and skipping blank ones.
struct InputLines: Sequence, IteratorProtocol {
    private(set) var number = 0

    mutating func next() -> (number: Int, text: Substring)? {
        while let line = readLine(strippingNewline: true) {
            number += 1
            if !line.allSatisfy(\.isWhitespace) { return (number, Substring(line)) }
        }
        return nil
    }
}

/// `dugong append`: one commit from JSON Lines on stdin.
struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append the events on stdin (JSON Lines) to a stream as one commit.",
        discussion: """
            Each line is an event: {"type": "…", "data": …, "metadata": …, "id": "UUID"}; type \
            is required, data and metadata may be any JSON ({"base64": "…"} for raw bytes), id \
            defaults to a new UUID. All lines form one atomic commit: a bad line (named by its \
            number) writes nothing. Prints one JSON line once the commit is durable. A \
            concurrency conflict exits with status 1 naming the expected and actual versions.

            Example:
              echo '{"type":"MoneyDeposited","data":{"amount":100}}' | dugong append /var/lib/app/events account/42 --expected-version no-stream
            """
    )

    @Argument(help: "The store's directory (created if missing).") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @Option(name: .customLong("expected-version"), help: "any, no-stream, stream-exists or a version number.")
    var expected: ExpectedVersion = .any

    func run() async throws {
        var events: [NewEvent] = []
        var lines = InputLines()
        while let (number, text) = lines.next() {
            switch try Self.parse(text, line: number) {
            case .event(nil, let event): events.append(event)
            case .event(let named?, let event) where named == stream: events.append(event)
            case .event(let named?, _):
                throw Terminal.fail("line \(number): the event names stream '\(named)', not '\(stream)'")
            case .truncate, .tombstone:
                throw Terminal.fail("line \(number): not an event (no \"type\")")
            }
        }
        guard !events.isEmpty else { throw Terminal.fail("no events on stdin") }
        let log = try StoreAccess.open(store, forWriting: true, creating: true)
        defer { log.close() }
        do {
            let commit = try await log.append(events, to: stream, expecting: expected)
            Terminal.emit(JSONLines.line(for: commit))
        } catch {
            throw Terminal.fail(StoreAccess.describe(error, path: store))
        }
    }

    static func parse(_ text: Substring, line: Int) throws -> JSONLines.Input {
        do {
            return try JSONLines.parse(text)
        } catch {
            throw Terminal.fail("line \(line): \(error)")
        }
    }
}

/// `dugong import`: many streams from JSON Lines, acknowledging every durable commit.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import events from JSON Lines on stdin; consecutive lines of a stream form one commit.",
        discussion: """
            Each line is an event with a "stream" field as well (the lines `dugong export` \
            prints); versions and positions in the input are ignored, the store assigns them. \
            Consecutive lines of one stream form one commit of at most --batch events. After each \
            durable commit one acknowledgement line is printed and flushed, so a line on stdout \
            always means "this is on disk". A bad line stops the import, naming its line number; \
            nothing of its commit is written. Lines {"stream": …, "truncateBefore": n} and \
            {"stream": …, "tombstone": true} apply those to the stream.

            Example:
              dugong export old-store | dugong import new-store
            """
    )

    @Argument(help: "The store's directory (created if missing).") var store: String
    @Option(help: "At most this many events per commit.") var batch = 1000
    @Option(help: "Bytes preallocated for each new segment file, 4096 to 1 GiB (default 64 MiB).")
    var segmentSize: Int?

    func validate() throws {
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        if let segmentSize, segmentSize < 4096 || segmentSize > 1 << 30 {
            throw ValidationError("--segment-size must be 4096 to 1073741824 bytes")
        }
    }

    func run() async throws {
        let log = try StoreAccess.open(store, forWriting: true, creating: true, segmentSize: segmentSize)
        defer { log.close() }
        var pending: (stream: String, events: [NewEvent])?
        var imported = 0
        let bar = ProgressBar("importing")
        func flush() async throws {
            guard let commit = pending else { return }
            pending = nil
            do {
                let result = try await log.append(commit.events, to: commit.stream)
                Terminal.emit(JSONLines.line(for: result))
                imported += commit.events.count
                bar.update(imported % 1000, of: 1000)
            } catch {
                throw Terminal.fail(StoreAccess.describe(error, path: store))
            }
        }
        var lines = InputLines()
        while let (number, text) = lines.next() {
            switch try Append.parse(text, line: number) {
            case .event(nil, _):
                throw Terminal.fail("line \(number): \"stream\" is missing")
            case .event(let stream?, let event):
                if let current = pending, current.stream != stream || current.events.count == batch { try await flush() }
                if pending == nil { pending = (stream, []) }
                pending!.events.append(event)
            case .truncate(let stream, let version):
                try await flush()
                try await apply("truncate", stream: stream) { try await log.truncate(stream: stream, before: version) }
            case .tombstone(let stream):
                try await flush()
                try await apply("tombstone", stream: stream) { try await log.tombstone(stream: stream) }
            }
        }
        try await flush()
        bar.finish()
    }

    private func apply(_ what: String, stream: String, _ change: () async throws -> Void) async throws {
        do {
            try await change()
        } catch let error as StoreError {
            throw Terminal.fail("\(what) \(stream): \(StoreAccess.describe(error, path: store))")
        }
    }
}

/// `dugong export`: the log as JSON Lines that `import` takes.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every event as JSON Lines that `dugong import` accepts.",
        discussion: """
            Events in log order (stream, version, id, type, timestamp, data, metadata), then one \
            line per truncated, deleted or tombstoned stream. Exporting, importing into a new \
            store and exporting again gives identical output (for a store exported from \
            position 0). Reads without the write lock.

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
            for stream in try log.streamNames() {
                guard let info = try log.info(stream: stream) else { continue }
                if info.isTombstoned {
                    Terminal.emit("{\"stream\":\(JSONLines.quoted(stream)),\"tombstone\":true}")
                } else if info.firstVisibleVersion > 1 {
                    Terminal.emit("{\"stream\":\(JSONLines.quoted(stream)),\"truncateBefore\":\(info.firstVisibleVersion)}")
                }
            }
        } catch let error as StoreError {
            throw Terminal.fail(StoreAccess.describe(error, path: store))
        }
    }
}

/// `dugong delete-stream`, `truncate-stream`, `tombstone-stream`.
struct DeleteStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-stream",
        abstract: "Soft-delete a stream: it reads as empty; later appends continue its versions.",
        discussion: "Example:\n  dugong delete-stream /var/lib/app/events account/42"
    )
    @Argument(help: "The store's directory.") var store: String
    @Argument(help: "The stream's name.") var stream: String

    func run() async throws {
        try await StreamChange.apply(store: store) { try await $0.delete(stream: stream) }
    }
}

struct TruncateStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "truncate-stream",
        abstract: "Hide a stream's versions below --before (compaction reclaims them).",
        discussion: "Example:\n  dugong truncate-stream /var/lib/app/events account/42 --before 100"
    )
    @Argument(help: "The store's directory.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @Option(help: "The first version to keep.") var before: Int

    func run() async throws {
        try await StreamChange.apply(store: store) { try await $0.truncate(stream: stream, before: before) }
    }
}

struct TombstoneStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tombstone-stream",
        abstract: "Hard-delete a stream: it reads as empty and can never be appended to again.",
        discussion: "Example:\n  dugong tombstone-stream /var/lib/app/events account/42"
    )
    @Argument(help: "The store's directory.") var store: String
    @Argument(help: "The stream's name.") var stream: String

    func run() async throws {
        try await StreamChange.apply(store: store) { try await $0.tombstone(stream: stream) }
    }
}

enum StreamChange {
    static func apply(store: String, _ change: (EventLog) async throws -> Void) async throws {
        let log = try StoreAccess.open(store, forWriting: true)
        defer { log.close() }
        do {
            try await change(log)
        } catch let error as StoreError {
            throw Terminal.fail(StoreAccess.describe(error, path: store))
        }
    }
}
