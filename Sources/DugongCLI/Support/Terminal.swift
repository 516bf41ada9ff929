import ArgumentParser
import Foundation
import Glibc

/// Writing to stderr, failing with a message, and a progress bar shown only on a terminal.
enum Terminal {
    /// Writes `line` to stderr, control characters other than line breaks and tabs escaped:
    /// messages quote stream names and types, which may hold any of them (an escape sequence
    /// would reach the terminal).
    static func error(_ line: String) {
        var safe = String.UnicodeScalarView()
        for scalar in line.unicodeScalars {
            if scalar != "\n", scalar != "\t", scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) {
                safe.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                safe.append(scalar)
            }
        }
        write(String(safe) + "\n", to: STDERR_FILENO)
    }

    /// "1 version", "2 versions": a count and its noun, plural unless the count is 1.
    static func count(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

    /// Prints `dugong: <message>` on stderr and returns the exit code to throw.
    static func fail(_ message: String, code: Int32 = 1) -> ExitCode {
        error("dugong: " + message)
        return ExitCode(code)
    }

    /// Writes `line` to stdout at once, so that a reader of the pipe sees it.
    static func emit(_ line: String) {
        write(line + "\n", to: STDOUT_FILENO)
    }

    /// Set once a command may have written to a store: output that cannot be written then
    /// ends it with status 74 and a message that says so, also when the reader went away
    /// (a writer killed by SIGPIPE said nothing of the commit it had made).
    nonisolated(unsafe) static var mayHaveWritten = false

    /// Writes `text` whole to a standard stream. A reader that went away (a closed pipe) ends
    /// a reading command as a pipe's SIGPIPE does; any other failure (a full disk), or any
    /// failure of a writing command, ends it with status 74 and a message: output is never
    /// lost without a word.
    static func write(_ text: String, to descriptor: Int32) {
        var text = text
        text.withUTF8 { bytes in
            var done = 0
            while done < bytes.count {
                var most = bytes.count - done
                if StopSignals.isDeferring, descriptor == STDOUT_FILENO {
                    StopSignals.waitUntilWritable(descriptor)
                    // At most what a pipe that polls writable takes without blocking.
                    most = min(most, Int(PIPE_BUF))
                }
                let count = Glibc.write(descriptor, bytes.baseAddress! + done, most)
                if count > 0 {
                    done += count
                    continue
                }
                let code = errno
                if count < 0, code == EINTR { continue }
                ScratchDirectory.removeAll()
                if code == EPIPE, !mayHaveWritten {
                    signal(SIGPIPE, SIG_DFL)
                    raise(SIGPIPE)
                }
                if descriptor != STDERR_FILENO {
                    let reason = String(cString: strerror(code))
                    let written = mayHaveWritten ? " (what was committed before it stays committed: `dugong read` shows it)" : ""
                    _ = "dugong: cannot write the output: \(reason)\(written)\n".withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                }
                Glibc.exit(ExitStatus.ioFailure.rawValue)
            }
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(STDERR_FILENO) == 1
    private var lastDrawn = -1

    init(_ label: String) { self.label = label }

    /// Shows `done` of `total` (drawn at most once per percent).
    func update(_ done: Int, of total: Int) {
        guard enabled, total > 0 else { return }
        let percent = min(100, done * 100 / total)
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let filled = percent * 30 / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        Terminal.write("\r\(label) [\(bar)] \(percent)%", to: STDERR_FILENO)
    }

    /// Clears the bar.
    func finish() {
        guard enabled, lastDrawn >= 0 else { return }
        Terminal.write("\r\u{1B}[K", to: STDERR_FILENO)
    }
}

/// SIGINT and SIGTERM for a command that stops only between whole lines of output (a
/// follower) or of input (an import): recorded when they arrive, and acted on where it is safe, with their default
/// action then (the shell sees the usual status: 130, 143). A wait in `usleep` ends at once.
enum StopSignals {
    nonisolated(unsafe) private static var received: Int32 = 0
    /// Whether ``deferred()`` was called: stdout is then written in steps that a signal can end.
    nonisolated(unsafe) private(set) static var isDeferring = false

    /// Records SIGINT and SIGTERM from now on instead of ending the process at once (one that
    /// the process was started with ignored, as a shell's background job is, stays ignored).
    static func deferred() {
        isDeferring = true
        for number in [SIGINT, SIGTERM] {
            var current = sigaction()
            sigaction(number, nil, &current)
            if unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in StopSignals.received = number }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0  // no SA_RESTART: a wait ends at the signal
            sigaction(number, &action, nil)
        }
    }

    /// The signal received since ``deferred()`` ("SIGINT", "SIGTERM"), if any.
    static var receivedName: String? {
        switch received {
        case 0: nil
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(received)"
        }
    }

    /// Returns once `descriptor` takes a write without blocking. A reader that stops reading
    /// (and keeps its end open) would hold a blocked write, and the process, for ever: once a
    /// signal has come, the write is waited for 5 s more, then the process ends by the signal.
    static func waitUntilWritable(_ descriptor: Int32) {
        var signalled: ContinuousClock.Instant?
        var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        while poll(&ready, 1, 100) <= 0 {
            guard let name = receivedName else { continue }
            let since = signalled ?? ContinuousClock.now
            signalled = since
            if ContinuousClock.now - since > .seconds(5) {
                Terminal.error("stopped by \(name): the output was not read for 5 s, and what was left of it is not written")
                endIfReceived()
            }
        }
    }

    /// Ends the process by the signal received, if any, as its default action would have.
    static func endIfReceived() {
        let number = received
        guard number != 0 else { return }
        signal(number, SIG_DFL)
        // To the process (`raise` is the calling thread's, and a concurrency thread may block
        // the signal: it stayed pending), then the status the shell gives a signal's end.
        kill(getpid(), number)
        for _ in 0..<100 { usleep(10_000) }
        exit(128 + number)
    }
}
