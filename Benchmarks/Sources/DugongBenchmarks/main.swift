import Foundation

// DugongStore side by side with SQLite, RocksDB and the ideal log, on one deterministic
// workload, interleaved (A B C D A B C D …), medians of the repetitions, ratios in one run.
//
//   swift run -c release --package-path Benchmarks DugongBenchmarks [--quick] [--repetitions N] [--systems …] [--json FILE]
//   swift run -c release --package-path Benchmarks DugongBenchmarks --scale [--quick]   (the many-streams figures)
//   swift run -c release --package-path Benchmarks --traits Postgres DugongBenchmarks --postgres [--quick]   (DugongPostgres against its bound)

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == MemoryProbe.flag, arguments.count == 2 {
    try MemoryProbe.runChild(store: arguments[1])
    exit(0)
}
if arguments.first == Scale.childFlag, arguments.count == 3, let streams = Int(arguments[2]) {
    try Scale.runChild(store: arguments[1], streams: streams)
    exit(0)
}
if arguments.first == "--postgres" {
    #if Postgres
    let repetitions = arguments.firstIndex(of: "--repetitions").flatMap { arguments.indices.contains($0 + 1) ? Int(arguments[$0 + 1]) : nil } ?? 3
    try await PostgresBenchmark.run(quick: arguments.contains("--quick"), repetitions: max(repetitions, 1))
    exit(0)
    #else
    FileHandle.standardError.write(Data("--postgres needs the Postgres trait: swift run -c release --package-path Benchmarks --traits Postgres DugongBenchmarks --postgres\n".utf8))
    exit(2)
    #endif
}
if arguments.first == Scale.flag {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-scale-\(getpid())").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    // Removed before exiting either way (`exit` does not run `defer`).
    var failure: (any Error)?
    do { try await Scale.run(quick: arguments.contains("--quick"), root: root) } catch { failure = error }
    try? FileManager.default.removeItem(atPath: root)
    if let failure { throw failure }
    exit(0)
}

var size = RunSize.full
var jsonPath = "benchmark-results.json"
var systems = SystemKind.allCases
var index = 0
while index < arguments.count {
    switch arguments[index] {
    case "--quick": size = .quick
    case "--repetitions" where index + 1 < arguments.count:
        index += 1
        guard let value = Int(arguments[index]), value > 0 else {
            FileHandle.standardError.write(Data("--repetitions takes a positive number\n".utf8))
            exit(2)
        }
        size.repetitions = value
    case "--systems" where index + 1 < arguments.count:
        index += 1
        let names = arguments[index].split(separator: ",").map { $0.lowercased() }
        systems = SystemKind.allCases.filter { kind in names.contains { kind.name.lowercased().hasPrefix($0) } }
        guard !systems.isEmpty else {
            FileHandle.standardError.write(Data("--systems takes names among: \(SystemKind.allCases.map(\.name))\n".utf8))
            exit(2)
        }
    case "--json" where index + 1 < arguments.count:
        index += 1
        jsonPath = arguments[index]
    case "--help", "-h":
        print("usage: DugongBenchmarks [--quick] [--repetitions N] [--systems dugong,sqlite,rocksdb,ideal] [--json FILE]")
        print("       DugongBenchmarks --scale [--quick]   (many streams: open time and index memory)")
        print("       DugongBenchmarks --postgres [--quick] [--repetitions N]   (with --traits Postgres: DugongPostgres against a plain INSERT, on a durable local server)")
        exit(0)
    default:
        FileHandle.standardError.write(Data("unknown argument \(arguments[index]); try --help\n".utf8))
        exit(2)
    }
    index += 1
}

let root = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-benchmarks-\(getpid())").path
try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: root) }

let started = Date()
FileHandle.standardError.write(Data("generating the workload: \(size.events) events over \(size.streams) streams\n".utf8))
let workload = Workload(size: size)
let runner = Runner(workload: workload, root: root)

var runs: [Repetition] = []
var failures: [String] = []
for repetition in 1...size.repetitions {
    for system in systems {
        FileHandle.standardError.write(Data("run \(repetition)/\(size.repetitions): \(system.name)\n".utf8))
        do {
            let results = try await runner.run(system)
            runs.append(Repetition(system: system.name, repetition: repetition, results: results))
        } catch {
            failures.append("\(system.name): \(error)")
        }
    }
}

let report = Report(runs: runs, systems: systems.map(\.name), size: size, started: started, mappedPerEvent: MemoryProbe.lastMapped)
print(report.markdown())
try report.json().write(to: URL(fileURLWithPath: jsonPath))
FileHandle.standardError.write(Data("raw repetitions written to \(jsonPath)\n".utf8))

let missing = systems.map(\.name).filter { name in !runs.contains { $0.system == name } }
if !failures.isEmpty || !missing.isEmpty {
    for failure in failures { FileHandle.standardError.write(Data("FAILED \(failure)\n".utf8)) }
    exit(1)
}
