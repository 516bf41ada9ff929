import Foundation

/// One system's results in one repetition.
struct Repetition: Codable, Sendable {
    var system: String
    var repetition: Int
    var results: [Scenario: Double]
}

/// The Markdown table and the JSON of a run.
struct Report {
    let runs: [Repetition]
    let systems: [String]
    let size: RunSize
    let started: Date
    let mappedPerEvent: Double

    /// The median of a system's repetitions for a scenario.
    func median(_ system: String, _ scenario: Scenario) -> Double? {
        let values = runs.filter { $0.system == system }.compactMap { $0.results[scenario] }.sorted()
        guard !values.isEmpty else { return nil }
        return values.count % 2 == 1 ? values[values.count / 2] : (values[values.count / 2 - 1] + values[values.count / 2]) / 2
    }

    static func format(_ value: Double?, _ scenario: Scenario) -> String {
        guard let value else { return "n/a" }
        if scenario.higherIsBetter { return value >= 1000 ? String(format: "%.0fk", value / 1000) : String(format: "%.0f", value) }
        return String(format: "%.1f", value)
    }

    /// A performance target: DugongStore's value over (or under) a peer's, times a factor.
    struct Target {
        var scenario: Scenario
        var peer: String
        var factor: Double
        var text: String
    }

    static let targets = [
        Target(scenario: .appendHundred, peer: "SQLite", factor: 1.5, text: "append, 100-event commits ≥ 1.5× SQLite"),
        Target(scenario: .appendHundred, peer: "RocksDB", factor: 1.4, text: "append, 100-event commits ≥ 1.4× RocksDB"),
        Target(scenario: .appendHundred, peer: "ideal log", factor: 0.8, text: "append, 100-event commits ≥ 80 % of the ideal log"),
        Target(scenario: .appendThousand, peer: "SQLite", factor: 2, text: "append, 1,000-event commits ≥ 2× SQLite"),
        Target(scenario: .appendThousand, peer: "ideal log", factor: 0.8, text: "append, 1,000-event commits ≥ 80 % of the ideal log"),
        Target(scenario: .singleEventWriters, peer: "SQLite", factor: 10, text: "single-event commits from 64 writers ≥ 10× SQLite's single writer"),
        Target(scenario: .replayStreamInterleaved, peer: "SQLite", factor: 1.5, text: "replay one aggregate (interleaved) ≥ 1.5× SQLite"),
        Target(scenario: .replayStream, peer: "SQLite", factor: 1.5, text: "replay one aggregate (commits of 100) ≥ 1.5× SQLite"),
        Target(scenario: .replayAll, peer: "ideal log", factor: 0.8, text: "replay everything ≥ 80 % of the ideal log"),
        Target(scenario: .bytesPerEvent, peer: "SQLite", factor: 0.25, text: "bytes on disk per event ≤ 25 % of SQLite's"),
    ]

    func markdown() -> String {
        var lines: [String] = []
        lines.append("Workload: \(size.events) events of ~170 B JSON over \(size.streams) streams, 16-byte ids; \(size.singleEvents) single-event commits; median of \(size.repetitions) repetition(s), systems interleaved.")
        lines.append("")
        lines.append("| scenario | " + systems.joined(separator: " | ") + " | DugongStore ÷ SQLite | ÷ RocksDB | ÷ ideal log |")
        lines.append("|---|" + String(repeating: "---|", count: systems.count + 3))
        for scenario in Scenario.allCases {
            var cells = systems.map { system -> String in
                if scenario == .memoryPerEvent && system == "DugongStore", let heap = median(system, scenario) {
                    return String(format: "%.1f / %.1f", heap, heap + mappedPerEvent)
                }
                return Self.format(median(system, scenario), scenario)
            }
            for peer in ["SQLite", "RocksDB", "ideal log"] {
                if let ours = median("DugongStore", scenario), let theirs = median(peer, scenario), theirs > 0 {
                    cells.append(String(format: "%.2f×", ours / theirs))
                } else {
                    cells.append("")
                }
            }
            lines.append("| \(scenario.title) | " + cells.joined(separator: " | ") + " |")
        }
        lines.append("")
        // A quick run is too small to judge a target by (fixed costs dominate): it shows the
        // ratios, and leaves the verdict to a full run.
        let judged = size.events >= RunSize.full.events
        if !judged { lines.append("Quick run: too small to judge the targets by; `met` is decided by a full run.") }
        lines.append("| target | measured | met |")
        lines.append("|---|---|---|")
        for target in Self.targets {
            guard let ours = median("DugongStore", target.scenario), let theirs = median(target.peer, target.scenario), theirs > 0 else {
                lines.append("| \(target.text) | n/a | |")
                continue
            }
            let ratio = ours / theirs
            let met = target.scenario.higherIsBetter ? ratio >= target.factor : ratio <= target.factor
            lines.append("| \(target.text) | \(String(format: "%.2f×", ratio)) | \(judged ? (met ? "yes" : "no") : "–") |")
        }
        if let memory = median("DugongStore", .memoryPerEvent) {
            lines.append("| index memory ≤ 16 B per event | \(String(format: "%.1f", memory)) B | \(judged ? (memory <= 16 ? "yes" : "no") : "–") |")
        }
        return lines.joined(separator: "\n")
    }

    func json() throws -> Data {
        struct Output: Encodable {
            var started: String
            var events: Int
            var singleEvents: Int
            var streams: Int
            var repetitions: Int
            var runs: [Repetition]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(Output(
            started: ISO8601DateFormatter().string(from: started), events: size.events,
            singleEvents: size.singleEvents, streams: size.streams, repetitions: size.repetitions, runs: runs))
    }
}
