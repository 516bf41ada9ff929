import Foundation
import Testing

@testable import DugongStore

/// The frame payload buffer is a value: copies share bytes only until one of them changes, and
/// growing keeps every byte.
@Suite("Payload buffer")
struct PayloadBufferTests {
    @Test func aChangedCopyGetsItsOwnBytes() {
        var original = PayloadBuffer(capacity: 64)
        ([1, 2, 3] as [UInt8]).withUnsafeBytes { original.append($0) }
        [UInt8](repeating: 9, count: 3).withUnsafeBytes { original.append($0) }
        var copy = original
        [UInt8](repeating: 7, count: 2).withUnsafeBytes { copy.append($0) }
        // A reserved record in the original, after the copy changed: neither sees the other's.
        var cursor = original.reserve(16)
        cursor.u8(5)
        cursor.varint(300)
        original.keep(upTo: cursor)
        #expect(original.bytes.suffix(6) == [9, 9, 9, 5, 0xAC, 0x02])
        #expect(copy.bytes.suffix(5) == [9, 9, 9, 7, 7])
        #expect(original.count == 9 && copy.count == 8)
    }

    @Test func growingKeepsEveryByte() {
        var buffer = PayloadBuffer(capacity: 64)
        var expected: [UInt8] = []
        for round in 0..<200 {
            let chunk = (0..<(round % 37 + 1)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) }
            expected += chunk
            if round % 2 == 0 {
                chunk.withUnsafeBytes { buffer.append($0) }
            } else {
                var cursor = buffer.reserve(chunk.count + 40)
                chunk.withUnsafeBytes { cursor.raw($0) }
                buffer.keep(upTo: cursor)
            }
            // A copy taken now keeps what it saw whatever the original does next.
            if round == 100 {
                let snapshot = buffer
                [UInt8](repeating: 1, count: 5000).withUnsafeBytes { buffer.append($0) }
                #expect(snapshot.bytes == expected)
                expected += repeatElement(1, count: 5000)
            }
        }
        #expect(buffer.bytes == expected)
    }
}
