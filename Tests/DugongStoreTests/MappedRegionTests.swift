@testable import DugongStore
import Foundation
import Testing

@Suite("Mapped regions")
struct MappedRegionTests {
    /// Pages given back are mapped again on the next access with the same bytes, whatever the
    /// range (partial pages, past either end, empty), and a writer's later bytes show through.
    @Test func releasedPagesReadBackTheFilesBytes() throws {
        let directory = TemporaryDirectory("mapped")
        defer { directory.remove() }
        try directory.create()
        let path = directory.file("region")
        var bytes = (0..<(300 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let file = try File(path: path, flags: O_RDWR | O_CREAT)
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
        let map = try MappedRegion(file: file, count: bytes.count)
        func mapped() -> [UInt8] { map.withBytes(0..<map.count) { Array($0) } }
        #expect(mapped() == bytes)
        for range in [0..<1, 4095..<4097, 10_000..<70_000, -65_536..<100, (bytes.count - 10)..<(bytes.count + 65_536), 5..<5, -10 ..< -1] {
            map.releasePages(range)
            #expect(mapped() == bytes, "after releasing \(range)")
        }
        bytes[200_000] ^= 0xFF
        try bytes[200_000...200_000].withUnsafeBytes { try file.write($0, at: 200_000) }
        map.releasePages(0..<map.count)
        #expect(mapped() == bytes, "a write after the release shows through")
    }
}
