import CDugongShims
import Glibc

/// An open file descriptor, closed when the owner goes away. Every file system call the engine
/// makes on a file goes through here; those that change the file or make it durable go through
/// its ``FileSystem``.
struct File: ~Copyable {
    let descriptor: Int32
    let path: String
    let system: any FileSystem

    /// `open(2)` with `O_CLOEXEC` added.
    init(path: String, flags: Int32, mode: mode_t = 0o644) throws(SystemError) {
        system = FileSystems.owner(of: path)
        let existed = flags & (O_CREAT | O_TRUNC) != 0 && Directory.fileExists(path)
        let created = flags & O_CREAT != 0 && !existed, truncated = flags & O_TRUNC != 0 && existed
        // Without blocking: a FIFO put where a store file belongs made every command hang in
        // `open` (O_NONBLOCK changes nothing for regular files). Only regular files (and
        // directories, whose reads fail with a message) are taken.
        let opened = try retryingOnInterrupt("open", path) { Glibc.open(path, flags | O_CLOEXEC | O_NONBLOCK, mode) }
        let descriptor: Int32
        do {
            descriptor = try Self.aboveStandardStreams(opened, path: path)
        } catch {
            // The open made or emptied the file all the same: its file system is told.
            system.opened(opened, path: path, created: created, truncated: truncated)
            system.closed(opened)
            throw error
        }
        var status = stat()
        if fstat(descriptor, &status) == 0, ![S_IFREG, S_IFDIR].contains(status.st_mode & S_IFMT) {
            _ = Glibc.close(descriptor)
            throw SystemError(call: SystemError.notARegularFile, path: path, code: EINVAL)
        }
        // Cleared again: on a regular file it could still make a call fail with EWOULDBLOCK
        // where it should wait (a file lease held by an NFS or Samba server).
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        self.descriptor = descriptor
        self.path = path
        system.opened(descriptor, path: path, created: created, truncated: truncated)
    }

    /// The lowest number a store file's descriptor takes. In a process that started with
    /// stdin, stdout or stderr closed, a file opened next takes that number, and whatever the
    /// process then writes to the stream (a `print`) would land in the file: a segment, the
    /// head, the manifest. (SQLite keeps its files off these numbers for the same reason.)
    static let lowestDescriptor: Int32 = 3

    /// `descriptor`, or a copy of it at ``lowestDescriptor`` or above (the original closed).
    private static func aboveStandardStreams(_ descriptor: Int32, path: String) throws(SystemError) -> Int32 {
        guard descriptor < lowestDescriptor else { return descriptor }
        defer { _ = Glibc.close(descriptor) }
        return try retryingOnInterrupt("fcntl", path) { fcntl(descriptor, F_DUPFD_CLOEXEC, lowestDescriptor) }
    }

    private init(descriptor: Int32, path: String, system: any FileSystem) {
        self.descriptor = descriptor
        self.path = path
        self.system = system
    }

    /// Another descriptor of the same open file (`fcntl(2)` `F_DUPFD_CLOEXEC`): it reaches the
    /// file even once its name was removed or given to another file.
    func duplicate() throws(SystemError) -> File {
        let copy = try retryingOnInterrupt("fcntl", path) { fcntl(descriptor, F_DUPFD_CLOEXEC, Self.lowestDescriptor) }
        system.duplicated(descriptor, as: copy)
        return File(descriptor: copy, path: path, system: system)
    }

    deinit {
        system.closed(descriptor)
        _ = Glibc.close(descriptor)
    }

    /// The file's size in bytes (`fstat(2)`).
    func size() throws(SystemError) -> Int {
        var status = stat()
        try retryingOnInterrupt("fstat", path) { fstat(descriptor, &status) }
        return Int(status.st_size)
    }

    /// How many names the file has (0 once it was removed while open) and its size (`fstat(2)`).
    func linksAndSize() throws(SystemError) -> (links: Int, size: Int) {
        var status = stat()
        try retryingOnInterrupt("fstat", path) { fstat(descriptor, &status) }
        return (Int(status.st_nlink), Int(status.st_size))
    }

    /// The bytes the file's blocks take on disk (`fstat(2)`'s `st_blocks` × 512): what `du`
    /// counts. Less than ``size()`` where holes were punched.
    func allocatedSize() throws(SystemError) -> Int {
        var status = stat()
        try retryingOnInterrupt("fstat", path) { fstat(descriptor, &status) }
        return Int(status.st_blocks) * 512
    }

