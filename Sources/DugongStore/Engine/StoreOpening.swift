import Foundation
import Glibc

/// Opening a store's files, in one place for the writer, read-only readers and compaction:
/// the manifest says which segment files make up the log; missing, replaced and unlisted files
/// are found here; recovery (``Recovery``) then reads the frames. See FORMAT.md §1 and §8.
struct SegmentSet {
    /// The manifest in effect: the one on disk, or (when it is missing or damaged) one
    /// reconstructed from the segment files found.
    var manifest: Manifest
    var segments: [Segment]
    /// Missing files and manifest damage, for ``Recovery/scan(_:from:offset:into:lastBatch:context:)``.
    var context: Recovery.Context
    /// Segment files a crash left out of the manifest (a compaction's old set, a segment
    /// created just before its manifest update) that a writable open removes, but only once its
    /// scan found no damage: until then the old set of a compaction may be the only intact copy
    /// of events (``removeLeftovers(in:)``, only by a caller holding the lock; a reader's list
    /// names what verification warns of).
    var leftovers: [String] = []
    /// Files under a segment's name the manifest does not list whose header cannot be read:
    /// left as they are (an interrupted compaction's output, or a damaged segment that may have
    /// held events), with what opening each as a segment said; verification warns of them.
    var unreadable: [(name: String, reason: String)] = []

    /// Whether the files themselves are in order (no missing file, intact manifest).
    var isIntact: Bool { context.damage.isEmpty && context.missing.isEmpty }

