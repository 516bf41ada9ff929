import ArgumentParser
import Dugong
import DugongStore
import Foundation
import Glibc

/// Opening a store for a command, with errors a person can act on.
enum StoreAccess {
    /// Opens the store at `path` for reading (no lock: works while a writer has it open), or for
    /// writing (takes the lock, waiting for it up to `wait` seconds).
    /// Without `creating`, a directory that holds no store (empty, or only a lock file) is
    /// refused like a missing one (a writable open would make a store there), unless
    /// `waitingForStore`: a reader that follows the log may start before its writer makes it.
    static func open(
        _ path: String, forWriting: Bool = false, creating: Bool = false, segmentSize: Int? = nil, wait: Double = 0,
        waitingForStore: Bool = false, maximumEventSize: Int? = nil
    ) throws -> EventLog {
        try refuseEmpty(path)
        if !creating, !waitingForStore { try refuseIfNoStore(at: path) }
        if forWriting { Terminal.mayHaveWritten = true }
        var options = EventLog.Options(createIfMissing: creating)
        options.readOnly = !forWriting
        if let segmentSize { options.segmentSize = segmentSize }
        if let maximumEventSize { options.maximumEventSize = maximumEventSize }
        let existed = FileManager.default.fileExists(atPath: path)
        do {
            return try LockWait.retrying(for: wait) { try EventLog.open(at: path, options: options) }
        } catch let error as StoreError {
            if case .locked = error {} else if creating, !existed { removeFailedCreation(at: path) }
            throw fail(error, path: path)
        } catch {
            if creating, !existed { removeFailedCreation(at: path) }
            throw Terminal.fail("cannot open \(path): \(error)\(hint(for: error))", code: ExitStatus.ioFailure.rawValue)
        }
    }

    /// What to do about a failed system call, when there is something to say: the files a
    /// process may open run out first on a store of many segments (one descriptor each).
    static func hint(for error: Error) -> String {
        guard let error = error as? DugongStore.SystemError, error.code == EMFILE || error.code == ENFILE else { return "" }
        var files = rlimit()
        let limit = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0 ? " (\(files.rlim_cur) here)" : ""
        return error.code == EMFILE
            ? "; a store keeps one file open per segment: raise the files this process may open (`ulimit -n`\(limit))"
            : "; the system's table of open files is full (fs.file-max)"
    }

    /// Refuses a `--segment-size` outside what the engine takes (4 KiB to 1 GiB).
    static func validate(segmentSize: Int?) throws {
        if let segmentSize, segmentSize < 4096 || segmentSize > 1 << 30 {
            throw ValidationError("--segment-size must be 4096 to 1073741824 bytes")
        }
    }

    /// What differs between an event stored under an id and a line that gives that id again
    /// (its type, data or metadata; the time is not compared: a line without one gets the time
    /// it is read); nil when nothing does. An id names one event: a line that reuses it for
    /// another is a mistake, not a retry.
    static func difference(_ stored: StoredEvent, _ line: NewEvent) -> String? {
        difference(type: stored.type, data: stored.data, metadata: stored.metadata, line)
    }

    /// ``difference(_:_:)`` for an event given by its fields.
    static func difference(type: String, data: Data, metadata: Data, _ line: NewEvent) -> String? {
        // By their bytes, as the store tells names apart (Swift's `==` takes café spelled NFC
        // and NFD for one).
        if !type.utf8.elementsEqual(line.type.utf8) { return "type \(quoted(type)), not \(quoted(line.type))" }
        if data != line.data { return "other data" }
        if metadata != line.metadata { return "other metadata" }
        return nil
    }

