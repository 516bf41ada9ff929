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
        FileHandle.standardError.write(Data((String(safe) + "\n").utf8))
    }

    /// Prints `dugong: <message>` on stderr and returns the exit code to throw.
    static func fail(_ message: String, code: Int32 = 1) -> ExitCode {
        error("dugong: " + message)
        return ExitCode(code)
    }

    /// Writes `line` to stdout and flushes it, so that a reader of the pipe sees it at once.
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
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
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(percent)%".utf8))
    }

    /// Clears the bar.
    func finish() {
        guard enabled, lastDrawn >= 0 else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
