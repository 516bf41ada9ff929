// swift-tools-version: 6.1
// Instructions per appended and replayed event, under callgrind: see measure.sh. A package of
// its own (like Benchmarks/) so that users never build it.
import PackageDescription

let root = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "main"

let package = Package(
    name: "CallgrindHarness",
    dependencies: [.package(path: "../..")],
    targets: [.executableTarget(name: "Harness", dependencies: [.product(name: "DugongStore", package: root)])]
)
