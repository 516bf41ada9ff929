import Glibc

/// The store's write lock: an exclusive `flock` on `dugong.lock`, held while this object lives.
/// One writer, compaction or upgrade at a time; readers take no lock.
final class StoreLock: Sendable {
    private let file: File

    private init(_ file: consuming File) { self.file = file }

    /// Takes the lock of the store in `directory` (creating the lock file).
    /// - Throws: ``StoreError/locked(directory:)`` when another process (or open) holds it.
    static func take(in directory: String) throws -> StoreLock {
        let file = try File(path: directory + "/" + Layout.lockFileName, flags: O_RDWR | O_CREAT)
        guard try file.lockExclusively() else { throw StoreError.locked(directory: directory) }
        return StoreLock(file)
    }
}
