// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Dugong",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Dugong", targets: ["Dugong"]),
        .library(name: "DugongTesting", targets: ["DugongTesting"]),
        .executable(name: "dugong", targets: ["DugongCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The framework: domain, serialization, ports and in-memory adapters.
        .target(name: "Dugong"),
        // Contract suites every adapter of a port runs, and aggregate test helpers.
        .target(name: "DugongTesting", dependencies: ["Dugong"]),
        // The bank-account example used by the README, the tests and `dugong demo`.
        .target(name: "DugongExample", dependencies: ["Dugong"]),
        .executableTarget(
            name: "DugongCLI",
            dependencies: [
                "Dugong",
                "DugongExample",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "DugongTests", dependencies: ["Dugong", "DugongTesting", "DugongExample"]),
    ]
)
