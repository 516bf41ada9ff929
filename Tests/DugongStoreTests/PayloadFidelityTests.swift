import Dugong
import DugongStore
import Foundation
import PropertyBased
import Testing

/// Every value a `Codable` event or snapshot holds comes back exactly as committed, on every
/// adapter, through the public API: integers over the whole `Int64`/`UInt64` range, `Double`s
/// and `Float`s bit for bit (finite ones; non-finite ones are refused), `Decimal`s, dates to the
/// last bit of their `Double`, any Unicode, optionals, nested containers; also through an
/// upcaster (`JSONValue`) and in metadata. `DUGONG_PROPERTY_CASES` sets the count (long mode).
@Suite("Payload fidelity on every adapter")
struct PayloadFidelityTests {
    static let cases = Int(ProcessInfo.processInfo.environment["DUGONG_PROPERTY_CASES"] ?? "") ?? 300

    struct Everything: Codable, Equatable, Sendable {
        var int64: Int64
        var uint64: UInt64
        var int8: Int8
        var double: Double
        var float: Float
        var decimal: Decimal
        var date: Date
        var millisecondDate: Date
        var text: String
        var optionalText: String?
        var nothing: Int?
        var flag: Bool
        var doubles: [Double]
        var nested: [String: [Int64]]
        var bytes: Data
    }

    /// What the upcaster path carries (a `JSONValue` holds numbers as `Int`, `UInt64` or
    /// `Double`: a `Decimal` of more than 17 digits would not survive it, and is left out).
    struct Numbers: Codable, Equatable, Sendable {
        var int64: Int64
        var uint64: UInt64
        var double: Double
        var date: Date
        var text: String
    }

    struct Recorded: DomainEvent, Equatable {
        static let eventType = "Recorded"
        var payload: Everything
    }

    struct CountedV1: DomainEvent, Equatable {
        static let eventType = "Counted"
        var numbers: Numbers
    }

    struct CountedV2: DomainEvent, Equatable {
        static let eventType = "Counted"
        static let schemaVersion = 2
        var numbers: Numbers
    }

    struct Keeper: SnapshottableAggregate, Equatable {
        static let origin = "fidelity"
        static let aggregateType = "Keeper"
        static let eventTypes: [any DomainEvent.Type] = [Recorded.self, CountedV2.self]
        var payload: Everything?
        var numbers: Numbers?

        mutating func apply(_ event: any DomainEvent) {
            if let event = event as? Recorded { payload = event.payload }
            if let event = event as? CountedV2 { numbers = event.numbers }
        }
    }

    static var registry: EventRegistry {
        var registry = try! EventRegistry(Keeper.self)
        try! registry.addUpcaster(from: CountedV1.self, to: CountedV2.self, of: Keeper.self) { CountedV2(numbers: $0.numbers) }
        return registry
    }

    // MARK: Generators

    static let finiteDouble = Gen.uint64().map { Double(bitPattern: $0) }.filter { $0.isFinite }
    static let finiteFloat = Gen.uint32().map { Float(bitPattern: $0) }.filter { $0.isFinite }
    /// Any `Date` a payload can hold: every bit pattern of its `Double` in the years 0000 to 9999.
    static let date = Gen.double(in: -63_145_526_400...252_423_993_599).map { Date(timeIntervalSinceReferenceDate: $0) }
    static let millisecondDate = Gen.int64(in: -62_167_219_200_000...253_402_300_799_999).map {
        Date(timeIntervalSince1970: Double($0) / 1000)
    }
    /// Any Unicode scalar (the library's own generator traps on surrogate code points).
    static let text = Gen.uint32(in: 0...0x10FFFF).compactMap(Unicode.Scalar.init).array(of: 0...12)
        .map { String(String.UnicodeScalarView($0)) }
    static let decimal = zip(Gen.uint64(), Gen.int(in: -30...30), Gen.bool).map { significand, exponent, negative in
        Decimal(sign: negative ? .minus : .plus, exponent: exponent, significand: Decimal(significand))
    }

    static let scalars = zip(Gen.int64(), Gen.uint64(), Gen.int8(), finiteDouble, finiteFloat, decimal)
    static let moments = zip(date, millisecondDate, text, text.optional, Gen.bool)
    static let containers = zip(
        finiteDouble.array(of: 0...4), zip(text, Gen.int64().array(of: 0...3)).array(of: 0...3),
        Gen.uint8().array(of: 0...16))

    static func everything(
        _ scalars: (Int64, UInt64, Int8, Double, Float, Decimal), _ moments: (Date, Date, String, String?, Bool),
        _ containers: ([Double], [(String, [Int64])], [UInt8])
    ) -> Everything {
        Everything(
            int64: scalars.0, uint64: scalars.1, int8: scalars.2, double: scalars.3, float: scalars.4, decimal: scalars.5,
            date: moments.0, millisecondDate: moments.1, text: moments.2, optionalText: moments.3, nothing: nil, flag: moments.4,
            doubles: containers.0, nested: Dictionary(containers.1, uniquingKeysWith: { first, _ in first }),
            bytes: Data(containers.2))
    }

    // MARK: The properties

