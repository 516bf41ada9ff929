import Dugong
@testable import DugongExample
import Foundation
import Testing

/// Version 2 of the deposit event: it gained a currency.
struct MoneyDepositedV2: DomainEvent, Equatable {
    static let eventType = "MoneyDeposited"
    static let schemaVersion = 2
    var amount: Int
    var currency: String
}

/// Version 3: the amount became a string of decimal units.
struct MoneyDepositedV3: DomainEvent, Equatable {
    static let eventType = "MoneyDeposited"
    static let schemaVersion = 3
    var amount: String
    var currency: String
}

@Suite("Event registry")
struct EventRegistryTests {
    static func serialized(
        _ type: String, version: Int = 1, payload: String?, aggregateType: String = "BankAccount"
    ) -> SerializedDomainEvent {
        SerializedDomainEvent(
            origin: "bank", aggregateType: aggregateType, eventType: type, version: version, id: UUID(),
            aggregateID: "acc-1", payload: payload.map { Data($0.utf8) }, sequenceNumber: 1,
            timestamp: Date(millisecondsSince1970: 1_000), tenantID: "t1", correlationID: "c1")
    }

    @Test func decodesARegisteredEventWithItsEnvelope() throws {
        let registry = try EventRegistry(BankAccount.self)
        let stored = Self.serialized("MoneyDeposited", payload: #"{"amount":250}"#)
        let envelope = try #require(try registry.decode(stored))
        #expect((envelope.event as? MoneyDeposited)?.amount == 250)
        #expect(envelope.id == stored.id && envelope.aggregateID == "acc-1" && envelope.sequenceNumber == 1)
        #expect(envelope.tenantID == "t1" && envelope.correlationID == "c1")
        #expect(envelope.timestamp == Date(millisecondsSince1970: 1_000))
    }

    @Test func anUnknownEventTypeIsATypedErrorNamingIt() throws {
        let registry = try EventRegistry(BankAccount.self)
        let stored = Self.serialized("InterestPaid", version: 4, payload: "{}")
        let expected = EventTypeID(origin: "bank", aggregateType: "BankAccount", eventType: "InterestPaid", version: 4)
        #expect(throws: EventDecodingError.unknownEventType(expected, at: stored.location)) {
            try registry.decode(stored)
        }
        do {
            _ = try registry.decode(stored)
        } catch {
            let text = "\(error)"
            #expect(text.contains("bank/BankAccount/InterestPaid v4"))
            // Where the event is (a black-box review: only its UUID was named).
            #expect(text.contains("(event \(stored.id) (\(stored.stream) #\(stored.sequenceNumber)))"))
        }
    }

    @Test func anUnknownVersionOfAKnownTypeIsAlsoUnknown() throws {
        let registry = try EventRegistry(BankAccount.self)
        #expect(throws: EventDecodingError.self) {
            try registry.decode(Self.serialized("MoneyDeposited", version: 2, payload: #"{"amount":1}"#))
        }
    }

    @Test func skippingUnknownEventsIsAnExplicitChoice() throws {
        var registry = try EventRegistry(BankAccount.self)
        registry.unknownEvents = .skip
        #expect(try registry.decode(Self.serialized("InterestPaid", payload: "{}")) == nil)
    }

    @Test func loadingSkipsUnknownEventsOnlyWhenToldTo() async throws {
        let store = InMemoryEventStore()
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Ada") }
        try await store.commit(&account)
        var foreign = Self.serialized("InterestPaid", payload: #"{"amount":5}"#)
        foreign.sequenceNumber = 2
        foreign.tenantID = nil
        foreign.correlationID = nil
        try await store.append([foreign], to: StreamID(BankAccount.self, id: "acc-1"), expecting: .exact(1))
        var strict = try EventRegistry(BankAccount.self)
        await #expect(throws: EventDecodingError.self) {
            try await store.load(BankAccount.self, id: "acc-1", registry: strict)
        }
        strict.unknownEvents = .skip
        let loaded = try #require(try await store.load(BankAccount.self, id: "acc-1", registry: strict))
        #expect(loaded.sequenceNumber == 2 && loaded.state.owner == "Ada")
    }

    @Test func aPayloadThatDoesNotDecodeIsATypedError() throws {
        let registry = try EventRegistry(BankAccount.self)
        let stored = Self.serialized("MoneyDeposited", payload: #"{"amount":"lots"}"#)
        #expect {
            try registry.decode(stored)
        } throws: { error in
            guard case .undecodablePayload(_, let location, _) = error as? EventDecodingError else { return false }
            return location == stored.location && "\(error)".hasPrefix("event \(stored.id) (\(stored.stream) #\(stored.sequenceNumber)) of type")
        }
    }

    @Test func anEventWithoutPayloadDecodes() throws {
        let registry = try EventRegistry(BankAccount.self)
        let envelope = try #require(try registry.decode(Self.serialized("AccountClosed", payload: nil)))
        #expect(envelope.event is AccountClosed)
    }

    @Test func aJSONUpcasterReadsVersion1AsVersion2() throws {
        var registry = EventRegistry()
        try registry.register(MoneyDepositedV2.self, origin: "bank", aggregateType: "BankAccount")
        try registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 1) { payload in
            var payload = payload
            payload["currency"] = "EUR"
            return payload
        }
        let envelope = try #require(try registry.decode(Self.serialized("MoneyDeposited", payload: #"{"amount":250}"#)))
        #expect(envelope.event as? MoneyDepositedV2 == MoneyDepositedV2(amount: 250, currency: "EUR"))
        #expect(envelope.schemaVersion == 2)
    }

