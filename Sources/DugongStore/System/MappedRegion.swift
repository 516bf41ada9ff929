import CDugongShims
import Glibc

/// A read-only, shared memory map of a file's first `count` bytes, unmapped when the owner goes
/// away. Pages the writer fills later through `pwrite` become visible through the map (Linux's
/// page cache is unified).
///
/// Guarded against files shortened under it: another program may truncate a segment file, or
/// write a copy over it in place, and a read through a map past its file's end would end the
/// process with `SIGBUS`. The map is registered with the shims' `SIGBUS` handler, which maps a
/// page of zeros there instead (only past the file's current end): the read finds zeros where
/// a frame was, and its checksum fails (``StoreError/corruption(segment:offset:reason:)``).
/// Such a map is ``wasPatched`` for good: it must be mapped anew to show the file again.
/// A page the file has that faults three times in a row (the disk's error) gets zeros too, and
/// the map is ``hadUnreadablePage``: those zeros are not the file's bytes, and the engine fails
/// with an I/O error wherever it would otherwise act on them.
struct MappedRegion: ~Copyable {
    private let base: UnsafeRawPointer
    let count: Int
    private let guardSlot: Int

    /// `mmap(2)` of `count` bytes of `file` from offset 0.
    init(file: borrowing File, count: Int) throws(SystemError) {
        precondition(count > 0)
        let address = mmap(nil, count, PROT_READ, MAP_SHARED, file.descriptor, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError(call: "mmap", path: file.path, code: errno)
        }
        base = UnsafeRawPointer(address)
        self.count = count
        guardSlot = dugong_mapping_register(address, count, file.descriptor)
        PageFailures.mapped(path: file.path, base: base, count: count, slot: guardSlot)
    }

    deinit {
        PageFailures.unmapping(slot: guardSlot)
        dugong_mapping_unregister(guardSlot)
        munmap(UnsafeMutableRawPointer(mutating: base), count)
    }

    /// Whether a read past the file's end got a page of zeros in this map (the file was
    /// shortened under it): those pages no longer show the file, even once it is whole again.
    var wasPatched: Bool { dugong_mapping_was_patched(guardSlot) != 0 }

    /// How many pages of zeros this process got in place of pages past a shortened file's end.
    static var pagesReadPastTheEnd: Int { dugong_mapping_zero_pages() }

    /// Whether a page of this map that the file has could not be read (the disk failed it):
    /// the map shows zeros there, for good.
    var hadUnreadablePage: Bool { dugong_mapping_was_unreadable(guardSlot) != 0 }

    /// How many pages of zeros this process got in place of pages the disk failed.
    static var unreadablePages: Int { dugong_mapping_unreadable_pages() }

    /// Drops the pages holding `range` from this process's page tables (`madvise(2)`
    /// `MADV_DONTNEED`), for bytes that were copied out and are not needed again soon: they stop
    /// counting in the process's resident memory. Safe at any time for this read-only shared
    /// map of a file: the page cache keeps the pages, and a later access (a concurrent reader's
    /// too) maps them again with the same bytes. Best effort: a failure changes nothing.
    func releasePages(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = max(0, range.lowerBound) / page * page
        let end = min((range.upperBound + page - 1) / page * page, (count + page - 1) / page * page)
        guard start < end else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    /// Asks the processor to load the cache lines of `range` (clamped to the map) ahead of a read
    /// that will need them: a read of many small frames spread through a segment otherwise
    /// waits for memory at each one's first byte. A hint only: it never faults or reads.
    func prefetch(_ range: Range<Int>) {
        let end = min(range.upperBound, count)
        var line = max(range.lowerBound, 0) & ~63
        while line < end {
            dugong_prefetch(base + line)
            line += 64
        }
    }

    /// The whole map's bytes, valid while its owner keeps it: for a caller that holds the
    /// owner (a segment) across the use, where a closure would cost a retain and a release.
    var bytesWhileOwned: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// The mapped bytes `range`, valid only inside `body`.
    ///
    /// Safety: the map lives as long as `self`, which is borrowed for the call, and the range is
    /// checked against the mapping's length, so the pointer never outlives or overruns the map.
    func withBytes<R, E: Error>(
        _ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range \(range) outside map of \(count) bytes")
        return try body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }
}
