import Dugong
@testable import DugongStore
import Foundation
import Glibc
import Synchronization

/// A disk under a store's directory that keeps apart what was made durable and what was only
/// written, as a power cut would see it. The real files hold what the page cache holds (so the
/// engine's reads and maps work unchanged); the disk keeps, per file, its durable bytes and the
/// writes since its last sync, and per directory the entries made durable by a directory sync.
///
/// - ``crash()`` materializes what a power cut leaves: every unsynced write kept, dropped or torn
///   at 512-byte sectors, applied in any order; unsynced directory operations kept up to a
///   random point (metadata is journaled in order).
/// - Faults while running, chosen from the seed and the operation number, so that a failure
///   replays: failing syncs that mark the pages clean anyway (what Linux does: the data stays
///   readable but never reaches the disk), failing writes, short writes, a full disk (`ENOSPC`
///   from `fallocate` and from writes past a file's end), failing renames and unlinks.
/// Every operation is recorded in ``trace``; a failing test prints it with the seed.
final class SimulatedDisk: FileSystem, @unchecked Sendable {
    // @unchecked: every field is behind `lock`.
    enum PendingWrite: Sendable {
        case write(offset: Int, bytes: [UInt8])
        case extend(size: Int)
        case zero(Range<Int>)
        /// `O_TRUNC` on a file that was there.
        case truncate
    }

    /// A file's content on the disk. @unchecked Sendable: only touched under the disk's lock.
    final class Inode: @unchecked Sendable {
        var durable: [UInt8] = []
        var pending: [PendingWrite] = []
    }

    enum DirectoryOperation: Sendable {
        case link(String, Inode)
        case rename(String, String)
        case remove(String)
    }

    struct Faults: Sendable {
        /// Chance that an `fdatasync`/`fsync` of a file fails (and drops its unsynced writes).
        var failingSync = 0.0
        /// Chance that a `pwrite` fails before writing.
        var failingWrite = 0.0
        /// Chance that a `pwrite` of more than one sector writes only its first sectors and
        /// says so, as POSIX allows; the caller must write the rest.
        var shortWrite = 0.0
        /// Chance that an `fallocate` finds the disk full (`ENOSPC`), and then that a `pwrite`
        /// past the file's end does.
        var fullDisk = 0.0
        /// Chance that a `rename` or an `unlink` fails (`EIO`) without doing anything.
        var failingDirectoryChange = 0.0

        /// These faults with every chance of a failing call `factor` times as high (at most 1).
        func scaled(by factor: Double) -> Faults {
            var faults = self
            faults.failingSync = min(1, failingSync * factor)
            faults.failingWrite = min(1, failingWrite * factor)
            faults.fullDisk = min(1, fullDisk * factor)
            faults.failingDirectoryChange = min(1, failingDirectoryChange * factor)
            return faults
        }
    }

    private struct State: Sendable {
        var names: [String: Inode] = [:]
        /// Open descriptors and the file each one is (renames do not change that).
        var descriptors: [Int32: Inode] = [:]
        var durableNames: [String: Inode] = [:]
        var directoryLog: [DirectoryOperation] = []
        var random: SeededRandom
        var operations = 0
        var crashAt: Int?
        var crashed = false
        var faults = Faults()
        /// How many faults of each kind were injected.
        var injected: [String: Int] = [:]
        var trace: [String] = []
    }

    let root: String
    let seed: UInt64
    private let lock: Mutex<State>

