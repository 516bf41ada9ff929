import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// `dugong import`: many streams from JSON Lines, as `export` prints them.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import events from JSON Lines on stdin (what `dugong export` prints).",
        discussion: """
            Each line is an event with a "stream" field (and the fields `dugong append` takes), \
            or a lifecycle line {"stream": …, "truncateBefore": n} or {"stream": …, \
            "tombstone": true}. Lines are written in their order, packed into atomic commits of \
            up to --batch events over any number of streams (at most one sync each: commits written together share one).

            SIGINT or SIGTERM stops the import between lines: what was read is committed (and \
            acknowledged), stderr names the last line imported, and the import ends by the \
            signal (exit status 130 or 143); while it waits for the lock it ends at once, and \
            while its acknowledgements are not read, 5 s later.

            An event line with a "version" (export prints them) is imported at that version: a \
            stream that begins later than version 1 (its first versions were removed) begins \
            there, and a line whose version the stream already has is skipped when the stored \
            event has the same id (so an interrupted import can simply be run again) and is an \
            error otherwise (also when the store no longer holds that version: compaction removed \
            it). A line without a version gets the stream's next version. \
            Positions in the input are ignored: the store assigns them, in input order.

            A bad line stops the import, naming its line number; nothing of its commit is \
            written, the commits before it are. A summary goes to stderr; with --acks, stdout gets \
            one line per durable commit and stream (one for each run of one stream's lines in \
            the commit), one with "duplicate":true for each line skipped as already stored, and \
            each lifecycle line once it is in effect (also when it already was).

            Example:
              dugong export old-store | dugong import new-store
            """
    )

    @Argument(help: "The store's directory (created if missing), or a postgres:// URL (tables created if missing).") var store: String
    @Option(parsing: .unconditional, help: "At most this many events per commit (and at most 32 MiB of them; a larger event goes alone).") var batch = 1000
    @Option(parsing: .unconditional, help: "Bytes preallocated for each new segment file, 4096 to 1 GiB (default: an existing store's own size; 64 MiB for a new store). Later writers and compactions keep the size of a store this creates; on an existing store only this import's new segments get it (later writers take the smallest size among the store's segments).")
    var segmentSize: Int?
    @Flag(help: "Print an acknowledgement line on stdout per durable commit and stream (per run of one stream's lines), a line with \"duplicate\":true per line skipped as already stored, and a lifecycle line (truncateBefore, tombstone) once it is durable (or was already in effect); what was read is committed and acknowledged before the import waits for more input.") var acks = false
    @OptionGroup var lock: LockWait

    func validate() throws {
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        try StoreAccess.validate(segmentSize: segmentSize)
    }

    /// The largest event an import takes: the most `EventLog.Options.maximumEventSize` allows.
    static let largestEvent = 256 << 20

    func run() async throws {
        // From the start: a signal while the store opens (or the lock is waited for) is acted on
        // once it is open, not in the middle of its creation or recovery.
        StopSignals.deferred()
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let existed = StoreAccess.Existing(store)
        // Events as large as the format holds (256 MiB), not the 4 MiB an application's open
        // allows by default: what another store exported (a PostgreSQL one has no such bound)
        // must come back in.
        let log = try StoreAccess.open(
            store, forWriting: true, creating: true, segmentSize: segmentSize, wait: lock.seconds, maximumEventSize: Self.largestEvent)
        defer { log.close() }
        let importer = Importer(log: log, store: store, batch: batch, acks: acks)
        var lines = InputLines(maximumEventSize: Self.largestEvent)
        lines.endsAtStopSignal = true
        do {
            while true {
                // A producer that waits for acknowledgements before it writes more gets them:
                // what was read is committed, and the commits acknowledged, before the import
                // waits for input (they trailed by two commits until more input came).
                if acks, !lines.isReady() { try await importer.drain() }
                guard let (number, text) = try lines.next() else { break }
                try await importer.take(try Append.parse(text, line: number), line: number)
            }
            try await importer.drain()
        } catch {
            // The commits sent before the error are acknowledged if they landed.
            await importer.settleSent()
            importer.finish()
            StoreAccess.removeIfEmpty(log, createdAt: store, existed: existed)
            if let error = error as? StoreError { throw StoreAccess.fail(error, path: store) }
            throw error
        }
        importer.finish()
        if lines.stoppedBySignal {
            // Everything read was committed and acknowledged: the store is closed (its index
            // saved) before the signal ends the process, as it would have ended it.
            StoreAccess.removeIfEmpty(log, createdAt: store, existed: existed)
            log.close()
            Self.reportStop(afterLine: lines.number)
        }
    }

    /// Says where an import stopped at SIGINT or SIGTERM, then ends by the signal (exit 130,
    /// 143): every line up to `line` was imported (or skipped as stored), none after it.
    static func reportStop(afterLine line: Int) {
        guard let signal = StopSignals.receivedName else { return }
        Terminal.error(
            line == 0
                ? "stopped by \(signal) before reading a line: nothing was imported"
                : "stopped by \(signal) after line \(line): the lines up to it are imported (and acknowledged), none after it; to go on, import the lines after line \(line)")
        StopSignals.endIfReceived()
    }
}