    /// Opens the segment files of `directory`.
    ///
    /// - Parameters:
    ///   - writable: the caller holds the lock and writes: the newest segment is opened for
    ///     writing (extended to its capacity once recovery found the store whole).
    ///   - holdingLock: the caller holds the lock (`nil`: when `writable`): temporary files are
    ///     removed.
    ///   - createWithCapacity: when the directory holds no store, create one (first segment,
    ///     manifest) with this segment capacity; `nil` to refuse.
    /// - Throws: ``StoreError/notAStore(directory:reason:)``, ``StoreError/unsupportedFormat(segment:version:)``,
    ///   ``StoreError/unsupportedFormat(segment:version:)`` for a segment of another format
    ///   version. A segment whose header is damaged is damage in the set's context, as a missing one.
    static func open(
        directory: String, writable: Bool, holdingLock: Bool? = nil, createWithCapacity: Int?, afterReadingManifest: (() -> Void)? = nil
    ) throws -> SegmentSet {
        let locked = holdingLock ?? writable
        let entries = try Directory.entries(of: directory)
        var files: [Layout.SegmentName] = []
        var foreign: [String] = []
        for entry in entries {
            if entry.hasSuffix(Layout.temporarySuffix) {
                if locked { try Directory.remove(directory + "/" + entry) }
            } else if let name = Layout.SegmentName(fileName: entry) {
                files.append(name)
            } else if ![Layout.lockFileName, Layout.manifestName, Layout.headName, Layout.indexName].contains(entry) {
                foreign.append(entry)
            }
        }
        files.sort()
        var context = Recovery.Context()
        let listed: [Manifest.Entry]
        var manifest: Manifest
        let state = try StoreFiles.readManifest(in: directory)
        afterReadingManifest?()
        if case .missing = state, !files.isEmpty || foreign.contains(Layout.legacyCompactionManifestName) {
            try refuseLegacy(directory: directory, files: files)
        }
        switch state {
        case .missing where files.isEmpty:
            guard foreign.isEmpty else { throw notAStore(directory, holding: foreign) }
            if let (evidence, positions) = try lostStore(in: directory) {
                // Not an empty directory: a store whose files were lost (FORMAT.md §1).
                context.damage.append(Damage(
                    segmentName: Layout.manifestName, offset: 0,
                    reason: "the manifest and every segment file are missing, but \(evidence)", positions: positions,
                    concernsTheWholeStore: true))
                return SegmentSet(manifest: Manifest(generation: 0, segments: []), segments: [], context: context)
            }
            guard let capacity = createWithCapacity, writable else {
                return SegmentSet(manifest: Manifest(generation: 0, segments: []), segments: [], context: context)
            }
            return try create(in: directory, capacity: capacity)
        case .missing where isInterruptedCreation(of: files, in: directory):
            // The creation of this store stopped before its manifest (which makes it a store):
            // nothing was ever written to it. Created again by a writer that may create one; no
            // store yet (not damage) for the others.
            guard writable, let capacity = createWithCapacity else {
                return SegmentSet(manifest: Manifest(generation: 0, segments: []), segments: [], context: context)
            }
            try Directory.remove(directory + "/" + files[0].fileName)
            if Directory.fileExists(directory + "/" + Layout.headName) { try Directory.remove(directory + "/" + Layout.headName) }
            return try create(in: directory, capacity: capacity)
        case .missing, .damaged:
            let problem = if case .damaged(let reason) = state { "is damaged (\(reason))" } else { "is missing" }
            context.damage.append(Damage(
                segmentName: Layout.manifestName, offset: 0, reason: "the manifest \(problem); using the segment files found",
                positions: 0..<0, concernsTheWholeStore: true))
            context.segmentsMayFollow = true
            listed = []
            manifest = Manifest(generation: 0, segments: [])
        case .intact(let found):
            listed = found.segments
            manifest = found
        }
        let names = context.damage.isEmpty ? listed.map(\.name) : files.map(\.fileName)
        var segments: [Segment] = []
        var leftovers: [String] = []
        var unreadable: [(name: String, reason: String)] = []
        var missing: [Recovery.LostSegment] = []
        func lost(_ reason: String) -> Recovery.LostSegment { Recovery.LostSegment(file: Layout.manifestName, offset: 0, reason: reason) }
        for (number, name) in names.enumerated() {
            let isLast = number == names.count - 1
            let entry = context.damage.isEmpty ? listed[number] : nil
            guard try Directory.isPresent(directory + "/" + name) else {
                var file = lost("segment file \(name) listed in the manifest is missing")
                file.listed = entry
                missing.append(file)
                continue
            }
            let segment: Segment
            do {
                segment = try Segment.open(directory: directory, name: name, writable: writable && isLast)
            } catch StoreError.corruption(_, let offset, let reason) {
                // Nothing of a segment whose header fails its checks can be trusted: it is
                // damage, as a lost file is, and the other segments stay readable. Named in the
                // segment, where it is (FORMAT.md §3).
                missing.append(Recovery.LostSegment(file: name, offset: offset, reason: "segment header is damaged: \(reason)", listed: entry))
                continue
            } catch let error as SystemError where error.code == ENOENT {
                // Removed since it was found (a reader's caller retries when the manifest changed).
                missing.append(lost("segment file \(name) listed in the manifest is missing"))
                continue
            }
            if context.damage.isEmpty, segment.salt != listed[number].salt {
                missing.append(lost("segment file \(name) is not the segment the manifest lists (another salt)"))
                continue
            }
            if !missing.isEmpty {
                context.missing[segments.count] = missing
                missing = []
            }
            segments.append(segment)
        }
        if !missing.isEmpty { context.missing[segments.count] = missing }
        if context.damage.isEmpty {
            manifest = Manifest(generation: manifest.generation, segments: listed)
            let unlisted = files.map(\.fileName).filter { name in !listed.contains { $0.name == name } }
            if !unlisted.isEmpty {
                let removable = try handleUnlisted(unlisted, in: directory, after: segments.last, context: &context, unreadable: &unreadable)
                if context.damage.isEmpty, context.missing.isEmpty { leftovers = removable }
            }
        } else {
            // Without the manifest, the files found are the log only if each one follows the one
            // before it (its header names the previous salt and the next sequence). Otherwise
            // which of them belong cannot be told (another store's file, a compaction's old or
            // new set beside the other): nothing of them is served.
            if let broken = segments.indices.dropFirst().first(where: { index in
                segments[index].header.previousSalt != segments[index - 1].salt
                    || segments[index].header.sequence != segments[index - 1].header.sequence &+ 1
            }) {
                context.damage.append(Damage(
                    segmentName: segments[broken].name, offset: 0,
                    reason: "without the manifest, the segment files found do not form one log (\(segments[broken].name) does not follow \(segments[broken - 1].name)): which of them belong to the store cannot be told; none is read (put the manifest back, or remove the files that do not belong)",
                    positions: 0..<0, concernsTheWholeStore: true))
                segments = []
            } else if !segments.isEmpty, let (file, salts) = try Self.vouchingSalts(in: directory),
                !segments.contains(where: { salts.contains($0.salt) })
            {
                // One log, but not the store's, as far as the head (or, without one, the index a
                // clean close saved) knows: it names segments none of them is (only a
                // compaction's or an upgrade's switch leaves a head about a segment the set does
                // not hold, and that switch is the manifest's, which is then there). Another
                // store's file put in place of this one's reads as valid.
                context.damage.append(Damage(
                    segmentName: file, offset: 0,
                    reason: "without the manifest, \(file) names segments (salt \(salts.map { String($0, radix: 16) }.joined(separator: ", "))) that none of the segment files found is: which of them belong to the store cannot be told; none is read (put the manifest back, or the files that belong)",
                    positions: 0..<0, concernsTheWholeStore: true))
                segments = []
            }
            manifest = Manifest(generation: 0, segments: segments.map { Manifest.Entry(name: $0.name, salt: $0.salt) })
        }
        return SegmentSet(manifest: manifest, segments: segments, context: context, leftovers: leftovers, unreadable: unreadable)
    }

