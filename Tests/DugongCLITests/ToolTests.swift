import DugongStore
import Foundation
import Glibc
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
        // A name no stream can have is a bad value (65), as the writing commands answer; it
        // read as "no stream" (66: found by a black-box run).
        for (name, problem) in [("", "is empty"), (String(repeating: "a", count: 1025), "is 1025 bytes long")] {
            let bad = try CLI.run(["read", store, name])
            #expect(bad.status == 65 && bad.stderr.contains("stream name \(problem)"), "\(bad.status) \(bad.stderr)")
            let tombstone = try CLI.run(["tombstone-stream", store, name])
            #expect(tombstone.status == 65, "\(tombstone.stderr)")
        }
    }

    // Defect 8: lifecycle commands said nothing; tombstoning a name never used is allowed and
    // said; truncating past the next version is refused (see ImportExportTests).
    // From a black-box test: wrong addresses were a failed system call (74) and a port in use
    // named neither; wrong arguments are 64, and a port in use names where it was asked.
    @Test func theStudioRefusesWrongAddressesAndNamesAPortInUse() throws {
        let store = CLI.storePath("studio-args")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        for arguments in [["--host", ""], ["--host", "a b"], ["--port", "-1"], ["--port", "70000"]] {
            let refused = try CLI.run(["studio", store] + arguments)
            #expect(refused.status == 64, "\(arguments): \(refused.status) \(refused.stderr)")
        }
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0 && listen(holder, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let inUse = try CLI.run(["studio", store, "--port", "\(port)"])
        #expect(inUse.status == 74 && inUse.stderr.contains("127.0.0.1 port \(port)"), "\(inUse.status) \(inUse.stderr)")
        // (Found by a black-box run: it said "stopped" for a Studio that never started, in
        // SwiftNIO's words with a stray parenthesis; and a host name that does not resolve, a
        // wrong argument, was a failed call.)
        #expect(inUse.stderr.contains("could not listen on 127.0.0.1 port \(port): Address already in use (errno 98)"), "\(inUse.stderr)")
        let unknown = try CLI.run(["studio", store, "--host", "no-such-host.invalid"])
        #expect(unknown.status == 64 && unknown.stderr.contains("could not listen on no-such-host.invalid"), "\(unknown.status) \(unknown.stderr)")
        // From a black-box test: on every address (0.0.0.0) it printed an address that another
        // machine cannot open, and said nothing more.
        let everywhere = try CLI.run(shell: "timeout -s INT 6 '\(CLI.binary)' studio '\(store)' --host 0.0.0.0 --port 0")
        #expect(everywhere.stdout.contains("Dugong Studio: http://0.0.0.0:"), "\(everywhere.stdout) \(everywhere.stderr)")
        #expect(everywhere.stdout.contains("this machine's name or address in place of 0.0.0.0"), "\(everywhere.stdout)")
    }

    // From a black-box review: on a damaged store, `studio --allow-maintenance` started as if
    // maintenance were possible, and its compact was then refused without a word at the start.
    @Test func theStudioSaysAtStartThatADamagedStoreTakesNoMaintenance() throws {
        let store = CLI.storePath("studio-damaged")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T","data":{"n":1}}"#).status == 0)
        // Without the saved index every frame is checked at open; a byte of the first frame flipped.
        try FileManager.default.removeItem(atPath: store + "/dugong.index")
        let segment = try FileHandle(forUpdating: URL(fileURLWithPath: store + "/00000000000000000000.dseg"))
        try segment.seek(toOffset: 140)
        try segment.write(contentsOf: Data([0xA5]))
        try segment.close()
        let started = try CLI.run(shell: "timeout -s INT 6 '\(CLI.binary)' studio '\(store)' --allow-maintenance --port 0")
        #expect(started.stdout.contains("Dugong Studio: http://127.0.0.1:"), "\(started.stdout) \(started.stderr)")
        #expect(started.stderr.contains("has damage") && started.stderr.contains("compact is refused"), "\(started.stderr)")
    }

    // From a black-box run: on an empty directory (a mistyped path, say) the Studio served an
    // empty store without a word. It still serves it (it follows the log, and may start before
    // the application makes the store), and says so at start; on a store, nothing is said.
    @Test func theStudioSaysAtStartThatADirectoryHoldsNoStoreYet() throws {
        let empty = CLI.storePath("studio-empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let started = try CLI.run(shell: "timeout -s INT 4 '\(CLI.binary)' studio '\(empty)' --port 0")
        #expect(started.stdout.contains("Dugong Studio: http://127.0.0.1:"), "\(started.stdout) \(started.stderr)")
        #expect(started.stderr.contains("holds no store yet") && started.stderr.contains("check the path"), "\(started.stderr)")
        #expect(try CLI.run(["append", empty, "s"], input: #"{"type":"T"}"#).status == 0)
        let store = try CLI.run(shell: "timeout -s INT 4 '\(CLI.binary)' studio '\(empty)' --port 0")
        #expect(store.stdout.contains("Dugong Studio: http://127.0.0.1:") && !store.stderr.contains("holds no store"), "\(store.stderr)")
    }

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

    // From a model-based test: a dry run's "bytes after" were the bytes it would write ("about
    // 438"), the run's the blocks the files take ("8192"). Now both in blocks.
    @Test func aDryRunCountsBytesAsTheCompactionDoes() throws {
        let store = CLI.storePath("dry-units")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let lines = (0..<300).map { #"{"stream":"s/\#($0 % 7)","type":"T","data":{"n":\#($0)}}"# }
        #expect(try CLI.run(["import", store, "--segment-size", "8192"], input: lines.joined(separator: "\n")).status == 0)
        #expect(try CLI.run(["delete-stream", store, "s/3"]).status == 0)
        func bytesAfter(_ arguments: [String]) throws -> Int {
            let report = try CLI.run(["compact", store, "--json"] + arguments)
            let object = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any]
            return try #require(object?["bytesAfter"] as? Int, "\(report.stdout) \(report.stderr)")
        }
        let planned = try bytesAfter(["--dry-run"])
        let done = try bytesAfter([])
        #expect(planned == done, "dry run \(planned), run \(done)")
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
        #expect(negative.status == 64 && negative.stderr.hasPrefix("dugong: ") && negative.stderr.contains("must be positive"), "\(negative.stderr)")
        for arguments in [["read"], ["verify", "/tmp/x", "--jsn"], ["read-all", "/tmp/x", "--from", "x"]] {
            let wrong = try CLI.run(arguments)
            #expect(wrong.status == 64 && wrong.stderr.hasPrefix("dugong: ") && wrong.stderr.contains("Usage:"), "\(arguments): \(wrong.stderr)")
        }
        #expect(try CLI.run(["truncate-stream", "/tmp/x", "s", "--before", "0"]).status == 64)
        let wait = try CLI.run(["append", "/tmp/x", "s", "--wait", "-1"])
        #expect(wait.status == 64 && wait.stderr.contains("--wait must be 0"), "\(wait.stderr)")
        let store = CLI.storePath("append-size")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let large = try CLI.run(["append", store, "s"], input: #"{"type":"A"}"# + "\n" + #"{"type":"B","data":""# + String(repeating: "x", count: 5 << 20) + #""}"#)
        #expect(large.status == 65 && large.stderr.contains("line 2: event #2 (counted from 1) of the append"), "\(large.stderr.prefix(200))")
        let help = try CLI.run(["read", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: dugong read") && help.stderr.isEmpty, "\(help.stdout)")
        let typo = try CLI.run(["raed", "/tmp/x", "s"])
        #expect(typo.status == 64 && typo.stderr.contains("did you mean 'read'?"), "\(typo.stderr)")
        let helpTypo = try CLI.run(["help", "raed"])
        #expect(helpTypo.status == 64 && helpTypo.stderr.contains("did you mean 'read'?"), "\(helpTypo.stderr)")
        let helpOf = try CLI.run(["help", "read"])
        #expect(helpOf.status == 0 && helpOf.stdout.contains("USAGE: dugong read"), "\(helpOf.stdout)")
        let version = try CLI.run(["--version"])
        #expect(version.status == 0 && version.stdout.contains("store format version 5; reads 2 to 5"), "\(version.stdout)")
    }

    // The tool's writers and compaction keep the segment size a store was made with (a
    // black-box run: after `import --segment-size 4096`, the first `append` made a 64 MiB
    // segment, and `compact` a 64 MiB active one, which a small disk could not take).
    @Test func theToolKeepsAStoresSegmentSize() throws {
        let store = CLI.storePath("segment-size")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let pad = String(repeating: "x", count: 300)
        let lines = (0..<40).map { #"{"stream":"s","type":"T","data":{"n":\#($0),"pad":"\#(pad)"}}"# }.joined(separator: "\n")
        let imported = try CLI.run(["import", store, "--segment-size", "4096", "--batch", "1"], input: lines)
        #expect(imported.status == 0, "\(imported.stderr)")
        func largest() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: store).filter { $0.hasSuffix(".dseg") }.map {
                try FileManager.default.attributesOfItem(atPath: store + "/" + $0)[.size] as! Int
            }.max() ?? 0
        }
        for _ in 0..<12 {
            let appended = try CLI.run(["append", store, "t"], input: #"{"type":"T","data":{"pad":"\#(pad)"}}"#)
            #expect(appended.status == 0, "\(appended.stderr)")
        }
        #expect(try largest() == 4096)
        #expect(try CLI.run(["compact", store]).status == 0)
        #expect(try CLI.run(["append", store, "t"], input: #"{"type":"T"}"#).status == 0)
        #expect(try largest() <= 4096)
    }

    // Reading like people expect: streams with their states; read-all visible-only by default,
    // filtered by type, category, prefix and time, counted, the last N, newest first.
    @Test func streamsAndReadAllFilters() throws {
        let store = CLI.storePath("filters")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let lines = [
            #"{"stream":"acc/1","type":"Opened","timestamp":"2026-11-01T10:00:00.000Z"}"#,
            #"{"stream":"acc/1","type":"Deposited","timestamp":"2026-11-02T10:00:00.000Z"}"#,
            #"{"stream":"acc/2","type":"Opened","timestamp":"2026-11-03T10:00:00.000Z"}"#,
            #"{"stream":"ord/1","type":"Placed","timestamp":"2026-11-04T10:00:00.000Z"}"#,
            #"{"stream":"acc/3\u001b[2J","type":"Opened","timestamp":"2026-11-05T10:00:00.000Z"}"#,
            #"{"stream":"acc/3\u001b[2J","tombstone":true}"#,
            #"{"stream":"ord/1","truncateBefore":2}"#,
        ]
        #expect(try CLI.run(["import", store], input: lines.joined(separator: "\n")).status == 0)
        let streams = try CLI.run(["streams", store]).lines
        #expect(streams == [
            "acc/1  version 2  visible 1...2  live  2 events", "acc/2  version 1  visible 1...1  live  1 event",
            "ord/1  version 1  visible none  hidden  1 event", "acc/3\\u{1b}[2J  version 1  visible none  tombstoned  1 event",
        ], "\(streams)")
        #expect(try CLI.run(["streams", store, "--category", "ord", "--json", "--sizes"]).lines == [
            #"{"stream":"ord/1","version":1,"firstVisibleVersion":2,"state":"hidden","events":1,"bytes":0}"#,
        ])
        #expect(try CLI.run(["streams", store, "--prefix", "acc/1", "--sizes"]).lines == ["acc/1  version 2  visible 1...2  live  2 events  0 B"])
        func types(_ arguments: [String]) throws -> [String] {
            try CLI.run(["read-all", store] + arguments).lines.map { line in
                String(try #require(line.firstMatch(of: /"type":"([A-Za-z]+)"/)).1)
            }
        }
        #expect(try types([]) == ["Opened", "Deposited", "Opened"])
        #expect(try types(["--include-hidden"]) == ["Opened", "Deposited", "Opened", "Placed", "Opened"])
        #expect(try types(["--type", "Opened", "--type", "Placed", "--include-hidden"]) == ["Opened", "Opened", "Placed", "Opened"])
        #expect(try types(["--category", "acc", "--include-hidden"]) == ["Opened", "Deposited", "Opened", "Opened"])
        #expect(try types(["--stream-prefix", "acc/1"]) == ["Opened", "Deposited"])
        #expect(try types(["--since", "2026-11-02T00:00:00Z", "--until", "2026-11-03T10:00:00.000Z"]) == ["Deposited"])
        #expect(try types(["--last", "2", "--backward"]) == ["Opened", "Deposited"])
        #expect(try CLI.run(["read-all", store, "--count", "--include-hidden"]).stdout == "5\n")
        #expect(try CLI.run(["read-all", store, "--count", "--include-hidden", "--last", "2"]).stdout == "2\n")
        #expect(try CLI.run(["read-all", store, "--count", "--include-hidden", "--limit", "4"]).stdout == "4\n")
        #expect(try CLI.run(["read-all", store, "--since", "yesterday"]).status == 64)
    }

    // From a model-based test of the query commands: `--last` from 2^62 on crashed (an overflow);
    // `--type` took canonically equivalent types for one; `read-all --category acc/1` matched
    // `acc/1/2` (whose category is `acc`); `streams --category` left out streams without events
    // and listed the others in the order of their first event, not as `streams` does.
    @Test func filtersCompareBytesAndCategoriesAreTheNameBeforeItsFirstSlash() throws {
        let store = CLI.storePath("filters-bytes")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let lines = [
            #"{"stream":"z/0","type":"caf\u00e9"}"#, #"{"stream":"acc/x","truncateBefore":1}"#,
            #"{"stream":"acc/y","type":"cafe\u0301"}"#, #"{"stream":"acc/x","type":"\u212b"}"#, #"{"stream":"acc/1/2","type":"A"}"#,
        ]
        #expect(try CLI.run(["import", store], input: lines.joined(separator: "\n")).status == 0)
        #expect(try CLI.run(["tombstone-stream", store, "acc/reserved"]).status == 0)
        #expect(try CLI.run(["tombstone-stream", store, "acc"]).status == 0)  // no "/": of no category
        let huge = try CLI.run(["read-all", store, "--last", "4611686018427387904"])
        #expect(huge.status == 0 && huge.lines.count == 4, "\(huge.status) \(huge.stderr.prefix(300))")
        #expect(try CLI.run(["read-all", store, "--last", "\(Int.max)", "--backward"]).lines.count == 4)
        #expect(try CLI.run(["read-all", store, "--type", "caf\u{e9}", "--count"]).stdout == "1\n")
        #expect(try CLI.run(["read-all", store, "--type", "caf\u{e9}", "--type", "cafe\u{301}", "--count"]).stdout == "2\n")
        #expect(try CLI.run(["read-all", store, "--type", "\u{c5}", "--count"]).stdout == "0\n")
        #expect(try CLI.run(["read-all", store, "--category", "acc/1", "--count"]).stdout == "0\n")
        #expect(try CLI.run(["read-all", store, "--category", "acc", "--count"]).stdout == "3\n")
        let all = try CLI.run(["streams", store]).lines.map { String($0.split(separator: " ")[0]) }
        let accounts = try CLI.run(["streams", store, "--category", "acc"]).lines.map { String($0.split(separator: " ")[0]) }
        #expect(accounts == all.filter { $0.hasPrefix("acc/") }, "\(accounts) of \(all)")
        #expect(accounts.contains("acc/reserved") && accounts.contains("acc/1/2"), "\(accounts)")
        #expect(try CLI.run(["streams", store, "--category", "acc/1"]).lines.isEmpty)
    }

    // Output that cannot be written is a failure with a message (exit 74), never a crash or
    // a silent exit 0; a reader that goes away ends the command as a closed pipe does.
    @Test func outputThatCannotBeWrittenIsAnIOFailure() throws {
        let store = CLI.storePath("full")
        defer { try? FileManager.default.removeItem(atPath: store) }
        // More output than a pipe holds: the reader below is gone before it is all written.
        let lines = (0..<2000).map { #"{"stream":"s","type":"T","data":{"i":\#($0)}}"# }
        _ = try CLI.run(["import", store], input: lines.joined(separator: "\n"))
        var info = stat()
        try #require(stat("/dev/full", &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR, "/dev/full is the full device")
        for command in [["export", store], ["read-all", store, "--format", "table"], ["stats", store], ["verify", store], ["streams", store]] {
            let full = try CLI.run(shell: "'\(CLI.binary)' \(command.map { "'\($0)'" }.joined(separator: " ")) > /dev/full")
            #expect(full.status == 74 && full.stderr.contains("dugong: cannot write the output: No space left on device"), "\(command[0]): \(full.stderr)")
        }
        let appended = try CLI.run(shell: "echo '{\"type\":\"T\"}' | '\(CLI.binary)' append '\(store)' s > /dev/full")
        #expect(appended.status == 74, "the commit is durable, its acknowledgement could not be printed")
        let closed = try CLI.run(shell: "bash -c \"'\(CLI.binary)' read-all '\(store)' | head -c 1 >/dev/null; echo \\${PIPESTATUS[0]}\"")
        #expect(closed.stdout == "141\n" && closed.stderr.isEmpty, "\(closed.stdout) \(closed.stderr)")
    }

    // A standard stream closed when the tool starts (`>&-`): the next file opened took its
    // number, and output meant for it went to that file (exit 74, "Invalid argument": the
    // runtime's event loop had it). A store file there would have received the output.
    @Test func aClosedStandardStreamIsNeitherWrittenNorTakenByAStoreFile() throws {
        let store = CLI.storePath("closed-streams")
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["import", store], input: (0..<20).map { #"{"stream":"s/\#($0 % 3)","type":"T","data":{"i":\#($0)}}"# }.joined(separator: "\n"))
        let binary = "'\(CLI.binary)'"
        for command in ["read-all", "stats", "verify", "export"] {
            let closed = try CLI.run(shell: "\(binary) \(command) '\(store)' >&-")
            #expect(closed.status == 74 && closed.stderr.contains("cannot write the output: Bad file descriptor"), "\(command): \(closed.status) \(closed.stderr)")
        }
        let appended = try CLI.run(shell: "echo '{\"type\":\"T\",\"data\":{\"i\":20}}' | \(binary) append '\(store)' s/9 >&-")
        #expect(appended.status == 74 && appended.stderr.contains("cannot write the output: Bad file descriptor"), "\(appended.stderr)")
        // Stdin and stderr closed: the output is whole, the store untouched.
        let read = try CLI.run(shell: "\(binary) read-all '\(store)' <&- 2>&-")
        #expect(read.status == 0 && read.lines.count == 21, "\(read.status) \(read.lines.count)")
        let quiet = try CLI.run(shell: "echo '{\"type\":\"T\"}' | \(binary) append '\(store)' s/9 2>&-")
        #expect(quiet.status == 0)
        let verified = try CLI.run(["verify", store])
        #expect(verified.status == 0 && verified.stdout.hasPrefix("clean: 1 segment,"), "\(verified.stdout)")
        #expect(try CLI.run(["read-all", store]).lines.count == 22)
    }

    // Control characters in names never reach the terminal raw, in errors either.
    @Test func errorsEscapeControlCharactersInNames() throws {
        let store = CLI.storePath("escapes")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["tombstone-stream", store, "x\u{1B}[2J"]).status == 66)
        _ = try CLI.run(["append", store, "ok"], input: #"{"type":"T"}"#)
        _ = try CLI.run(["tombstone-stream", store, "x\u{1B}[2J"])
        let refused = try CLI.run(["append", store, "x\u{1B}[2J"], input: #"{"type":"T"}"#)
        #expect(refused.status == 2 && refused.stderr.contains("x\\u{1b}[2J") && !refused.stderr.contains("\u{1B}"), "\(refused.stderr)")
    }

    // The exit statuses: `dugong --help` lists them as the README's table does.
    @Test func theHelpAndTheReadmeListTheSameExitStatuses() throws {
        let help = try CLI.run(["--help"]).stdout
        var listed: [String] = []
        for line in help.components(separatedBy: "Exit statuses:\n")[1].components(separatedBy: "\n\n")[0].split(separator: "\n") {
            if line.hasPrefix("  ") { listed.append(line.trimmingCharacters(in: .whitespaces)) } else { listed[listed.count - 1] += " " + line }
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let table = readme.components(separatedBy: "| status | meaning |\n|---|---|\n")[1].components(separatedBy: "\n\n")[0]
        let rows = table.split(separator: "\n").map { row in
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            return cells[0] + "   ".prefix(max(1, 4 - cells[0].count)) + cells[1].replacing("`", with: "")
        }
        #expect(listed == rows, "\(listed)\n\(rows)")
        #expect(listed.count == 8)
    }

    // The README's completion scripts: each shell's script comes out, names the commands, and
    // bash's parses.
    @Test func completionScriptsAreGenerated() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try CLI.run(["--generate-completion-script", shell])
            #expect(script.status == 0 && script.stdout.contains("read-all") && script.stdout.contains("tombstone-stream"), "\(shell)")
        }
        let bash = try CLI.run(["--generate-completion-script", "bash"]).stdout
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-cli-completion-\(UUID().uuidString.prefix(8))")
        try Data(bash.utf8).write(to: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(try CLI.run(shell: "bash -n '\(directory.path)'").status == 0)
    }

    // A human view beside JSON Lines: aligned columns, names escaped, data cut to 60 characters.
    @Test func eventsPrintAsATableForPeople() throws {
        let store = CLI.storePath("table")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let long = String(repeating: "x", count: 100)
        let lines = [
            #"{"stream":"acc/1","type":"Opened","data":{"owner":"Ada"},"timestamp":"2026-11-01T10:00:00.000Z"}"#,
            #"{"stream":"acc/1\u001b[2J","type":"Deposited\n","data":{"note":"\#(long)"},"timestamp":"2026-11-02T10:00:00.000Z"}"#,
        ]
        #expect(try CLI.run(["import", store], input: lines.joined(separator: "\n")).status == 0)
        let table = try CLI.run(["read-all", store, "--format", "table"]).lines
        #expect(table == [
            "position  stream          version  type         time                      data",
            "       0  acc/1                 1  Opened       2026-11-01T10:00:00.000Z  {\"owner\":\"Ada\"}",
            "       1  acc/1\\u{1b}[2J        1  Deposited\\n  2026-11-02T10:00:00.000Z  {\"note\":\"" + String(repeating: "x", count: 50) + "…",
        ], "\(table)")
        #expect(try CLI.run(["read", store, "acc/1", "--format", "table"]).lines.count == 2)
        // Wide characters take two columns; C1 controls and line separators in data are escaped.
        let wide = CLI.storePath("table-wide")
        defer { try? FileManager.default.removeItem(atPath: wide) }
        _ = try CLI.run(["import", wide], input: "{\"stream\":\"日本/1\",\"type\":\"🦭\",\"data\":{\"x\":\"a\u{85}b\u{2028}c\"}}\n{\"stream\":\"ab/1\",\"type\":\"T\"}")
        let rows = try CLI.run(["read-all", wide, "--format", "table"]).lines
        #expect(rows.count == 3 && rows[1].contains(#"{"x":"a\u{85}b\u{2028}c"}"#), "\(rows)")
        // The time column starts at the same terminal column in every row (CJK and emoji: 2).
        let columns = rows.map { row in
            let before = row.components(separatedBy: row == rows[0] ? "time" : "20")[0]
            return before.unicodeScalars.reduce(0) { $0 + ($1.value >= 0x1100 ? 2 : 1) }
        }
        #expect(Set(columns).count == 1, "\(rows)")
        #expect(try CLI.run(["read-all", store, "--format", "table", "--backward", "--last", "1"]).lines.last?.hasPrefix("       1  ") == true)
        #expect(try CLI.run(["read-all", store, "--format", "csv"]).status == 64)
    }

    // stats for people (sizes in KiB/MiB) and for scripts (JSON without escaped slashes).
    @Test func statsShowSizesForPeopleAndJSONForScripts() throws {
        let store = CLI.storePath("stats-sizes")
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "acc/1"], input: #"{"type":"T","data":{"x":1}}"#)
        let human = try CLI.run(["stats", store])
        #expect(human.status == 0 && human.stdout.contains(" KiB") && human.stdout.contains(/frames [0-9]+ B \(/), "\(human.stdout)")
        let json = try CLI.run(["stats", store, "--json"])
        #expect(json.stdout.contains(#""stream" : "acc/1""#), "\(json.stdout)")
    }

    // A directory with no store in it is not an empty clean store: `verify`, `stats`, the reads,
    // `compact`, `upgrade` and the stream commands (which made a store there) say there is no
    // store (66), as for a missing path; `demo` on a store a writer holds exits 75 like every
    // command that takes the lock.
    @Test func anEmptyDirectoryIsNoStoreAndALockedDemoIsLocked() async throws {
        let empty = CLI.storePath("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let reading = [["verify", empty], ["stats", empty], ["streams", empty], ["read-all", empty], ["export", empty], ["read", empty, "s"]]
        let writing = [
            ["compact", empty], ["upgrade", empty], ["delete-stream", empty, "s"], ["truncate-stream", empty, "s", "--before", "2"],
            ["tombstone-stream", empty, "s"],
        ]
        for arguments in reading + writing {
            let result = try CLI.run(arguments)
            #expect(result.status == 66 && result.stderr.contains("holds no store"), "\(arguments): \(result.status) \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty)
        // A regular file at the path: every command says so, with the same words (`compact`
        // and `upgrade` said "does not exist").
        let file = empty + "/file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        for arguments in (reading + writing).map({ $0.map { $0 == empty ? file : $0 } }) {
            let result = try CLI.run(arguments)
            #expect(result.status == 66 && result.stderr.contains("it is a file, not a directory"), "\(arguments): \(result.status) \(result.stderr)")
        }
        let store = CLI.storePath("locked-demo")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let log = try EventLog.open(at: store, options: .init(createIfMissing: true))
        defer { log.close() }
        let demo = try CLI.run(["demo", "--store", store])
        #expect(demo.status == 75 && demo.stderr.contains("is locked"), "\(demo.status) \(demo.stderr)")
    }

    // `bench` and `demo` make their store in the temporary directory and remove it, also when
    // Ctrl-C (SIGINT), SIGTERM, SIGHUP or a closed output pipe ends them (each used to skip the
    // removal). A signal the command inherited as ignored (nohup) stays ignored.
    @Test func scratchStoresAreRemovedWhenTheCommandIsInterrupted() throws {
        let temporary = CLI.storePath("scratch-tmp")
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        /// Starts `command` (a `dugong` command line, `exec`ed by the shell: it keeps the
        /// shell's signal dispositions, `setup` included), waits until its scratch store exists.
        func start(_ command: String, setup: String = "", made prefix: String) throws -> CLI.Running {
            let running = try CLI.start(["-c", "\(setup) TMPDIR='\(temporary)' exec '\(CLI.binary)' \(command) > /dev/null 2>&1"], executable: "/bin/sh")
            for _ in 0..<400 where (try? FileManager.default.contentsOfDirectory(atPath: temporary))?.contains(where: { $0.hasPrefix(prefix) }) != true {
                Thread.sleep(forTimeInterval: 0.05)
            }
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).contains { $0.hasPrefix(prefix) }, "\(command) made no store")
            return running
        }
        func ended(_ running: CLI.Running, by signal: Int32) -> Bool {
            for _ in 0..<400 where running.process.isRunning { Thread.sleep(forTimeInterval: 0.05) }
            if running.process.isRunning { running.kill() }  // it did not end: the expectation fails
            running.process.waitUntilExit()
            running.remove()
            return running.process.terminationReason == .uncaughtSignal && running.process.terminationStatus == signal
        }
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            let bench = try start("bench --events 5000000 --batch 1", made: "dugong-bench")
            kill(bench.process.processIdentifier, signal)
            #expect(ended(bench, by: signal), "signal \(signal)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "signal \(signal) left the bench's store")
        }
        let ignoring = try start("bench --events 5000000 --batch 1", setup: "trap '' HUP;", made: "dugong-bench")
        kill(ignoring.process.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(ignoring.process.isRunning, "SIGHUP, ignored when it started, ended it")
        kill(ignoring.process.processIdentifier, SIGINT)
        #expect(ended(ignoring, by: SIGINT))
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "the bench's store was left")
        // `demo --studio` leaves SIGINT and SIGTERM to the Studio's server; SIGHUP removes its store.
        let studio = try start("demo --studio --port 0", made: "dugong-demo")
        kill(studio.process.processIdentifier, SIGHUP)
        #expect(ended(studio, by: SIGHUP))
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "SIGHUP left the demo's store")
        let piped = try CLI.run(shell: "TMPDIR='\(temporary)' '\(CLI.binary)' demo | head -c 1 > /dev/null")
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "a closed pipe left the demo's store")
    }
}