    /// Why an import's line, at a version an earlier line of the same input gave to an event
    /// not yet written, is not that event (nil: it is, the line repeated, to be skipped). The
    /// earlier line's commit is not written to find out: a conflict leaves nothing of it.
    static func conflictWithEarlierLine(id: UUID, type: String, data: Data, metadata: Data, line event: NewEvent, stream: String, version: Int) -> String? {
        guard id == event.id else {
            return "'\(stream)' has version \(version) from an earlier line of this input, as another event (id \(id.uuidString.lowercased()), not \(event.id.uuidString.lowercased()))"
        }
        guard let difference = difference(type: type, data: data, metadata: metadata, event) else { return nil }
        return "version \(version) of '\(stream)' has this id (\(event.id.uuidString.lowercased())) in an earlier line of this input, and \(difference): the line is not that event"
    }

    private static func quoted(_ text: String) -> String { JSONLines.quoted(text) }

    /// After the creation of a store at `path` (it did not exist) failed (a full disk): removes
    /// the directory when it holds only what the creation left, its lock and temporary files,
    /// and no other process holds the lock (one creating the store meanwhile).
    private static func removeFailedCreation(at path: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            // A directory it may not read (made under `umask 777`, say) holds nothing it made:
            // removed if empty (rmdir removes nothing else).
            _ = Glibc.rmdir(path)
            return
        }
        guard names.allSatisfy({ $0 == "dugong.lock" || $0.hasSuffix(".tmp") }) else { return }
        whileLocked(path) { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Runs `body` holding the store's lock (its lock file's and its directory's, as a
    /// writer takes them), if no other process holds it (nothing is run then). A process that
    /// was waiting for the lock file removed meanwhile finds it gone once it gets it, and tries
    /// again (`StoreLock`).
    private static func whileLocked(_ path: String, _ body: () -> Void) {
        let lock = Glibc.open(path + "/dugong.lock", O_RDONLY | O_CLOEXEC)
        defer { if lock >= 0 { Glibc.close(lock) } }
        guard lock < 0 || flock(lock, LOCK_EX | LOCK_NB) == 0 else { return }
        let directory = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if directory >= 0 { Glibc.close(directory) } }
        guard directory < 0 || flock(directory, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK else { return }
        body()
    }

    /// Throws the "no store there" failure (exit status 66) when `path` is a directory with
    /// nothing in it but perhaps a lock file or a temporary file: reading it would report an
    /// empty, clean store, and writing to it would make one. (A directory holding other files
    /// is refused by the open: "is not a Dugong store".)
    /// Refuses an empty path (64), saying so: it was "cannot open : opendir() failed"; and a
    /// mistyped PostgreSQL URL (`postgres:/db`), which made a directory store of that name.
    static func refuseEmpty(_ path: String) throws {
        if path.isEmpty {
            throw Terminal.fail("the store's path is empty: give a directory, or a postgres:// URL", code: ExitStatus.usage.rawValue)
        }
        let lowered = path.lowercased()
        if lowered.hasPrefix("postgres:") || lowered.hasPrefix("postgresql:") {
            throw Terminal.fail(
                "'\(PostgresAccess.redacted(path))' looks like a PostgreSQL URL but is not one (expected postgres://USER@HOST/DATABASE); a directory of that name is written ./\(path)",
                code: ExitStatus.usage.rawValue)
        }
    }

    static func refuseIfNoStore(at path: String) throws {
        try refuseEmpty(path)
        guard holdsNoStore(at: path) else { return }
        throw Terminal.fail("\(path) holds no store (no manifest and no segment file in it)", code: ExitStatus.notFound.rawValue)
    }

    /// Whether `path` is a directory with nothing in it but perhaps a lock file or a temporary
    /// file (not: a missing path or one that cannot be listed, which the open explains).
    static func holdsNoStore(at path: String) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return false }
        return names.allSatisfy { $0 == "dugong.lock" || $0.hasSuffix(".tmp") }
    }

    /// What was at a store's path before a command that may create the store there.
    struct Existing {
        /// A directory (perhaps empty: the command then makes the store in it).
        var directory: Bool
        /// A store (a manifest or a segment file in the directory).
        var store: Bool
        /// The directories above it that were missing too (the command makes them), deepest
        /// first.
        var missingParents: [String] = []

        init(_ path: String) {
            let names = try? FileManager.default.contentsOfDirectory(atPath: path)
            directory = names != nil
            store = names?.contains { $0 == "dugong.manifest" || $0.hasSuffix(".dseg") } ?? false
            guard !directory else { return }
            var parent = Self.parent(of: path)
            while !parent.isEmpty, parent != "/", parent != ".", !FileManager.default.fileExists(atPath: parent) {
                missingParents.append(parent)
                parent = Self.parent(of: parent)
            }
        }

        /// The directory that holds `path`: "" for a name alone ("s", "s/"), "/" for one
        /// under the root. (Not `NSString.deletingLastPathComponent`: Foundation's traps on a
        /// path of one character, and `dugong import s` died of it; a black-box run.)
        static func parent(of path: String) -> String {
            var path = Substring(path)
            while path.count > 1, path.hasSuffix("/") { path.removeLast() }
            guard let slash = path.lastIndex(of: "/") else { return "" }
            var parent = path[..<slash]
            while parent.hasSuffix("/") { parent.removeLast() }
            return parent.isEmpty ? "/" : String(parent)
        }
    }

    /// After a command that created the store at `path` (there was none: `existed`) failed with
    /// nothing committed: closes it and removes what it made (the directory, or the files made
    /// in a directory that was there), so that a failed command leaves nothing behind (a new
    /// store reserves a whole segment on disk).
    static func removeIfEmpty(_ log: EventLog, createdAt path: String, existed: Existing) {
        guard !existed.store, log.headPosition == 0, (try? log.streamNames().isEmpty) == true else { return }
        log.close()
        // The lock again (another process may have taken it as it was released, and written),
        // and a fresh look: still empty and undamaged.
        whileLocked(path) {
            var options = EventLog.Options()
            options.readOnly = true
            guard let fresh = try? EventLog.open(at: path, options: options) else { return }
            let empty = fresh.headPosition == 0 && (try? fresh.streamNames().isEmpty) == true && fresh.recovery.corruptions.isEmpty
            fresh.close()
            guard empty else { return }
            guard existed.directory else {
                try? FileManager.default.removeItem(atPath: path)
                // And the directories made for it, each only while empty (`rmdir`): another
                // process may have put something there meanwhile.
                for parent in existed.missingParents where rmdir(parent) != 0 { break }
                return
            }
            let made = ["dugong.manifest", "dugong.head", "dugong.index", "dugong.lock"]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            where made.contains(name) || name.hasSuffix(".dseg") || name.hasSuffix(".dseg.tmp") || name.hasSuffix(".manifest.tmp") {
                try? FileManager.default.removeItem(atPath: path + "/" + name)
            }
        }
    }

    /// After a command printed what the index says (streams, statistics): a store with damage
    /// may have lost streams, versions or lifecycle records in it, so the command says so and
    /// ends with the damage status instead of success.
    static func failIfDamaged(_ log: EventLog, path: String, what: String) throws {
        guard let first = log.damageFoundAtOpen.first else { return }
        let more = log.damageFoundAtOpen.count > 1 ? " and \(log.damageFoundAtOpen.count - 1) more" : ""
        throw Terminal.fail(
            "\(path) is damaged (\(first)\(more)): \(what) may be missing or out of date; run `dugong verify`",
            code: ExitStatus.damaged.rawValue)
    }

    /// Prints `error` as ``describe(_:path:)`` words it and returns the exit status its kind
    /// has (``ExitStatus``).
    static func fail(_ error: StoreError, path: String, prefix: String = "") -> ExitCode {
        Terminal.fail(prefix + describe(error, path: path), code: ExitStatus.of(error).rawValue)
    }

    static func describe(_ error: StoreError, path: String) -> String {
        switch error {
        case .notFound: "\(path) does not exist (no store there)"
        case .locked: "\(path) is locked by another process: a writer has the store open"
        // The library's "reopen it to recover" is the next command's open: say what failed.
        // (Not "recovers" alone: after a segment cut or removed under the writer, that open
        // finds damage.)
        case .failed(let reason):
            "the write failed, and nothing after it was acknowledged: \(reason) (the next command's open recovers what is on disk, or reports it damaged)"
        default: "\(error)"
        }
    }
}