    /// What names the store's segments when the manifest does not: the intact head's segment,
    /// or without one the segments of an intact index file (a clean close's). With the file.
    private static func vouchingSalts(in directory: String) throws -> (file: String, salts: [UInt64])? {
        if let head = try StoreFiles.readHead(in: directory) { return (Layout.headName, [head.segmentSalt]) }
        if let index = try IndexFile.summary(in: directory), !index.salts.isEmpty { return (IndexFile.name, index.salts) }
        return nil
    }

    /// Removes ``leftovers`` (the caller holds the lock, and its scan of the set found no damage),
    /// each only while the path still leads to the directory `locked` (its identity).
    mutating func removeLeftovers(in directory: String, locked identity: [UInt64]?) throws {
        guard !leftovers.isEmpty else { return }
        for name in leftovers {
            try Directory.checkStill(directory, is: identity)
            try Directory.remove(directory + "/" + name)
        }
        try Directory.synchronize(directory)
        leftovers = []
    }

    /// Opens the segment files as a reader beside a writer: a roll, a compaction or an upgrade
    /// may replace the manifest and remove files while they are opened, so the manifest is read
    /// again afterwards; when it changed (or a listed file vanished), the set is opened anew.
    /// A set whose manifest held still while it was opened is one the writer made; segments
    /// opened stay readable after their files are removed. The head record read meanwhile is in
    /// the set's context.
    static func openForReading(directory: String, afterReadingManifest: (() -> Void)? = nil) throws -> SegmentSet {
        let path = directory + "/" + Layout.manifestName
        let limit = Manifest.maximumSegmentCount * 80
        var attempt = 0
        while true {
            attempt += 1
            let before = try File.contents(of: path, limit: limit)
            let set: SegmentSet
            do {
                set = try open(directory: directory, writable: false, createWithCapacity: nil, afterReadingManifest: afterReadingManifest)
            } catch {
                if attempt < maximumOpenAttempts, try File.contents(of: path, limit: limit) != before { continue }
                throw error
            }
            var result = set
            // The head read between the two reads of an unchanged manifest names one of its
            // segments (a writer lists a segment in the manifest before it names it in the head).
            try result.context.readHints(in: directory, lookingTwice: true)
            if attempt < maximumOpenAttempts, try File.contents(of: path, limit: limit) != before { continue }
            return result
        }
    }

    /// How often a reader opens a segment set again while the manifest keeps changing.
    static let maximumOpenAttempts = 20

    /// A directory that holds other files and none of a store's (so that a writer refuses it
    /// before it makes a lock file there): those files; nil otherwise.
    static func foreignFiles(in directory: String) throws -> [String]? {
        let entries = try Directory.entries(of: directory)
        let storeFiles = [Layout.manifestName, Layout.headName, Layout.indexName, Layout.legacyCompactionManifestName]
        guard !entries.contains(where: { storeFiles.contains($0) || Layout.SegmentName(fileName: $0) != nil }) else { return nil }
        let foreign = entries.filter { $0 != Layout.lockFileName && !$0.hasSuffix(Layout.temporarySuffix) }
        return foreign.isEmpty ? nil : foreign.sorted()
    }

