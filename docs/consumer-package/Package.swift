// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "BankService",
    dependencies: [
        // This repository, checked out beside your package as `dugong` (or, from a git server:
        // .package(url: "<the address you clone it from>", branch: "main")).
        .package(path: "../dugong")
    ],
    targets: [
        .executableTarget(
            name: "BankService",
            dependencies: [
                .product(name: "Dugong", package: "dugong"),       // the framework
                .product(name: "DugongStore", package: "dugong"),  // the embedded storage engine
            ])
    ]
)