    /// A disk for `root`, which must exist; registered as its file system. Files already in it
    /// (a store copied in) are durable, as after a sync.
    init(root: String, seed: UInt64) {
        self.root = root
        self.seed = seed
        var state = State(random: SeededRandom(seed: seed))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            let path = root + "/" + name
            guard let bytes = try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) else { continue }
            let inode = Inode()
            inode.durable = bytes
            state.names[path] = inode
            state.durableNames[path] = inode
        }
        lock = Mutex(state)
        FileSystems.register(self, for: root)
    }

    func unregister() { FileSystems.unregister(root) }

    /// The disk fails every change from operation number `operation` on (a power cut there).
    func crash(atOperation operation: Int) { lock.withLock { $0.crashAt = operation } }

    func setFaults(_ faults: Faults) { lock.withLock { $0.faults = faults } }

    var operationCount: Int { lock.withLock { $0.operations } }
    var trace: [String] { lock.withLock { $0.trace } }
    var hasCrashed: Bool { lock.withLock { $0.crashed } }
    /// How many faults of each kind were injected so far.
    var injectedFaults: [String: Int] { lock.withLock { $0.injected } }

    /// Counts an operation; throws EIO when the disk is dead (crashed).
    private func begin(_ state: inout State, _ description: @autoclosure () -> String) throws(SystemError) {
        state.operations += 1
        if let crashAt = state.crashAt, state.operations >= crashAt { state.crashed = true }
        if state.trace.count < 100_000 { state.trace.append("\(state.operations) \(description())") }
        if state.crashed { throw SystemError(call: "simulated power cut", path: root, code: EIO) }
    }

    /// The size of the real file open on `descriptor`.
    private static func size(of descriptor: Int32) -> Int {
        var status = stat()
        return fstat(descriptor, &status) == 0 ? Int(status.st_size) : 0
    }

    private func chance(_ probability: Double, _ state: inout State) -> Bool {
        probability > 0 && Double.random(in: 0..<1, using: &state.random) < probability
    }

    /// The file `descriptor` is open on (or, for a name, the file it names).
    private func inode(_ descriptor: Int32, _ path: String, _ state: inout State) -> Inode {
        if let inode = state.descriptors[descriptor] { return inode }
        return inode(path, &state)
    }

    private func inode(_ path: String, _ state: inout State) -> Inode {
        if let inode = state.names[path] { return inode }
        // A file that existed before the disk was attached (or was made outside it).
        let inode = Inode()
        inode.durable = (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
        state.names[path] = inode
        state.durableNames[path] = inode
        return inode
    }

    // MARK: FileSystem

    func write(_ descriptor: Int32, path: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "pwrite \(name(path)) \(offset)+\(bytes.count)")
            if chance(state.faults.failingWrite, &state) {
                state.injected["failed write", default: 0] += 1
                state.trace.append("  -> EIO")
                throw SystemError(call: "pwrite", path: path, code: EIO)
            }
            if state.faults.fullDisk > 0, offset + bytes.count > Self.size(of: descriptor), chance(state.faults.fullDisk, &state) {
                state.injected["full disk", default: 0] += 1
                state.trace.append("  -> ENOSPC")
                throw SystemError(call: "pwrite", path: path, code: ENOSPC)
            }
            // A short write ends at a sector boundary: the disk is taken to write a sector
            // whole or not at all (a crash tears at sectors), and a write within one sector is
            // never split by the kernel either.
            var bytes = bytes
            let (firstBoundary, lastBoundary) = (offset / 512 + 1, (offset + bytes.count - 1) / 512)
            if firstBoundary <= lastBoundary, chance(state.faults.shortWrite, &state) {
                let end = Int.random(in: firstBoundary...lastBoundary, using: &state.random) * 512
                bytes = UnsafeRawBufferPointer(rebasing: bytes[..<(end - offset)])
                state.injected["short write", default: 0] += 1
                state.trace.append("  -> short: \(bytes.count)")
            }
            let written = try POSIXFileSystem.shared.write(descriptor, path: path, bytes, at: offset)
            inode(descriptor, path, &state).pending.append(.write(offset: offset, bytes: Array(bytes.prefix(written))))
            return written
        }
    }

    func synchronize(_ descriptor: Int32, path: String, dataOnly: Bool) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "\(dataOnly ? "fdatasync" : "fsync") \(name(path))")
            let file = inode(descriptor, path, &state)
            if chance(state.faults.failingSync, &state) {
                // Linux after a failed writeback: the pages are marked clean; the data stays
                // readable but will not reach the disk unless written again.
                state.injected["failed sync", default: 0] += 1
                state.trace.append("  -> EIO, \(file.pending.count) writes dropped")
                file.pending.removeAll()
                throw SystemError(call: dataOnly ? "fdatasync" : "fsync", path: path, code: EIO)
            }
            for write in file.pending { Self.apply(write, to: &file.durable) }
            file.pending.removeAll()
        }
    }

    func preallocate(_ descriptor: Int32, path: String, size: Int) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "fallocate \(name(path)) \(size)")
            if chance(state.faults.fullDisk, &state) {
                state.injected["full disk", default: 0] += 1
                state.trace.append("  -> ENOSPC")
                throw SystemError(call: "fallocate", path: path, code: ENOSPC)
            }
            try POSIXFileSystem.shared.preallocate(descriptor, path: path, size: size)
            inode(descriptor, path, &state).pending.append(.extend(size: size))
        }
    }

    func punchHole(_ descriptor: Int32, path: String, range: Range<Int>) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "punch \(name(path)) \(range)")
            try POSIXFileSystem.shared.punchHole(descriptor, path: path, range: range)
            inode(descriptor, path, &state).pending.append(.zero(range))
        }
    }

    func opened(_ descriptor: Int32, path: String, created: Bool, truncated: Bool) {
        lock.withLock { state in
            if created {
                let inode = Inode()
                state.names[path] = inode
                state.directoryLog.append(.link(path, inode))
                if state.trace.count < 100_000 { state.trace.append("   create \(name(path))") }
            }
            let inode = inode(path, &state)
            if truncated {
                // Not durable until a sync of the file, like a write (it was ignored: a file
                // written again after a crash kept its old tail in the simulation).
                inode.pending.append(.truncate)
                if state.trace.count < 100_000 { state.trace.append("   truncate \(name(path))") }
            }
            state.descriptors[descriptor] = inode
        }
    }

    func duplicated(_ descriptor: Int32, as copy: Int32) {
        lock.withLock { state in state.descriptors[copy] = state.descriptors[descriptor] }
    }

    func closed(_ descriptor: Int32) {
        _ = lock.withLock { $0.descriptors.removeValue(forKey: descriptor) }
    }

    func rename(_ from: String, to: String) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "rename \(name(from)) \(name(to))")
            if chance(state.faults.failingDirectoryChange, &state) {
                state.injected["failed rename or unlink", default: 0] += 1
                state.trace.append("  -> EIO")
                throw SystemError(call: "rename", path: from, code: EIO)
            }
            try POSIXFileSystem.shared.rename(from, to: to)
            let moved = inode(from, &state)
            state.names[from] = nil
            state.names[to] = moved
            state.directoryLog.append(.rename(from, to))
        }
    }

    func remove(_ path: String) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "unlink \(name(path))")
            if chance(state.faults.failingDirectoryChange, &state) {
                state.injected["failed rename or unlink", default: 0] += 1
                state.trace.append("  -> EIO")
                throw SystemError(call: "unlink", path: path, code: EIO)
            }
            try POSIXFileSystem.shared.remove(path)
            _ = inode(path, &state)
            state.names[path] = nil
            state.directoryLog.append(.remove(path))
        }
    }

    func synchronizeDirectory(_ path: String) throws(SystemError) {
        try lock.withLock { state throws(SystemError) in
            try begin(&state, "fsync directory \(name(path))")
            for operation in state.directoryLog { Self.apply(operation, to: &state.durableNames) }
            state.directoryLog.removeAll()
        }
    }

    // MARK: The crash

    /// What a power cut leaves: the real directory is rewritten with the durable entries (plus a
    /// random prefix of the unsynced directory operations) and, per file, its durable bytes plus
    /// each unsynced write kept, dropped or torn at 512-byte sectors, and each unsynced extension
    /// kept, dropped or left part way (at a 4 KiB block's end), in a random order. Then the
    /// disk runs again from that state.
    /// - Returns: a description of what was kept, for the failure message.
    @discardableResult
    func materializeCrash() throws -> String {
        try lock.withLock { state in
            var names = state.durableNames
            let keptDirectoryOperations = Int.random(in: 0...state.directoryLog.count, using: &state.random)
            for operation in state.directoryLog.prefix(keptDirectoryOperations) { Self.apply(operation, to: &names) }
            var summary = "kept \(keptDirectoryOperations) of \(state.directoryLog.count) directory operations;"
            var contents: [ObjectIdentifier: [UInt8]] = [:]
            for inode in Set(names.values.map(ObjectIdentifier.init)) {
                let file = names.values.first { ObjectIdentifier($0) == inode }!
                var bytes = file.durable
                var chosen: [PendingWrite] = []
                for write in file.pending {
                    let roll = Double.random(in: 0..<1, using: &state.random)
                    if roll < 0.6 {
                        chosen.append(write)
                    } else if roll < 0.8, case .write(let offset, let data) = write, data.count > 512 {
                        // Torn: some of its sectors.
                        for sector in stride(from: 0, to: data.count, by: 512) where Bool.random(using: &state.random) {
                            let end = min(sector + 512, data.count)
                            chosen.append(.write(offset: offset + sector, bytes: Array(data[sector..<end])))
                        }
                    } else if roll < 0.8, case .extend(let size) = write, size > 4096 {
                        // Part way: `posix_fallocate` grows the size a chunk of blocks at a time
                        // (ext4), so an unsynced extension may be left at any block's end.
                        chosen.append(.extend(size: 4096 * Int.random(in: 1...(size - 1) / 4096, using: &state.random)))
                    }
                }
                chosen.shuffle(using: &state.random)
                for write in chosen { Self.apply(write, to: &bytes) }
                summary += " \(file.pending.count)->\(chosen.count)"
                contents[inode] = bytes
            }
            // Rewrite the directory as the disk now holds it.
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
                try FileManager.default.removeItem(atPath: root + "/" + entry)
            }
            state.names = [:]
            state.durableNames = [:]
            state.descriptors = [:]
            for (path, file) in names where path.hasPrefix(root + "/") {
                let bytes = contents[ObjectIdentifier(file)]!
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                let fresh = Inode()
                fresh.durable = bytes
                state.names[path] = fresh
                state.durableNames[path] = fresh
            }
            state.directoryLog.removeAll()
            state.crashAt = nil
            state.crashed = false
            state.trace.append("--- crash: \(summary)")
            return summary
        }
    }

    private static func apply(_ write: PendingWrite, to bytes: inout [UInt8]) {
        switch write {
        case .write(let offset, let data):
            if bytes.count < offset + data.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
            bytes.replaceSubrange(offset..<offset + data.count, with: data)
        case .extend(let size):
            if bytes.count < size { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
        case .zero(let range):
            let end = min(range.upperBound, bytes.count)
            if range.lowerBound < end { bytes.replaceSubrange(range.lowerBound..<end, with: repeatElement(0, count: end - range.lowerBound)) }
        case .truncate:
            bytes.removeAll()
        }
    }

    private static func apply(_ operation: DirectoryOperation, to names: inout [String: Inode]) {
        switch operation {
        case .link(let path, let inode): names[path] = inode
        case .rename(let from, let to):
            if let inode = names[from] {
                names[from] = nil
                names[to] = inode
            }
        case .remove(let path): names[path] = nil
        }
    }

    private func name(_ path: String) -> String {
        path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
    }
}
