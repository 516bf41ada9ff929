import ArgumentParser
import Dugong
import DugongExample

/// `dugong demo`: the bank-account example end to end.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bank-account example end to end and tell what happens.",
        discussion: """
            Opens an account, deposits and withdraws, has a withdrawal refused, lets two tellers \
            race on the same account so that one hits an optimistic-concurrency conflict and \
            retries, and prints the stored events and the final state.

            Example:
              dugong demo
            """
    )

    func run() async throws {
        print("Dugong demo: a bank account on the in-memory event store\n")
        try await BankAccountStory.run(on: InMemoryEventStore()) { print($0) }
    }
}
