import Dugong
import Foundation

/// Given past events, when a command runs, then expect these events (or this error).
///
/// ```swift
/// try AggregateScenario<BankAccount>
///     .given(AccountOpened(owner: "Ada"), MoneyDeposited(amount: 100))
///     .when { try $0.withdraw(30) }
///     .then(MoneyWithdrawn(amount: 30))
///
/// try AggregateScenario<BankAccount>
///     .given(AccountOpened(owner: "Ada"))
///     .when { try $0.withdraw(30) }
///     .thenFails(with: BankAccountError.insufficientFunds(balance: 0, requested: 30))
/// ```
///
/// With no past events the command runs as a creation command. Events are compared by type,
/// schema version and JSON encoding.
public struct AggregateScenario<State: Aggregate>: Sendable {
    /// The aggregate after the given events.
    public let aggregate: AggregateRoot<State>

    /// The aggregate after `events`, numbered from 1, with aggregate id `id`.
    public static func given(_ events: any DomainEvent..., id: String = "scenario-aggregate") throws -> Self {
        var aggregate = AggregateRoot<State>(id: id)
        for (index, event) in events.enumerated() {
            try aggregate.apply(EventEnvelope(event: event, aggregateID: id, sequenceNumber: index + 1))
        }
        return AggregateScenario(aggregate: aggregate)
    }

    /// Runs `command` (as a creation command when there are no given events).
    public func when(_ command: (State) throws -> [any DomainEvent]) -> Outcome {
        var aggregate = aggregate
        do {
            if aggregate.sequenceNumber == 0 {
                try aggregate.create(id: aggregate.id, command)
            } else {
                try aggregate.execute(command)
            }
            return Outcome(result: .success(aggregate))
        } catch {
            return Outcome(result: .failure(error))
        }
    }

    /// What the command did.
    public struct Outcome: Sendable {
        /// The aggregate with the staged events, or the command's error.
        public let result: Result<AggregateRoot<State>, any Error>

        /// Requires the command to have staged exactly `expected`, in order.
        /// - Returns: the aggregate after the command, for further checks on its state.
        @discardableResult
        public func then(
            _ expected: any DomainEvent..., file: StaticString = #fileID, line: UInt = #line
        ) throws -> AggregateRoot<State> {
            let aggregate: AggregateRoot<State>
            switch result {
            case .success(let value): aggregate = value
            case .failure(let error):
                throw ScenarioFailure("expected \(expected.count) events, the command threw \(error)", file, line)
            }
            let staged = aggregate.stagedEvents.map(\.event)
            let actualText = try staged.map(Self.text)
            let expectedText = try expected.map(Self.text)
            guard actualText == expectedText else {
                throw ScenarioFailure(
                    "expected events \(expectedText), staged \(actualText)", file, line)
            }
            return aggregate
        }

        /// Requires the command to have thrown `expected`.
        public func thenFails<E: Error & Equatable>(
            with expected: E, file: StaticString = #fileID, line: UInt = #line
        ) throws {
            switch result {
            case .success(let aggregate):
                let staged = try aggregate.stagedEvents.map { try Self.text($0.event) }
                throw ScenarioFailure("expected error \(expected), the command staged \(staged)", file, line)
            case .failure(let error):
                guard (error as? E) == expected else {
                    throw ScenarioFailure("expected error \(expected), got \(error)", file, line)
                }
            }
        }

        static func text(_ event: any DomainEvent) throws -> String {
            let kind = type(of: event)
            let json = String(decoding: try PayloadCoding.encode(event), as: UTF8.self)
            return "\(kind.eventType) v\(kind.schemaVersion) \(json)"
        }
    }
}

/// An aggregate scenario's expectation did not hold.
public struct ScenarioFailure: Error, CustomStringConvertible {
    public let message: String
    public let location: String

    init(_ message: String, _ file: StaticString, _ line: UInt) {
        self.message = message
        location = "\(file):\(line)"
    }

    public var description: String { "\(message) (\(location))" }
}
