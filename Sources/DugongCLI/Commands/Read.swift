import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// `dugong read`: one stream as JSON Lines.
struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a stream's events as JSON Lines.",
        discussion: """
            One event per line: stream, version, position, id, type, timestamp (ISO 8601, UTC, \
            milliseconds), data and metadata (the stored bytes as JSON when they are JSON, \
            otherwise {"base64": "…"}; null when empty). Reads without the write lock. A stream \
            the store has never seen exits with status 66.

            --format table prints aligned columns for people instead (the data cut to 60 \
            characters; control characters in names escaped).

            Examples:
              dugong read /var/lib/app/events account/42 --from 10 --limit 5
              dugong read /var/lib/app/events account/42 --format table
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @Option(parsing: .unconditional, help: "First version to print (with --backward, the highest: printing goes down from it).") var from: Int?
    @Option(parsing: .unconditional, help: "Print at most this many events.") var limit: Int?
    @Flag(help: "Newest first.") var backward = false
    @Option(help: "jsonl (one JSON object per line, the default) or table (aligned columns for people, the data cut to 60 characters).")
    var format: OutputFormat = .jsonl

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let from, from < 1 { throw ValidationError("--from is a version, 1 or more") }
    }

    func run() async throws {
        // A name no stream can have is a bad value (65), as the writing commands say, not
        // "no such stream" (66; found by a black-box run).
        do {
            try EventLog.validate(stream: stream)
        } catch {
            throw StoreAccess.fail(error, path: store)
        }
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let log = try StoreAccess.open(store)
        defer { log.close() }
        do {
            // Read first: a stream the index lacks in a damaged store may be in the damage, and
            // the read says so (exit 1), where "no such stream" would mislead.
            let events = try log.read(
                stream: stream, from: from, maxCount: limit ?? .max, direction: backward ? .backward : .forward)
            guard let info = try log.info(stream: stream) else {
                throw Terminal.fail("\(store) has no stream '\(Streams.escaped(stream))'", code: ExitStatus.notFound.rawValue)
            }
            print(events, info: info)
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }

    /// Prints the events read, and why there are none when the stream reads as empty.
    func print(_ events: [StoredEvent], info: EventLog.StreamInfo) {
        var printer = EventPrinter(format: format)
        printer.print(events)
        if events.isEmpty, info.readsAsEmpty {
            Terminal.error(info.isTombstoned ? "stream '\(stream)' is tombstoned" : "stream '\(stream)' is deleted or truncated: no version is visible")
        }
    }
}

/// `dugong read-all`: the log as JSON Lines, filtered, optionally following new events.
struct ReadAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-all",
        abstract: "Print the events in log order as JSON Lines.",
        discussion: """
            Same lines as `dugong read` (or its --format table), from global position --from on. Only visible events \
            by default: events of deleted, truncated or tombstoned streams that compaction has \
            not removed yet are left out unless --include-hidden is given (on a store with damage \
            found at open, which may have held what hides events, only --include-hidden reads: \
            up to the damage, then exit 1). Filters combine: \
            --type (repeatable), --stream-prefix, --category (the part of a stream name before \
            its first "/"), --since and --until (ISO 8601 timestamps, --until exclusive). \
            --count prints only how many events match; --last N the last N that match; \
            --backward newest first (both read the whole range first).

            With --follow it keeps printing new events as a writer in another process commits \
            them (it reads without the write lock, and looks for new commits every 10 ms), \
            through the writer's restarts and compactions: every event once, in order. Before each \
            batch of at most 256 lines it looks again at what the writer changed (at most every \
            10 ms), so events hidden by a delete, truncation or tombstone, or removed by a \
            compaction, are not printed once it has looked, even when it is far behind or its \
            output is read slowly. The filters apply to what it follows; --until does not end \
            it (timestamps are the events' own, not in log order: a later commit may hold an \
            earlier time). Stop it with Ctrl-C.

            Examples:
              dugong read-all /var/lib/app/events --from 1000 --follow
              dugong read-all /var/lib/app/events --category account \\
                --type MoneyDeposited --count
              dugong read-all /var/lib/app/events --since 2026-11-01T00:00:00.000Z \\
                --last 10 --backward --format table
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Option(parsing: .unconditional, help: "First global position to print; with --backward, the lowest (printing starts at the log's end) (on PostgreSQL a cursor TRANSACTION:POSITION, as the lines' \"cursor\" says).")
    var from: LogCursor = .start
    @Option(parsing: .unconditional, help: "Print at most this many events.") var limit: Int?
    @Flag(help: "Keep printing events as they are committed.") var follow = false
    @Option(name: .customLong("type"), help: "Only events of this type (repeat for several).") var types: [String] = []
    @Option(help: "Only streams whose name starts with this.") var streamPrefix: String?
    @Option(help: "Only streams of this category (the name before its first \"/\"; a name without \"/\" has none).") var category: String?
    // Unconditional: a year before 1 starts with "-" (ISO 8601 "-000001-…") and is a value.
    @Option(parsing: .unconditional, help: "Only events at or after this time (ISO 8601; a date alone is its midnight UTC).") var since: String?
    @Option(parsing: .unconditional, help: "Only events before this time (ISO 8601; a date alone is its midnight UTC).") var until: String?
    @Option(parsing: .unconditional, help: "Only the last N events that match.") var last: Int?
    @Flag(help: "Newest first.") var backward = false
    @Flag(help: "Print only the number of events that match.") var count = false
    @Flag(help: "Also events of deleted, truncated and tombstoned streams not compacted away yet.") var includeHidden = false
    @Option(help: "jsonl (one JSON object per line, the default) or table (aligned columns for people, the data cut to 60 characters).")
    var format: OutputFormat = .jsonl

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let last, last < 0 { throw ValidationError("--last must not be negative") }
        if follow && (last != nil || backward || count) { throw ValidationError("--follow goes with neither --last, --backward nor --count") }
        if let since, Self.millisecondBound(since) == nil { throw ValidationError("--since is not an ISO 8601 time like 2026-11-01T00:00:00.000Z or a date like 2026-11-01") }
        if let until, Self.millisecondBound(until) == nil { throw ValidationError("--until is not an ISO 8601 time like 2026-11-01T00:00:00.000Z or a date like 2026-11-01") }
    }

    var filter: EventFilter {
        EventFilter(
            types: types, streamPrefix: streamPrefix, category: category,
            since: since.flatMap(Self.millisecondBound), until: until.flatMap(Self.millisecondBound), includeHidden: includeHidden)
    }

    /// The first whole millisecond at or after the time `text` names: a stored time is whole
    /// milliseconds, so a bound with finer digits (`…00.0005Z`) is rounded up, and `--since`
    /// (at or after) and `--until` (before) then compare exactly.
    static func millisecondBound(_ text: String) -> Int64? {
        // Only a time a store keeps (`Date.isStorable`), as an event line's timestamp.
        guard let bound = PayloadTimestamp.bound(from: text), Date(millisecondsSince1970: bound).isStorable else { return nil }
        return bound
    }

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        guard from.transaction == 0 else {
            throw Terminal.fail("--from \(from) is a PostgreSQL cursor; a directory store's positions are numbers", code: ExitStatus.usage.rawValue)
        }
        let log = try StoreAccess.open(store, waitingForStore: follow)
        defer { log.close() }
        var filter = self.filter
        var position = from.position
        // Which events are visible comes from the streams' lifecycle records (a delete, a
        // truncation, a tombstone), each after the events it hides: damage found at open past
        // `--from` (or at no known place) may have held one, and the events before it are then
        // of unknown visibility. Nothing is printed rather than what may be hidden.
        if !filter.includeHidden, let damage = log.damageFoundAtOpen.first(where: { $0.positions.upperBound > position || $0.positions.upperBound == 0 }) {
            throw Terminal.fail(
                "\(store) is damaged (\(damage)): the damage may have held a delete, truncation or tombstone that hides events before it, so which events are visible is unknown; --include-hidden prints every event up to the damage, hidden or not, and `dugong export --skip-damage` copies out what is readable",
                code: ExitStatus.damaged.rawValue)
        }
        // Printed at once, or (--last, --backward, --count) kept until the end.
        let collecting = last != nil || backward || count
        var kept: [StoredEvent] = []
        var matched = 0
        var remaining = collecting ? Int.max : limit ?? .max
        var printer = EventPrinter(format: format)
        var lookedAt = ContinuousClock.now
        // A follower behind the writer (a backlog, or a slow reader of its output that holds up
        // its writes) looks at what the writer did meanwhile before each batch of lines it
        // prints, at most every follow interval. Read from the view it opened, it printed events
        // that a delete, truncation or tombstone had hidden since, or that a compaction had
        // removed (compaction removes only hidden events: a stream's state looked up anew tells
        // both, for the events of a page read before too).
        // Damage a refresh finds, anywhere (in what was printed too: a segment cut, removed or
        // put back from a copy), ends a follower: it would wait at the end for ever, silent,
        // where a fresh reader reports it.
        let damagedAtStart = log.damageFoundAtOpen
        func refresh() throws -> Int {
            let grew = try log.refresh()
            if let found = log.damageFoundAtOpen.first(where: { !$0.isAmong(damagedAtStart) }) {
                throw Terminal.fail(
                    "\(store) was damaged while it was followed (\(found)); `dugong verify` lists the damage",
                    code: ExitStatus.damaged.rawValue)
            }
            return grew
        }
        func lookAgain() throws {
            guard follow, ContinuousClock.now - lookedAt >= log.options.followInterval else { return }
            _ = try refresh()
            filter.forgetStreams()
            lookedAt = .now
        }
        // A follower stopped by Ctrl-C or `kill` ends between whole lines (the default action
        // could cut the last one in the middle of a write to a pipe: found by a black-box run).
        if follow { StopSignals.deferred() }
        do {
            while remaining > 0 {
                StopSignals.endIfReceived()
                try lookAgain()
                let page = try log.readAll(from: position, maxCount: 4096)
                var printing: [StoredEvent] = []
                defer { printer.print(printing) }
                for event in page {
                    if follow, printing.count == Self.followBatch {
                        printer.print(printing)
                        printing.removeAll(keepingCapacity: true)
                        StopSignals.endIfReceived()
                        try lookAgain()
                    }
                    guard try filter.accepts(event, in: log) else { continue }
                    matched += 1
                    if count { continue }
                    if collecting {
                        kept.append(event)
                        trim(&kept)
                    } else {
                        printing.append(event)
                        remaining -= 1
                        if remaining == 0 { break }
                    }
                }
                if let lastEvent = page.last {
                    position = lastEvent.position + 1
                    continue
                }
                guard follow else { break }
                if try refresh() == 0 {
                    let (seconds, attoseconds) = log.options.followInterval.components
                    usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
                }
                filter.forgetStreams()  // lifecycle changes the writer made
                lookedAt = .now
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        finish(matched: matched, kept: kept, printer: &printer)
    }

    /// The most lines a follower prints between two looks at the writer's changes.
    static let followBatch = 256

    /// After the range was read: the count, or the events kept for --last and --backward (with
    /// their cursors on PostgreSQL, one per event).
    func finish(matched: Int, kept: [StoredEvent], cursors: [LogCursor]? = nil, printer: inout EventPrinter) {
        if count {
            // What would be printed: --last and --limit bound it as they bound the lines.
            Terminal.emit("\(min(matched, last ?? .max, limit ?? .max))")
            return
        }
        precondition(cursors == nil || cursors!.count == kept.count, "one cursor per kept event")
        // --last: the run keeps up to twice as many.
        func ordered<T>(_ items: [T]) -> [T] {
            let kept = items.suffix(last ?? .max)
            return Array((backward ? Array(kept.reversed()) : Array(kept)).prefix(limit ?? .max))
        }
        printer.print(ordered(kept), cursors: cursors.map(ordered))
    }

    /// Keeps at most twice `--last` events: removing the first one per event was quadratic in
    /// --last, and a --last past Int.max / 2 overflowed the bound (a crash).
    func trim<T>(_ kept: inout [T]) {
        if let last, kept.count / 2 > max(last, 1024) { kept.removeFirst(kept.count - last) }
    }
}

