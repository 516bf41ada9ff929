import ArgumentParser

/// `dugong`: the command-line tool of Dugong for Swift.
@main
struct DugongCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dugong",
        abstract: "Event sourcing for Swift: verify, inspect, move and measure DugongStore stores.",
        subcommands: [
            Bench.self, Verify.self, Compact.self, Stats.self, Read.self, ReadAll.self, Append.self, Import.self, Export.self,
            DeleteStream.self, TruncateStream.self, TombstoneStream.self, Upgrade.self, Demo.self,
        ]
    )
}
