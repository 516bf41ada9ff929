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

/// With `HARNESS_EVENTS=synthetic`, `append`, `singles`, `ideal-append` and `follow` use the
/// Benchmarks package's events (`SyntheticEvents`: random ids, amounts, users and trace ids)
/// instead of this harness's, whose payloads repeat more and take about half the deflating.
let synthetic = ProcessInfo.processInfo.environment["HARNESS_EVENTS"] == "synthetic"

func event(_ index: Int) -> NewEvent {
    if synthetic {
        var generator = SyntheticEvents(seed: UInt64(index))
        return generator.event(stream: index / 100 % 1000, at: 1_732_000_000_000 + Int64(index))
    }
    return NewEvent(
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
            callgrind_count_until_here()
            withExtendedLifetime(commits) {}  // freed after the count, as the store's input below
            return
        }
        if mode == "fixture" {
            // `fixture DIR`: the stores of Tests/DugongStoreTests/Fixtures/v3-store and v4-store
            // (made once each by the build of that format version; the tests read them with later
            // builds), and beside it, DIR.events.tsv: every event as that build read it back.
            try await writeFixture(at: arguments[2])
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
            callgrind_count_until_here()
            withExtendedLifetime(commits) {}  // the caller's input, freed after the count
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
            callgrind_count_until_here()
            withExtendedLifetime(commits) {}  // the caller's input, freed after the count
        } else if mode == "interleaved" {
            // `interleaved N DIR`: N events in 2-event commits over 100 streams (each stream's
            // events spread over many small frames), then every stream read back with the
            // lending stream read; measure.sh counts the reads only (--toggle-collect).
            // `interleaved N DIR K`: commits of K events instead of 2; `interleaved N DIR K
            // synthetic`: the Benchmarks package's events (`SyntheticEvents`: less repetitive than
            // this harness's payloads, they take twice the inflating).
            let count = Int(arguments[2])!
            let size = arguments.count > 4 ? Int(arguments[4])! : 2
            // HARNESS_STREAMS=K: K streams instead of 100 (the benchmark's 1,000 spreads a
            // stream's frames ten times further apart); HARNESS_READS=R: every stream read R
            // times (a profile under perf of the reads, not of the store's making);
            // HARNESS_SHUFFLE=1 below.
            let streams = Int(ProcessInfo.processInfo.environment["HARNESS_STREAMS"] ?? "") ?? 100
            let reads = Int(ProcessInfo.processInfo.environment["HARNESS_READS"] ?? "") ?? 1
            var synthetic = arguments.count > 5 && arguments[5] == "synthetic" ? SyntheticEvents() : nil
            let events = (0..<count).map { index in
                synthetic?.event(stream: index / size % streams, at: 1_732_000_000_000 + Int64(index)) ?? event(index)
            }
            // HARNESS_REUSE=1 with a store already in DIR: the reads only (two builds counted on
            // the same store).
            if ProcessInfo.processInfo.environment["HARNESS_REUSE"] != "1" || !FileManager.default.fileExists(atPath: arguments[3]) {
                let log = try EventLog.open(at: arguments[3], options: .init(createIfMissing: true))
                for commit in 0..<(count / size) {
                    try await log.append(Array(events[commit * size..<commit * size + size]), to: "s/\(commit % streams)")
                }
                log.close()
            }
            var options = EventLog.Options()
            options.readOnly = true
            let reader = try EventLog.open(at: arguments[3], options: options)
            var total = 0
            // HARNESS_SHUFFLE=1: the streams in a random order (as the benchmark samples them:
            // a stream's frames then share no cache lines with the stream read before).
            var order = Array(0..<streams)
            var state: UInt64 = 0x5EED
            if ProcessInfo.processInfo.environment["HARNESS_SHUFFLE"] == "1" {
                for index in order.indices.reversed() where index > 0 {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    order.swapAt(index, Int((state >> 33) % UInt64(index + 1)))
                }
            }
            // HARNESS_SAMPLE=K: each pass reads the first K streams of the order only (the
            // benchmark samples 200 of its 1,000); HARNESS_TIME=1: each pass's time on stderr.
            let sample = Int(ProcessInfo.processInfo.environment["HARNESS_SAMPLE"] ?? "") ?? streams
            let timed = ProcessInfo.processInfo.environment["HARNESS_TIME"] == "1"
            // HARNESS_SLIDE=1: pass P reads the order's K streams from P × K (others each pass).
            let slide = ProcessInfo.processInfo.environment["HARNESS_SLIDE"] == "1"
            for pass in 0..<reads {
                let start = ContinuousClock.now
                let first = slide ? pass * sample % streams : 0
                for stream in order[first..<min(first + sample, streams)] { total += try readStream(reader, "s/\(stream)") }
                if timed { FileHandle.standardError.write(Data("pass \(pass): \(ContinuousClock.now - start)\n".utf8)) }
            }
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

/// A store with every kind of frame format version 3 writes: commits of 100 events (their
/// frames too large for the dictionary, with continuation records), of 40 (with the segment's
/// dictionary), of 2 and of 1 (small frames with the dictionary), metadata, an event of
/// incompressible bytes, in 32 KiB segments; then each event as read back, one per line:
/// stream, version, position, id, type, milliseconds, data and metadata in base64, tab-separated.
func writeFixture(at directory: String) async throws {
    var options = EventLog.Options(createIfMissing: true)
    options.segmentSize = 32 << 10
    let log = try EventLog.open(at: directory, options: options)
    var generator = SyntheticEvents(seed: 3)
    var time: Int64 = 1_764_547_200_000
    func next(_ stream: Int) -> NewEvent {
        time += 7
        return generator.event(stream: stream, at: time)
    }
    for commit in 0..<6 { try await log.append((0..<100).map { _ in next(commit % 3) }, to: "account/\(commit % 3)") }
    for commit in 0..<6 { try await log.append((0..<40).map { _ in next(10 + commit % 2) }, to: "account/\(10 + commit % 2)") }
    for commit in 0..<150 { try await log.append([next(20 + commit % 25), next(20 + commit % 25)], to: "account/\(20 + commit % 25)") }
    for commit in 0..<30 {
        var event = next(50 + commit % 5)
        event.metadata = Data(#"{"correlationId":"c-\#(commit)","schemaVersion":2}"#.utf8)
        try await log.append([event], to: "account/\(50 + commit % 5)")
    }
    var noise = generator
    let random = Data((0..<600).map { _ in UInt8(truncatingIfNeeded: noise.next()) })
    try await log.append([NewEvent(id: id(1), type: "Noise", timestamp: Date(millisecondsSince1970: time), data: random)], to: "noise")
    log.close()
    var read = EventLog.Options()
    read.readOnly = true
    let reader = try EventLog.open(at: directory, options: read)
    defer { reader.close() }
    var lines = ""
    for event in try reader.readAll() {
        let fields = [
            event.stream, String(event.version), String(event.position), event.id.uuidString, event.type,
            String(event.timestampMilliseconds), event.data.base64EncodedString(), event.metadata.base64EncodedString(),
        ]
        lines += fields.joined(separator: "\t") + "\n"
    }
    try lines.write(toFile: directory + ".events.tsv", atomically: true, encoding: .utf8)
}
