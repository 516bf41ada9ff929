/// Lets one caller at a time run an actor's asynchronous work, which the actor alone does not:
/// it is re-entered at every `await`, so two calls of one method interleave. A pause holds every
/// later caller until ``resume()``.
///
/// Owned by one actor and used only inside it (it is not `Sendable`): each method runs on its
/// owner's isolation, so its state needs no lock.
final class SerialGate {
    private var busy = false
    /// Whether ``pause()`` holds the gate.
    private(set) var isPaused = false
    /// Callers waiting for the gate or for the work under way to end. All are woken when it
    /// opens; each looks again at what it waits for.
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` once no other caller's body runs and the gate is not paused (or at once
    /// when `evenIfPaused`: for the work a pause is made for).
    func run<T>(
        evenIfPaused: Bool = false, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async throws -> T {
        while busy || (isPaused && !evenIfPaused) { await wait(isolation: isolation) }
        busy = true
        defer {
            busy = false
            wakeAll()
        }
        return try await body()
    }

    /// Holds every later ``run(evenIfPaused:isolation:_:)``, then returns once the work under
    /// way (if any) has ended. A ``resume()`` made meanwhile is not lost: the gate is open when
    /// this returns then.
    func pause(isolation: isolated (any Actor)? = #isolation) async {
        isPaused = true
        while busy { await wait(isolation: isolation) }
    }

    /// Lets the held callers run again.
    func resume() {
        isPaused = false
        wakeAll()
    }

    private func wait(isolation: isolated (any Actor)?) async {
        await withCheckedContinuation(isolation: isolation) { waiting.append($0) }
    }

    private func wakeAll() {
        let woken = waiting
        waiting = []
        for caller in woken { caller.resume() }
    }
}
