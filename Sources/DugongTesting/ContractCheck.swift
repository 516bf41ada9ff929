/// A contract check failed: which check, what was expected, and where in the suite.
public struct ContractViolation: Error, Sendable, CustomStringConvertible {
    public var check: String
    public var message: String
    public var location: String

    public var description: String { "contract check '\(check)' failed: \(message) (\(location))" }
}

/// One named check of a contract suite, run against a fresh adapter.
///
/// Checks are values so that a test framework can run each as its own test case:
///
/// ```swift
/// @Test(arguments: EventStoreContract.checks)
/// func inMemoryStore(_ check: ContractCheck<any EventStore>) async throws {
///     try await check.run { InMemoryEventStore() }
/// }
/// ```
public struct ContractCheck<Adapter: Sendable>: Sendable, CustomStringConvertible {
    /// What the check proves, e.g. `"reads events in sequence order"`.
    public let name: String
    let body: @Sendable (Adapter, Context) async throws -> Void

    public var description: String { name }

    /// Runs the check on a fresh adapter from `makeAdapter`, then hands the adapter to
    /// `tearDown` (to close it and remove its files), whether the check passed or not.
    /// - Throws: ``ContractViolation`` when the adapter breaks the contract, or what it threw.
    public func run(
        _ makeAdapter: @Sendable () async throws -> Adapter,
        tearDown: @Sendable (Adapter) async throws -> Void = { _ in }
    ) async throws {
        let adapter = try await makeAdapter()
        let outcome: Result<Void, any Error>
        do {
            try await body(adapter, Context(check: name))
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try await tearDown(adapter)
        try outcome.get()
    }

    /// Assertion helpers available to a check's body.
    public struct Context: Sendable {
        let check: String

        func require(
            _ condition: Bool, _ message: @autoclosure () -> String,
            file: StaticString = #fileID, line: UInt = #line
        ) throws {
            guard condition else {
                throw ContractViolation(check: check, message: message(), location: "\(file):\(line)")
            }
        }

        func requireEqual<T: Equatable>(
            _ actual: T, _ expected: T, _ what: String, file: StaticString = #fileID, line: UInt = #line
        ) throws {
            try require(actual == expected, "\(what): expected \(expected), got \(actual)", file: file, line: line)
        }

        /// Runs `operation`, which must throw an error that `matches` accepts.
        func requireError<T>(
            _ what: String, file: StaticString = #fileID, line: UInt = #line,
            _ operation: () async throws -> T, matches: (any Error) -> Bool
        ) async throws {
            do {
                let value = try await operation()
                throw ContractViolation(
                    check: check, message: "\(what): expected an error, got \(value)", location: "\(file):\(line)")
            } catch let violation as ContractViolation {
                throw violation
            } catch {
                try require(matches(error), "\(what): unexpected error \(error)", file: file, line: line)
            }
        }
    }
}

extension ContractCheck {
    init(_ name: String, _ body: @escaping @Sendable (Adapter, Context) async throws -> Void) {
        self.name = name
        self.body = body
    }
}
