import CCallgrind
import CIdealLog
import DugongStore
import Foundation

// A synchronous harness for callgrind (tools/callgrind/measure.sh): `append N DIR` appends N
// events in 100-event commits to 1,000 streams; `singles N DIR` N one-event commits, 64 in flight; `replay DIR` reads every event in log order
// (lent: `forEachEvent`; `replay-copies DIR` with `readAll`);
// `follow K DIR` follows K one-event commits with a read-only reader; `ideal-append N FILE` and
// `ideal-replay FILE` do the same appends and replay with the ideal log (each event's fields
// packed as ideal_log.h says).
// Public API only, so that the same file measures older versions of the engine too.
func id(_ index: Int) -> UUID {
    UUID(uuid: (UInt8(index & 255), UInt8((index >> 8) & 255), UInt8((index >> 16) & 255), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))
}

func event(_ index: Int) -> NewEvent {
    NewEvent(
        id: id(index),
        type: "MoneyDeposited", timestamp: Date(timeIntervalSince1970: 1_700_000_000 + Double(index) / 1000),
        data: payloads[index % payloads.count], metadata: metadata)
}

/// 1,000 distinct payloads made before anything is counted (each event reuses one: repeats lie
/// 170 KB apart, beyond DEFLATE's window), so that the instructions per event are the engine's,
/// not the formatting of its input (which was 7,000 of the 18,500 counted per appended event).
let payloads = (0..<1000).map { index in
    Data(#"{"accountId":"acc-\#(index)","amount":\#(index % 997),"currency":"EUR","note":"deposit number \#(index * 7919) of the benchmark workload","tags":["a","b"]}"#.utf8)
}
let metadata = Data(#"{"schemaVersion":1}"#.utf8)

@main
struct Harness {
    /// Synchronous: the main thread waits on a semaphore (valgrind cannot follow the main
    /// thread parked by an async main).
    static func main() {
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { try await run() } catch { print("error: \(error)") }
            done.signal()
        }
        done.wait()
    }

    @inline(never)
    static func readStream(_ log: EventLog, _ stream: String) throws -> Int {
        var bytes = 0
        let count = try log.forEachEvent(in: stream) { bytes += $0.dataCount }
        return count + bytes * 0
    }

    @inline(never)
    static func follow(_ reader: EventLog, next: inout UInt64) throws {
        try reader.refresh()
        for event in try reader.readAll(from: next) { next = event.position + 1 }
    }

    static func run() async throws {
        let arguments = CommandLine.arguments
        let mode = arguments[1]
        if mode == "ideal-append" {
            let count = Int(arguments[2])!
            guard let log = ideal_log_create(arguments[3], 64 << 20) else { throw POSIXError(.EIO) }
            // The events' fields packed as ideal_log.h says, made before anything is counted
            // (the bound is the log's work, not the packing of its input).
            let commits = (0..<(count / 100)).map { commit in
                var bytes: [UInt8] = []
                var lengths: [Int] = []
                let stream = Array("s/\(commit % 1000)".utf8)
                for index in commit * 100..<commit * 100 + 100 {
                    let event = event(index)
                    let start = bytes.count
                    bytes.append(UInt8(stream.count))
                    bytes += stream
                    bytes.append(UInt8(event.type.utf8.count))
                    bytes += event.type.utf8
                    withUnsafeBytes(of: event.id.uuid) { bytes += $0 }
                    withUnsafeBytes(of: Int64(event.timestamp.timeIntervalSince1970 * 1000).littleEndian) { bytes += $0 }
                    for field in [event.data, event.metadata] {
                        withUnsafeBytes(of: UInt32(field.count).littleEndian) { bytes += $0 }
                        bytes += field
                    }
                    lengths.append(bytes.count - start)
                }
                return (bytes, lengths)
            }
            callgrind_count_from_here()
            for (bytes, lengths) in commits {
                guard ideal_log_append(log, bytes, lengths, lengths.count, 1) == 0 else { throw POSIXError(.EIO) }
            }
            ideal_log_close(log)
            return
        }
        if mode == "ideal-replay" {
            var bytes = 0
            print(ideal_log_replay(arguments[2], &bytes))
            return
        }
        if mode == "append" {
            let count = Int(arguments[2])!
            // The input made before anything is counted, as for the ideal log (and the store
            // opened after: a thread started before the counts are zeroed gets some of its later
            // instructions charged to pthread's start_thread).
            let commits = (0..<(count / 100)).map { commit in
                (stream: "s/\(commit % 1000)", events: (0..<100).map { event(commit * 100 + $0) })
            }
            callgrind_count_from_here()
            let log = try EventLog.open(at: arguments[3], options: .init(createIfMissing: true))
            for commit in commits { try await log.append(commit.events, to: commit.stream) }
            log.close()
        } else if mode == "singles" {
            // `singles N DIR`: N one-event commits to 1,000 streams, sent 64 at a time (what 64
            // concurrent writers hand the writer: group commits of 64 one-event appends).
            let count = Int(arguments[2])!
            let commits = (0..<count).map { (stream: "s/\($0 % 1000)", events: [event($0)]) }
            callgrind_count_from_here()
            let log = try EventLog.open(at: arguments[3], options: .init(createIfMissing: true))
            for group in stride(from: 0, to: commits.count, by: 64) {
                let sent = try commits[group..<min(group + 64, commits.count)].map { commit in
                    try log.send([EventLog.Append(stream: commit.stream, events: commit.events)])
                }
                for commit in sent { _ = try await commit.commits() }
            }
            log.close()
        } else if mode == "interleaved" {
            // `interleaved N DIR`: N events in 2-event commits over 100 streams (each stream's
            // events spread over many small frames), then every stream read back with the
            // lending stream read; measure.sh counts the reads only (--toggle-collect).
            // `interleaved N DIR K`: commits of K events instead of 2; `interleaved N DIR K
            // synthetic`: the Benchmarks package's events (`SyntheticEvents`: less repetitive than
            // this harness's payloads, they take twice the inflating).
            let count = Int(arguments[2])!
            let size = arguments.count > 4 ? Int(arguments[4])! : 2
            var synthetic = arguments.count > 5 && arguments[5] == "synthetic" ? SyntheticEvents() : nil
            let events = (0..<count).map { index in
                synthetic?.event(stream: index / size % 100, at: 1_732_000_000_000 + Int64(index)) ?? event(index)
            }
            let log = try EventLog.open(at: arguments[3], options: .init(createIfMissing: true))
            for commit in 0..<(count / size) {
                try await log.append(Array(events[commit * size..<commit * size + size]), to: "s/\(commit % 100)")
            }
            log.close()
            var options = EventLog.Options()
            options.readOnly = true
            let reader = try EventLog.open(at: arguments[3], options: options)
            var total = 0
            for stream in 0..<100 { total += try readStream(reader, "s/\(stream)") }
            reader.close()
            print(total)
        } else if mode == "follow" {
            // `follow K DIR`: a reader beside a writer of the same process; the writer makes K
            // one-event commits and after each the reader refreshes and reads what is new.
            // measure.sh collects only inside refresh and readAll (--toggle-collect).
            let count = Int(arguments[2])!
            var options = EventLog.Options()
            options.readOnly = true
            let reader = try EventLog.open(at: arguments[3], options: options)
            let writer = try EventLog.open(at: arguments[3])
            var next = reader.headPosition
            for commit in 0..<count {
                try await writer.append([event(commit)], to: "s/\(commit % 10)")  // streams both stores have
                try follow(reader, next: &next)
            }
            writer.close()
            reader.close()
            print(next)
        } else {
            var options = EventLog.Options()
            options.readOnly = true
            let log = try EventLog.open(at: arguments[2], options: options)
            var next: UInt64 = 0
            var total = 0
            var bytes = 0
            if mode == "replay-copies" {
                while let last = try log.readAll(from: next, maxCount: 4096).last {
                    total += Int(last.position + 1 - next)
                    next = last.position + 1
                }
            } else {
                // The lending read, as the ideal log's replay: each event looked at once, its
                // data's bytes counted.
                while true {
                    let after = try log.forEachEvent(from: next, maxCount: 4096) { event in
                        total += 1
                        bytes += event.dataCount
                    }
                    if after == next { break }
                    next = after
                }
            }
            log.close()
            print(total, bytes)
        }

    }
}