    /// Reads up to `buffer.count` bytes at `offset` (`pread(2)`, looping on short reads).
    /// - Returns: the number of bytes read; less than asked only at the end of the file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = try retryingOnInterrupt("pread", path) {
                pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Writes all of `bytes` at `offset` (`pwrite(2)`, looping on short writes). A write that
    /// makes no progress is reported as `ENOSPC` rather than retried forever.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let count = try system.write(
                descriptor, path: path, UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + done)
            guard count > 0 else { throw SystemError(call: "pwrite", path: path, code: ENOSPC) }
            done += count
        }
    }

    /// The whole content of the file at `path`, or `nil` when there is no such file.
    /// - Parameter limit: a larger file throws `EFBIG` instead of being read.
    static func contents(of path: String, limit: Int) throws -> [UInt8]? {
        // Opened without asking first whether it exists: a file removed between the question
        // and the open (a reader beside a writer, or beside another program) is one missing.
        do {
            let file = try File(path: path, flags: O_RDONLY)
            let size = try file.size()
            guard size <= limit else { throw SystemError(call: "read", path: path, code: EFBIG) }
            // Read into uninitialized room: no zeroing first and no copy after (a 46 MB index
            // file was zeroed, read and copied again).
            var failure: SystemError?
            let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
                do throws(SystemError) {
                    initialized = try file.read(into: UnsafeMutableRawBufferPointer(buffer), at: 0)
                } catch {
                    failure = error
                    initialized = 0
                }
            }
            if let failure { throw failure }
            return bytes
        } catch let error as SystemError where error.code == ENOENT && error.call == "open" {
            return nil
        }
    }

    /// Makes the file's data durable (`fdatasync(2)`).
    func synchronizeData() throws(SystemError) {
        try system.synchronize(descriptor, path: path, dataOnly: true)
    }

    /// Makes the file's data and metadata durable (`fsync(2)`).
    func synchronize() throws(SystemError) {
        try system.synchronize(descriptor, path: path, dataOnly: false)
    }

    /// Frees the blocks of `range` without changing the file's size (`fallocate(2)` with
    /// `FALLOC_FL_PUNCH_HOLE`): the range reads as zeros and takes no space. A file that another
    /// process may have mapped must never shrink (a read past its new end is `SIGBUS`); this
    /// gives the space back instead. Where the file system cannot punch holes, zeros are written.
    func punchHole(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        do {
            return try system.punchHole(descriptor, path: path, range: range)
        } catch where error.code == EOPNOTSUPP {
            // Below: zeros written instead.
        }
        // Safety: the buffer is allocated, zeroed and freed here, and only read in between.
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: min(range.count, 1 << 20), alignment: 8)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var offset = range.lowerBound
        while offset < range.upperBound {
            let count = min(zeros.count, range.upperBound - offset)
            try write(UnsafeRawBufferPointer(rebasing: zeros[0..<count]), at: offset)
            offset += count
        }
    }

    /// Reserves blocks so that the file is at least `size` bytes long (`posix_fallocate(3)`),
    /// the new bytes reading as zeros.
    func preallocate(size: Int) throws(SystemError) {
        try system.preallocate(descriptor, path: path, size: size)
    }

    /// Takes an exclusive `flock(2)`, trying for up to about 100 ms (``exclusiveFlock(_:)``).
    /// - Returns: `false` when another open file description keeps holding the lock.
    func lockExclusively() throws(SystemError) -> Bool {
        switch exclusiveFlock(descriptor) {
        case 0: true
        case EWOULDBLOCK: false
        case let code: throw SystemError(call: "flock", path: path, code: code)
        }
    }
}

extension File {
    /// The offset of the first byte at or after `offset` that is not in a hole (`lseek`
    /// `SEEK_DATA`): `Int.max` when only holes (or nothing) follow; nil when it cannot be told.
    func dataStart(atOrAfter offset: Int) -> Int? {
        seek(offset, hole: false)
    }

    /// The offset of the first hole at or after `offset` (`SEEK_HOLE`; the file's end counts as
    /// one): `Int.max` past the file's end; nil when it cannot be told.
    func holeStart(atOrAfter offset: Int) -> Int? {
        seek(offset, hole: true)
    }

    private func seek(_ offset: Int, hole: Bool) -> Int? {
        let found = dugong_seek_data_or_hole(descriptor, Int64(offset), hole ? 1 : 0)
        if found >= 0 { return Int(found) }
        if errno == ENXIO { return .max }  // nothing of that kind after `offset` (past the end)
        return nil
    }

    /// Whether the file is empty or holds only zero bytes, read with `pread` (a mapping of a
    /// hole on a full tmpfs faults). Files over 1 GiB are taken as holding data.
    func holdsOnlyZeros() throws(SystemError) -> Bool {
        let size = try self.size()
        guard size <= 1 << 30 else { return false }
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var offset = 0
        while offset < size {
            let read = try chunk.withUnsafeMutableBytes { buffer in Result { () throws(SystemError) in try self.read(into: buffer, at: offset) } }.get()
            guard read > 0 else { break }
            guard chunk.withUnsafeBytes({ Zeros.areAllZero($0, in: 0..<read) }) else { return false }
            offset += read
        }
        return true
    }

