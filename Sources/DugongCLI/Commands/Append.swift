import ArgumentParser
import Dugong
import DugongStore
import Foundation
import Glibc

/// Reads stdin line by line, as bytes, in large reads; numbers lines from 1 and skips blank
/// ones. A line longer than any line of an event the command takes is refused before it is
/// read whole (input without newlines, `< /dev/zero`, grew in memory until the process died).
struct InputLines {
    /// The most data and metadata an event of the command holds.
    let maximumEventSize: Int
    /// The longest line: twice what an event of the most data and metadata takes as base64
    /// (8/3 of its bytes: raw JSON takes as many bytes as it stores, and some encoders escape
    /// characters of base64, `\u002B` for `+`), and 1 MiB for its other fields and spaces. A
    /// bound against input without an end, not a limit on events.
    let maximumLength: Int
    private(set) var number = 0
    private var buffer: [UInt8] = []
    private var start = 0
    /// Bytes from `start` up to here hold no newline: a long line is scanned once, not once
    /// per read (which made a 256 MiB line take hours).
    private var scanned = 0
    private var atEnd = false
    /// Whether SIGINT or SIGTERM (``StopSignals/deferred()``) ends the input: ``next()`` then
    /// returns nil at once, and a line not read to its end is dropped.
    var endsAtStopSignal = false
    /// Whether the input ended at a signal rather than at its end.
    private(set) var stoppedBySignal = false
    /// Where reads land before they join `buffer`.
    private var chunk: [UInt8] = []

    /// Lines for a command whose events hold at most `maximumEventSize` bytes of data and
    /// metadata.
    init(maximumEventSize: Int) {
        self.maximumEventSize = maximumEventSize
        maximumLength = (maximumEventSize / 3 + 1) * 8 + (1 << 20)
    }

    /// Whether ``next()`` returns without waiting for more input: a whole line that is not
    /// blank is buffered (blank ones before it are passed over, as ``next()`` would), or stdin
    /// has bytes (or its end) to read now.
    mutating func isReady() -> Bool {
        while let newline = buffer[Swift.max(start, scanned)...].firstIndex(of: 0x0A) {
            guard Self.isBlank(Array(buffer[start..<newline])) else { return true }
            start = newline + 1
            scanned = start
            number += 1
        }
        if atEnd { return true }
        var ready = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        return poll(&ready, 1, 0) != 0
    }

    /// The next non-blank line and its number; nil at the end of stdin.
    /// - Throws: exit status 74 when stdin cannot be read (a read error was taken for the end:
    ///   a commit of the lines read so far, exit 0).
    mutating func next() throws -> (number: Int, text: [UInt8])? {
        while true {
            if endsAtStopSignal, StopSignals.receivedName != nil { stoppedBySignal = true }
            if stoppedBySignal { return nil }
            if let newline = buffer[Swift.max(start, scanned)...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                number += 1
                if !Self.isBlank(line) { return (number, line) }
                continue
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                number += 1
                return Self.isBlank(line) ? nil : (number, line)
            }
            buffer.removeFirst(start)
            start = 0
            scanned = buffer.count
            guard buffer.count <= maximumLength else {
                throw Terminal.fail(
                    "line \(number + 1): longer than \(maximumLength) bytes without its end: no line of an event this command takes is (data and metadata of at most \(maximumEventSize) bytes)",
                    code: ExitStatus.badInput.rawValue)
            }
            let read = try readMore()
            if read == 0, !stoppedBySignal { atEnd = true }
        }
    }

