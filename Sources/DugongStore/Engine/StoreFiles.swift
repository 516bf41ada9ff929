import Glibc

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
        guard let bytes = try File.contents(of: directory + "/" + Layout.headName, limit: 2 * Layout.headSlotSize) else {
            return nil
        }
        return bytes.withUnsafeBytes { raw in
            let slots = [0, Layout.headSlotSize].compactMap { start -> HeadRecord? in
                guard raw.count >= start + HeadRecord.encodedSize else { return nil }
                return HeadRecord.decode(UnsafeRawBufferPointer(rebasing: raw[start..<start + HeadRecord.encodedSize]))
            }
            return slots.max { $0.sequence < $1.sequence }
        }
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

    /// Writes `record` into its slot (`sequence % 2`), synced only with `durably`.
    func write(_ record: HeadRecord, durably: Bool) throws {
        let offset = Int(record.sequence % 2) * Layout.headSlotSize
        try record.encoded().withUnsafeBytes { try file.write($0, at: offset) }
        if durably { try file.synchronizeData() }
    }
}
