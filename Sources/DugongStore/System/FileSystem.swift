import CDugongShims
import Glibc
import Synchronization

/// The calls that change files and directories, or make them durable: the seam where tests put a
/// simulated disk (which records what was synced and decides what a crash keeps). ``File`` and
/// ``Directory`` make every such call through the file system that owns the path; reads,
/// `mmap`, `flock`, `fstat` and listings go to the real files, which a simulated disk keeps as
/// the page cache would.
protocol FileSystem: AnyObject, Sendable {
    /// `pwrite(2)` once; returns the bytes written.
    func write(_ descriptor: Int32, path: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int
    /// `fdatasync(2)` (`dataOnly`) or `fsync(2)`.
    func synchronize(_ descriptor: Int32, path: String, dataOnly: Bool) throws(SystemError)
    /// `posix_fallocate(3)` from 0 to `size`.
    func preallocate(_ descriptor: Int32, path: String, size: Int) throws(SystemError)
    /// `fallocate(2)` punching a hole, keeping the size.
    func punchHole(_ descriptor: Int32, path: String, range: Range<Int>) throws(SystemError)
    /// A file was opened as `descriptor`; `created`: the open made a new directory entry;
    /// `truncated`: it emptied a file that was there (`O_TRUNC`).
    func opened(_ descriptor: Int32, path: String, created: Bool, truncated: Bool)
    /// `copy` was made as another descriptor of the file open as `descriptor` (`dup`): the same
    /// file, whatever its path names now.
    func duplicated(_ descriptor: Int32, as copy: Int32)
    /// `descriptor` was closed.
    func closed(_ descriptor: Int32)
    func rename(_ from: String, to: String) throws(SystemError)
    func remove(_ path: String) throws(SystemError)
    func synchronizeDirectory(_ path: String) throws(SystemError)
}

/// The real system calls.
final class POSIXFileSystem: FileSystem {
    static let shared = POSIXFileSystem()

    func write(_ descriptor: Int32, path: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try retryingOnInterrupt("pwrite", path) { pwrite(descriptor, bytes.baseAddress!, bytes.count, off_t(offset)) }
    }

    func synchronize(_ descriptor: Int32, path: String, dataOnly: Bool) throws(SystemError) {
        if dataOnly {
            try retryingOnInterrupt("fdatasync", path) { fdatasync(descriptor) }
        } else {
            try retryingOnInterrupt("fsync", path) { fsync(descriptor) }
        }
    }

    func preallocate(_ descriptor: Int32, path: String, size: Int) throws(SystemError) {
        let code = posix_fallocate(descriptor, 0, off_t(size))
        guard code == 0 else { throw SystemError(call: "posix_fallocate", path: path, code: code) }
    }

    func punchHole(_ descriptor: Int32, path: String, range: Range<Int>) throws(SystemError) {
        guard dugong_punch_hole(descriptor, Int64(range.lowerBound), Int64(range.count)) != 0 else { return }
        throw SystemError(call: "fallocate", path: path, code: errno)
    }

    func opened(_ descriptor: Int32, path: String, created: Bool, truncated: Bool) {}

    func duplicated(_ descriptor: Int32, as copy: Int32) {}

    func closed(_ descriptor: Int32) {}

    func rename(_ from: String, to: String) throws(SystemError) {
        try retryingOnInterrupt("rename", from) { Glibc.rename(from, to) }
    }

    func remove(_ path: String) throws(SystemError) {
        try retryingOnInterrupt("unlink", path) { unlink(path) }
    }

    func synchronizeDirectory(_ path: String) throws(SystemError) {
        let descriptor = try retryingOnInterrupt("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { Glibc.close(descriptor) }
        try retryingOnInterrupt("fsync", path) { fsync(descriptor) }
    }
}

/// Which file system owns a path: the real one, unless a test registered a simulated disk for
/// a directory (`FileSystems.register(_:for:)`), which then owns everything under it.
enum FileSystems {
    private static let registered = Mutex<[String: any FileSystem]>([:])

    /// The file system of `path`.
    static func owner(of path: String) -> any FileSystem {
        registered.withLock { systems in
            guard !systems.isEmpty else { return POSIXFileSystem.shared }
            var directory = path
            while !directory.isEmpty {
                if let system = systems[directory] { return system }
                guard let slash = directory.lastIndex(of: "/") else { break }
                directory = String(directory[..<slash])
            }
            return POSIXFileSystem.shared
        }
    }

    /// Routes every call on files under `directory` to `system` (tests: a simulated disk).
    static func register(_ system: any FileSystem, for directory: String) {
        registered.withLock { $0[directory] = system }
    }

    static func unregister(_ directory: String) {
        _ = registered.withLock { $0.removeValue(forKey: directory) }
    }
}
