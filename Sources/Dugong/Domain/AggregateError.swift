import Foundation

/// Why an aggregate refused a command or an event.
public enum AggregateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An event was applied whose sequence number is not the next one.
    case sequenceNumberMismatch(aggregateID: String, expected: Int, actual: Int)
    /// An event of another aggregate was applied.
    case aggregateIDMismatch(expected: String, actual: String)
    /// A creation command ran on an aggregate that already exists.
    case alreadyCreated(aggregateID: String)
    /// A non-creation command ran on an aggregate that has not been created.
    case notCreated(aggregateType: String)
    /// A command ran on a logically deleted aggregate.
    case deleted(aggregateID: String)
    /// Stored events were applied while staged events were still uncommitted.
    case uncommittedEvents(aggregateID: String, count: Int)
    /// A creation command was given another id than the one the aggregate already has.
    case idAlreadyAssigned(aggregateID: String, given: String)

    public var description: String {
        switch self {
        case .sequenceNumberMismatch(let id, let expected, let actual):
            "aggregate \(id): expected event with sequence number \(expected), got \(actual)"
        case .aggregateIDMismatch(let expected, let actual):
            "event of aggregate \(actual) applied to aggregate \(expected)"
        case .alreadyCreated(let id):
            "aggregate \(id) already exists; a creation command cannot run on it"
        case .notCreated(let type):
            "\(type) has not been created; run a creation command first"
        case .deleted(let id):
            "aggregate \(id) is deleted; it accepts no more commands"
        case .uncommittedEvents(let id, let count):
            "aggregate \(id) has \(count) staged, uncommitted events; commit or discard them first"
        case .idAlreadyAssigned(let id, let given):
            "aggregate \(id) has its id already; a creation command cannot give it another (\(given))"
        }
    }
}
