import Foundation
import Glibc
import Synchronization

/// One segment file, open and mapped. Immutable once sealed; the active (last) segment is
/// written by the writer through ``file`` and read by everyone through ``map``.
final class Segment: @unchecked Sendable {
    // @unchecked: `file` and `map` are immutable owners; `File`'s methods are thread-safe system
    // calls, and the map is read-only.
    let name: String
    let path: String
    let header: SegmentHeader
    // (The map before the file: stored properties go in the order they are declared, and the
    // map's guard against shortened files uses the file's descriptor until the map is gone.)
    let map: MappedRegion
    let file: File
    /// The dictionary records of the segment, by the offset of their frame, ascending, each with
    /// its ``FrameHeader/dictionaryCheck`` (computed once: a CRC of 4 KiB per small frame read was
    /// a tenth of a stream read's work).
    /// (Shared with the segment's maps made anew, ``mappedAnew()``: a dictionary the writer
    /// registers through one is known to the other.)
    private let dictionaryList: DictionaryList

    var capacity: Int { map.count }
    /// The file's size when it was opened, before a writable open extended it.
    let originalSize: Int

    /// Records a dictionary found (or written) in the frame at `offset`; it applies to the
    /// frames after that one.
    func register(dictionary bytes: [UInt8], at offset: Int) {
        dictionaryList.entries.withLock { list in
            precondition(list.last.map { $0.offset < offset } ?? true, "dictionaries are registered in order")
            list.append((offset, bytes, FrameBuilder.check(of: bytes)))
            dictionaryList.generation.add(1, ordering: .releasing)
        }
    }

    /// Forgets the dictionaries registered at `offset` or later (their frames were a torn batch).
    func forgetDictionaries(from offset: Int) {
        dictionaryList.entries.withLock { list in
            list.removeAll { $0.offset >= offset }
            dictionaryList.generation.add(1, ordering: .releasing)
        }
    }

    /// Changes with every dictionary registered or forgotten: an answer of
    /// ``dictionaryInEffect(at:)`` holds while this stays its `generation`.
    var dictionaryGeneration: Int { dictionaryList.generation.load(ordering: .acquiring) }

    /// The dictionary list's identity (shared with this segment's maps made anew).
    var dictionaryListIdentity: ObjectIdentifier { ObjectIdentifier(dictionaryList) }

    /// ``dictionaryAndCheck(before:)``, with the offsets of the frames it is in effect for
    /// (after its own frame, up to and including the next dictionary's frame) and the list's
    /// generation then.
    func dictionaryInEffect(at offset: Int) -> (bytes: [UInt8], check: UInt16, offsets: Range<Int>, generation: Int) {
        dictionaryList.entries.withLock { list in
            let generation = dictionaryList.generation.load(ordering: .relaxed)
            let next = list.firstIndex { $0.offset >= offset } ?? list.endIndex
            let upper = next < list.endIndex ? list[next].offset + 1 : Int.max
            guard next > 0 else { return ([], 0, 0..<upper, generation) }
            let entry = list[next - 1]
            return (entry.bytes, entry.check, (entry.offset + 1)..<upper, generation)
        }
    }

    /// The dictionary in effect for the frame at `offset`: the last one in an earlier frame.
    func dictionary(before offset: Int) -> [UInt8] {
        dictionaryList.entries.withLock { list in list.last { $0.offset < offset }?.bytes ?? [] }
    }

    /// ``dictionary(before:)`` and its ``FrameHeader/dictionaryCheck``.
    func dictionaryAndCheck(before offset: Int) -> (bytes: [UInt8], check: UInt16) {
        dictionaryList.entries.withLock { list in list.last { $0.offset < offset }.map { ($0.bytes, $0.check) } ?? ([], 0) }
    }

    /// Every dictionary registered, by frame offset.
    var dictionaries: [(offset: Int, bytes: [UInt8])] {
        dictionaryList.entries.withLock { $0.map { ($0.offset, $0.bytes) } }
    }

    /// Whether a frame written at the end now would have a dictionary.
    var hasDictionary: Bool { dictionaryList.entries.withLock { !$0.isEmpty } }