/// `--wait SECONDS`, for the commands that take the store's write lock.
struct LockWait: ParsableArguments {
    @Option(
        name: .customLong("wait"), parsing: .unconditional,
        help: ArgumentHelp(
            "Wait up to this many seconds for another process to release the store's write lock (default 0: exit 75 at once).",
            valueName: "seconds"))
    var seconds: Double = 0

    func validate() throws {
        guard seconds >= 0, seconds <= 1e9 else { throw ValidationError("--wait must be 0 to 1000000000 seconds") }
    }

    /// Runs `attempt` again every 50 ms while it fails because the store is locked, until
    /// `seconds` have passed; then the last error is thrown.
    static func retrying<T>(for seconds: Double, _ attempt: () throws -> T) throws -> T {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while true {
            do {
                return try attempt()
            } catch StoreError.locked where ContinuousClock.now < deadline {
                // A command that stops at SIGINT or SIGTERM (an import) stops waiting too.
                if let signal = StopSignals.receivedName {
                    Terminal.error("stopped by \(signal) while waiting for the store's write lock: nothing was written")
                    StopSignals.endIfReceived()
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }
}

/// `--from P` (a directory store's position) or `--from T:P` (a PostgreSQL cursor).
extension LogCursor: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// `--expected-version any|no-stream|stream-exists|N`.
extension ExpectedVersion: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "any": self = .any
        case "no-stream": self = .noStream
        case "stream-exists": self = .streamExists
        default:
            // No stream passes 2^62 - 1: a larger version is a wrong argument (64), never a
            // conflict with the stream (2).
            guard let version = Int(argument), version >= 0, version <= EventLog.maximumVersion else { return nil }
            self = .exact(version)
        }
    }
}

