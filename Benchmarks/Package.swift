// swift-tools-version: 6.1
// The benchmarks: DugongStore side by side with SQLite, RocksDB and the ideal log. A package of
// its own so that users of Dugong never resolve benchmark dependencies.
import PackageDescription

let package = Package(
    name: "DugongBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CRocksDB", providers: [.apt(["librocksdb-dev"])]),
        // The ideal log: zlib level 1 + CRC-32C + pwrite + fdatasync, no index, no event encoding.
        .target(name: "CIdealLog", linkerSettings: [.linkedLibrary("z")]),
        .executableTarget(
            name: "DugongBenchmarks",
            dependencies: [
                .product(name: "DugongStore", package: "main"),
                .product(name: "Dugong", package: "main"),
                "CSQLite", "CRocksDB", "CIdealLog",
            ]
        ),
    ]
)
