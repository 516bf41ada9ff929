import Foundation
import Testing

/// Every example in `dugong <command> --help` is a command a user can paste: each is run (in a
/// shell, as printed) against a store that has what it names, and must succeed.
@Suite("Help examples")
struct HelpExampleTests {
    static let commands = [
        "bench", "verify", "compact", "stats", "streams", "read", "read-all", "append", "import", "export",
        "delete-stream", "truncate-stream", "tombstone-stream", "upgrade", "demo", "studio",
    ]

    /// The example commands of a help text: the lines after "Example:" or "Examples:" up to a
    /// blank line, with a line ending in `|` or `\` continued on the next.
    static func examples(in help: String) -> [String] {
        var examples: [String] = []
        var inExamples = false
        var continued: String?
        for line in help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text == "Example:" || text == "Examples:" {
                inExamples = true
                continue
            }
            guard inExamples else { continue }
            if text.isEmpty {
                inExamples = false
                continue
            }
            let joined = (continued.map { $0 + " " } ?? "") + text
            if text.hasSuffix("|") || text.hasSuffix("\\") {
                continued = text.hasSuffix("\\") ? String(joined.dropLast()) : joined
            } else {
                examples.append(joined)
                continued = nil
            }
        }
        return examples
    }

    @Test(arguments: commands)
    func everyExampleInTheHelpRuns(command: String) throws {
        let help = try CLI.run([command, "--help"])
        #expect(help.status == 0)
        let examples = Self.examples(in: help.stdout)
        // Prose never shows a line-continuation backslash (a doubled one in the source did).
        let prose = help.stdout.components(separatedBy: "Example")[0]
        #expect(!prose.split(separator: "\n").contains { $0.hasSuffix("\\") }, "\(command): a backslash at the end of a line")
        try #require(!examples.isEmpty, "\(command) --help shows an example")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-cli-examples-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        for example in examples {
            // A wrapped line would not start a command: examples must fit the help's width.
            #expect(example.hasPrefix("dugong ") || example.hasPrefix("echo "), "\(command): '\(example)' is a whole command")
            let store = work.appendingPathComponent("events-\(UUID().uuidString.prefix(8))").path
            try Self.makeStore(store)
            var script = example
                .replacing("/var/lib/app/events", with: store)
                .replacing("old-store", with: store)
                .replacing("new-store", with: work.appendingPathComponent("new-\(UUID().uuidString.prefix(8))").path)
                .replacing("/mnt/fast/bench", with: work.appendingPathComponent("bench").path)
                .replacing("/tmp/bank", with: work.appendingPathComponent("bank").path)
                // A fixed port may be taken on the machine running the tests: any free one.
                .replacing("--port 8080", with: "--port 0")
            // Benchmarks as printed, with fewer events (the examples ask for up to a million).
            if command == "bench" {
                script = script.replacing(/--events [0-9]+/, with: "")
                script += " --events 2000"
            }
            // Followers and the Studio run until interrupted: Ctrl-C after a while.
            let serving = script.hasPrefix("dugong studio") || script.contains("--studio")
            let following = script.contains("--follow") || serving
            if following { script = "timeout -s INT \(serving ? 8 : 2) " + script }
            let result = try Self.shell(script, in: work)
            if following {
                #expect(result.status == 130 || result.status == 124 || result.status == 0, "\(example): \(result.stderr)")
                if serving {
                    #expect(result.stdout.contains("Dugong Studio: http://127.0.0.1:"), "\(example): \(result.stdout) \(result.stderr)")
                }
            } else {
                #expect(result.status == 0, "\(example): status \(result.status), \(result.stderr)")
            }
            #expect(!result.stderr.contains("dugong: "), "\(example): \(result.stderr)")
            try? FileManager.default.removeItem(atPath: store)
        }
    }

    /// account/42 with 120 events from 2026-11-01 on, and a few other streams.
    static func makeStore(_ store: String) throws {
        var lines: [String] = []
        for index in 0..<120 {
            let day = 1 + index / 10
            let type = index == 0 ? "AccountOpened" : "MoneyDeposited"
            lines.append(
                #"{"stream":"account/42","type":"\#(type)","data":{"amount":\#(index)},"timestamp":"2026-11-\#(day < 10 ? "0" : "")\#(day)T10:00:00.000Z"}"#)
            if index % 30 == 0 { lines.append(#"{"stream":"order/\#(index)","type":"OrderPlaced"}"#) }
        }
        let imported = try CLI.run(["import", store], input: lines.joined(separator: "\n"))
        try #require(imported.status == 0, "\(imported.stderr)")
    }

    /// Runs `script` with `sh -c` in `directory`, the `dugong` under test first on the PATH.
    static func shell(_ script: String, in directory: URL) throws -> CLI.Result {
        let wrapped = "cd '\(directory.path)' && PATH='\(URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().path)':\"$PATH\" && " + script
        return try CLI.run(shell: wrapped)
    }
}
