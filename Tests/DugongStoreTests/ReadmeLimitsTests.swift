import Dugong
@testable import DugongStore
import Foundation
import Testing

/// The README's requirements and limits are the engine's.
@Suite("README: requirements and limits")
struct ReadmeLimitsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test func theLimitsTableStatesTheEnginesLimits() throws {
        let readme = try Self.text("README.md")
        let options = EventLog.Options()
        #expect(options.maximumEventSize == 4 << 20 && readme.contains("`Options.maximumEventSize`, 4 MiB by default, at most 256 MiB"))
        #expect(EventLog.maximumCommitSize == 512 << 20 && readme.contains("`EventLog.maximumCommitSize`, 512 MiB"))
        #expect(EventLog.Options.maximumNameLength == 1024 && readme.contains("1 to 1,024 bytes of UTF-8"))
        #expect(Layout.maximumPosition == 1 << 62 && readme.contains("below 2^62"))
        #expect(EventLog.maximumVersion == (1 << 62) - 1)
        #expect(options.segmentSize == 64 << 20 && readme.contains("4 KiB to 1 GiB (by default an existing store's own size, as its segments' capacities tell, and 64 MiB for a new store"))
        #expect(Manifest.maximumSegmentCount == 1_048_576 && readme.contains("| segments in a store | 1,048,576"))
        // The engine is Linux-only: the manifest names no platform it does not build on.
        #expect(!(try Self.text("Package.swift")).contains("platforms:"))
    }

    /// Every long mode the README gives runs: its `--filter` names a test and its variables are
    /// ones the tests read (a renamed test or variable would leave a command that runs nothing).
    @Test func theLongModesNameTestsAndVariablesThatExist() throws {
        let readme = try Self.text("README.md")
        let block = try #require(readme.components(separatedBy: "## Testing the storage engine").dropFirst().first?
            .components(separatedBy: "```sh").dropFirst().first?.components(separatedBy: "```").first)
        var tests = ""
        // (The contract suites, which the tests run, are in DugongTesting.)
        for directory in ["Tests/DugongStoreTests", "Tests/DugongCLITests", "Tests/DugongPostgresTests", "Sources/DugongTesting"] {
            let folder = Self.root.appendingPathComponent(directory)
            for file in try FileManager.default.subpathsOfDirectory(atPath: folder.path) where file.hasSuffix(".swift") {
                tests += try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            }
        }
        let commands = block.split(separator: "\n").filter { $0.contains("swift test") }
        #expect(commands.count >= 12)
        for command in commands {
            let filter = try #require(command.firstMatch(of: /--filter ([A-Za-z]+)/)?.1)
            // (`swift test --filter` matches a part of a test's or a suite's name.)
            let named = tests.contains(try Regex("(func|struct) [A-Za-z]*" + filter))
            #expect(named, "\(command): no test or suite is named with \(filter)")
            for variable in command.matches(of: /(DUGONG_[A-Z_]+)=/).map(\.1) {
                let read = tests.contains("\"\(variable)\"")
                #expect(read, "\(command): no test reads \(variable)")
            }
        }
    }
}
