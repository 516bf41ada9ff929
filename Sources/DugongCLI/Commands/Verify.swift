import ArgumentParser
import DugongStore
import Foundation

/// `dugong verify`: checks a store without changing it.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every frame, event, position, version and the index of a store.",
        discussion: """
            Checks every frame's checksum, decodes every event, checks that global positions \
            increase and that each stream's versions are contiguous (truncation and deletes may \
            hide versions), rebuilds the index from the segments and checks it against them, \
            and checks that dugong.index (the index saved at the last clean close, which opens \
            load) describes them too. Never modifies anything \
            and does not take the write lock, so it runs beside a writer. Each problem names the \
            segment file, the byte offset and its kind. Exit status 0 when clean, 1 when it found \
            problems.

            Example:
              dugong verify /var/lib/app/events
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        try PostgresAccess.refuse(store, "verify checks a directory store's files; PostgreSQL checks its own pages (`pg_amcheck`), and `dugong export` reads every event")
        try StoreAccess.refuseIfNoStore(at: store)
        let log: EventLog
        do {
            var options = EventLog.Options()
            options.readOnly = true
            options.useIndexFile = false  // every frame is scanned, and the index rebuilt, to be checked
            log = try EventLog.open(at: store, options: options)
        } catch StoreError.corruption(let segment, let offset, let reason) {
            // A damaged segment header stops the store from opening at all: that is the finding.
            let finding = EventLog.Finding(segment: segment, offset: offset, kind: .damagedSegment, message: reason)
            if json {
                let report = EventLog.VerificationReport(segments: 0, frames: 0, events: 0, streams: 0, problems: [finding], warnings: [])
                Terminal.emit(try Self.encode(report))
            } else {
                Terminal.emit("problem: \(finding)")
            }
            throw ExitCode(1)
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        defer { log.close() }
        let bar = ProgressBar("verifying")
        let report = try log.verify { bar.update($0, of: $1) }
        bar.finish()
        if json {
            Terminal.emit(try Self.encode(report))
        } else {
            for problem in report.problems { Terminal.emit("problem: \(problem)") }
            for warning in report.warnings { Terminal.emit("warning: \(warning)") }
            let summary = [Terminal.count(report.segments, "segment"), Terminal.count(report.frames, "event frame"), Terminal.count(report.events, "event"), Terminal.count(report.streams, "stream")].joined(separator: ", ")
            Terminal.emit(report.isClean ? "clean: \(summary)" : "\(report.problems.count) problem(s) in \(summary)")
        }
        if !report.isClean { throw ExitCode(1) }
    }

    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
