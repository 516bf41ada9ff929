import Foundation
import Glibc
import Synchronization

/// A store directory a command makes for itself in the temporary directory (`bench`, and
/// `demo` without `--store`) and removes when it ends: when it returns or throws, and also when
/// SIGINT, SIGTERM or SIGHUP ends the process, or a reader closes its output
/// (``Terminal/write(_:to:)``), which skip every `defer`.
final class ScratchDirectory: Sendable {
    /// The directory's path (made by the store's open; not yet existing here).
    let path: String

    private struct State {
        /// The paths of the scratch directories not yet removed.
        var live: Set<String> = []
        /// The signal sources, made with the first scratch directory.
        var sources: [any DispatchSourceSignal] = []
    }

    private static let state = Mutex(State())

    /// A new directory name `<prefix>-XXXXXXXX` in the temporary directory (`TMPDIR`).
    /// `catchingInterrupts` false leaves SIGINT and SIGTERM to a command that handles them
    /// itself and then unwinds (the Studio's server, `demo --studio`): with these sources made
    /// first, the Studio's own never fired, whether these were cancelled or not (observed
    /// with this libdispatch), and Ctrl-C no longer stopped it. SIGHUP is caught either way.
    /// A signal the process inherited as ignored (`nohup`, a background job of a script)
    /// stays ignored.
    init(prefix: String, catchingInterrupts: Bool = true) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        self.path = path
        Self.state.withLock { state in
            if state.sources.isEmpty { state.sources = Self.catchSignals(catchingInterrupts ? [SIGINT, SIGTERM, SIGHUP] : [SIGHUP]) }
            state.live.insert(path)
        }
        // A closed output pipe then fails the write (EPIPE), and Terminal.write removes the
        // directory before it ends the process by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Removes the directory and everything in it.
    func remove() {
        Self.state.withLock { _ = $0.live.remove(path) }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Removes every scratch directory not yet removed (before the process ends without
    /// unwinding).
    static func removeAll() {
        let paths = state.withLock { state in
            defer { state.live.removeAll() }
            return state.live
        }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    /// One source per signal not already ignored: each removes the scratch directories, then
    /// ends the process by the signal's default action.
    private static func catchSignals(_ numbers: [Int32]) -> [any DispatchSourceSignal] {
        numbers.filter { number in
            var current = sigaction()
            sigaction(number, nil, &current)
            // The handler field is a union of two function pointers; SIG_IGN is the value 1.
            return unsafeBitCast(current.__sigaction_handler, to: Int.self) != 1
        }.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                ScratchDirectory.removeAll()
                // libdispatch blocks a signal it has a source for: unblocked on this thread, the
                // signal raised again takes its default action and ends the process with it.
                signal(number, SIG_DFL)
                var signals = sigset_t()
                sigemptyset(&signals)
                sigaddset(&signals, number)
                pthread_sigmask(SIG_UNBLOCK, &signals, nil)
                raise(number)
            }
            source.resume()
            return source
        }
    }
}
