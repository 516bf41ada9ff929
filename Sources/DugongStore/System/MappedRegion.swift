import Glibc

/// A read-only, shared memory map of a file's first `count` bytes, unmapped when the owner goes
/// away. Pages the writer fills later through `pwrite` become visible through the map (Linux's
/// page cache is unified).
struct MappedRegion: ~Copyable {
    private let base: UnsafeRawPointer
    let count: Int

    /// `mmap(2)` of `count` bytes of `file` from offset 0.
    init(file: borrowing File, count: Int) throws(SystemError) {
        precondition(count > 0)
        let address = mmap(nil, count, PROT_READ, MAP_SHARED, file.descriptor, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError(call: "mmap", path: file.path, code: errno)
        }
        base = UnsafeRawPointer(address)
        self.count = count
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), count) }

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
