import Synchronization

extension EventLog {
    /// Sends an atomic append to the writer and returns at once, before it is written: await
    /// ``SentCommit/commits()`` for its commits. The appends are checked as ``append(_:)``
    /// checks them (errors found here are thrown now), and commits are written in the order they
    /// are sent, so a producer can pack the next commit while the ones before it are written:
    /// keeping two in flight keeps the writer busy (`dugong import` does).
    ///
    /// A refused commit (a wrong expected version, a tombstoned stream) does not stop the ones
    /// sent after it; a failed write does: the store then refuses everything.
    public func send(_ appends: [Append]) throws(StoreError) -> SentCommit {
        try check(appends)
        let sent = SentCommit()
        // check(_:) ran checkWritable(): a read-only store never gets here.
        writer!.submit(.append(appends, done: sent.complete))
        return sent
    }
}

/// An atomic append sent with ``EventLog/send(_:)``, not necessarily written yet.
public final class SentCommit: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Result<[Commit], StoreError>, Never>?)
        case done(Result<[Commit], StoreError>)
    }

    private let state = Mutex<State>(.waiting(nil))

    init() {}

    /// Called once, on the writer's thread or the syncer's, when the commit is durable or refused.
    @Sendable func complete(_ result: Result<[Commit], StoreError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<[Commit], StoreError>, Never>? in
            guard case .waiting(let waiter) = state else { preconditionFailure("a commit completed twice") }
            state = .done(result)
            return waiter
        }
        waiter?.resume(returning: result)
    }

    /// The commits, one per append in order, once they are durable; throws what ``EventLog/append(_:)``
    /// would have thrown. May be awaited once.
    public func commits() async throws(StoreError) -> [Commit] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[Commit], StoreError>, Never>) in
            let ready = state.withLock { state -> Result<[Commit], StoreError>? in
                switch state {
                case .done(let result):
                    return result
                case .waiting(let other):
                    precondition(other == nil, "a sent commit was awaited twice")
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}
