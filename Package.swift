// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Dugong",
    products: [
        .library(name: "Dugong", targets: ["Dugong"]),
        .library(name: "DugongStore", targets: ["DugongStore"]),
        .library(name: "DugongTesting", targets: ["DugongTesting"]),
        .executable(name: "dugong", targets: ["DugongCLI"]),
        // The ports on PostgreSQL: with the `Postgres` trait only (see the README).
        .library(name: "DugongPostgres", targets: ["DugongPostgres"]),
        // The web inspector, to embed with an application's aggregates: with the `Studio` trait.
        .library(name: "DugongStudio", targets: ["DugongStudio"]),
    ],
    traits: [
        // Off by default: an application of Dugong and DugongStore builds no SwiftNIO or
        // PostgreSQL code. `.package(url: …, from: …, traits: ["Postgres"])` turns it on.
        .trait(name: "Postgres", description: "DugongPostgres: the ports on PostgreSQL, through PostgresNIO"),
        // Off by default: Dugong Studio, the web inspector (Hummingbird, SwiftNIO).
        .trait(name: "Studio", description: "DugongStudio: a local web inspector of stores and aggregates, through Hummingbird"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        // Tests only: generated payloads for the round-trip properties.
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        // With the `Postgres` trait only.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // With the `Postgres` trait only: TLS settings for PostgresNIO (its own dependency).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // With the `Studio` trait only: the web server, and running it as a service.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // The framework: domain, serialization, ports and in-memory adapters.
        .target(name: "Dugong", dependencies: ["CDugongRandom", .product(name: "Logging", package: "swift-log")]),
        // C shim: random event ids, one getrandom call per 255 (Foundation's UUID() opens a device per id).
        .target(name: "CDugongRandom"),
        // C shims: CRC32C (SSE4.2 with a portable fallback), raw DEFLATE through zlib (format
        // versions 1 to 3), Zstandard through libzstd (version 4 on) and LZ4 blocks through
        // liblz4 (small frames, version 5 on).
        .target(name: "CDugongShims", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("zstd"), .linkedLibrary("lz4")]),
        // The storage engine and its adapters of the Dugong ports.
        .target(name: "DugongStore", dependencies: ["Dugong", "CDugongShims"]),
        // The adapters of the ports on PostgreSQL; empty without the `Postgres` trait.
        .target(
            name: "DugongPostgres",
            dependencies: [
                "Dugong",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["Postgres"])),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Dugong Studio: a web inspector of a store; without the `Studio` trait only its page
        // and JSON answers build (no SwiftNIO).
        .target(
            name: "DugongStudio",
            dependencies: [
                "Dugong",
                "DugongStore",
                // PostgreSQL databases too, with the `Postgres` trait (empty otherwise).
                "DugongPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["Studio"])),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle", condition: .when(traits: ["Studio"])),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["Studio"])),
            ]
        ),
        // Contract suites every adapter of a port runs, and aggregate test helpers.
        .target(
            name: "DugongTesting",
            dependencies: [
                "Dugong",
                // PostgresTestDatabase: with the `Postgres` trait only.
                "DugongPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The bank-account example used by the README, the tests and `dugong demo`.
        .target(name: "DugongExample", dependencies: ["Dugong"]),
        .executableTarget(
            name: "DugongCLI",
            dependencies: [
                "Dugong",
                "DugongStore",
                "DugongExample",
                // `postgres://` stores: with the `Postgres` trait only (empty otherwise).
                "DugongPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                // `dugong studio`: with the `Studio` trait only.
                "DugongStudio",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "DugongTests", dependencies: ["Dugong", "DugongTesting", "DugongExample"]),
        // Runs against a server when DUGONG_POSTGRES_URL is set (tools/test starts one).
        .testTarget(name: "DugongPostgresTests", dependencies: ["DugongPostgres", "Dugong", "DugongStore", "DugongTesting", "DugongExample"]),
        .testTarget(name: "DugongCLITests", dependencies: ["DugongCLI", "DugongStore", "Dugong", "DugongTesting"]),
        // The Studio's answers; with the `Studio` trait its server over HTTP, and the page in
        // Chromium when DUGONG_CHROMEDRIVER names a chromedriver (tools/test installs one).
        .testTarget(name: "DugongStudioTests", dependencies: ["DugongStudio", "DugongStore", "Dugong", "DugongExample", "DugongPostgres", "DugongTesting"]),
        .testTarget(
            name: "DugongStoreTests",
            dependencies: [
                "DugongStore", "CDugongShims", "Dugong", "DugongTesting", "DugongExample",
                // The adapter tests run on PostgreSQL too, with the `Postgres` trait and a server.
                "DugongPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            // Stores of earlier format versions, read by the upgrade tests through #filePath.
            exclude: ["Fixtures"]
        ),
    ]
)
