import Foundation

/// Events of one stream at consecutive versions and positions (a commit, usually): what the index
/// keeps of them.
struct EventRun: Equatable {
    var stream: String
    var firstVersion: Int
    var firstPosition: UInt64
    var count: Int
    /// The id of the run's last event.
    var lastID: UUID

    var lastVersion: Int { firstVersion + count - 1 }
    var lastPosition: UInt64 { firstPosition + UInt64(count) - 1 }

    /// Whether `event` continues the run (same stream, next version, next position).
    func isContinued(by event: StoredEvent) -> Bool {
        event.version == firstVersion + count && event.position == firstPosition + UInt64(count)
            && StreamKey(event.stream) == StreamKey(stream)
    }
}

/// A frame's records as the index applies them: events grouped in runs (one hash lookup and one
/// array append per run), the other records as they are, with their index among the frame's
/// records (a snapshot is found again by it).
enum IndexRecord: Equatable {
    case events(EventRun)
    /// A record other than an event.
    case record(Record, index: Int)

    /// `records` (decoded from a frame) grouped for the index.
    static func grouping(_ records: [Record]) -> [IndexRecord] {
        var grouped: [IndexRecord] = []
        grouped.reserveCapacity(records.count)
        var run: EventRun?
        for (index, record) in records.enumerated() {
            guard case .event(let event) = record else {
                if let done = run { grouped.append(.events(done)) }
                run = nil
                grouped.append(.record(record, index: index))
                continue
            }
            if run?.isContinued(by: event) == true {
                run!.count += 1
                run!.lastID = event.id
            } else {
                if let done = run { grouped.append(.events(done)) }
                run = EventRun(stream: event.stream, firstVersion: event.version, firstPosition: event.position, count: 1, lastID: event.id)
            }
        }
        if let done = run { grouped.append(.events(done)) }
        return grouped
    }
}
