import Dugong
@testable import DugongStore
import Testing

/// Finding the frame that holds a position (`StreamIndex.frameIndex(atOrAfter:within:)`):
/// guesses from the positions, then bisection. Whatever the frames' sizes and gaps, and
/// whatever bounds a caller may pass, the answer is the one a plain bisection gives.
@Suite("Frame search")
struct FrameSearchTests {
    /// The first frame that ends at or after `position`, by bisection over every frame.
    static func reference(_ frames: [EventFrame], _ position: UInt64) -> Int {
        var low = 0
        var high = frames.count
        while low < high {
            let middle = (low + high) / 2
            if frames[middle].lastPosition < position { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Frames of one of several shapes: even sizes, sizes that vary a lot, a few huge frames
    /// among small ones, gaps between frames (compacted stores), a first frame after 0.
    static func frames(shape: Int, count: Int, using random: inout SeededRandom) -> [EventFrame] {
        var frames: [EventFrame] = []
        var next: UInt64 = shape == 4 ? UInt64.random(in: 1...1_000, using: &random) : 0
        for number in 0..<count {
            let size: UInt64 = switch shape {
            case 0: 2
            case 1: UInt64.random(in: 1...200, using: &random)
            case 2: number % 97 == 0 ? 50_000 : UInt64.random(in: 1...3, using: &random)
            case 3: UInt64.random(in: 1...4, using: &random) << UInt64.random(in: 0...12, using: &random)
            default: UInt64.random(in: 1...10, using: &random)
            }
            let gap: UInt64 = shape >= 3 && Bool.random(using: &random) ? UInt64.random(in: 1...5_000, using: &random) : 0
            let first = next + gap
            frames.append(EventFrame(
                location: FrameLocation(segment: 0, offset: number * 64), firstPosition: first, lastPosition: first + size - 1,
                checksum: 0))
            next = first + size
        }
        return frames
    }

    /// Frames an index file may claim (positions that overlap, far from the one looked for):
    /// the guesses stay within the frames, and the answer is still bisection's.
    @Test func framesAnIndexFileMayClaimDoNotMisleadTheSearch() {
        let frames = (0..<10).map { number in
            EventFrame(location: FrameLocation(segment: 0, offset: number * 64), firstPosition: 1 << 61, lastPosition: 1 << 61, checksum: 0)
        }
        let index = StreamIndex(
            restoring: StreamTable(), categories: [:], frames: frames, nextPosition: (1 << 61) + 1,
            eventCount: 0, frameBytes: 0, rawPayloadBytes: 0, lastBatch: nil)
        for position: UInt64 in [0, 1, (1 << 61) - 1, 1 << 61, (1 << 61) + 1, 1 << 62] {
            #expect(index.frameIndex(atOrAfter: position) == Self.reference(frames, position), "position \(position)")
        }
    }

    @Test(arguments: 0..<5)
    func theSearchFindsWhatBisectionFinds(shape: Int) {
        var random = SeededRandom(seed: 0xF4A3E_0000 + UInt64(shape))
        for trial in 0..<60 {
            let count = trial == 0 ? 1 : Int.random(in: 1...3_000, using: &random)
            let frames = Self.frames(shape: shape, count: count, using: &random)
            let index = StreamIndex(
                restoring: StreamTable(), categories: [:], frames: frames, nextPosition: frames.last!.lastPosition + 1,
                eventCount: 0, frameBytes: 0, rawPayloadBytes: 0, lastBatch: nil)
            let end = frames.last!.lastPosition + 3
            for _ in 0..<200 {
                let position = UInt64.random(in: 0...end, using: &random)
                let expected = Self.reference(frames, position)
                #expect(index.frameIndex(atOrAfter: position) == expected, "shape \(shape), trial \(trial), position \(position)")
                // The bounds a stream read passes: past a frame found earlier that ends before
                // the position (going up), or below one that ends at or after it (going down).
                let known = Int.random(in: 0..<frames.count, using: &random)
                let bounds = frames[known].lastPosition < position ? (known + 1)..<frames.count : 0..<known
                #expect(
                    index.frameIndex(atOrAfter: position, within: bounds) == expected,
                    "shape \(shape), trial \(trial), position \(position), bounds \(bounds)")
            }
        }
    }
}