    private init(
        name: String, path: String, header: SegmentHeader, file: consuming File, map: consuming MappedRegion, originalSize: Int,
        dictionaries: DictionaryList = DictionaryList()
    ) {
        dictionaryList = dictionaries
        self.originalSize = originalSize
        self.name = name
        self.path = path
        self.header = header
        self.file = file
        self.map = map
    }

    var salt: UInt64 { header.salt }

    /// Opens an existing segment and checks its header.
    ///
    /// Only the file's bytes are mapped (up to its capacity); a writer extends its last segment
    /// with ``extendedToCapacity()`` once recovery has found the store whole.
    ///
    /// - Throws: ``StoreError/unsupportedFormat(segment:version:)`` for a segment of another
    ///   format version, ``StoreError/corruption(segment:offset:reason:)`` for a damaged header.
    static func open(directory: String, name: String, writable: Bool) throws -> Segment {
        let path = directory + "/" + name
        let file = try File(path: path, flags: writable ? O_RDWR : O_RDONLY)
        let size = try file.size()
        var headerBytes = [UInt8](repeating: 0, count: Layout.segmentHeaderSize)
        let read = try headerBytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        let header: SegmentHeader
        do {
            header = try headerBytes.withUnsafeBytes { try SegmentHeader(decoding: UnsafeRawBufferPointer(rebasing: $0[0..<read])) }
        } catch SegmentHeader.Problem.unsupportedVersion(let version) {
            // A version field is believed only when the header's checksum holds: version 1's of
            // its own layout; any other's of this layout, which every later version keeps
            // (FORMAT.md §3). One damaged byte there made the whole store "another format":
            // nothing opened, not even to verify or to copy the rest out.
            let legacy = version == Layout.legacyFormatVersion
            let (end, checksumOffset) = legacy
                ? (Layout.legacySegmentHeaderSize, 60) : (Layout.segmentHeaderSize, Layout.segmentHeaderChecksumOffset)
            if read >= end {
                let intact = headerBytes.withUnsafeBytes { bytes in
                    Checksum.mask(Checksum.crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<checksumOffset])))
                        == UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: checksumOffset, as: UInt32.self))
                }
                guard intact else {
                    throw StoreError.corruption(
                        segment: name, offset: 8, reason: "segment header damaged (its version field says \(version), its checksum fails)")
                }
            }
            throw StoreError.unsupportedFormat(segment: name, version: Int(version))
        } catch {
            throw StoreError.corruption(segment: name, offset: 0, reason: "\(error)")
        }
        if let expected = Layout.SegmentName(fileName: name)?.firstPosition, expected != header.firstPosition {
            throw StoreError.corruption(
                segment: name, offset: 16, reason: "header says first position \(header.firstPosition), file name says \(expected)")
        }
        // Bytes past the capacity were never written by a writer: they are not mapped, and not
        // touched either (nothing is changed before recovery has looked at the store).
        let mapped = min(size, Int(header.capacity))
        let map = try MappedRegion(file: file, count: max(mapped, 1))
        return Segment(name: name, path: path, header: header, file: file, map: map, originalSize: mapped)
    }

    /// This segment at the capacity its header gives, and that size synced, before a writer
    /// puts a frame there: a newest segment shorter than its capacity that holds frames is
    /// damage (a cut), so no power cut may leave one. It is extended and synced even when its
    /// size reads full already: a sync that failed may have left the extension unwritten while
    /// the file's size shows it. Remapped when it was short (the one a compaction or an upgrade
    /// leaves, or a cut one whose damage the caller accepted), sharing the dictionaries;
    /// otherwise itself. Only a writer calls it, once recovery found the store whole (or the
    /// damage accepted): a writable open of a damaged store changes none of its files, and the
    /// scan reads the file at the size it had.
    func extendedToCapacity() throws -> Segment {
        let full = Int(header.capacity)
        try file.preallocate(size: full)
        try file.synchronize()
        guard map.count < full else { return self }
        let file = try file.duplicate()
        let map = try MappedRegion(file: file, count: full)
        assert(map.count == Int(header.capacity), "a writer's segment is mapped to its capacity")
        return Segment(name: name, path: path, header: header, file: file, map: map, originalSize: originalSize, dictionaries: dictionaryList)
    }

    /// Creates a segment crash-safely: a temporary file is preallocated, given its header and
    /// synced, then renamed into place and the directory synced, so that a segment file is never
    /// seen without its header. A failed preallocation, write or sync (a full disk) removes the
    /// temporary file.
    static func create(directory: String, header: SegmentHeader, name: String) throws -> Segment {
        let path = directory + "/" + name
        let temporary = path + Layout.temporarySuffix
        let capacity = Int(header.capacity)
        do {
            let file = try File(path: temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
            do {
                try file.preallocate(size: capacity)
                try header.encoded().withUnsafeBytes { try file.write($0, at: 0) }
                try file.synchronize()
                // Never over a file already there: it may hold events (the callers choose free names).
                guard !Directory.fileExists(path) else {
                    throw StoreError.corruption(segment: name, offset: 0, reason: "a file of this name is in the way of a new segment; it is left as it is")
                }
                try Directory.rename(temporary, to: path)
            } catch {
                try? Directory.remove(temporary)
                throw error
            }
        }
        try Directory.synchronize(directory)
        let file = try File(path: path, flags: O_RDWR)
        let map = try MappedRegion(file: file, count: capacity)
        return Segment(name: name, path: path, header: header, file: file, map: map, originalSize: capacity)
    }

    /// Zeros everything from `offset` to the end (a torn tail), and makes that durable. The
    /// file keeps its size (readers may have it mapped); the blocks are allocated again.
    func zero(from offset: Int) throws {
        precondition(offset >= Layout.segmentHeaderSize && offset <= capacity)
        try file.punchHole(offset..<capacity)
        try file.preallocate(size: capacity)
        try file.synchronize()
    }

    /// Writes `range` again with the bytes it holds now, then syncs: frames that were written
    /// but perhaps never reached the disk (no sync, or a sync that failed and left the pages
    /// marked clean) are made durable before anything is appended after them.
    func makeDurable(_ range: Range<Int>) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= capacity)
        if !range.isEmpty {
            let bytes = withBytes { Array($0[range]) }
            try checkReadable()  // zeros in place of what the disk failed are not written back
            try bytes.withUnsafeBytes { try file.write($0, at: range.lowerBound) }
        }
        try file.synchronizeData()
    }

    /// Throws when another program removed the writer's segment file, or shortened it, since the
    /// writer opened it (the writer keeps the file as long as its capacity and never removes
    /// it): what the writer wrote there is not in the store, so nothing it wrote is acknowledged,
    /// and the writer stops. Checked after each batch is written and synced (an `fstat`).
    func checkStillWritable() throws {
        let (links, size) = try file.linksAndSize()
        // (A link count of 0 confirmed by the path: some FUSE file systems report 0 for files
        // that are there.)
        let named = links > 0 || (try? file.isStill(at: path)) == true
        guard named, size >= capacity else {
            throw StoreError.failed(
                reason: !named
                    ? "segment \(name) was removed by another program while this writer had it open: what it wrote there is not in the store; the writer stops (open the store again)"
                    : "segment \(name) is \(size) bytes, shorter than the \(capacity) this writer keeps it at: another program shortened it, and what was written there is lost; the writer stops (open the store again: verification names the damage)")
        }
    }

    /// The same file (through another descriptor: its name may be gone or another file's by now)
    /// in a new map of the same length, sharing the dictionaries: a map that had a page the disk
    /// failed shows zeros there for good (``MappedRegion/hadUnreadablePage``), a new one reads
    /// the file again. Writes through either go to the same file.
    func mappedAnew() throws -> Segment {
        let file = try file.duplicate()
        let map = try MappedRegion(file: file, count: map.count)
        return Segment(name: name, path: path, header: header, file: file, map: map, originalSize: originalSize, dictionaries: dictionaryList)
    }

    /// ``mappedAnew()`` when this segment's map had a page the disk failed (nil otherwise, or
    /// when it cannot be mapped anew). One load of a process-wide counter while no page ever failed.
    func mappedAnewIfUnreadable() -> Segment? {
        guard MappedRegion.unreadablePages > 0, map.hadUnreadablePage else { return nil }
        return try? mappedAnew()
    }

    /// Throws when a page of this segment's map could not be read (the disk failed it, and the
    /// map shows zeros there): whatever was concluded from the bytes may rest on those zeros.
    /// One load of a process-wide counter while no page ever failed.
    func checkReadable() throws(SystemError) {
        guard MappedRegion.unreadablePages > 0, map.hadUnreadablePage else { return }
        throw SystemError(call: "read of a mapped page", path: path, code: EIO)
    }

    /// Said after damage found in a read: the file is shorter now than what this process
    /// mapped (another program shortened it, or wrote a copy over it in place: the map reads
    /// zeros past the file's end, ``MappedRegion``). Empty otherwise.
    var shortenedNote: String {
        if let size = try? file.size(), size < map.count {
            return " (the file is \(size) bytes now, shorter than the \(map.count) this reader mapped: another program shortened it or wrote over it)"
        }
        if map.wasPatched {
            return " (the file was shorter than this reader mapped while it read it: another program shortened it or wrote over it; open the store again)"
        }
        return ""
    }

    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try map.withBytes(0..<map.count) { bytes in try body(bytes) }
    }

    /// The mapped bytes, for a caller that holds this segment for as long as it uses them (a
    /// read's loop over frames: ``withBytes(_:)``'s closure had the segment retained and
    /// released per frame).
    var bytesWhileHeld: UnsafeRawBufferPointer { map.bytesWhileOwned }
}

