import Dugong
import Foundation

/// The contract suite of the ``Dugong/ConsumedMessageStore`` port.
///
/// ```swift
/// @Test(arguments: ConsumedMessageStoreContract.checks)
/// func myMarks(_ check: ConsumedMessageStoreContract.Check) async throws {
///     try await check.run { MyConsumedMessageStore() }
/// }
/// ```
public enum ConsumedMessageStoreContract {
    public typealias Check = ContractCheck<any ConsumedMessageStore>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("an unmarked message is not consumed", unmarked),
        Check("a marked message is consumed", marked),
        Check("marking twice is an error", markedTwice),
        Check("marks are per consumer and per tenant", scoped),
    ]

    static func unmarked(_ store: any ConsumedMessageStore, _ c: Check.Context) async throws {
        try c.requireEqual(try await store.isConsumed(UUID(), by: "c", tenantID: nil), false, "consumed")
    }

    static func marked(_ store: any ConsumedMessageStore, _ c: Check.Context) async throws {
        let id = UUID()
        try await store.markConsumed(id, by: "c", tenantID: nil)
        try c.requireEqual(try await store.isConsumed(id, by: "c", tenantID: nil), true, "consumed after marking")
    }

    static func markedTwice(_ store: any ConsumedMessageStore, _ c: Check.Context) async throws {
        let id = UUID()
        try await store.markConsumed(id, by: "c", tenantID: "t")
        try await c.requireError("a second mark") {
            try await store.markConsumed(id, by: "c", tenantID: "t")
        } matches: { ($0 as? ConsumedMessageError) == .alreadyConsumed(eventID: id, consumer: "c") }
    }

    static func scoped(_ store: any ConsumedMessageStore, _ c: Check.Context) async throws {
        let id = UUID()
        try await store.markConsumed(id, by: "first", tenantID: nil)
        try c.requireEqual(try await store.isConsumed(id, by: "second", tenantID: nil), false, "another consumer")
        try c.requireEqual(try await store.isConsumed(id, by: "first", tenantID: "t"), false, "another tenant")
        try await store.markConsumed(id, by: "second", tenantID: nil)
        try await store.markConsumed(id, by: "first", tenantID: "t")
        try c.requireEqual(try await store.isConsumed(id, by: "second", tenantID: nil), true, "second consumer after marking")
    }
}
