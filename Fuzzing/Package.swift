// swift-tools-version: 6.1
// The fuzz target: libFuzzer over the frame decoder, recovery of a whole segment, the manifest,
// the head record and the saved index. A package of its own (like Benchmarks/) so that users never build it.
// Build and run (see README.md, "Fuzzing"):
//   swift build -c release --package-path Fuzzing --product DugongFuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address --disable-dead-strip
//   SWIFT_BACKTRACE=enable=no Fuzzing/.build/release/DugongFuzz Fuzzing/Corpus -max_total_time=600
import PackageDescription

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned: read it instead of spelling it.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

let package = Package(
    name: "DugongFuzzing",
    dependencies: [.package(path: "..")],
    targets: [
        // main.swift holds only LLVMFuzzerTestOneInput: libFuzzer provides `main`.
        .executableTarget(name: "DugongFuzz", dependencies: [.product(name: "DugongStore", package: root)]),
    ]
)
