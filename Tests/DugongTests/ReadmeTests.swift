import Foundation
import Testing

@Suite("README")
struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The README's aggregate example is the example target's source, so it compiles as written.
    @Test func theAggregateExampleIsTheExampleTargetsSource() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let marker = "<!-- example: Sources/DugongExample/BankAccount.swift -->\n```swift\n"
        let start = try #require(readme.range(of: marker))
        let end = try #require(readme.range(of: "```\n", range: start.upperBound..<readme.endIndex))
        let shown = String(readme[start.upperBound..<end.lowerBound])
        let source = try String(
            contentsOf: Self.root.appendingPathComponent("Sources/DugongExample/BankAccount.swift"), encoding: .utf8)
        #expect(shown == source)
    }

    /// The quick start has exactly two commands: the main job, then the tests.
    @Test func theQuickStartHasExactlyTwoCommands() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Quick start").dropFirst().first?
            .components(separatedBy: "\n## ").first)
        let blocks = section.components(separatedBy: "```sh\n").dropFirst().map { $0.components(separatedBy: "\n```").first! }
        #expect(blocks == ["swift run -c release dugong bench", "tools/test"])
    }

    /// The README's dependency snippet is the manifest of docs/consumer-package, which tools/test
    /// builds and runs against this checkout; its products are this package's.
    @Test func theDependencySnippetIsAManifestThatIsBuilt() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("docs/consumer-package/Package.swift"), encoding: .utf8)
        #expect(readme.contains("```swift\n" + manifest + "```\n"))
        let ours = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        for product in manifest.matches(of: /\.product\(name: "([A-Za-z]+)", package: "dugong"\)/).map({ String($0.1) }) {
            #expect(ours.contains(#".library(name: "\#(product)""#), "\(product) is a library product of this package")
        }
        let script = try String(contentsOf: Self.root.appendingPathComponent("tools/test"), encoding: .utf8)
        #expect(script.contains("cp -r docs/consumer-package"))
    }

    /// docs/DugongJS.md answers each DugongJS behaviour the fidelity issue named: built, or a
    /// deliberate difference with its reason.
    @Test func theDugongJSMapAnswersEveryBehaviourTheFidelityIssueNamed() throws {
        let map = try String(contentsOf: Self.root.appendingPathComponent("docs/DugongJS.md"), encoding: .utf8)
        let rows = map.split(separator: "\n").filter { $0.hasPrefix("| ") }
        for (behaviour, answer) in [
            ("Consumer ids generated from origin, aggregate type and consumer name", "Deliberate"),
            ("`skipSnapshot`", "load(_:skippingSnapshot: true)"), ("checks restorability before saving", "snapshotNotRestorable"),
            ("Async command handlers", "Deliberate"), ("Registering an event class twice", "conflictingType"),
            ("A second `create` with another id", "idAlreadyAssigned"), ("Payloads through `JSON.stringify`", "PayloadTimestamp"),
        ] {
            #expect(rows.contains { $0.contains(behaviour) && $0.contains(answer) }, "\(behaviour)")
        }
    }

    /// Every other Swift snippet of the README stands in a ReadmeSnippets.swift, where it compiles.
    @Test func everySnippetCompilesInTheSnippetTests() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let snippets = try [
            "Tests/DugongTests/ReadmeSnippets.swift", "Tests/DugongStoreTests/ReadmeSnippets.swift",
            "Tests/DugongPostgresTests/ReadmeSnippets.swift", "Tests/DugongStudioTests/ReadmeSnippets.swift",
        ]
            .map { try String(contentsOf: Self.root.appendingPathComponent($0), encoding: .utf8) }
            .joined(separator: "\n")
        func normalized(_ text: String) -> String {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
        }
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst()
            .map { $0.components(separatedBy: "```").first! }
            .filter { !$0.hasPrefix("import Dugong\n\n// The bank-account example") && !$0.hasPrefix("// swift-tools-version") }
        #expect(blocks.count >= 4)
        for block in blocks {
            #expect(normalized(snippets).contains(normalized(block)), "README snippet in no ReadmeSnippets.swift:\n\(block)")
        }
    }
}