    private static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    /// Reads up to 1 MiB of stdin onto the end of ``buffer``; returns how much (0: the end).
    /// A stdin in non-blocking mode (a producer's pipe may be) is waited on, not taken to be
    /// at its end.
    private mutating func readMore() throws -> Int {
        if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: 1 << 20) }
        while true {
            if endsAtStopSignal {
                // Waited on in steps: the signal may reach another thread than this one, and
                // leave a blocking read waiting for input that may never come.
                var ready = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                while poll(&ready, 1, 100) <= 0 {
                    if StopSignals.receivedName != nil {
                        stoppedBySignal = true
                        return 0
                    }
                }
            }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return count
            }
            if count == 0 { return 0 }
            let failure = errno
            switch failure {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                var ready = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, -1)
            default:
                throw Terminal.fail("cannot read stdin: \(String(cString: strerror(failure)))", code: ExitStatus.ioFailure.rawValue)
            }
        }
    }
}

/// `dugong append`: one commit from JSON Lines on stdin.
struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append the events on stdin (JSON Lines) to a stream as one commit.",
        discussion: """
            Each line is an event: {"type": "…", "data": …, "metadata": …, "id": "UUID"}; type \
            is required, data and metadata may be any JSON ({"base64": "…"} for raw bytes), id \
            defaults to a new UUID. A line may give its "version" (lines `dugong read` prints \
            do): then every line must, each one more than the line before (or status 65), and \
            they must be the versions the events get, or nothing is written (status 2, as with \
            --expected-version). Lines whose ids the stream \
            holds already as one commit of its own, in order, are a retry (the stream is read \
            to find them): nothing is written and the line printed says "duplicate": true \
            (ids reused for other types, data or metadata, only some of the lines' ids \
            stored, part of a commit, or an --expected-version the stored commit does not \
            meet: status 2). \
            All lines form one atomic commit: a bad line (named by its \
            number) writes nothing. Prints one JSON line once the commit is durable. A \
            concurrency conflict exits with status 2 naming the expected and actual versions.

            Example:
              echo '{"type":"MoneyDeposited","data":{"amount":100}}' |
                dugong append /var/lib/app/events account/43 --expected-version no-stream
            """
    )

    @Argument(help: "The store's directory (created if missing).") var store: String
    @Argument(help: "The stream's name.") var stream: String
    // Unconditional: "-1" is a value to refuse with its own message, not a missing value.
    @Option(name: .customLong("expected-version"), parsing: .unconditional, help: "any, no-stream, stream-exists or a version number.")
    var expected: ExpectedVersion = .any
    @OptionGroup var lock: LockWait

    func run() async throws {
        try PostgresAccess.refuse(store, "append writes raw events to a directory store; on PostgreSQL the framework's events are written by applications (PostgresEventStore) or by `dugong import` of exported lines")
        var events: [NewEvent] = []
        var lineNumbers: [Int] = []
        var versions: [Int?] = []
        var idsGiven = false
        var lines = InputLines(maximumEventSize: EventLog.Options().maximumEventSize)
        while let (number, text) = try lines.next() {
            switch try Self.parse(text, line: number) {
            case .event(let named, let version, let event, let idGiven) where named == nil || named.map(NameKey.init) == NameKey(stream):
                idsGiven = idsGiven || idGiven
                events.append(event)
                lineNumbers.append(number)
                versions.append(version)
            case .event(let named, _, _, _):
                throw Terminal.fail("line \(number): the event names stream '\(named ?? "")', not '\(stream)'", code: ExitStatus.badInput.rawValue)
            case .truncate, .tombstone:
                throw Terminal.fail("line \(number): not an event (no \"type\")", code: ExitStatus.badInput.rawValue)
            }
        }
        guard !events.isEmpty else { throw Terminal.fail("no events on stdin", code: ExitStatus.badInput.rawValue) }
        let expected = try Self.expectation(expected, versions: versions, lineNumbers: lineNumbers)
        let existed = StoreAccess.Existing(store)
        let log = try StoreAccess.open(store, forWriting: true, creating: true, wait: lock.seconds)
        defer { log.close() }
        let retried: Int?
        do {
            retried = idsGiven ? try storedCommit(of: events, expected: expected, in: log, versions: versions, lineNumbers: lineNumbers) : nil
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        let commit: Commit
        do {
            // A retry is appended at the versions it holds: the store answers with that commit.
            commit = try await log.append(events, to: stream, expecting: retried.map { .exact($0 - 1) } ?? expected)
        } catch let error where error.eventIndex.map(lineNumbers.indices.contains) == true {
            StoreAccess.removeIfEmpty(log, createdAt: store, existed: existed)
            throw StoreAccess.fail(error, path: store, prefix: "line \(lineNumbers[error.eventIndex!]): ")
        } catch {
            StoreAccess.removeIfEmpty(log, createdAt: store, existed: existed)
            // An expectation the lines' versions set is said in their words (it said "expected
            // version 6" of lines that gave 7).
            if case StoreError.wrongExpectedVersion = error, let first = versions.first ?? nil {
                throw StoreAccess.fail(error, path: store, prefix: "line \(lineNumbers[0]) has version \(first), which follows version \(first - 1): ")
            }
            throw StoreAccess.fail(error, path: store)
        }
        if commit.wasDuplicate { try checkStored(events, as: commit, in: log, lineNumbers: lineNumbers) }
        Terminal.emit(JSONLines.line(for: commit))
    }

    /// The first version of the append that `events` repeat, when the stream holds their ids
    /// (a retry of an append whose answer was lost, perhaps after other commits: the store
    /// itself recognizes a retry without a fixed version only as the stream's last commit); nil
    /// when it holds none of them. Versions reads no longer show (truncated, deleted, not yet
    /// compacted away) count. Only some of them, another order, other versions than the lines
    /// give, part of an append or parts of two, or an `--expected-version` the stored append
    /// does not meet, is a conflict (status 2): nothing is written.
    func storedCommit(
        of events: [NewEvent], expected: ExpectedVersion, in log: EventLog, versions: [Int?], lineNumbers: [Int]
    ) throws -> Int? {
        guard let info = try log.info(stream: stream), !info.isTombstoned else { return nil }  // a tombstone refuses anyway
        let wanted = Set(events.map(\.id))
        var found: [UUID: [Int]] = [:]  // each wanted id's versions, in order
        var endsAppend: [Int: Bool] = [:]
        func note(_ id: UUID, _ version: Int, _ ends: Bool) {
            guard wanted.contains(id) else { return }
            found[id, default: []].append(version)
            endsAppend[version] = ends
        }
        for version in 1..<max(1, min(info.firstVisibleVersion, info.version + 1)) {
            if let event = try log.storedEvent(of: stream, version: version) { note(event.id, version, event.endsCommit) }
        }
        if !info.readsAsEmpty { try log.forEachEvent(in: stream) { note($0.id, $0.version, $0.endsCommit) } }
        // Each line takes the next stored version of its id (an append may repeat an id).
        var taken: [UUID: Int] = [:]
        let stored: [Int?] = events.map { event in
            let index = taken[event.id, default: 0]
            taken[event.id] = index + 1
            return found[event.id].flatMap { index < $0.count ? $0[index] : nil }
        }
        guard let line = stored.firstIndex(where: { $0 != nil }), let version = stored[line] else { return nil }
        let first = version - line
        func refuse(_ message: String) -> Error { Terminal.fail(message + ": nothing was written", code: ExitStatus.conflict.rawValue) }
        for index in events.indices {
            let id = events[index].id.uuidString.lowercased()
            let said: String
            if let at = stored[index] {
                said = "is version \(at) of '\(stream)'"
            } else if let held = found[events[index].id], !held.isEmpty {
                // The lines repeat an id more often than the stream holds it.
                said = "comes more often in the lines than in '\(stream)', which holds it at version\(held.count == 1 ? "" : "s") \(held.map(String.init).joined(separator: ", "))"
            } else {
                said = "is not in '\(stream)'"
            }
            if let given = versions[index], given != stored[index] {
                throw refuse("line \(lineNumbers[index]): its id (\(id)) \(said), not the line's version \(given)")
            }
            if stored[index] == nil {
                throw refuse("line \(lineNumbers[index]): its id (\(id)) \(said), while line \(lineNumbers[line])'s is (version \(version)): a retry repeats its whole commit")
            }
            if stored[index] != first + index {
                throw refuse(
                    "line \(lineNumbers[index]): its id (\(id)) \(said), where a retry of the commit that holds line \(lineNumbers[line])'s id (version \(version)) would have it at version \(first + index)")
            }
        }
        let last = first + events.count - 1
        let before = first > 1 ? try log.storedEvent(of: stream, version: first - 1) : nil
        guard (first..<last).allSatisfy({ endsAppend[$0] == false }), endsAppend[last] == true, before?.endsCommit ?? true else {
            throw refuse("lines \(lineNumbers[0])–\(lineNumbers[events.count - 1]): the stream holds their ids at versions \(first)–\(last), but not as one commit of its own (part of one, or parts of two)")
        }
        let met = switch expected {
        case .exact(let after): after == first - 1
        case .noStream: first == 1
        case .streamExists: first > 1  // the stream existed before the commit (not the one that began it)
        case .any: true
        }
        guard met else {
            throw refuse("the expected version (\(expected)) does not hold for the commit these lines repeat (versions \(first)–\(last), after version \(first - 1))")
        }
        return first
    }

    /// A commit recognized as stored already (its ids are): the stored events must be the lines'
    /// events, or the lines reuse ids for other events (status 2; nothing was written).
    func checkStored(_ events: [NewEvent], as commit: Commit, in log: EventLog, lineNumbers: [Int]) throws {
        for (offset, event) in events.enumerated() {
            let version = commit.firstVersion + offset
            guard let stored = try log.storedEvent(of: stream, version: version) else { continue }
            if let difference = StoreAccess.difference(stored, event) {
                throw Terminal.fail(
                    "line \(lineNumbers[offset]): version \(version) of '\(stream)' is stored with this id (\(event.id.uuidString.lowercased())) and \(difference): nothing was written",
                    code: ExitStatus.conflict.rawValue)
            }
        }
    }

    /// The expected version of the commit: `given`, or, when the lines carry versions (lines
    /// `read` prints do), the one they imply: they must be the versions the events get, one
    /// after the other (a stream at another version is a conflict, as with
    /// `--expected-version`), all lines with one or none.
    static func expectation(_ given: ExpectedVersion, versions: [Int?], lineNumbers: [Int]) throws -> ExpectedVersion {
        guard let first = versions.firstIndex(where: { $0 != nil }) else { return given }
        for (index, version) in versions.enumerated() {
            guard let version else {
                throw Terminal.fail(
                    "line \(lineNumbers[index]): no \"version\", while line \(lineNumbers[first]) has one (give every line its version, or none)",
                    code: ExitStatus.badInput.rawValue)
            }
            guard index == 0 || version == versions[index - 1]! + 1 else {
                throw Terminal.fail(
                    "line \(lineNumbers[index]): version \(version) does not follow version \(versions[index - 1]!) (one commit's versions are consecutive)",
                    code: ExitStatus.badInput.rawValue)
            }
        }
        let after = versions[0]! - 1
        let agrees = switch given {
        case .any: true
        case .noStream: after == 0
        case .streamExists: after > 0
        case .exact(let version): version == after
        }
        guard agrees else {
            throw Terminal.fail(
                "--expected-version \(given) disagrees with the lines' versions, which start at \(after + 1) (the stream at version \(after))",
                code: ExitStatus.usage.rawValue)
        }
        return .exact(after)
    }

    static func parse(_ text: [UInt8], line: Int) throws -> JSONLines.Input {
        do {
            return try JSONLines.parse(text)
        } catch {
            throw Terminal.fail("line \(line): \(error)", code: ExitStatus.badInput.rawValue)
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
    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @OptionGroup var lock: LockWait

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        try await StreamChange.apply(store: store, stream: stream, wait: lock.seconds) { try await $0.delete(stream: stream) }
    }
}

struct TruncateStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "truncate-stream",
        abstract: "Hide a stream's versions below --before (compaction reclaims them).",
        discussion: """
            --before may be at most the stream's version + 1 (which hides every version it has); \
            later versions would hide its next appends, and are refused.

            Example:
              dugong truncate-stream /var/lib/app/events account/42 --before 100
            """
    )
    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @Option(parsing: .unconditional, help: "The first version to keep.") var before: Int
    @OptionGroup var lock: LockWait

    func validate() throws {
        guard before >= 1 else { throw ValidationError("--before is a version, 1 or more") }
    }

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        try await StreamChange.apply(store: store, stream: stream, wait: lock.seconds) { try await $0.truncate(stream: stream, before: before) }
    }
}

