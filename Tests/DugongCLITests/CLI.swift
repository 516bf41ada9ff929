import DugongTesting
import Foundation
import Glibc

/// Runs the built `dugong` binary as a subprocess.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// The `dugong` executable beside the test bundle (SwiftPM puts products in one folder).
    static let binary: String = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dugong").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/dugong").path
    }()

    /// Runs `dugong arguments…` with `input` on stdin; waits for it to exit.
    static func run(_ arguments: [String], input: String = "") throws -> Result {
        let process = try start(arguments, input: input)
        process.process.waitUntilExit()
        defer { process.remove() }
        return process.result()
    }

    /// A running `dugong`, its output going to files.
    struct Running {
        let process: Process
        let directory: URL

        func result() -> Result {
            let out = (try? String(contentsOf: directory.appendingPathComponent("out"), encoding: .utf8)) ?? ""
            let err = (try? String(contentsOf: directory.appendingPathComponent("err"), encoding: .utf8)) ?? ""
            return Result(status: process.isRunning ? -1 : process.terminationStatus, stdout: out, stderr: err)
        }

        /// Removes the files that hold its input and output.
        func remove() {
            try? FileManager.default.removeItem(at: directory)
        }

        func kill() {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Runs `script` with `/bin/sh -c`; waits for it to exit.
    static func run(shell script: String) throws -> Result {
        let process = try start(["-c", script], executable: "/bin/sh")
        process.process.waitUntilExit()
        defer { process.remove() }
        return process.result()
    }

    static func start(_ arguments: [String], input: String = "", executable: String = binary) throws -> Running {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let inputFile = directory.appendingPathComponent("in")
        try Data(input.utf8).write(to: inputFile)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("out").path, contents: nil)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("err").path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = try FileHandle(forReadingFrom: inputFile)
        process.standardOutput = try FileHandle(forWritingTo: directory.appendingPathComponent("out"))
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("err"))
        try process.runWhenFewFilesAreOpen()
        return Running(process: process, directory: directory)
    }

    /// Whether this process runs as root and `script` succeeds: what tests that mount file
    /// systems or run as another user need (elsewhere they do not run).
    static func rootCan(_ script: String) -> Bool {
        guard getuid() == 0, let result = try? run(shell: script) else { return false }
        return result.status == 0
    }

    /// A fresh path for a store (not created).
    static func storePath(_ label: String = "store") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dugong-cli-\(label)-\(UUID().uuidString.prefix(8))").path
    }
}
