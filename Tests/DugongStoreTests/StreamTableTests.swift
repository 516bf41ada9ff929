@testable import DugongStore
import Foundation
import Testing

/// The index's stream storage against a plain model: names to numbers, each stream's positions
/// in a shared store whose runs move as they grow and are compacted when half the store is
/// abandoned runs.
@Suite("Stream table")
struct StreamTableTests {
    @Test func everyStreamKeepsItsNumberAndPositionsThroughGrowthAndReclaiming() {
        var generator = SystemRandomNumberGenerator()
        var table = StreamTable()
        var model: [String: (number: Int, positions: [UInt64])] = [:]
        var next: UInt64 = 0
        for step in 0..<30_000 {
            // Names of every length class: short (inline strings), long, non-ASCII, one that
            // differs from another only in its last byte.
            let index = Int.random(in: 0..<400, using: &generator)
            let name = index % 3 == 0 ? "s/\(index)" : index % 3 == 1 ? "account/\(index)-" + String(repeating: "x", count: index % 40) : "é/\(index)"
            let (number, isNew) = table.number(creating: name)
            if let known = model[name] {
                #expect(!isNew && number == known.number, "step \(step)")
            } else {
                #expect(isNew && number == model.count, "step \(step)")
                model[name] = (number, [])
            }
            let run = (0..<Int.random(in: 1...6, using: &generator)).map { _ in
                next += UInt64.random(in: 1...3, using: &generator)
                return next
            }
            table.append(run, to: number)
            model[name]!.positions += run
        }
        let total = model.values.reduce(0) { $0 + $1.positions.count }
        #expect(table.positions.count * 3 <= 8 * total + 3 * (4096 + 6 * 400), "abandoned runs are reclaimed")
        for (name, expected) in model {
            #expect(table.number(of: name) == expected.number)
            #expect(Array(table.positions(of: expected.number)) == expected.positions, "\(name)")
            #expect(table.version(of: expected.number) == expected.positions.count)
        }
        #expect(table.number(of: "s/unknown") == nil)
        #expect(table.names.count == model.count)
    }

    // Values from frames a forged or damaged store holds: a first event after damage may skip
    // versions (its stream may have been declared to begin later in the damage), but not more
    // than the index marks as lost (it allocated one entry per skipped version and trapped past
    // 2^32); damage's positions stay below 2^62 (a range past it trapped).
    @Test func theIndexBoundsWhatDamageAndTheFramesAfterItMayClaim() {
        var index = StreamIndex()
        index.record(Damage(segmentName: "s", offset: 0, reason: "test", positions: 0..<10, length: 100))
        func run(_ stream: String, version: Int) -> [IndexRecord] {
            [.events(EventRun(stream: stream, firstVersion: version, firstPosition: 10, count: 1, lastID: UUID()))]
        }
        #expect(index.problem(applying: run("begun-later", version: 1000)) == nil)
        #expect(index.problem(applying: run("forged", version: 1 << 40)) != nil)
        #expect(index.problem(applying: run("forged", version: StreamIndex.maximumLostVersionMarks + 2)) != nil)

        var end = StreamIndex()
        end.record(Damage(segmentName: "s", offset: 0, reason: "test", positions: (Layout.maximumPosition - 1)..<(Layout.maximumPosition + 5)))
        #expect(end.nextPosition == Layout.maximumPosition)
        #expect(end.damage.map(\.positions) == [(Layout.maximumPosition - 1)..<Layout.maximumPosition])
    }

    @Test func rareFieldsAreKeptOnlyForStreamsThatHaveThem() {
        var table = StreamTable()
        let first = table.number(creating: "a").number
        let second = table.number(creating: "b").number
        table.append([1, 2, 3], to: first)
        table.updateRare(of: second) { $0.removedThrough = 9 }
        #expect(table.version(of: first) == 3 && table.version(of: second) == 9)
        #expect(table.rareFields(of: first) == .defaults && !table.entries[first].hasRare)
        table.updateRare(of: second) { $0.removedThrough = 0 }
        #expect(!table.entries[second].hasRare, "back to the defaults: no side entry")
    }

    @Test func aRestoredTableFindsEveryStreamAndRefusesADuplicateName() throws {
        let names = (0..<5000).map { "s/\($0)" } + ["José", "Jose\u{301}"]
        var restoring = StreamTable.Restoring(streams: names.count, positions: names.count * 2)
        for (number, name) in names.enumerated() {
            let rare = number % 7 == 0 ? StreamTable.Rare(truncateBefore: 4) : .defaults
            var next = UInt64(number * 2)
            restoring.add(name, rare: rare, lastEventID: nil, count: 2) {
                defer { next += 1 }
                return next
            }
        }
        var table = try #require(restoring.finish())
        for (number, name) in names.enumerated() {
            #expect(table.number(of: name) == number, "\(name)")
            #expect(Array(table.positions(of: number)) == [UInt64(number * 2), UInt64(number * 2 + 1)])
            #expect(table.rareFields(of: number).truncateBefore == (number % 7 == 0 ? 4 : 1))
        }
        #expect(table.number(of: "s/5000") == nil)
        // Still a table that grows.
        let created = table.number(creating: "s/new")
        table.append([99], to: created.number)
        #expect(created == (names.count, true) && table.number(of: "s/new") == names.count && Array(table.positions(of: names.count)) == [99])

        var duplicate = StreamTable.Restoring(streams: 3, positions: 0)
        for name in ["a", "b", "a"] { duplicate.add(name, rare: .defaults, lastEventID: nil, count: 0) { 0 } }
        #expect(duplicate.finish() == nil, "a name is restored once")
    }
}