    /// Whether `path` still names this open file (the same device and inode).
    func isStill(at path: String) throws(SystemError) -> Bool {
        var open = stat()
        try retryingOnInterrupt("fstat", self.path) { fstat(descriptor, &open) }
        var named = stat()
        guard stat(path, &named) == 0 else { return false }
        return named.st_dev == open.st_dev && named.st_ino == open.st_ino
    }

    /// Marks this open file as the writer's: an open-file-description write lock on byte 0,
    /// held until the file closes (beside the `flock`, which it does not affect). Readers test
    /// it with ``holdsWriterMark()`` without taking anything. Where the file system cannot
    /// take such locks, nothing is marked (readers then cannot tell, and assume a writer).
    func markWriter() throws(SystemError) {
        while dugong_mark_writer_present(descriptor) != 0 {
            switch errno {
            case EINTR: continue
            case EINVAL, EOPNOTSUPP, ENOSYS: return
            case let code: throw SystemError(call: "fcntl(F_OFD_SETLK)", path: path, code: code)
            }
        }
    }

    /// Whether another open file (in any process, this one included) holds the writer's mark;
    /// `nil` when the file system cannot tell.
    func holdsWriterMark() -> Bool? {
        switch dugong_writer_is_present(descriptor) {
        case 0: false
        case 1: true
        default: nil
        }
    }
}

/// Directory operations: listing, renaming, removing, and making entries durable.
enum Directory {
    /// Creates `path` (and its parents) if missing, and makes each new entry durable by
    /// syncing the directory that holds it.
    static func create(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            if mkdir(prefix, 0o755) == 0 {
                try synchronize(parent)
            } else if errno != EEXIST {
                throw SystemError(call: "mkdir", path: prefix, code: errno)
            }
        }
    }

    /// Whether `path` exists (as anything).
    static func fileExists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    /// Whether `path` exists (as anything): false only when it does not (`ENOENT`).
    /// - Throws: ``SystemError`` when the look itself fails (a name too long, no permission
    ///   to search a directory, an I/O error): that is not a missing file.
    static func isPresent(_ path: String) throws -> Bool {
        var status = stat()
        guard stat(path, &status) != 0 else { return true }
        let code = errno
        guard code == ENOENT else { throw SystemError(call: "stat", path: path, code: code) }
        return false
    }

    /// Replaces the file at `path` with `bytes` atomically: a temporary file is written and
    /// synced, renamed over `path`, and the directory synced. A crash leaves the old file or the
    /// new one, never a mix; a failed write or sync (a full disk) removes the temporary file.
    static func replaceAtomically(_ path: String, with bytes: [UInt8], in directory: String) throws {
        let temporary = path + Layout.temporarySuffix
        let file = try File(path: temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        do {
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            try file.synchronize()
        } catch {
            try? remove(temporary)
            throw error
        }
        try rename(temporary, to: path)
        try synchronize(directory)
    }

    /// What tells one directory from another (device and inode), or nil when `path` cannot
    /// be looked up.
    static func identity(of path: String) -> [UInt64]? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    /// The identity of the directory open as `descriptor` (``identity(of:)``).
    static func identity(ofOpen descriptor: Int32) -> [UInt64]? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    /// Throws unless `path` still leads to the directory whose identity is `opened` (nil: not
    /// known, nothing checked). A writer creates files by path: after the store's directory was
    /// moved (or replaced, a symbolic link repointed, the working directory changed under a
    /// relative path) they would land in another directory, perhaps another store's. Checked
    /// before each file a writer creates or removes; what is left is the moment between the
    /// check and the call.
    static func checkStill(_ path: String, is opened: [UInt64]?) throws(SystemError) {
        guard let opened, identity(of: path) != opened else { return }
        throw SystemError(
            call: "stat (the path no longer leads to the store's directory: it was moved or replaced while the store was open)",
            path: path, code: ESTALE)
    }

    /// Whether `path` exists and is a directory.
    static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Throws when `path` cannot be looked up for another reason than its absence (a parent
    /// it may not search, a loop of symbolic links): such a store is there, not "not found".
    static func checkLookup(_ path: String) throws(SystemError) {
        var status = stat()
        guard stat(path, &status) != 0 else { return }
        let code = errno
        guard code != ENOENT, code != ENOTDIR else { return }
        throw SystemError(call: "stat", path: path, code: code)
    }

    /// The names of the entries of `path`, without `.` and `..`, sorted.
    static func entries(of path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError(call: "opendir", path: path, code: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Makes the directory's entries (creations, renames, removals) durable (`fsync(2)` on it).
    static func synchronize(_ path: String) throws(SystemError) {
        try FileSystems.owner(of: path).synchronizeDirectory(path)
    }

    /// `rename(2)`.
    static func rename(_ from: String, to: String) throws(SystemError) {
        try FileSystems.owner(of: from).rename(from, to: to)
    }

    /// `unlink(2)`.
    static func remove(_ path: String) throws(SystemError) {
        try FileSystems.owner(of: path).remove(path)
    }
}
