// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Dugong",
    products: [
        .library(name: "Dugong", targets: ["Dugong"]),
        .library(name: "DugongStore", targets: ["DugongStore"]),
        .library(name: "DugongTesting", targets: ["DugongTesting"]),
        .executable(name: "dugong", targets: ["DugongCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        // Tests only: generated payloads for the round-trip properties.
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // The framework: domain, serialization, ports and in-memory adapters.
        .target(name: "Dugong", dependencies: ["CDugongRandom", .product(name: "Logging", package: "swift-log")]),
        // C shim: random event ids, one getrandom call per 255 (Foundation's UUID() opens a device per id).
        .target(name: "CDugongRandom"),
        // C shims: CRC32C (SSE4.2 with a portable fallback) and raw DEFLATE through zlib.
        .target(name: "CDugongShims", linkerSettings: [.linkedLibrary("z")]),
        // The storage engine and its adapters of the Dugong ports.
        .target(name: "DugongStore", dependencies: ["Dugong", "CDugongShims"]),
        // Contract suites every adapter of a port runs, and aggregate test helpers.
        .target(name: "DugongTesting", dependencies: ["Dugong"]),
        // The bank-account example used by the README, the tests and `dugong demo`.
        .target(name: "DugongExample", dependencies: ["Dugong"]),
        .executableTarget(
            name: "DugongCLI",
            dependencies: [
                "Dugong",
                "DugongStore",
                "DugongExample",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "DugongTests", dependencies: ["Dugong", "DugongTesting", "DugongExample"]),
        .testTarget(name: "DugongCLITests", dependencies: ["DugongCLI", "DugongStore", "Dugong"]),
        .testTarget(
            name: "DugongStoreTests",
            dependencies: [
                "DugongStore", "CDugongShims", "Dugong", "DugongTesting", "DugongExample",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            // Stores of earlier format versions, read by the upgrade tests through #filePath.
            exclude: ["Fixtures"]
        ),
    ]
)
