import Synchronization

/// Lets one caller at a time run an actor's asynchronous work, which the actor alone does not:
/// it is re-entered at every `await`, so two calls of one method interleave. A pause holds every
/// later caller until ``resume()``.
///
/// Owned by one actor and used only inside it (it is not `Sendable`): each method runs on its
/// owner's isolation, so its state needs no lock. A body must not enter its own gate again (a
/// reader's handler calling its catch-up): it would wait for itself.
final class SerialGate {
    private var busy = false
    /// Whether ``pause()`` holds the gate.
    private(set) var isPaused = false
    /// Callers waiting for the gate or for the work under way to end. All are woken when it
    /// opens; each looks again at what it waits for.
    private var waiting: [Waiter] = []

    /// Runs `body` once no other caller's body runs and the gate is not paused (or at once
    /// when `evenIfPaused`: for the work a pause is made for).
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits (the body does
    ///   not run); what `body` throws.
    func run<T>(
        evenIfPaused: Bool = false, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async throws -> T {
        while busy || (isPaused && !evenIfPaused) { try await wait(isolation: isolation) }
        busy = true
        defer {
            busy = false
            wakeAll()
        }
        return try await body()
    }

    /// Holds every later ``run(evenIfPaused:isolation:_:)``, then returns once the work under
    /// way (if any) has ended, or at once when the task is cancelled. A ``resume()`` made
    /// meanwhile is not lost: the gate is open when this returns then.
    func pause(isolation: isolated (any Actor)? = #isolation) async {
        isPaused = true
        while busy {
            do { try await wait(isolation: isolation) } catch { return }
        }
    }

    /// Lets the held callers run again.
    func resume() {
        isPaused = false
        wakeAll()
    }

    /// Returns when woken; throws `CancellationError` when the task is (or was) cancelled.
    private func wait(isolation: isolated (any Actor)?) async throws {
        let waiter = Waiter()
        waiting.append(waiter)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation(isolation: isolation) { waiter.park($0) }
        } onCancel: {
            waiter.wake(cancelled: true)
        }
    }

    private func wakeAll() {
        let woken = waiting
        waiting = []
        for waiter in woken { waiter.wake(cancelled: false) }
    }
}

/// One waiting caller: its continuation, resumed once, by whichever comes first of the gate's
/// wake-up and the task's cancellation (which runs on any thread: hence the lock).
private final class Waiter: Sendable {
    private enum State {
        case waiting
        case parked(CheckedContinuation<Void, any Error>)
        case woken(cancelled: Bool)
    }

    private let state = Mutex(State.waiting)

    func park(_ continuation: CheckedContinuation<Void, any Error>) {
        let early: Bool? = state.withLock { state in
            switch state {
            case .waiting:
                state = .parked(continuation)
                return nil
            case .woken(let cancelled):
                return cancelled
            case .parked:
                preconditionFailure("a waiter parked twice")
            }
        }
        if let early { Self.resume(continuation, cancelled: early) }
    }

    func wake(cancelled: Bool) {
        let parked: CheckedContinuation<Void, any Error>? = state.withLock { state in
            switch state {
            case .waiting:
                state = .woken(cancelled: cancelled)
                return nil
            case .parked(let continuation):
                state = .woken(cancelled: cancelled)
                return continuation
            case .woken:
                return nil
            }
        }
        if let parked { Self.resume(parked, cancelled: cancelled) }
    }

    private static func resume(_ continuation: CheckedContinuation<Void, any Error>, cancelled: Bool) {
        if cancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
    }
}
