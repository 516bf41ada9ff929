import Dugong
import Foundation

/// The contract suite of the ``Dugong/SnapshotStore`` port.
///
/// ```swift
/// @Test(arguments: SnapshotStoreContract.checks)
/// func mySnapshots(_ check: ContractCheck<any SnapshotStore>) async throws {
///     try await check.run { MySnapshotStore() }
/// }
/// ```
public enum SnapshotStoreContract {
    public typealias Check = ContractCheck<any SnapshotStore>

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check("no snapshot reads as nil", noSnapshot),
        Check("the snapshot with the highest sequence number wins", latestWins),
        Check("a snapshot at the same sequence number replaces the old one", sameSequenceNumberReplaces),
        Check("tenants and streams are isolated", isolation),
    ]

    static let account = StreamID(origin: "contract", aggregateType: "Account", aggregateID: "a-1")

    static func snapshot(_ stream: StreamID, at sequenceNumber: Int, _ state: String) -> SerializedSnapshot {
        SerializedSnapshot(stream: stream, sequenceNumber: sequenceNumber, schemaVersion: 2, data: Data(state.utf8))
    }

    static func noSnapshot(_ store: any SnapshotStore, _ c: Check.Context) async throws {
        try c.requireEqual(try await store.latest(for: account), nil, "latest snapshot of a new stream")
    }

    static func latestWins(_ store: any SnapshotStore, _ c: Check.Context) async throws {
        try await store.save(snapshot(account, at: 10, "ten"))
        try await store.save(snapshot(account, at: 20, "twenty"))
        try c.requireEqual(try await store.latest(for: account), snapshot(account, at: 20, "twenty"), "latest")
        try await store.save(snapshot(account, at: 15, "fifteen"))
        try c.requireEqual(
            try await store.latest(for: account), snapshot(account, at: 20, "twenty"),
            "latest after saving an older one")
    }

    static func sameSequenceNumberReplaces(_ store: any SnapshotStore, _ c: Check.Context) async throws {
        try await store.save(snapshot(account, at: 10, "first"))
        try await store.save(snapshot(account, at: 10, "second"))
        try c.requireEqual(try await store.latest(for: account), snapshot(account, at: 10, "second"), "latest")
    }

    static func isolation(_ store: any SnapshotStore, _ c: Check.Context) async throws {
        var red = account
        red.tenantID = "red"
        var other = account
        other.aggregateID = "a-2"
        try await store.save(snapshot(red, at: 5, "red"))
        try await store.save(snapshot(other, at: 7, "other"))
        try c.requireEqual(try await store.latest(for: account), nil, "untenanted stream")
        try c.requireEqual(try await store.latest(for: red), snapshot(red, at: 5, "red"), "red tenant's stream")
        try c.requireEqual(try await store.latest(for: other), snapshot(other, at: 7, "other"), "other stream")
    }
}
