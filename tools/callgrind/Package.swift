// swift-tools-version: 6.1
// Instructions per appended and replayed event, under callgrind: see measure.sh. A package of
// its own (like Benchmarks/) so that users never build it.
import PackageDescription

let root = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "main"

let package = Package(
    name: "CallgrindHarness",
    dependencies: [.package(path: "../..")],
    targets: [
        // The Benchmarks package's ideal log (a link to its sources), the bound instructions per
        // event are compared with.
        .target(name: "CIdealLog", linkerSettings: [.linkedLibrary("zstd")]),
        // Zeroes callgrind's counts once the harness has made its input (valgrind's header).
        .target(name: "CCallgrind"),
        .executableTarget(
            name: "Harness", dependencies: [.product(name: "DugongStore", package: root), "CIdealLog", "CCallgrind"]),
    ]
)
