import ArgumentParser
import DugongStore
import Foundation
import Glibc

/// `dugong`: the command-line tool of Dugong for Swift.
@main
struct DugongCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dugong",
        abstract: "Event sourcing for Swift: verify, inspect, move and measure DugongStore stores.",
        discussion: ExitStatus.help,
        version: "0.5.0 (store format version 5; reads 2 to 5)",
        subcommands: [
            Bench.self, Verify.self, Compact.self, Stats.self, Streams.self, Read.self, ReadAll.self, Append.self, Import.self, Export.self,
            DeleteStream.self, TruncateStream.self, TombstoneStream.self, Upgrade.self, Demo.self, StudioCommand.self,
        ]
    )

    /// Fewer file descriptors than this and the tool refuses to start: stdin, stdout and stderr,
    /// the runtime's event loop, a store's lock, directory, head and manifest, with room to spare.
    static let minimumFiles: rlim_t = 16

    /// Less address space than this (`ulimit -v`) and the tool refuses to start: under ~140 MB
    /// the runtime could not make its threads and retried for ever (a hang), and under a few
    /// hundred MB an allocation failed where Swift can only stop the process (a crash); the
    /// store's segments are mapped besides.
    static let minimumAddressSpace: rlim_t = 1 << 30

    /// Names a mistyped command's closest match before the argument parser sees it.
    static func main() async {
        // A standard stream started closed (`>&-`) is opened on /dev/null, read-only: otherwise
        // the next file opened takes its number, and output meant for it goes there (a write
        // to stdout then fails, as it would to the closed stream: status 74). Store files never
        // take these numbers in any case (``File``).
        for stream in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(stream, F_GETFD) == -1 && errno == EBADF {
            let null = Glibc.open("/dev/null", O_RDONLY)
            if null >= 0, null != stream {
                _ = dup2(null, stream)
                _ = Glibc.close(null)
            }
        }
        // A write past the file-size limit (`ulimit -f`) fails with EFBIG, reported as any
        // failed call is, instead of killing the process by SIGXFSZ mid-compaction.
        signal(SIGXFSZ, SIG_IGN)
        // A closed output pipe is an EPIPE that ``Terminal/write(_:to:)`` handles: a reader
        // then ends as SIGPIPE would end it, a writer says what it committed.
        signal(SIGPIPE, SIG_IGN)
        // Every segment of a store is open while it is: take the hard limit of open files, not
        // a soft 1,024 that shuts every command out of a store of ~1,000 segments.
        var files = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
            let soft = files.rlim_cur
            files.rlim_cur = files.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) != 0 {
                // A hard limit above the kernel's fs.nr_open cannot be taken: that bound then.
                let bound = (try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8))
                    .flatMap { rlim_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? soft
                files.rlim_cur = max(soft, min(files.rlim_max, bound))
                _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
            }
        }
        // With a handful of descriptors the runtime's own event loop fails to start (libdispatch
        // ends the process with SIGILL when eventfd fails): refused with a message first.
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < Self.minimumFiles {
            Terminal.error("dugong: this process may open \(files.rlim_cur) files; it needs at least \(Self.minimumFiles) (and one more per segment of the store): raise `ulimit -n`")
            Glibc.exit(ExitStatus.ioFailure.rawValue)
        }
        var space = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &space) == 0, space.rlim_cur != rlim_t.max,
            space.rlim_cur < Self.minimumAddressSpace
        {
            if space.rlim_max == rlim_t.max || space.rlim_max >= Self.minimumAddressSpace {
                space.rlim_cur = space.rlim_max == rlim_t.max ? rlim_t.max : space.rlim_max
                _ = setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &space)
            }
            if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &space) == 0, space.rlim_cur != rlim_t.max,
                space.rlim_cur < Self.minimumAddressSpace
            {
                Terminal.error(
                    "dugong: this process may use \(space.rlim_cur >> 20) MiB of address space; it needs at least \(Self.minimumAddressSpace >> 20) MiB (its threads, and a store's segments, which it maps): raise `ulimit -v`")
                Glibc.exit(ExitStatus.ioFailure.rawValue)
            }
        }
        // Names are bytes of UTF-8: an argument that is not would be changed (to U+FFFD) and
        // name another stream.
        for index in 1..<Int(CommandLine.argc) {
            guard let argument = CommandLine.unsafeArgv[index], String(validatingCString: argument) == nil else { continue }
            Terminal.error("dugong: argument \(index) is not valid UTF-8")
            Glibc.exit(ExitStatus.usage.rawValue)
        }
        // An argument like `-dash` (a store or stream named so) is taken by the argument parser
        // for bundled short flags, and one of them, `-h`, printed the help with exit status 0:
        // an append that wrote nothing said it succeeded (a black-box review). dugong has no
        // short option but `-h`, so such an argument before `--` is refused, with the way to
        // give it. (A dash and a digit is left to the parser: a negative number or year.)
        for argument in CommandLine.arguments.dropFirst().prefix(while: { $0 != "--" }) {
            let characters = Array(argument.unicodeScalars.prefix(2))
            guard characters.count == 2, characters[0] == "-", characters[1] != "-", !("0"..."9").contains(characters[1]),
                argument.unicodeScalars.count > 2
            else { continue }
            Terminal.error(
                "dugong: '\(argument)' is not an option (options are spelled --name; -h alone asks for help); a store or stream whose name begins with '-' goes after `--`, as in `dugong append -- \(argument) STREAM`, and an option's value so as --name=\(argument)")
            Glibc.exit(ExitStatus.usage.rawValue)
        }
        // (`dugong help X` too: the argument parser prints the general help for an unknown X,
        // with exit status 0.)
        let arguments = CommandLine.arguments.dropFirst()
        let named = arguments.first == "help" ? arguments.dropFirst().first : arguments.first
        if let first = named, !first.hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName } + (named == arguments.first ? ["help"] : [])
            if !names.contains(first) {
                let closest = names.min { distance(first, $0) < distance(first, $1) }
                let hint = closest.flatMap { distance(first, $0) <= 2 ? "; did you mean '\($0)'?" : nil } ?? ""
                Terminal.error("dugong: no command '\(first)'\(hint) (`dugong --help` lists them)")
                Glibc.exit(ExitStatus.usage.rawValue)
            }
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as DugongStore.SystemError {
            // A failed system call no command turned into a message of its own (a compaction on
            // a full disk, a follower's store directory removed): status 74, as the table says.
            Terminal.error("dugong: \(error)\(StoreAccess.hint(for: error))")
            Glibc.exit(ExitStatus.ioFailure.rawValue)
        } catch {
            // The argument parser's own messages start "Error:"; every message of the tool
            // starts "dugong:" (help and --version go to stdout with status 0).
            let status = exitCode(for: error)
            var message = fullMessage(for: error)
            if message.hasPrefix("Error: ") { message = "dugong: " + message.dropFirst("Error: ".count) }
            if status == .success {
                if !message.isEmpty { Terminal.emit(message) }
            } else if !message.isEmpty {
                Terminal.error(message)
            }
            Glibc.exit(status.rawValue)
        }
    }

    /// The edit distance between two names (insertions, deletions, substitutions).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}
