#if Studio
import Foundation
import Synchronization

/// Where the Studio's requests run (the live tail's excepted): on threads of their own, not
/// Swift's cooperative pool. A request reads the store synchronously (pages faulted in, frames
/// decompressed, a filtered scan of up to 20,000 events), and the cooperative pool has one
/// thread per core: a few large requests at once held every other one, the page's small ones
/// and other tasks of the application that embeds the Studio.
///
/// A fixed set of threads, started once and waiting for work: a read that blocks (a disk that
/// stalls) holds one of them, never the others. (A concurrent dispatch queue was tried first:
/// under load Linux's dispatch ran no more of its work at once than there are cores, blocked
/// or not.) More requests at once than there are threads wait their turn.
final class ReadThreads: TaskExecutor, @unchecked Sendable {
    /// The Studio's: 16 threads, or twice as many as the cooperative pool has (one per core)
    /// on a machine of more than 8 cores, so that more reads than there are cores can stall
    /// and leave threads for the others.
    static let shared = ReadThreads(count: max(16, 2 * ProcessInfo.processInfo.activeProcessorCount))

    /// How many threads run the Studio's requests.
    let count: Int
    /// The threads' identifiers, for ``runsTheCurrentThread``.
    private let threads = Mutex<Set<pthread_t>>([])

    // @unchecked Sendable: `jobs` is read and written only with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var first = 0

    private init(count: Int) {
        precondition(count > 0)
        self.count = count
        for number in 0..<count {
            let thread = Thread { [self] in work() }
            thread.name = "dugong-studio-\(number)"
            thread.start()
        }
    }

    /// Whether the calling code runs on one of these threads.
    var runsTheCurrentThread: Bool { threads.withLock { $0.contains(pthread_self()) } }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Each thread's life: the next job, run, for ever (the executor lives as long as the
    /// process).
    private func work() {
        threads.withLock { _ = $0.insert(pthread_self()) }
        let executor = asUnownedTaskExecutor()
        while true {
            condition.lock()
            while first == jobs.count { condition.wait() }
            let job = jobs[first]
            first += 1
            if first == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                first = 0
            } else if first >= 1024 {
                // (Never drained under steady load: the jobs run are dropped now and then.)
                jobs.removeFirst(first)
                first = 0
            }
            condition.unlock()
            job.runSynchronously(on: executor)
        }
    }
}
#endif
