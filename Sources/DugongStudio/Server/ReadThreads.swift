#if Studio
import Dispatch

/// Where the Studio's requests run: on threads of their own, not Swift's cooperative pool.
/// A request reads the store synchronously (pages faulted in, frames decompressed, a filtered
/// scan of up to 20,000 events), and the cooperative pool has one thread per core: a few large
/// requests at once held every other one, the page's small ones and other tasks of the
/// application that embeds the Studio. Dispatch's concurrent queue adds threads while its work
/// blocks.
final class ReadThreads: TaskExecutor, Sendable {
    static let shared = ReadThreads()

    private let queue = DispatchQueue(label: "dugong.studio.requests", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
#endif