    @Test(arguments: Adapter.allCases)
    func everyPayloadComesBackAsCommitted(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let keepers = AggregateRepository<Keeper>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        await propertyCheck(count: Self.cases, input: Self.scalars, Self.moments, Self.containers) { scalars, moments, containers in
            let payload = Self.everything(scalars, moments, containers)
            let metadata: JSONObject = [
                "big": .uint(payload.uint64 | 1 << 63), "small": .int(Int(payload.int64)), "ratio": .double(payload.double),
                "note": .string(payload.text),
            ]
            let context = EventContext(correlationID: payload.text, triggeredByUserID: payload.optionalText, metadata: metadata)
            var keeper = try await keepers.in(context).create { _ in [Recorded(payload: payload)] }
            let id = try #require(keeper.id)
            let loaded = try #require(try await keepers.load(id))
            #expect(loaded.state.payload == payload, "the event, read back")
            // The envelope: metadata and ids as committed.
            let stored = try await events.read(StreamID(Keeper.self, id: id), from: 1)
            #expect(stored.first?.metadata == metadata && stored.first?.correlationID == payload.text)
            #expect(stored.first?.triggeredByUserID == payload.optionalText)
            // A snapshot of the state, then a load that starts from it.
            try await keepers.snapshot(&keeper)
            let restored = try #require(try await keepers.load(id))
            #expect(restored.state == loaded.state, "the state, restored from its snapshot")
        }
    }

    @Test(arguments: Adapter.allCases)
    func numbersComeBackExactlyThroughAnUpcaster(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let keepers = AggregateRepository<Keeper>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let numbers = zip(Gen.int64(), Gen.uint64(), Self.finiteDouble, Self.date, Self.text).map(Numbers.init)
        await propertyCheck(count: Self.cases, input: numbers) { numbers in
            // Version 1 as an older release committed it; loading upcasts it to version 2.
            let id = UUID().uuidString
            let old = try EventEnvelope(event: CountedV1(numbers: numbers), aggregateID: id, sequenceNumber: 1).serialized(for: Keeper.self)
            _ = try await events.append([old], to: StreamID(Keeper.self, id: id), expecting: .noStream)
            let loaded = try #require(try await keepers.load(id))
            #expect(loaded.state.numbers == numbers)
        }
    }

    /// Negative zero, which a whole-number reading of JSON's `-0.0` loses (a black-box review:
    /// an upcaster gave back `0.0`, and DugongStore's metadata `.int(0)`).
    @Test(arguments: Adapter.allCases)
    func negativeZeroKeepsItsSignThroughAnUpcasterAndInMetadata(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let keepers = AggregateRepository<Keeper>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        let numbers = Numbers(int64: 0, uint64: 0, double: -0.0, date: Date(timeIntervalSinceReferenceDate: 0), text: "")
        let id = UUID().uuidString
        let old = try EventEnvelope(event: CountedV1(numbers: numbers), aggregateID: id, sequenceNumber: 1).serialized(for: Keeper.self)
        _ = try await events.append([old], to: StreamID(Keeper.self, id: id), expecting: .noStream)
        let upcast = try #require(try await keepers.load(id)?.state.numbers?.double)
        #expect(upcast == 0 && upcast.sign == .minus, "through the upcaster")

        let context = EventContext(metadata: ["zero": .double(-0.0)])
        let other = try #require(try await keepers.in(context).create { _ in [CountedV2(numbers: numbers)] }.id)
        let stored = try await events.read(StreamID(Keeper.self, id: other), from: 1)
        guard case .double(let zero)? = stored.first?.metadata?["zero"] else {
            Issue.record("metadata read back as \(String(describing: stored.first?.metadata))")
            return
        }
        #expect(zero == 0 && zero.sign == .minus, "in metadata")
    }

    /// What JSON cannot hold exactly is refused with a typed error naming the field, and
    /// nothing is committed.
    @Test(arguments: Adapter.allCases)
    func nonFiniteNumbersAndDatesOutOfRangeAreRefused(_ adapter: Adapter) async throws {
        let (events, snapshots, release) = try await adapter.make()
        defer { release() }
        let keepers = AggregateRepository<Keeper>(eventStore: events, snapshotStore: snapshots, registry: Self.registry)
        var payload = Self.everything((1, 2, 3, 4, 5, 6), (Date(), Date(), "t", nil, true), ([], [], []))
        for (field, change) in [("double", { (p: inout Everything) in p.double = .nan }), ("doubles.Index 0", { $0.doubles = [.infinity] }),
            ("date", { $0.date = Date(timeIntervalSinceReferenceDate: 1e13) })]
        {
            var bad = payload
            change(&bad)
            await #expect {
                try await keepers.create { _ in [Recorded(payload: bad)] }
            } throws: { error in
                guard case .notEncodable(let type, let path, _) = error as? PayloadCodingError else { return false }
                return type == "Recorded" && path == "payload." + field
            }
        }
        payload.nothing = 1
        _ = try await keepers.create { _ in [Recorded(payload: payload)] }
        #expect(try await keepers.ids().count == 1, "only the good one was committed")
    }
}