struct TombstoneStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tombstone-stream",
        abstract: "Hard-delete a stream: it reads as empty and can never be appended to again.",
        discussion: """
            Tombstoning a name the store has never seen is allowed (it reserves the name for good), \
            and says so.

            Example:
              dugong tombstone-stream /var/lib/app/events account/42
            """
    )
    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Argument(help: "The stream's name.") var stream: String
    @OptionGroup var lock: LockWait

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        try await StreamChange.apply(store: store, stream: stream, wait: lock.seconds) { try await $0.tombstone(stream: stream) }
    }
}

enum StreamChange {
    /// Applies a lifecycle change and says what it did (on stdout, once durable).
    static func apply(store: String, stream: String, wait: Double, _ change: (EventLog) async throws -> Void) async throws {
        let log = try StoreAccess.open(store, forWriting: true, wait: wait)
        defer { log.close() }
        do {
            let before = try log.info(stream: stream)
            try await change(log)
            guard let after = try log.info(stream: stream) else {
                // A delete of a stream without events writes nothing.
                return Terminal.emit(noVersionsToHide(stream))
            }
            Terminal.emit(describe(stream, before: before, after: after))
        } catch StoreError.streamTombstoned {
            // A delete or truncation of a tombstoned stream: said in its words (the store's
            // error speaks of appends).
            throw Terminal.fail(
                "\(JSONLines.quoted(stream)) is tombstoned: it reads as empty for good, and is neither deleted nor truncated again",
                code: ExitStatus.conflict.rawValue)
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }

    /// What a delete of a stream without events (which writes nothing) says.
    static func noVersionsToHide(_ stream: String) -> String { "\(JSONLines.quoted(stream)) has no versions to hide (it has no events)" }

    static func describe(_ stream: String, before: EventLog.StreamInfo?, after: EventLog.StreamInfo) -> String {
        let name = JSONLines.quoted(stream)
        if after.isTombstoned {
            if before?.isTombstoned == true { return "\(name) was tombstoned already" }
            let versions = after.version == 0 ? "it had no events: the name can never be used" : "versions 1...\(after.version) are hidden for good"
            return "tombstoned \(name): \(versions)"
        }
        let hidden = after.firstVisibleVersion - 1
        if hidden == 0 { return "\(name) has no versions to hide (it is at version \(after.version))" }
        let visible = after.readsAsEmpty ? "no version is visible" : "versions \(after.firstVisibleVersion)...\(after.version) are visible"
        // At the largest version no append is possible (it said "continue at 2^62").
        let next = after.version >= (1 << 62) - 1
            ? "it is at the largest version (2^62 - 1): no appends are possible" : "appends continue at version \(after.version + 1)"
        return "\(name) hides versions 1...\(hidden): \(visible); \(next)"
    }
}

extension StoreError {
    /// Which event of an append an error is about, if it is about one.
    fileprivate var eventIndex: Int? {
        if case .eventTooLarge(_, let index, _, _) = self { return index }
        return nil
    }
}
