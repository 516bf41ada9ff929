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
}