/// The state of one import: the commit being packed and what the store's streams are at.
final class Importer {
    let log: EventLog
    let store: String
    let batch: Int
    let acks: Bool
    /// The appends of the next commit, in input order (a stream may appear more than once).
    private var pending: [EventLog.Append] = []
    private var pendingEvents = 0
    /// The line of each pending append's first event (for errors).
    private var pendingLines: [Int] = []
    /// Streams of the pending commit that begin at a later version (``EventLog/beginStream(_:atVersion:)``),
    /// recorded just before the commit is sent.
    private var pendingBegins: [(stream: String, version: Int, line: Int)] = []
    /// The pending commit's size as ``EventLog/maximumCommitSize`` counts it.
    private var pendingBytes = 0
    /// Each stream's version as the store and the pending commit leave it.
    private var versions: [NameKey: Int] = [:]
    /// The streams that are tombstoned (in the store or by an earlier line).
    private var tombstoned: Set<NameKey> = []
    private var imported = 0
    private var skipped = 0
    private var commits = 0
    private let bar = ProgressBar("importing")

    init(log: EventLog, store: String, batch: Int, acks: Bool) {
        self.log = log
        self.store = store
        self.batch = batch
        self.acks = acks
    }

    private func version(of stream: String) throws -> Int {
        if let known = versions[NameKey(stream)] { return known }
        let info = try log.info(stream: stream)
        if info?.isTombstoned == true { tombstoned.insert(NameKey(stream)) }
        versions[NameKey(stream)] = info?.version ?? 0
        return info?.version ?? 0
    }

