import Glibc

/// The store's write lock: an exclusive `flock` on `dugong.lock` and one on the store's directory
/// (``DirectoryLock``), held while this object lives; and, once a writer's open has made what
/// it recovered durable and recorded it in the head, the writer's mark beside them (an
/// open-file-description lock on byte 0 of the lock file and of the directory) that readers
/// test without taking anything (``writerIsPresent(in:)``). One writer, compaction or
/// upgrade at a time; readers take no lock.
final class StoreLock: Sendable {
    private let file: File
    /// The directory's own lock: kept when the lock file is removed under the writer.
    private let directoryLock: DirectoryLock?

    /// The directory the lock was taken in (device and inode): a writer creates files by
    /// path only while the path still leads there (``Directory/checkStill(_:is:)``).
    let directoryIdentity: [UInt64]?

    private init(_ file: consuming File, directoryLock: DirectoryLock?, directory: String) {
        self.file = file
        self.directoryLock = directoryLock
        directoryIdentity = directoryLock?.identity ?? Directory.identity(of: directory)
    }

    /// Takes the lock of the store in `directory` (creating the lock file).
    /// - Throws: ``StoreError/locked(directory:)`` when another process (or open) holds it.
    static func take(in directory: String) throws -> StoreLock {
        let path = directory + "/" + Layout.lockFileName
        let file = try File(path: path, flags: O_RDWR | O_CREAT)
        guard try file.lockExclusively() else { throw StoreError.locked(directory: directory) }
        // A lock file removed (and perhaps made again) while this open waited for its lock is
        // not the store's lock any more: another process may lock the new one. Locked, then,
        // as it was a moment ago (a caller that waits tries again).
        guard try file.isStill(at: path) else { throw StoreError.locked(directory: directory) }
        // A writer whose lock file was removed still holds the directory.
        switch DirectoryLock.take(directory) {
        case .taken(let lock): return StoreLock(file, directoryLock: lock, directory: directory)
        case .held: throw StoreError.locked(directory: directory)
        case .unsupported: return StoreLock(file, directoryLock: nil, directory: directory)
        }
    }

    /// Marks the writer present: from now on it may write batches a reader must not serve
    /// before the head records them. Set after its open recorded what it recovered (until then
    /// a reader serves what the files hold as the recovery keeps it).
    func markWriter() throws {
        try file.markWriter()
        try directoryLock?.markWriter()
    }

    /// Whether a writer (a writable open, a compaction, an upgrade) has the store in `directory`
    /// open now: tested without taking the lock, so it never makes a writer's open fail. When
    /// it cannot be told (the lock file unreadable, a file system without such locks): `true`.
    /// A writer that closed a moment ago may still be present: a child process its program was
    /// spawning then holds a copy of every descriptor until it starts its program, and with
    /// them the marks (a reader then serves what the head records, as with a writer there).
    static func writerIsPresent(in directory: String) -> Bool {
        let path = directory + "/" + Layout.lockFileName
        if Directory.fileExists(path) {  // a writer creates it before it locks
            guard let file = try? File(path: path, flags: O_RDONLY) else { return true }
            if file.holdsWriterMark() ?? true { return true }
        }
        // The lock file removed under the writer (or made again by another process) took the
        // mark with it: the directory's tells.
        return DirectoryLock.holdsWriterMark(directory)
    }
}
