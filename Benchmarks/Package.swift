// swift-tools-version: 6.1
// The benchmarks: DugongStore side by side with SQLite, RocksDB and the ideal log. A package of
// its own so that users of Dugong never resolve benchmark dependencies.
import PackageDescription

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned: read it instead of spelling it.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

let package = Package(
    name: "DugongBenchmarks",
    // The PostgreSQL benchmarks (`--postgres`) with this package's `Postgres` trait only, so
    // that the usual build (tools/test's) compiles no SwiftNIO:
    //   swift run -c release --package-path Benchmarks --traits Postgres DugongBenchmarks --postgres
    traits: [.trait(name: "Postgres", description: "DugongPostgres against a plain INSERT on a local server")],
    dependencies: [
        .package(path: "..", traits: [.trait(name: "Postgres", condition: .when(traits: ["Postgres"]))]),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CRocksDB", providers: [.apt(["librocksdb-dev"])]),
        // The ideal log: Zstandard level −1 (DugongStore's codec) + CRC-32C + pwrite + fdatasync, no
        // index, no event encoding.
        .target(name: "CIdealLog", linkerSettings: [.linkedLibrary("zstd")]),
        .executableTarget(
            name: "DugongBenchmarks",
            dependencies: [
                .product(name: "DugongStore", package: root),
                .product(name: "Dugong", package: root),
                .product(name: "DugongPostgres", package: root, condition: .when(traits: ["Postgres"])),
                .product(name: "DugongTesting", package: root, condition: .when(traits: ["Postgres"])),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                "CSQLite", "CRocksDB", "CIdealLog",
            ]
        ),
    ]
)