    func take(_ input: JSONLines.Input, line: Int) async throws {
        switch input {
        case .event(nil, _, _, _):
            throw Terminal.fail("line \(line): \"stream\" is missing", code: ExitStatus.badInput.rawValue)
        case .event(let stream?, let given, let event, _):
            do {
                try log.validate([event], for: stream)
            } catch {
                throw StoreAccess.fail(error, path: store, prefix: "line \(line): ")
            }
            // One hash of the name for the lookup and the update (a stream per line, interleaved).
            let slot = versions.index(forKey: NameKey(stream))
            let current = try slot.map { versions.values[$0] } ?? version(of: stream)
            let version = given ?? current + 1
            // (A given version is within bounds; the next one may not be. Found by a black-box
            // run: the store refused the commit, after its record of where the stream begins
            // was written.)
            guard version <= EventLog.maximumVersion else {
                throw Terminal.fail(
                    "line \(line): '\(stream)' would pass the largest version, \(EventLog.maximumVersion) (2^62 - 1)",
                    code: ExitStatus.badInput.rawValue)
            }
            if version <= current {
                // A version an earlier line of this commit gave: compared with that line, and
                // nothing is written to find out (a conflict leaves nothing of the commit).
                if let earlier = pendingEvent(of: stream, version: version) {
                    if let conflict = StoreAccess.conflictWithEarlierLine(
                        id: earlier.id, type: earlier.type, data: earlier.data, metadata: earlier.metadata, line: event, stream: stream,
                        version: version)
                    {
                        throw Terminal.fail("line \(line): \(conflict)", code: ExitStatus.conflict.rawValue)
                    }
                    skipped += 1
                    // With --acks it is acknowledged as a duplicate once the earlier line's
                    // commit is durable (it was not acknowledged at all: a producer waiting for
                    // each line's acknowledgement waited forever).
                    if acks {
                        try await drain()
                        Terminal.emit(JSONLines.acknowledgement(ofStored: try checkStored(event, stream: stream, version: version, line: line)))
                    }
                    return
                }
                if let begin = pendingBegins.first(where: { NameKey($0.stream) == NameKey(stream) }) {
                    throw Terminal.fail(
                        "line \(line): version \(version) of '\(stream)' is before the version the stream begins at (\(begin.version), line \(begin.line)), so the line cannot be compared with it",
                        code: ExitStatus.conflict.rawValue)
                }
                // Below what is pending: in the store, or in a commit sent, compared once it is
                // acknowledged. With --acks the lines before it are acknowledged first, then it
                // (a producer waiting for the acknowledgement of every line it sent gets it).
                if acks { try await drain() } else { while !inFlight.isEmpty { try await settle() } }
                let stored = try checkStored(event, stream: stream, version: version, line: line)
                skipped += 1
                if acks { Terminal.emit(JSONLines.acknowledgement(ofStored: stored)) }
                return
            }
            // What the store would refuse is refused here, at its line: the store never refuses
            // a commit, so the next one may be sent before it is acknowledged.
            guard !tombstoned.contains(NameKey(stream)) else {
                throw Terminal.fail(
                    "line \(line): '\(stream)' is tombstoned: no events can be added to it", code: ExitStatus.conflict.rawValue)
            }
            if version > current + 1 {
                guard current == 0 else {
                    throw Terminal.fail(
                        "line \(line): version \(version) of '\(stream)' does not follow its version \(current)", code: ExitStatus.badInput.rawValue)
                }
                // The stream began later where it came from (its first versions were removed):
                // recorded with the commit that holds its first event, not before (a bad line
                // later in that commit writes nothing of it, this record included).
                pendingBegins.append((stream, version, line))
            }
            let size = EventLog.commitSize(of: event, in: stream)
            if pendingBytes + size > Self.commitBytes { try await flush() }
            if let last = pending.last, NameKey(last.stream) == NameKey(stream) {
                pending[pending.count - 1].events.append(event)
            } else {
                pending.append(EventLog.Append(stream: stream, events: [event], expected: .exact(version - 1)))
                pendingLines.append(line)
            }
            if let slot { versions.values[slot] = version } else { versions[NameKey(stream)] = version }
            pendingEvents += 1
            pendingBytes += size
            // Full (by count, or by bytes: one event larger than a commit's bytes goes alone):
            // sent now, so that a bad line after it does not take it along.
            if pendingEvents >= batch || pendingBytes >= Self.commitBytes { try await flush() }
        case .truncate(let stream, let before):
            try await drain()
            // Already so (an import run again; a tombstoned stream hides every version; every
            // export of a compacted store has such a line): nothing to write, and durable.
            if let info = try log.info(stream: stream), info.isTombstoned || info.firstVisibleVersion >= before {
                if acks { Terminal.emit(JSONLines.truncation(of: stream, before: before)) }
                return
            }
            let current = try version(of: stream)
            if current == 0 && before > 1 {
                // Every version below it was removed where the stream came from.
                try await change(line: line) { try await $0.beginStream(stream, atVersion: before) }
                versions[NameKey(stream)] = before - 1
            }
            try await change(line: line) { try await $0.truncate(stream: stream, before: before) }
            acknowledge(change: JSONLines.truncation(of: stream, before: before))
        case .tombstone(let stream):
            try await drain()
            if try log.info(stream: stream)?.isTombstoned == true {  // already so: nothing to write, and durable
                tombstoned.insert(NameKey(stream))
                if acks { Terminal.emit(JSONLines.tombstone(of: stream)) }
                return
            }
            try await change(line: line) { try await $0.tombstone(stream: stream) }
            tombstoned.insert(NameKey(stream))
            acknowledge(change: JSONLines.tombstone(of: stream))
        }
    }

    /// The event an earlier line gave `version` of `stream` in the commit being packed.
    private func pendingEvent(of stream: String, version: Int) -> NewEvent? {
        for append in pending.reversed() where NameKey(append.stream) == NameKey(stream) {
            guard case .exact(let before) = append.expected else { continue }
            let offset = version - before - 1
            if offset >= 0, offset < append.events.count { return append.events[offset] }
        }
        return nil
    }

    /// A lifecycle line, durable: a commit of its own (counted, and acknowledged with `--acks`
    /// as `export` prints such a line).
    private func acknowledge(change line: String) {
        commits += 1
        if acks { Terminal.emit(line) }
    }