    static func notAStore(_ directory: String, holding foreign: [String]) -> StoreError {
        .notAStore(directory: directory, reason: "it holds other files (\(foreign.prefix(3).joined(separator: ", "))) and no segments")
    }

    /// Whether `directory` holds no store: neither a manifest nor segment files (a lock,
    /// head, index or temporary file may be there), or only the first segment of a creation that
    /// stopped before its manifest (FORMAT.md §1). A directory with other files is not called
    /// empty: the open says what they are.
    static func holdsNoStore(_ directory: String) throws -> Bool {
        let entries = try Directory.entries(of: directory)
        guard !entries.contains(Layout.manifestName) else { return false }
        var files: [Layout.SegmentName] = []
        for entry in entries where !entry.hasSuffix(Layout.temporarySuffix) {
            if let name = Layout.SegmentName(fileName: entry) {
                files.append(name)
            } else if ![Layout.lockFileName, Layout.headName, Layout.indexName].contains(entry) {
                return false
            }
        }
        return files.isEmpty ? try lostStore(in: directory) == nil : isInterruptedCreation(of: files.sorted(), in: directory)
    }

    /// For a directory without manifest and segments: what says a store was there and lost its
    /// files (a head record of events stored, an index file) and the positions lost; nil when
    /// nothing does. A file that cannot be read throws (never "no evidence").
    private static func lostStore(in directory: String) throws -> (evidence: String, positions: Range<UInt64>)? {
        if let head = try StoreFiles.readHead(in: directory), head.nextPosition > 0 {
            return ("the head file says the store held events before position \(head.nextPosition)", 0..<head.nextPosition)
        }
        // Any index file: only a clean close of a store saves one (damaged, it still says so).
        if Directory.fileExists(directory + "/" + Layout.indexName) {
            let next = try IndexFile.summary(in: directory)?.nextPosition ?? 0
            return ("there is an index file, which only a clean close of a store saves", 0..<next)
        }
        return nil
    }

    /// Whether ``lostStore(in:)`` finds evidence, a file it cannot read counting as evidence.
    private static func mayBeALostStore(_ directory: String) -> Bool {
        do { return try lostStore(in: directory) != nil } catch { return true }
    }