/// Which events `read-all` prints.
struct EventFilter {
    /// By bytes, as the store keeps types (`String`'s `==` took `café` in NFC and NFD for one).
    var types: Set<NameKey>
    var streamPrefix: String?
    var category: String?
    var since: Int64?
    var until: Int64?
    var includeHidden: Bool
    /// Each stream's visibility, looked up once.
    private var streams: [NameKey: EventLog.StreamInfo] = [:]

    init(types: [String], streamPrefix: String?, category: String?, since: Int64?, until: Int64?, includeHidden: Bool) {
        self.types = Set(types.map(NameKey.init))
        self.streamPrefix = streamPrefix
        self.category = category
        self.since = since
        self.until = until
        self.includeHidden = includeHidden
    }

    mutating func forgetStreams() { streams.removeAll(keepingCapacity: true) }

    mutating func accepts(_ event: StoredEvent, in log: EventLog) throws -> Bool {
        try accepts(event) { try log.info(stream: $0) }
    }

    /// `info` tells a stream's state (looked up once per stream until ``forgetStreams()``).
    mutating func accepts(_ event: StoredEvent, info lookup: (String) throws -> EventLog.StreamInfo?) throws -> Bool {
        if !types.isEmpty && !types.contains(NameKey(event.type)) { return false }
        if let streamPrefix, !event.stream.utf8.starts(with: streamPrefix.utf8) { return false }
        if let category, !isStream(event.stream, ofCategory: category) { return false }
        if let since, event.timestampMilliseconds < since { return false }
        if let until, event.timestampMilliseconds >= until { return false }
        if includeHidden { return true }
        let info: EventLog.StreamInfo?
        if let known = streams[NameKey(event.stream)] {
            info = known
        } else {
            info = try lookup(event.stream)
            streams[NameKey(event.stream)] = info
        }
        guard let info else { return false }
        return !info.isTombstoned && event.version >= info.firstVisibleVersion
    }
}