    /// A line whose version the stream has: the stored event must be the same one (an import
    /// run again), hidden or not. A version the log no longer holds (compaction removed it, or
    /// the stream began later) cannot be compared: it is a conflict, never a silent skip.
    @discardableResult
    private func checkStored(_ event: NewEvent, stream: String, version: Int, line: Int) throws -> StoredEvent {
        let stored: StoredEvent?
        do {
            stored = try log.storedEvent(of: stream, version: version)
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store, prefix: "line \(line): ")
        }
        guard let stored else {
            throw Terminal.fail(
                "line \(line): version \(version) of '\(stream)' is no longer in the store (removed by compaction, or before the version the stream began at), so the line cannot be compared with it",
                code: ExitStatus.conflict.rawValue)
        }
        guard stored.id == event.id else {
            throw Terminal.fail(
                "line \(line): '\(stream)' has version \(version) already, as another event (id \(stored.id.uuidString.lowercased()), not \(event.id.uuidString.lowercased()))",
                code: ExitStatus.conflict.rawValue)
        }
        if let difference = StoreAccess.difference(stored, event) {
            throw Terminal.fail(
                "line \(line): version \(version) of '\(stream)' is stored with this id (\(event.id.uuidString.lowercased())) and \(difference): the line is not the stored event",
                code: ExitStatus.conflict.rawValue)
        }
        return stored
    }

    private func change(line: Int, _ body: (EventLog) async throws -> Void) async throws {
        do {
            try await body(log)
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store, prefix: "line \(line): ")
        }
    }

    /// Commits sent to the writer and not acknowledged yet, oldest first: lines are read and
    /// packed while they are written. Two keep the writer busy while the next is packed (with
    /// one, it waited for the parser about a third of the time). Every line was checked against
    /// what the store would refuse, so only a failing disk fails a commit, and then the writer
    /// fails every later one: a commit after a failed one is never written.
    private var inFlight: [(commit: SentCommit, firstLine: Int)] = []
    /// A commit packs at most this many bytes of events (one larger event goes alone): with
    /// 512 MiB commits (the store's bound) three in memory at once took gigabytes, and an
    /// import of large events died when the memory ran out.
    static let commitBytes = min(EventLog.maximumCommitSize, 32 << 20)
    private static let commitsInFlight = 2

    /// Sends the pending commit (one sync), once fewer than ``commitsInFlight`` are unacknowledged.
    func flush() async throws {
        while inFlight.count >= Self.commitsInFlight { try await settle() }
        guard !pending.isEmpty else { return }
        if !pendingBegins.isEmpty {
            // Every line of the commit was checked: only a failing disk fails these now, as
            // it would fail the commit.
            while !inFlight.isEmpty { try await settle() }
            for begin in pendingBegins {
                try await change(line: begin.line) { try await $0.beginStream(begin.stream, atVersion: begin.version) }
            }
            pendingBegins = []
        }
        let appends = pending
        let firstLine = pendingLines.first!
        pending = []
        pendingLines = []
        pendingEvents = 0
        pendingBytes = 0
        do {
            inFlight.append((try log.send(appends), firstLine))
        } catch {
            throw StoreAccess.fail(error, path: store, prefix: "the commit of lines \(firstLine)...: ")
        }
    }

    /// Sends what is pending and waits until everything sent is acknowledged.
    func drain() async throws {
        try await flush()
        while !inFlight.isEmpty { try await settle() }
    }

    /// Acknowledges the commits that landed, after an error (sending nothing more).
    func settleSent() async {
        while !inFlight.isEmpty { try? await settle() }
    }

    /// Whether a failed commit was said: the writer fails every commit after it, with the
    /// same error, and that is said once.
    private var saidACommitFailed = false

    /// Waits for the oldest commit in flight and acknowledges it.
    private func settle() async throws {
        let (commit, firstLine) = inFlight.removeFirst()
        let results: [Commit]
        do {
            results = try await commit.commits()
        } catch {
            guard !saidACommitFailed else { throw error }
            saidACommitFailed = true
            throw StoreAccess.fail(error, path: store, prefix: "the commit of lines \(firstLine)...: ")
        }
        commits += 1
        for result in results {
            imported += result.lastVersion - result.firstVersion + 1
            if acks { Terminal.emit(JSONLines.line(for: result)) }
        }
        bar.update(imported % 10_000, of: 10_000)
    }

    /// Ends the progress bar and prints the summary on stderr.
    func finish() {
        bar.finish()
        Terminal.error(
            "imported \(imported) event\(imported == 1 ? "" : "s") in \(commits) commit\(commits == 1 ? "" : "s"); skipped \(skipped) already in the store")
    }
}
