import Foundation

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let path: String

    init(_ label: String = "store") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("dugong-tests-\(label)-\(UUID().uuidString.prefix(8))").path
    }

    /// Creates the directory (a store's open creates it; other tests need it first).
    func create() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

    /// A path inside the directory.
    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
