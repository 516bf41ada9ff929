import Dugong
import Foundation
import Testing

@Suite("Event ids")
struct EventIDTests {
    /// Version 4 ids (RFC 4122 variant), never repeated: from one thread across many pool
    /// refills, and from several threads at once drawing from the one pool.
    @Test func idsAreVersionFourAndNeverRepeat() async {
        var seen = Set<UUID>()
        for _ in 0..<20_000 {
            let id = EventID.random()
            #expect(id.uuid.6 >> 4 == 4 && id.uuid.8 >> 6 == 0b10, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 20_000)
        let batches = await withTaskGroup(of: [UUID].self) { group in
            for _ in 0..<4 { group.addTask { (0..<5_000).map { _ in EventID.random() } } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let all = batches.flatMap { $0 } + Array(seen)
        #expect(Set(all).count == all.count)
        // Not a constant pattern: every bit position varies across ids (a pool handed out
        // zeros or repeated a block, this would catch it).
        let ors = all.prefix(1000).reduce(into: [UInt8](repeating: 0, count: 16)) { bits, id in
            withUnsafeBytes(of: id.uuid) { for index in 0..<16 { bits[index] |= $0[index] } }
        }
        let ands = all.prefix(1000).reduce(into: [UInt8](repeating: 0xFF, count: 16)) { bits, id in
            withUnsafeBytes(of: id.uuid) { for index in 0..<16 { bits[index] &= $0[index] } }
        }
        #expect(ors.enumerated().allSatisfy { $0.offset == 6 || $0.offset == 8 || $0.element == 0xFF })
        #expect(ands.enumerated().allSatisfy { $0.offset == 6 || $0.offset == 8 || $0.element == 0 })
    }
}
