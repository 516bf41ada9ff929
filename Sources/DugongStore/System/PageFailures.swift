import CDugongShims
import Glibc
import Synchronization

/// The simulated disk's failing pages (tests): a page of a segment's map made to read as one the
/// disk failed (``MappedRegion/hadUnreadablePage``: marked, then zeros), exactly as the `SIGBUS`
/// handler leaves a page whose fault stays. Only maps of files under a watched directory are
/// touched, so that tests running beside each other are not.
///
/// Costs nothing while no directory is watched: an atomic load when a map is made or removed.
enum PageFailures {
    /// Chooses, for a map of `count` bytes of the file at `path` being made, the offset of a page
    /// to fail at once, or nil.
    typealias Chooser = @Sendable (_ path: String, _ count: Int) -> Int?

    private struct Live {
        var path: String
        var base: UInt
        var count: Int
    }

    private struct State {
        var choosers: [String: Chooser] = [:]
        var live: [Int: Live] = [:]  // by guard slot
    }

    private static let watching = Atomic<Int>(0)
    private static let state = Mutex(State())

    /// Lists the maps of files under `directory` from now on, and fails a page of a new one
    /// wherever `chooser` says. Call ``stopWatching(_:)`` with the same directory.
    static func watch(_ directory: String, chooser: @escaping Chooser = { _, _ in nil }) {
        state.withLock { $0.choosers[prefix(directory)] = chooser }
        watching.add(1, ordering: .sequentiallyConsistent)
    }

    /// Stops ``watch(_:chooser:)`` (again: nothing).
    static func stopWatching(_ directory: String) {
        let watched = state.withLock { state in
            let prefix = prefix(directory)
            state.live = state.live.filter { !$0.value.path.hasPrefix(prefix) }
            return state.choosers.removeValue(forKey: prefix) != nil
        }
        if watched { watching.subtract(1, ordering: .sequentiallyConsistent) }
    }

    /// Fails one page of a live map under `directory`: the `choice`-th page of all their pages
    /// (wrapped around). Returns the file's path and the page's offset, or nil when no map is live.
    @discardableResult
    static func failPage(under directory: String, choice: Int) -> (path: String, offset: Int)? {
        state.withLock { state in
            let prefix = prefix(directory)
            let maps = state.live.filter { $0.value.path.hasPrefix(prefix) }.sorted { $0.key < $1.key }
            let pages = maps.map { ($0.value.count + pageSize - 1) / pageSize }
            let total = pages.reduce(0, +)
            guard total > 0 else { return nil }
            var page = abs(choice % total)
            for (map, count) in zip(maps, pages) {
                if page < count {
                    // The map cannot go away meanwhile: its removal waits for this lock.
                    fail(slot: map.key, base: map.value.base, offset: page * pageSize)
                    return (map.value.path, page * pageSize)
                }
                page -= count
            }
            return nil
        }
    }

    /// Fails the page holding `offset` in every live map of the file at `path` (under a watched
    /// directory). Returns how many maps it failed a page of.
    @discardableResult
    static func failPage(of path: String, at offset: Int) -> Int {
        state.withLock { state in
            let maps = state.live.filter { $0.value.path == path && offset < $0.value.count }
            for (slot, map) in maps { fail(slot: slot, base: map.base, offset: offset / pageSize * pageSize) }
            return maps.count
        }
    }

    /// A map was made (``MappedRegion``'s initializer).
    static func mapped(path: String, base: UnsafeRawPointer, count: Int, slot: Int) {
        guard watching.load(ordering: .sequentiallyConsistent) > 0, slot >= 0 else { return }
        state.withLock { state in
            guard let chooser = state.choosers.first(where: { path.hasPrefix($0.key) })?.value else { return }
            state.live[slot] = Live(path: path, base: UInt(bitPattern: base), count: count)
            if let offset = chooser(path, count), offset >= 0, offset < count {
                fail(slot: slot, base: UInt(bitPattern: base), offset: offset / pageSize * pageSize)
            }
        }
    }

    /// A map is about to be removed (``MappedRegion``'s deinitializer).
    static func unmapping(slot: Int) {
        guard watching.load(ordering: .sequentiallyConsistent) > 0 else { return }
        _ = state.withLock { $0.live.removeValue(forKey: slot) }
    }

    private static func fail(slot: Int, base: UInt, offset: Int) {
        let page = UnsafeRawPointer(bitPattern: base + UInt(offset))
        let failed = dugong_mapping_fail_page(slot, page)
        precondition(failed == 1, "could not fail the page at offset \(offset) of a live map")
    }

    private static func prefix(_ directory: String) -> String { directory.hasSuffix("/") ? directory : directory + "/" }

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
}
