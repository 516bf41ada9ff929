import DugongStore
import Foundation

/// The many-streams figures (DugongStore alone: the targets are about its index):
/// 1,000,000 streams of 5 events, and 10,000,000 events in 1,000 streams. For each: the time an
/// open takes with the saved index (median of 3, each in a fresh child process), and the
/// resident memory it adds (heap, and heap plus mapped pages) after the open and after one read
/// of every stream.
///
///   swift run -c release --package-path Benchmarks DugongBenchmarks --scale [--quick]
enum Scale {
    static let flag = "--scale"
    static let childFlag = "--scale-child"

    struct Shape {
        var name: String
        var streams: Int
        var eventsPerStream: Int
        var commitSize: Int
        var events: Int { streams * eventsPerStream }
    }

    static func run(quick: Bool, root: String) async throws {
        let shapes = quick
            ? [Shape(name: "10,000 streams × 5 events", streams: 10_000, eventsPerStream: 5, commitSize: 5),
               Shape(name: "100,000 events in 1,000 streams", streams: 1000, eventsPerStream: 100, commitSize: 100)]
            : [Shape(name: "1,000,000 streams × 5 events", streams: 1_000_000, eventsPerStream: 5, commitSize: 5),
               Shape(name: "10,000,000 events in 1,000 streams", streams: 1000, eventsPerStream: 10_000, commitSize: 100)]
        print("| shape | open with the saved index (s, median of 3) | heap after open (B/event) | heap + mapped after open and one read per stream (B/event) |")
        print("|---|---|---|---|")
        for shape in shapes {
            let store = root + "/scale-\(shape.streams)"
            let started = Date()
            try await build(shape, at: store)
            FileHandle.standardError.write(Data("\(shape.name): built in \(Int(Date().timeIntervalSince(started))) s\n".utf8))
            var samples: [(open: Double, heap: Int, afterReads: Int)] = []
            for _ in 0..<3 { samples.append(try child(store: store, streams: shape.streams)) }
            let open = samples.map(\.open).sorted()[1]
            let heap = samples.map(\.heap).sorted()[1]
            let afterReads = samples.map(\.afterReads).sorted()[1]
            print(String(
                format: "| %@ | %.3f | %.1f | %.1f |", shape.name, open, Double(heap) / Double(shape.events),
                Double(afterReads) / Double(shape.events)))
            try? FileManager.default.removeItem(atPath: store)
        }
    }

    /// Appends the shape's events round-robin over its streams (durability off: the figures are
    /// about reading), then closes the store, which saves its index.
    private static func build(_ shape: Shape, at path: String) async throws {
        var options = EventLog.Options(createIfMissing: true)
        options.durability = .unsafeNoSync
        let log = try EventLog.open(at: path, options: options)
        let data = Data(#"{"accountId":"acc-1","amount":12,"currency":"EUR","note":"scale"}"#.utf8)
        let rounds = shape.eventsPerStream / shape.commitSize
        var pending: [SentCommit] = []
        for round in 0..<rounds {
            for stream in 0..<shape.streams {
                let events = (0..<shape.commitSize).map { index in
                    NewEvent(type: "Deposited", timestamp: Date(millisecondsSince1970: Int64(round * shape.commitSize + index)), data: data)
                }
                pending.append(try log.send([EventLog.Append(stream: "account/\(stream)", events: events)]))
                if pending.count == 256 {
                    for commit in pending { _ = try await commit.commits() }
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
        for commit in pending { _ = try await commit.commits() }
        log.close()
    }

    /// Runs the child: prints the open's seconds, the anonymous resident bytes it added, and the
    /// anonymous and file-backed bytes added after reading every stream once.
    private static func child(store: String, streams: Int) throws -> (open: Double, heap: Int, afterReads: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = [childFlag, store, String(streams)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard process.terminationStatus == 0, fields.count == 3, let open = Double(fields[0]), let heap = Int(fields[1]),
            let after = Int(fields[2])
        else { throw BenchmarkFailure("scale child failed: \(text)") }
        return (open, heap, after)
    }

    static func runChild(store: String, streams: Int) throws {
        let before = MemoryProbe.residentKilobytes()
        let clock = ContinuousClock()
        var log: EventLog?
        let elapsed = try clock.measure { log = try EventLog.open(at: store) }
        let opened = MemoryProbe.residentKilobytes()
        var read = 0
        for stream in 0..<streams {
            read += try log!.forEachEvent(in: "account/\(stream)", maxCount: 1) { _ in }
        }
        precondition(read == streams, "read \(read) of \(streams) streams")
        let afterReads = MemoryProbe.residentKilobytes()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(seconds, (opened.anonymous - before.anonymous) * 1024,
              (afterReads.anonymous + afterReads.file - before.anonymous - before.file) * 1024)
        log!.close()
    }
}