    /// Whether `files` are what ``create(in:capacity:)`` leaves when it stops before writing the
    /// manifest: only the first segment, with an intact header of the first segment of a store,
    /// and nothing but zeros after it (not a store whose first frames a zeroed page took), and
    /// nothing else says a store was there (``lostStore(in:)``).
    private static func isInterruptedCreation(of files: [Layout.SegmentName], in directory: String) -> Bool {
        guard files == [Layout.SegmentName(firstPosition: 0, generation: 0)], !mayBeALostStore(directory),
            let file = try? File(path: directory + "/" + files[0].fileName, flags: O_RDONLY),
            let size = try? file.size(), size >= Layout.segmentHeaderSize
        else { return false }
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        guard let read = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }), read >= Layout.segmentHeaderSize,
            let header = try? bytes.withUnsafeBytes({ try SegmentHeader(decoding: $0) }),
            header.firstPosition == 0, header.sequence == 0, header.previousSalt == 0,
            bytes.withUnsafeBytes({ Zeros.areAllZero($0, in: Layout.segmentHeaderSize..<read) })
        else { return false }
        var offset = read
        while offset < size {
            guard let chunk = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: offset) }), chunk > 0,
                bytes.withUnsafeBytes({ Zeros.areAllZero($0, in: 0..<chunk) })
            else { return false }
            offset += chunk
        }
        return true
    }

    /// A new store: the first segment, then the manifest naming it.
    private static func create(in directory: String, capacity: Int) throws -> SegmentSet {
        let name = Layout.SegmentName(firstPosition: 0, generation: 0).fileName
        let header = SegmentHeader(
            firstPosition: 0, capacity: UInt64(capacity), createdMilliseconds: Date.currentMillisecond.millisecondsSince1970,
            salt: SegmentHeader.newSalt(), sequence: 0)
        let segment = try Segment.create(directory: directory, header: header, name: name)
        // The head exists, with a record, before the manifest: a store with a manifest always
        // has one. A new store holds nothing after its header: a clean close in effect, so the
        // first open does not read the preallocated segment to find its end.
        try HeadFile(directory: directory).write(
            HeadRecord(sequence: 1, segmentSalt: header.salt, durableEnd: UInt64(Layout.segmentHeaderSize), nextPosition: 0, nextBatch: 0, cleanClose: true),
            durably: true)
        let manifest = Manifest(generation: 1, segments: [Manifest.Entry(name: name, salt: header.salt)])
        try StoreFiles.writeManifest(manifest, in: directory)
        return SegmentSet(manifest: manifest, segments: [segment], context: Recovery.Context())
    }

    /// Segment files the manifest does not list: what a crash left behind (a segment created
    /// just before its manifest update, holding no frame; the new set of a compaction that did
    /// not commit; the old set of one that did) is returned, for a writable open to remove once
    /// its scan found no damage. A segment that continues the listed ones and holds frames
    /// means the manifest is stale: that is damage, and nothing is removable.
    private static func handleUnlisted(
        _ names: [String], in directory: String, after last: Segment?, context: inout Recovery.Context, unreadable: inout [(name: String, reason: String)]
    ) throws -> [String] {
        var removable: [String] = []
        for name in names {
            let segment: Segment
            do {
                segment = try Segment.open(directory: directory, name: name, writable: false)
            } catch StoreError.unsupportedFormat(_, let version) where version == Layout.legacyFormatVersion {
                removable.append(name)  // a version 1 segment an upgrade replaced
                continue
            } catch {
                // Not a segment this engine could have written, left alone; unless it holds
                // nothing at all (empty or zeros): what a compaction or an upgrade that failed
                // as it created the file (a full disk) or a power cut left of a new segment.
                if (try? File(path: directory + "/" + name, flags: O_RDONLY).holdsOnlyZeros()) == true {
                    removable.append(name)
                } else {
                    unreadable.append((name, "\(error)"))
                }
                continue
            }
            let continuesTheLog = last.map { segment.header.previousSalt == $0.salt } ?? false
            let holdsFrames = segment.withBytes { bytes in
                Recovery.resynchronize(bytes, after: Layout.segmentHeaderSize - 1, salt: segment.salt, in: segment) != nil
            }
            try segment.checkReadable()  // zeros the disk put there do not make it removable
            if continuesTheLog && holdsFrames {
                context.damage.append(Damage(
                    segmentName: name, offset: 0,
                    reason: "segment \(name) continues the log but the manifest does not list it (the manifest is stale)",
                    positions: 0..<0, concernsTheWholeStore: true))
                context.segmentsMayFollow = true
            } else {
                if holdsFrames {
                    context.unlistedFrames.append((name, segment.header.firstPosition, Recovery.eventsEnd(of: segment) ?? segment.header.firstPosition))
                }
                removable.append(name)
            }
        }
        return context.damage.isEmpty ? removable : []
    }

    /// Throws ``StoreError/unsupportedFormat(segment:version:)`` when the store is of format
    /// version 1 (its first segment says so, or a v1 compaction manifest is there).
    private static func refuseLegacy(directory: String, files: [Layout.SegmentName]) throws {
        guard let first = files.first else {
            throw StoreError.unsupportedFormat(segment: Layout.legacyCompactionManifestName, version: 1)
        }
        let file = try File(path: directory + "/" + first.fileName, flags: O_RDONLY)
        var bytes = [UInt8](repeating: 0, count: 10)
        let read = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        let version = bytes.withUnsafeBytes { SegmentHeader.version(of: UnsafeRawBufferPointer(rebasing: $0[0..<read])) }
        if let version, !(Layout.oldestReadableFormatVersion...Layout.formatVersion).contains(version) {
            throw StoreError.unsupportedFormat(segment: first.fileName, version: Int(version))
        }
    }
}
