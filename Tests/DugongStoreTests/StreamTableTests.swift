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

    // Found by a review: a "versions start at" record after a stream's events hid them (and a
    // compaction then removed them), and a tombstone's version was not checked (FORMAT.md §6.2).
    @Test func lifecycleRecordsOnlyWhereTheFormatAllowsThem() {
        func startAt(_ stream: String, _ version: Int) -> IndexRecord {
            .record(.streamMetadata(stream: stream, operation: .versionsStartAt, version: version), index: 0)
        }
        func events(_ stream: String, from version: Int, at position: UInt64, count: Int) -> IndexRecord {
            .events(EventRun(stream: stream, firstVersion: version, firstPosition: position, count: count, lastID: UUID()))
        }
        var index = StreamIndex()
        #expect(index.problem(applying: [startAt("a", 4), events("a", from: 4, at: 0, count: 3)]) == nil, "before its first event")
        index.apply([startAt("a", 4), events("a", from: 4, at: 0, count: 3)], in: FrameLocation(segment: 0, offset: 128), length: 100, rawLength: 100, batch: 0, checksum: 0)
        #expect(index.problem(applying: [startAt("a", 4)]) != nil, "after its events, in a later frame")
        #expect(index.problem(applying: [startAt("a", 2)]) != nil)
        #expect(index.problem(applying: [events("b", from: 1, at: 3, count: 2), startAt("b", 2)]) != nil, "after its events, in the same frame")
        #expect(index.problem(applying: [startAt("c", 3), startAt("c", 2)]) == nil, "a smaller start again, before any event")
        #expect(index.problem(applying: [startAt("c", 2), startAt("c", 3)]) != nil)
        let tombstone = { (version: Int) -> IndexRecord in .record(.streamMetadata(stream: "a", operation: .tombstone, version: version), index: 0) }
        #expect(index.problem(applying: [tombstone(0)]) == nil)
        #expect(index.problem(applying: [tombstone(5)]) != nil)
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
