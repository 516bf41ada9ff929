import Foundation

/// A snapshot of an aggregate's state after a given event, so that loading it need not replay
/// every event.
public struct SerializedSnapshot: Sendable, Hashable, Codable {
    /// The aggregate's stream (tenant included).
    public var stream: StreamID
    /// The sequence number of the last event the snapshot covers.
    public var sequenceNumber: Int
    /// The version of the snapshot's data schema; a snapshot of another version is ignored.
    public var schemaVersion: Int
    /// The encoded state.
    public var data: Data

    public init(stream: StreamID, sequenceNumber: Int, schemaVersion: Int = 1, data: Data) {
        self.stream = stream
        self.sequenceNumber = sequenceNumber
        self.schemaVersion = schemaVersion
        self.data = data
    }
}

/// The snapshot-store port.
///
/// Contract (checked by `DugongTesting.SnapshotStoreContract`): ``latest(for:)`` returns the
/// saved snapshot with the highest sequence number for exactly that stream and tenant, or
/// `nil`; saving a snapshot at a sequence number already saved replaces it.
public protocol SnapshotStore: Sendable {
    /// Saves a snapshot.
    func save(_ snapshot: SerializedSnapshot) async throws
    /// The snapshot with the highest sequence number of `stream`, or `nil`.
    func latest(for stream: StreamID) async throws -> SerializedSnapshot?
}