/// The tool's exit statuses, one per kind of failure, so that scripts can tell them apart
/// (README, "Exit statuses").
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    /// `verify` found damage, or a read or an open met damaged data.
    case damaged = 1
    /// An append's expected version did not hold, the stream is tombstoned, or an import line
    /// names a version the stream holds as another event.
    case conflict = 2
    /// Wrong arguments or options (the argument parser's usage error).
    case usage = 64
    /// A bad input line or value: not valid, too large, a name out of bounds.
    case badInput = 65
    /// No store at the path, or no such stream.
    case notFound = 66
    /// A system call failed (disk full, permissions, I/O error).
    case ioFailure = 74
    /// Another process holds the store's write lock.
    case locked = 75

    /// What the status means, as `dugong --help` and the README say it.
    var meaning: String {
        switch self {
        case .success: "done (verify: the store is clean)"
        case .damaged: "damage: verify found problems, or a read or an open met damaged data"
        case .conflict: "conflict: an expected version did not hold, a stream is tombstoned, or an imported line's version holds another event"
        case .usage: "wrong arguments or options"
        case .badInput: "a bad input line or value (invalid JSON, unknown field, too large, a name out of bounds)"
        case .notFound: "not found: no store at the path (or not a store), no such stream for read"
        case .ioFailure: "a system call failed (disk full, permissions, I/O error)"
        case .locked: "locked: another process holds the store's write lock (see --wait)"
        }
    }

    /// The exit statuses as the root command's help lists them.
    static var help: String {
        "Exit statuses:\n" + allCases.map { "  \($0.rawValue)\(String(repeating: " ", count: 4 - "\($0.rawValue)".count))\($0.meaning)" }.joined(separator: "\n")
    }

    static func of(_ error: StoreError) -> ExitStatus {
        switch error {
        case .locked: .locked
        case .notFound, .notAStore, .unsupportedFormat: .notFound
        case .wrongExpectedVersion, .partialDuplicate, .streamTombstoned: .conflict
        case .invalidArgument, .eventTooLarge, .commitTooLarge, .readOnly: .badInput
        case .corruption, .damaged: .damaged
        case .failed, .closed: .ioFailure
        }
    }
}
