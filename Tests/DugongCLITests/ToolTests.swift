import DugongStore
import Foundation
import Testing

/// The tool issue's defects 6, 8 and 9, and the exit statuses scripts rely on.
@Suite("The tool: names, lifecycle commands, exit statuses")
struct ToolTests {
    // Defect 6: the demo printed `bank/BankAccount/<id>`, the store names it `bank:BankAccount/<id>`;
    // `read` of a stream the store has never seen exited 0 without a word.
    @Test func theDemoPrintsTheStoresStreamNamesAndReadingAMissingStreamIsNotFound() throws {
        let store = CLI.storePath("demo")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let demo = try CLI.run(["demo", "--store", store])
        #expect(demo.status == 0, "\(demo.stderr)")
        let printed = try #require(demo.stdout.firstMatch(of: /commit → stream (\S+) at version/)).1
        #expect(printed.hasPrefix("bank:BankAccount/"))
        let read = try CLI.run(["read", store, String(printed)])
        #expect(read.status == 0 && read.lines.count >= 3, "\(read.stderr)")
        let missing = try CLI.run(["read", store, "no/such-stream"])
        #expect(missing.status == 66 && missing.stderr.contains("has no stream 'no/such-stream'"), "\(missing.stderr)")
    }

    // Defect 8: lifecycle commands said nothing; tombstoning a name never used is allowed and
    // said; truncating past the next version is refused (see ImportExportTests).
    @Test func lifecycleCommandsSayWhatTheyDid() throws {
        let store = CLI.storePath("lifecycle")
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "s"], input: "{\"type\":\"A\"}\n{\"type\":\"B\"}\n{\"type\":\"C\"}")
        let truncated = try CLI.run(["truncate-stream", store, "s", "--before", "2"])
        #expect(truncated.status == 0 && truncated.stdout.contains(#""s" hides versions 1...1: versions 2...3 are visible"#), "\(truncated.stdout)")
        let deleted = try CLI.run(["delete-stream", store, "s"])
        #expect(deleted.stdout.contains("no version is visible; appends continue at version 4"), "\(deleted.stdout)")
        let reserved = try CLI.run(["tombstone-stream", store, "never/used"])
        #expect(reserved.status == 0 && reserved.stdout.contains("it had no events: the name can never be used"), "\(reserved.stdout)")
        #expect(try CLI.run(["tombstone-stream", store, "never/used"]).stdout.contains("tombstoned already"))
        let append = try CLI.run(["append", store, "never/used"], input: #"{"type":"A"}"#)
        #expect(append.status == 2 && append.stderr.contains("tombstoned"), "\(append.stderr)")
    }

    // Defect 9: a dry run writes nothing, so it runs beside a writer.
    @Test func aDryRunCompactionRunsBesideAWriter() async throws {
        let store = CLI.storePath("dry")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let writer = try EventLog.open(at: store, options: .init(createIfMissing: true))
        defer { writer.close() }
        for _ in 0..<5 { try await writer.append([NewEvent(type: "T", data: Data("{}".utf8))], to: "s") }
        try await writer.truncate(stream: "s", before: 4)
        let dry = try CLI.run(["compact", store, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("events: 5 before, would keep 2"), "\(dry.stdout) \(dry.stderr)")
        let real = try CLI.run(["compact", store])
        #expect(real.status == 75 && real.stderr.contains("locked"), "\(real.stderr)")
    }

    // Scripts tell failures apart by exit status (README, "Exit statuses").
    @Test func exitStatusesTellFailuresApart() throws {
        let store = CLI.storePath("statuses")
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "s"], input: #"{"type":"A"}"#)
        #expect(try CLI.run(["read", "/nonexistent/store", "s"]).status == 66)
        #expect(try CLI.run(["append", store, "s", "--expected-version", "0"], input: #"{"type":"A"}"#).status == 2)
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"A","oops":1}"#).status == 65)
        #expect(try CLI.run(["read-all", store, "--limit", "-1"]).status == 64)
        #expect(try CLI.run(["verify", store]).status == 0)
        let writer = try EventLog.open(at: store)
        defer { writer.close() }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"A"}"#).status == 75)
    }

    // Defect 7's usage slips: a negative count was "Missing value"; a mistyped command gets a
    // suggestion; --version answers.
    @Test func usageErrorsSayWhatIsWrong() throws {
        let negative = try CLI.run(["bench", "--events", "-5"])
        #expect(negative.status == 64 && negative.stderr.contains("must be positive"), "\(negative.stderr)")
        let typo = try CLI.run(["raed", "/tmp/x", "s"])
        #expect(typo.status == 64 && typo.stderr.contains("did you mean 'read'?"), "\(typo.stderr)")
        let version = try CLI.run(["--version"])
        #expect(version.status == 0 && version.stdout.contains("store format version 2"), "\(version.stdout)")
    }
}
