import Foundation

/// Runs `body` on a thread of its own and waits for it without holding a thread.
///
/// Long synchronous work (a damage loop, a reader refreshing in a tight loop) must not run on
/// the cooperative threads the tests share: there are as many as cores (two here), and two
/// such tests held both for minutes, starving every other test's async work (a Studio request
/// timed out after 60 s waiting for a thread).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
