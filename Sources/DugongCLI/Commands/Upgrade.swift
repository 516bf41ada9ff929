import ArgumentParser
import DugongStore
import Foundation

/// `dugong upgrade`: converts a store of an earlier format version to the current one.
struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a store of format version 1 to the current format.",
        discussion: """
            Takes the write lock, reads every segment of the old format and writes the store \
            again in the current one: every event keeps its position, version, id and bytes; \
            lifecycle records and snapshots are kept. Crash-safe: a crash leaves the old store \
            or the new one; run the command again either way (on the new one it finishes what \
            the crash left: the old files, the head file). A store already in the current \
            format is left alone. A damaged old store is refused; a torn tail (a write that never \
            completed) is not copied, unless the index file a clean close saved says the frames \
            went further: then it is damage, refused too. A version 1 store does not record its segment size: \
            the new segments get 64 MiB unless --segment-size says otherwise, and later \
            writers and compactions keep that size.

            Examples:
              dugong upgrade /var/lib/app/events
              dugong upgrade /var/lib/app/events --segment-size 8388608
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(parsing: .unconditional, help: "Bytes preallocated for each segment file of the converted store, 4096 to 1 GiB (default: 64 MiB; a current store keeps its own).")
    var segmentSize: Int?
    @OptionGroup var lock: LockWait

    func validate() throws { try StoreAccess.validate(segmentSize: segmentSize) }

    func run() throws {
        try PostgresAccess.refuse(store, "upgrade converts a directory store's files; a PostgreSQL schema is upgraded by any writing command or application (PostgresSchema.migrate)")
        try StoreAccess.refuseIfNoStore(at: store)
        let report: UpgradeReport
        var options = EventLog.Options()
        if let segmentSize { options.segmentSize = segmentSize }
        do {
            Terminal.mayHaveWritten = true
            report = try LockWait.retrying(for: lock.seconds) { try EventLog.upgrade(at: store, options: options) }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        if let problem = report.unfinishedCleanup { Terminal.error(Compact.tookEffect(problem)) }
        if let tail = report.droppedTail { Terminal.error("dugong: warning: \(tail)") }
        if json {
            Terminal.emit(try Verify.encode(report))
        } else if report.alreadyCurrent, report.fromVersion < report.toVersion {
            Terminal.emit(
                "the oldest segment is of format version \(report.fromVersion), which this build reads (versions 2 to \(report.toVersion)): nothing to do (`dugong compact` rewrites segments older than version \(report.toVersion) in it)")
        } else if report.alreadyCurrent, let finished = report.finished {
            Terminal.emit("already format version \(report.toVersion); finished what an interrupted upgrade or compaction left: \(finished)")
        } else if report.alreadyCurrent {
            Terminal.emit("already format version \(report.toVersion): nothing to do")
        } else {
            Terminal.emit("upgraded from format version \(report.fromVersion) to \(report.toVersion): \(report.events) events, \(report.segmentsBefore) segment(s) before, \(report.segmentsAfter) after")
        }
    }
}