/// The dictionary records of a segment, by the offset of their frame, ascending, each with its
/// ``FrameHeader/dictionaryCheck``.
final class DictionaryList: Sendable {
    let entries = Mutex<[(offset: Int, bytes: [UInt8], check: UInt16)]>([])
    /// Bumped under the lock by every change of `entries`.
    let generation = Atomic<Int>(0)
}

extension Segment {
    /// The first nonzero byte of `bytes` (this segment's mapping) in `range`, or
    /// `range.upperBound`, stepping over the file's holes without reading them: they read as
    /// zeros, and reading one through a mapping on tmpfs allocates its pages (a verify
    /// re-inflated every punched tail to the segment's size) and faults when it is full
    /// (`SIGBUS`). Where the file system cannot tell holes (`lseek` `SEEK_DATA`), every byte is read.
    func firstNonzero(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int {
        let upper = min(range.upperBound, bytes.count)
        guard range.lowerBound < upper else { return range.upperBound }
        /// The first nonzero byte of `bytes[from..<to]`, or nil.
        func scan(_ from: Int, _ to: Int) -> Int? {
            let found = Zeros.firstNonzero(in: UnsafeRawBufferPointer(rebasing: bytes[..<to]), from: from)
            return found < to ? found : nil
        }
        // The rest of the page at the start is read as it is: what is nonzero is mostly right
        // there (a scan over garbage asks nothing of the file system); only a run of zeros to
        // the page's end asks where data lies, once per run.
        let pageEnd = min((range.lowerBound / 4096 + 1) * 4096, upper)
        if let found = scan(range.lowerBound, pageEnd) { return found }
        var offset = pageEnd
        while offset < upper {
            guard let data = file.dataStart(atOrAfter: offset) else { return scan(offset, upper) ?? range.upperBound }  // cannot tell
            guard data < upper else { return range.upperBound }  // holes (or the file's end) up to `upper`
            let start = max(data, offset)
            let hole = min(max(file.holeStart(atOrAfter: start) ?? upper, start + 1), upper)
            if let found = scan(start, hole) { return found }
            offset = hole
        }
        return range.upperBound
    }

    /// Whether `bytes[range]` are all zero (holes not read: ``firstNonzero(in:_:)``).
    func areAllZero(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Bool {
        firstNonzero(in: bytes, range) >= range.upperBound
    }
}