    // Found by a black-box review: a second upcaster for one version replaced the first
    // silently, and a version below 1 or a typed upcaster that skipped a version trapped.
    @Test func anUpcasterThatCannotBeIsRefusedWithAnError() throws {
        var registry = EventRegistry()
        try registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 1) { $0 }
        let id = EventTypeID(origin: BankAccount.origin, aggregateType: BankAccount.aggregateType, eventType: "MoneyDeposited", version: 1)
        #expect(throws: EventRegistryError.duplicateUpcaster(id)) {
            try registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 1) { _ in [:] }
        }
        #expect("\(EventRegistryError.duplicateUpcaster(id))".contains("already has an upcaster"))
        #expect(throws: EventRegistryError.self) { try registry.addUpcaster(eventType: "MoneyDeposited", of: BankAccount.self, from: 0) { $0 } }
        do {
            try registry.addUpcaster(from: MoneyDeposited.self, to: MoneyDepositedV3.self, of: BankAccount.self) { _ in MoneyDepositedV3(amount: "0", currency: "EUR") }
            Issue.record("an upcaster that skips version 2 was added")
        } catch {
            guard case .invalidUpcaster(_, let reason) = error else { throw error }
            #expect(reason.contains("version 3"), "\(reason)")
        }
        // The first one stays: an event of version 1 still decodes through it.
        #expect(registry.upcastedTypes == [id])
    }

    @Test func upcastersChainAndTypedOnesWork() throws {
        var registry = EventRegistry()
        try registry.register(MoneyDepositedV3.self, origin: "bank", aggregateType: "BankAccount")
        try registry.addUpcaster(from: MoneyDeposited.self, to: MoneyDepositedV2.self, of: BankAccount.self) {
            MoneyDepositedV2(amount: $0.amount, currency: "EUR")
        }
        try registry.addUpcaster(from: MoneyDepositedV2.self, to: MoneyDepositedV3.self, of: BankAccount.self) {
            MoneyDepositedV3(amount: String(format: "%d.%02d", $0.amount / 100, $0.amount % 100), currency: $0.currency)
        }
        let fromV1 = try #require(try registry.decode(Self.serialized("MoneyDeposited", payload: #"{"amount":250}"#)))
        #expect(fromV1.event as? MoneyDepositedV3 == MoneyDepositedV3(amount: "2.50", currency: "EUR"))
        let fromV2 = try #require(
            try registry.decode(Self.serialized("MoneyDeposited", version: 2, payload: #"{"amount":5,"currency":"SEK"}"#)))
        #expect(fromV2.event as? MoneyDepositedV3 == MoneyDepositedV3(amount: "0.05", currency: "SEK"))
    }

    @Test func aFailingUpcasterIsATypedError() throws {
        struct Refused: Error {}
        var registry = try EventRegistry(BankAccount.self)
        try registry.addUpcaster(eventType: "MoneyWithdrawn", of: BankAccount.self, from: 1) { _ in throw Refused() }
        #expect(throws: EventDecodingError.self) {
            try registry.decode(Self.serialized("MoneyWithdrawn", payload: #"{"amount":1}"#))
        }
    }

    @Test func serializationRoundTripsThroughTheRegistry() throws {
        var account = AggregateRoot<BankAccount>()
        try account.create(id: "acc-1") { try $0.open(owner: "Zoë") }
        let serialized = try account.stagedEvents[0].serialized(for: BankAccount.self)
        #expect(serialized.typeID == EventTypeID(origin: "bank", aggregateType: "BankAccount", eventType: "AccountOpened", version: 1))
        #expect(String(decoding: serialized.payload!, as: UTF8.self) == #"{"owner":"Zoë"}"#)
        let decoded = try #require(try EventRegistry(BankAccount.self).decode(serialized))
        #expect((decoded.event as? AccountOpened)?.owner == "Zoë")
        #expect(decoded.timestamp == account.stagedEvents[0].timestamp)
    }

    @Test func jsonValuesRoundTrip() throws {
        let value: JSONValue = ["int": 1, "double": 2.5, "string": "s", "bool": true, "null": nil, "array": [1, "two"], "object": ["k": "v"]]
        #expect(try JSONValue(json: value.jsonData()) == value)
        #expect(String(decoding: try JSONValue.int(100).jsonData(), as: UTF8.self) == "100")
        // Negative zero keeps its sign (a black-box review: it became .int(0)).
        for text in ["-0.0", "-0", "-0e3", "[-0.0]"] {
            var value = try JSONValue(json: Data(text.utf8))
            if case .array(let elements) = value { value = elements[0] }
            guard case .double(let zero) = value else { Issue.record("\(text) decoded as \(value)"); continue }
            #expect(zero == 0 && zero.sign == .minus, "\(text)")
            #expect(try JSONValue(json: JSONValue.double(-0.0).jsonData()) == .double(-0.0))
        }
        guard case .int(0) = try JSONValue(json: Data("0".utf8)) else { Issue.record("0 is not .int(0)"); return }
    }
}
