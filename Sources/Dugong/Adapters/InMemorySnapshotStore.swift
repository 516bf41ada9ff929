/// A ``SnapshotStore`` that keeps the latest snapshot of each stream in memory.
public actor InMemorySnapshotStore: SnapshotStore {
    private var latest: [StreamID: SerializedSnapshot] = [:]

    public init() {}

    public func save(_ snapshot: SerializedSnapshot) {
        if let current = latest[snapshot.stream], current.sequenceNumber > snapshot.sequenceNumber { return }
        latest[snapshot.stream] = snapshot
    }

    public func latest(for stream: StreamID) -> SerializedSnapshot? {
        latest[stream]
    }
}
