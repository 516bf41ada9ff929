import ArgumentParser

/// `dugong`: the command-line tool of Dugong for Swift.
@main
struct DugongCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dugong",
        abstract: "Event sourcing for Swift: demos and tools for Dugong stores.",
        subcommands: [Demo.self, Bench.self]
    )
}
