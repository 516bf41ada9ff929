import CDugongShims
import Glibc

/// An exclusive `flock(2)` on a directory itself, held while this object lives: the store's
/// write lock beside the one on `dugong.lock` (``StoreLock``). A lock file can be removed under
/// a running writer (a clean-up script taking it for stale), and a second writer would then lock
/// a new file of that name; the directory cannot be replaced under the writer's files, so its
/// lock still keeps the second writer out. A writer's mark (``markWriter()``) goes on it too.
final class DirectoryLock: Sendable {
    private let descriptor: Int32
    private let path: String

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { _ = Glibc.close(descriptor) }

    /// The locked directory's identity (``Directory/identity(of:)``), from its descriptor.
    var identity: [UInt64]? { Directory.identity(ofOpen: descriptor) }

    enum Attempt {
        case taken(DirectoryLock)
        /// Another open file description holds it.
        case held
        /// The directory cannot be opened for it or its file system cannot lock it (NFS locks
        /// need a file open for writing): the lock file's lock is the only one.
        case unsupported
    }

    /// Takes the lock of `directory`, trying for up to about 100 ms (``File/lockExclusively()``).
    static func take(_ directory: String) -> Attempt {
        let descriptor = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return .unsupported }
        switch exclusiveFlock(descriptor) {
        case 0: return .taken(DirectoryLock(descriptor: descriptor, path: directory))
        case EWOULDBLOCK:
            _ = Glibc.close(descriptor)
            return .held
        default:
            _ = Glibc.close(descriptor)
            return .unsupported
        }
    }

    /// Marks the writer present on the directory too (``StoreLock/markWriter()``): an
    /// open-file-description read lock on byte 0, held until this object goes. Where the file
    /// system cannot take it, nothing is marked.
    func markWriter() throws(SystemError) {
        while dugong_mark_directory_writer_present(descriptor) != 0 {
            switch errno {
            case EINTR: continue
            case EINVAL, EOPNOTSUPP, ENOSYS, EBADF, ENOLCK: return
            case let code: throw SystemError(call: "fcntl(F_OFD_SETLK)", path: path, code: code)
            }
        }
    }

    /// Whether a writer's mark is on `directory` (tested, nothing taken); `false` when it
    /// cannot be told.
    static func holdsWriterMark(_ directory: String) -> Bool {
        let descriptor = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { _ = Glibc.close(descriptor) }
        return dugong_directory_writer_is_present(descriptor) == 1
    }
}

/// `flock(descriptor, LOCK_EX | LOCK_NB)`, tried for up to about 100 ms: 0 when taken, else the
/// last `errno` (`EWOULDBLOCK`: another open file description keeps holding it).
///
/// The short wait covers a lock that was just released: a process forked by this one (to run
/// another program) shares the lock until it executes that program and closes its copies of our
/// descriptors, so a close-then-reopen in a process that spawns children can briefly find its
/// own lock held.
func exclusiveFlock(_ descriptor: Int32) -> Int32 {
    var attempts = 0
    while true {
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return 0 }
        let code = errno
        switch code {
        case EINTR: continue
        case EWOULDBLOCK:
            attempts += 1
            if attempts >= 20 { return code }
            usleep(5_000)
        default: return code
        }
    }
}
