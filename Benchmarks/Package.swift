// swift-tools-version: 6.1
// The benchmarks: DugongStore side by side with SQLite, RocksDB and the ideal log. A package of
// its own so that users of Dugong never resolve benchmark dependencies.
import PackageDescription

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned: read it instead of spelling it.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

let package = Package(
    name: "DugongBenchmarks",
    // With the `Postgres` trait: the PostgreSQL benchmarks (`--postgres`).
    dependencies: [
        .package(path: "..", traits: ["Postgres"]),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CRocksDB", providers: [.apt(["librocksdb-dev"])]),
        // The ideal log: zlib level 1 + CRC-32C + pwrite + fdatasync, no index, no event encoding.
        .target(name: "CIdealLog", linkerSettings: [.linkedLibrary("z")]),
        .executableTarget(
            name: "DugongBenchmarks",
            dependencies: [
                .product(name: "DugongStore", package: root),
                .product(name: "Dugong", package: root),
                .product(name: "DugongPostgres", package: root),
                .product(name: "DugongTesting", package: root),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                "CSQLite", "CRocksDB", "CIdealLog",
            ]
        ),
    ]
)
