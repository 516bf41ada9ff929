import Glibc
import Synchronization

/// Reading and writing the store's two small metadata files, the manifest and the head, through
/// the system layer.
enum StoreFiles {
    /// What the manifest file holds: nothing (no file), a manifest, or a reason it is unusable.
    enum ManifestState {
        case missing
        case intact(Manifest)
        case damaged(String)
    }

    static func readManifest(in directory: String) throws -> ManifestState {
        // 64 bytes per segment at most: more is not a manifest this engine wrote.
        guard let bytes = try File.contents(of: directory + "/" + Layout.manifestName, limit: Manifest.maximumSegmentCount * 80) else {
            return .missing
        }
        switch Manifest.decode(bytes) {
        case .success(let manifest): return .intact(manifest)
        case .failure(let problem): return .damaged(problem.description)
        }
    }

    /// Replaces the manifest atomically (the commit point of a new segment and of a compaction).
    static func writeManifest(_ manifest: Manifest, in directory: String) throws {
        try Directory.replaceAtomically(directory + "/" + Layout.manifestName, with: manifest.encoded(), in: directory)
    }

    /// The head record with the highest sequence among the intact slots, or `nil`.
    static func readHead(in directory: String) throws -> HeadRecord? {
        let path = directory + "/" + Layout.headName
        // Opened without asking first whether it exists: a head removed between the question
        // and the open is a lost head, as one missing before, not an error.
        do {
            let file = try File(path: path, flags: O_RDONLY)
            // Only the two slots are read: a longer file is damage that verification reports.
            var bytes = [UInt8](repeating: 0, count: 2 * Layout.headSlotSize)
            let read = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            bytes.removeLast(bytes.count - read)
            return bytes.withUnsafeBytes { newestRecord(in: $0) }
        } catch let error as SystemError where error.code == ENOENT && error.call == "open" {
            return nil
        }
    }

    /// The record with the highest sequence among the intact slots of a head file's `bytes`.
    private static func newestRecord(in bytes: UnsafeRawBufferPointer) -> HeadRecord? {
        let slots = [0, Layout.headSlotSize].compactMap { start -> HeadRecord? in
            guard bytes.count >= start + HeadRecord.encodedSize else { return nil }
            return HeadRecord.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<start + HeadRecord.encodedSize]))
        }
        return slots.max { $0.sequence < $1.sequence }
    }
}

extension StoreFiles {
    /// Replaces a head file that verification would call damaged (another size, bytes after a
    /// record, a damaged slot: a hint file gone wrong, which recovery does without) by a whole
    /// one holding `record` (the record in effect; nil: none), in its slot and, one sequence
    /// earlier, in the other, so that both slots hold records as after two writes.
    static func rewriteHead(in directory: String, keeping record: HeadRecord?) throws {
        var bytes = [UInt8](repeating: 0, count: 2 * Layout.headSlotSize)
        if let record {
            var records = [record]
            if record.sequence >= 1 {
                var earlier = record
                earlier.sequence -= 1
                records.append(earlier)
            }
            for record in records {
                let start = Int(record.sequence % 2) * Layout.headSlotSize
                bytes.replaceSubrange(start..<start + HeadRecord.encodedSize, with: record.encoded())
            }
        }
        try Directory.replaceAtomically(directory + "/" + Layout.headName, with: bytes, in: directory)
    }

    /// How long a reader waits before it looks again at a head file found wrong: 20 ms. (The
    /// fuzz target, whose stores have no writer, sets 0: it opened ~30 inputs a second.)
    static let headLookAgainMicroseconds = Atomic<UInt32>(20_000)

    /// What is wrong with the head file, for verification: each slot must be all zeros (never
    /// written) or an intact record followed by zeros; the file must exist and be 1024 bytes.
    ///
    /// With `lookingTwice` (a reader, which takes no lock: a writer may be writing a slot as it
    /// is read), a file found wrong is read again 20 ms later, and what that look finds counts:
    /// a slot really damaged is damaged in both.
    static func headProblems(in directory: String, lookingTwice: Bool) -> [(offset: Int, message: String)] {
        let problems = headProblems(in: directory)
        guard lookingTwice, !problems.isEmpty else { return problems }
        usleep(headLookAgainMicroseconds.load(ordering: .relaxed))
        return headProblems(in: directory)
    }

    private static func headProblems(in directory: String) -> [(offset: Int, message: String)] {
        let path = directory + "/" + Layout.headName
        guard let bytes = try? File.contents(of: path, limit: 1 << 20) else {
            return [(0, "the head file is missing")]
        }
        var problems: [(Int, String)] = []
        // Every record was written to slot `sequence mod 2`: once the sequence passed 1, both
        // slots held records, so a slot of zeros then is a lost write.
        let newest = bytes.withUnsafeBytes { newestRecord(in: UnsafeRawBufferPointer(rebasing: $0.prefix(2 * Layout.headSlotSize))) }
        if newest == nil {
            // Every open for writing, compaction and upgrade writes a record.
            problems.append((0, "the head file holds no intact record"))
        }
        if let newest, newest.sequence >= 2 {
            let other = Int((newest.sequence + 1) % 2) * Layout.headSlotSize
            if bytes.count < other + HeadRecord.encodedSize
                || bytes.withUnsafeBytes({ Zeros.areAllZero($0, in: other..<other + HeadRecord.encodedSize) })
            {
                problems.append((other, "head slot at offset \(other) lost its record"))
            }
        }
        if bytes.count != 2 * Layout.headSlotSize {
            problems.append((0, "the head file is \(bytes.count) bytes, not \(2 * Layout.headSlotSize)"))
        }
        bytes.withUnsafeBytes { raw in
            for start in [0, Layout.headSlotSize] where start < raw.count {
                let slot = UnsafeRawBufferPointer(rebasing: raw[start..<min(start + Layout.headSlotSize, raw.count)])
                if Zeros.areAllZero(slot, in: 0..<slot.count) { continue }
                let record = UnsafeRawBufferPointer(rebasing: slot[0..<min(HeadRecord.encodedSize, slot.count)])
                if HeadRecord.decode(record) == nil {
                    problems.append((start, "head slot at offset \(start) is damaged"))
                } else if !Zeros.areAllZero(slot, in: HeadRecord.encodedSize..<slot.count) {
                    problems.append((start + HeadRecord.encodedSize, "nonzero bytes after the head record at offset \(start)"))
                }
            }
        }
        return problems
    }
}

/// The head file, open for writing by the store's writer. See ``HeadRecord``.
final class HeadFile: Sendable {
    private let file: File
    private let directory: String

    /// Opens (creating it when missing) the head file of `directory`.
    init(directory: String) throws {
        let path = directory + "/" + Layout.headName
        let existed = Directory.fileExists(path)
        file = try File(path: path, flags: O_RDWR | O_CREAT)
        self.directory = directory
        if !existed {
            try file.preallocate(size: 2 * Layout.headSlotSize)
            try file.synchronize()
            try Directory.synchronize(directory)
        }
    }

    /// Writes `record` into its slot (`sequence % 2`), synced only with `durably`. Not inlined,
    /// so that tools/callgrind can measure what the mark costs per group commit.
    @inline(never)
    func write(_ record: HeadRecord, durably: Bool) throws {
        let offset = Int(record.sequence % 2) * Layout.headSlotSize
        try record.encoded().withUnsafeBytes { try file.write($0, at: offset) }
        if durably { try file.synchronizeData() }
    }
}
