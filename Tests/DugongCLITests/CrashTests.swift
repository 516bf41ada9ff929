import Foundation
import Testing

/// Kills a writer (`dugong import`, which prints one line per durable commit) with SIGKILL at a
/// random moment, again and again, and checks that every commit it acknowledged is in the store,
/// at its positions and versions, and that the store verifies clean.
///
/// Short mode (CI): 5 kills. Long mode, by hand:
///   DUGONG_CRASH_ITERATIONS=300 swift test --filter killedWriters
///
/// A SIGKILL loses what the process had not handed to the kernel; it does not simulate a power
/// failure (which would also drop unsynced page-cache data): that is what the engine's fault
/// tests (failed writes and syncs, torn tails at every byte) cover.
@Suite("Crash safety", .serialized)
struct CrashTests {
    struct Acknowledgement: Decodable, Hashable {
        var stream: String
        var firstVersion: Int
        var lastVersion: Int
        var firstPosition: Int
        var lastPosition: Int
    }

    @Test func killedWritersLoseNoAcknowledgedCommit() async throws {
        let iterations = Int(ProcessInfo.processInfo.environment["DUGONG_CRASH_ITERATIONS"] ?? "") ?? 5
        let store = CLI.storePath("crash")
        defer { try? FileManager.default.removeItem(atPath: store) }
        var acknowledged: [Acknowledgement] = []
        var generator = SystemRandomNumberGenerator()
        // Kills land 5 ms to `window` ms after the start; a busy machine may start the process
        // later than that, so a kill that found no acknowledgement widens the window.
        var window = 60
        for iteration in 0..<iterations {
            let lines = (0..<3000).map { index in
                #"{"stream":"s/\#(index % 7)","type":"T","data":{"iteration":\#(iteration),"index":\#(index),"pad":"\#(String(repeating: "x", count: index % 50))"}}"#
            }
            let writer = try CLI.start(["import", store, "--batch", "\(1 + iteration % 5)", "--acks"], input: lines.joined(separator: "\n"))
            defer { writer.remove() }
            try await Task.sleep(for: .milliseconds(Int.random(in: 5...window, using: &generator)))
            writer.kill()
            let output = writer.result().stdout
            window = output.contains("\n") ? 60 : min(window * 2, 500)
            // The last line may be cut mid-write by the kill: only complete lines count.
            for line in output.split(separator: "\n", omittingEmptySubsequences: true) where output.contains(line + "\n") {
                acknowledged.append(try JSONDecoder().decode(Acknowledgement.self, from: Data(line.utf8)))
            }
            guard FileManager.default.fileExists(atPath: store) else {
                // Killed before it created the store: it cannot have acknowledged anything.
                #expect(acknowledged.isEmpty)
                continue
            }
            let started = Date()
            let verify = try CLI.run(["verify", store])
            if verify.status == 66, verify.stderr.contains("holds no store") {
                // Killed after it made the directory, before the store's first files: no store
                // yet, and nothing acknowledged.
                #expect(acknowledged.isEmpty, "iteration \(iteration): acknowledged without a store")
                continue
            }
            #expect(verify.status == 0, "iteration \(iteration): \(verify.stdout) \(verify.stderr)")
            let took = Date().timeIntervalSince(started)
            #expect(took < 10, "iteration \(iteration): verify took \(took) s: \(verify.stdout)")
        }
        // Every acknowledged event is there, where it was acknowledged.
        let all = try CLI.run(["read-all", store])
        #expect(all.status == 0)
        var stored: [Int: (stream: String, version: Int)] = [:]
        for line in all.lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            stored[object["position"] as! Int] = (object["stream"] as! String, object["version"] as! Int)
        }
        for ack in acknowledged {
            for (offset, position) in (ack.firstPosition...ack.lastPosition).enumerated() {
                let event = stored[position]
                #expect(event?.stream == ack.stream && event?.version == ack.firstVersion + offset, "acknowledged \(ack) is missing or moved")
            }
        }
        #expect(!acknowledged.isEmpty, "the writers acknowledged nothing: the test proves nothing")
        // Versions stay contiguous per stream across all the crashes.
        for stream in Set(stored.values.map(\.stream)) {
            let versions = stored.values.filter { $0.stream == stream }.map(\.version).sorted()
            #expect(versions == Array(1...versions.count), "\(stream)")
        }
    }
}
