import Foundation

// The package's tests launch processes (the `dugong` tool, shells, chromedriver, PostgreSQL's
// tools) from one test process that, while tests run side by side, holds over a thousand open
// files (each open store holds its lock, head and segment files). swift-corelibs-foundation's
// `Process.run()` on Linux (the Swift 6.3 toolchains) lists /proc/self/fd and copies 256 bytes of
// each entry's name field whatever the entry's length (swift-corelibs-foundation pull request
// 5472): with about 1,350 files open glibc's 32 KiB directory buffer is full, its last entry ends
// near the buffer's end, and when that is the end of mapped memory the copy crashes the test
// process (seen once in CI, at 1,358 open files). Not a test's concern, and not one of the
// engine's (it launches no process): a launch waits while that many files are open. Briefly:
// the wait blocks its thread, most often one of the few that run the tests (a wait of a minute
// below 900 files starved the tests that would close theirs: the suite stopped moving).
package extension Process {
    /// `run()`, once fewer than ``fewOpenFiles`` files are open in this process (waiting at most
    /// five seconds, then launching anyway).
    func runWhenFewFilesAreOpen() throws {
        let deadline = Date().addingTimeInterval(5)
        while Self.openFiles() >= Self.fewOpenFiles, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        try run()
    }

    /// Below the ~1,350 entries that fill glibc's directory buffer. `tools/test` runs at most 24
    /// tests at once (`SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH`): at most ~330 files open
    /// (measured), launches never wait. Without that limit Swift Testing starts every test at
    /// once, the count varied from ~1,250 to over 1,300 between runs, and launches that waited
    /// here (5 s each) slowed the suite to a crawl: run the test binary by hand with the limit.
    static let fewOpenFiles = 1_300

    /// This process's open files (FileManager lists a directory without the over-read).
    static func openFiles() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }
}
