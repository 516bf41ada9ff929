import CIdealLog
import CRocksDB
import CSQLite
import Dugong
import DugongStore
import Foundation

/// One commit of the workload: events of one stream, appended atomically.
struct WorkloadCommit: Sendable {
    var stream: String
    var events: [NewEvent]
}

/// The systems compared, and how to make each.
enum SystemKind: String, CaseIterable, Sendable {
    case dugong = "DugongStore"
    case sqlite = "SQLite"
    case rocksdb = "RocksDB"
    case ideal = "ideal log"

    var name: String { rawValue }

    /// Whether it can read one stream back (the ideal log has no index).
    var readsStreams: Bool { self != .ideal }

    /// A new, empty store in `directory`; its writes are durable when `durable`.
    func make(directory: String, durable: Bool) async throws -> any SystemUnderTest {
        switch self {
        case .dugong: try await DugongSystem(directory: directory, durable: durable)
        case .sqlite: try await SQLiteSystem(directory: directory, durable: durable)
        case .rocksdb: try await RocksDBSystem(directory: directory, durable: durable)
        case .ideal: try await IdealLogSystem(directory: directory, durable: durable)
        }
    }
}

/// A store under test.
protocol SystemUnderTest: AnyObject {
    func append(_ commit: WorkloadCommit) async throws
    /// Single-event commits from many writers; the peers take them one at a time.
    func appendConcurrently(_ commits: [WorkloadCommit], writers: Int) async throws
    /// Reads every event of `stream`; returns the number of events and the bytes of their data.
    func replay(stream: String) async throws -> (events: Int, bytes: Int)
    /// Reads every event in log order.
    func replayAll() async throws -> (events: Int, bytes: Int)
    /// Closes and opens again (empties the store's own caches; the OS page cache stays).
    func reopen() async throws
    func close() async throws
    /// Bytes the store's files take after close.
    var directory: String { get }
}

extension SystemUnderTest {
    func appendConcurrently(_ commits: [WorkloadCommit], writers: Int) async throws {
        for commit in commits { try await append(commit) }
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Bytes the regular files under `directory` take on disk, as `du` counts them (blocks: a
/// DugongStore keeps its active segment's size and punches a hole over the unused end).
func bytesOnDisk(of directory: String) -> Int {
    let enumerator = FileManager.default.enumerator(atPath: directory)
    var total = 0
    while let name = enumerator?.nextObject() as? String {
        var status = stat()
        if stat(directory + "/" + name, &status) == 0, status.st_mode & S_IFMT == S_IFREG {
            total += Int(status.st_blocks) * 512
        }
    }
    return total
}

// MARK: - DugongStore

final class DugongSystem: SystemUnderTest, @unchecked Sendable {
    let directory: String
    private let options: EventLog.Options
    private var log: EventLog

    init(directory: String, durable: Bool) async throws {
        self.directory = directory
        var options = EventLog.Options(createIfMissing: true)
        options.durability = durable ? .synchronous : .unsafeNoSync
        self.options = options
        log = try EventLog.open(at: directory, options: options)
    }

    func append(_ commit: WorkloadCommit) async throws {
        try await log.append(commit.events, to: commit.stream)
    }

    func appendConcurrently(_ commits: [WorkloadCommit], writers: Int) async throws {
        let log = self.log
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                let mine = stride(from: writer, to: commits.count, by: writers).map { commits[$0] }
                group.addTask { for commit in mine { try await log.append(commit.events, to: commit.stream) } }
            }
            try await group.waitForAll()
        }
    }

    // Replays use the lending reads: each event looked at in place, as a replay or a
    // projection does (readAll and read(stream:) copy every event into a StoredEvent).
    func replay(stream: String) async throws -> (events: Int, bytes: Int) {
        var bytes = 0
        let count = try log.forEachEvent(in: stream) { bytes += $0.dataCount }
        return (count, bytes)
    }

    func replayAll() async throws -> (events: Int, bytes: Int) {
        var position: UInt64 = 0
        var count = 0
        var bytes = 0
        while true {
            let next = try log.forEachEvent(from: position, maxCount: 4096) { event in
                count += 1
                bytes += event.dataCount
            }
            if next == position { break }
            position = next
        }
        return (count, bytes)
    }

    func reopen() async throws {
        log.close()
        log = try EventLog.open(at: directory, options: options)
    }

    func close() async throws { log.close() }
}

// MARK: - SQLite

/// SQLite the way people build an event store on it, at its best: WAL, synchronous=FULL, the
/// events in one B-tree clustered by (stream, version) (`WITHOUT ROWID`: a stream's events lie
/// together, as an aggregate load wants), a unique index on the global position for reads in
/// log order, one transaction per commit, prepared statements, columns read in place.
final class SQLiteSystem: SystemUnderTest, @unchecked Sendable {
    let directory: String
    private let durable: Bool
    private var db: OpaquePointer?
    private var insert: OpaquePointer?
    private var selectStream: OpaquePointer?
    private var versions: [String: Int] = [:]
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(directory: String, durable: Bool) async throws {
        self.directory = directory
        self.durable = durable
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try open()
        try execute("""
            CREATE TABLE IF NOT EXISTS events(
                stream TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
                id BLOB NOT NULL, type TEXT NOT NULL, timestamp INTEGER NOT NULL,
                data BLOB NOT NULL, metadata BLOB NOT NULL,
                PRIMARY KEY (stream, version)) WITHOUT ROWID;
            CREATE UNIQUE INDEX IF NOT EXISTS events_position ON events(position);
            """)
        try prepare()
    }

    /// The next global position (the table's own, read at open).
    private var nextPosition: Int64 = 0

    private func open() throws {
        guard sqlite3_open(directory + "/events.sqlite", &db) == SQLITE_OK else { throw failure("open") }
        try execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=\(durable ? "FULL" : "OFF");")
    }

    private func prepare() throws {
        var last: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(position) + 1, 0) FROM events", -1, &last, nil) == SQLITE_OK,
            sqlite3_step(last) == SQLITE_ROW
        else { throw failure("max position") }
        nextPosition = sqlite3_column_int64(last, 0)
        sqlite3_finalize(last)
        guard sqlite3_prepare_v2(db, "INSERT INTO events(stream, version, position, id, type, timestamp, data, metadata) VALUES (?,?,?,?,?,?,?,?)", -1, &insert, nil) == SQLITE_OK,
            sqlite3_prepare_v2(db, "SELECT version, id, type, timestamp, data, metadata FROM events WHERE stream = ? ORDER BY version", -1, &selectStream, nil) == SQLITE_OK
        else { throw failure("prepare") }
    }

    private func failure(_ what: String) -> BenchmarkFailure {
        BenchmarkFailure("SQLite \(what): \(String(cString: sqlite3_errmsg(db)))")
    }

    private func execute(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw failure(sql) }
    }

    func append(_ commit: WorkloadCommit) async throws {
        try execute("BEGIN")
        var version = versions[commit.stream, default: 0]
        for event in commit.events {
            version += 1
            sqlite3_bind_text(insert, 1, commit.stream, -1, Self.transient)
            sqlite3_bind_int64(insert, 2, Int64(version))
            sqlite3_bind_int64(insert, 3, nextPosition)
            withUnsafeBytes(of: event.id.uuid) { _ = sqlite3_bind_blob(insert, 4, $0.baseAddress, 16, Self.transient) }
            sqlite3_bind_text(insert, 5, event.type, -1, Self.transient)
            sqlite3_bind_int64(insert, 6, event.timestamp.millisecondsSince1970)
            event.data.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 7, $0.baseAddress, Int32($0.count), Self.transient) }
            event.metadata.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 8, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), Self.transient) }
            guard sqlite3_step(insert) == SQLITE_DONE else { throw failure("insert") }
            sqlite3_reset(insert)
            nextPosition += 1
        }
        try execute("COMMIT")
        versions[commit.stream] = version
    }

    func replay(stream: String) async throws -> (events: Int, bytes: Int) {
        sqlite3_bind_text(selectStream, 1, stream, -1, Self.transient)
        defer { sqlite3_reset(selectStream) }
        return try rows(selectStream)
    }

    private func rows(_ statement: OpaquePointer?) throws -> (events: Int, bytes: Int) {
        var count = 0
        var bytes = 0
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw failure("select") }
            // Each event's fields looked at in place, as DugongStore's lending reads do (no copy):
            // the id, type, data and metadata columns' bytes.
            _ = sqlite3_column_blob(statement, 1)
            _ = sqlite3_column_text(statement, 2)
            _ = sqlite3_column_blob(statement, 4)
            _ = sqlite3_column_blob(statement, 5)
            bytes += Int(sqlite3_column_bytes(statement, 4))
            count += 1
        }
        return (count, bytes)
    }

    func replayAll() async throws -> (events: Int, bytes: Int) {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT version, id, type, timestamp, data, metadata FROM events ORDER BY position", -1, &statement, nil) == SQLITE_OK else {
            throw failure("prepare")
        }
        defer { sqlite3_finalize(statement) }
        return try rows(statement)
    }

    func reopen() async throws {
        try await close()
        try open()
        try prepare()
    }

    func close() async throws {
        sqlite3_finalize(insert)
        sqlite3_finalize(selectStream)
        insert = nil
        selectStream = nil
        guard sqlite3_close(db) == SQLITE_OK else { throw failure("close") }
        db = nil
    }
}

// MARK: - RocksDB

/// RocksDB with key = stream name, a zero byte, big-endian version; sync writes; one write
/// batch per commit; default options otherwise.
final class RocksDBSystem: SystemUnderTest, @unchecked Sendable {
    let directory: String
    private let options: OpaquePointer
    private let writeOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private var db: OpaquePointer?
    private var versions: [String: Int] = [:]

    init(directory: String, durable: Bool) async throws {
        self.directory = directory
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        writeOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(writeOptions, durable ? 1 : 0)
        readOptions = rocksdb_readoptions_create()
        try open()
    }

    private func open() throws {
        var error: UnsafeMutablePointer<CChar>?
        db = rocksdb_open(options, directory, &error)
        try check(error, "open")
    }

    private func check(_ error: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        guard let error else { return }
        defer { rocksdb_free(error) }
        throw BenchmarkFailure("RocksDB \(what): \(String(cString: error))")
    }

    /// Reused for every key and value (an array per key and value cost more than RocksDB's put).
    private var key: [UInt8] = []
    private var value: [UInt8] = []

    func append(_ commit: WorkloadCommit) async throws {
        let batch = rocksdb_writebatch_create()
        defer { rocksdb_writebatch_destroy(batch) }
        var version = versions[commit.stream, default: 0]
        key.removeAll(keepingCapacity: true)
        key += commit.stream.utf8
        key.append(0)
        let prefix = key.count
        for event in commit.events {
            version += 1
            key.removeSubrange(prefix...)
            withUnsafeBytes(of: UInt64(version).bigEndian) { key += $0 }
            value.removeAll(keepingCapacity: true)
            withUnsafeBytes(of: event.id.uuid) { value += $0 }
            value.append(UInt8(event.type.utf8.count))
            value += event.type.utf8
            withUnsafeBytes(of: event.timestamp.millisecondsSince1970.littleEndian) { value += $0 }
            withUnsafeBytes(of: UInt32(event.data.count).littleEndian) { value += $0 }
            event.data.withUnsafeBytes { value += $0 }
            event.metadata.withUnsafeBytes { value += $0 }
            key.withUnsafeBytes { key in
                value.withUnsafeBytes { value in
                    rocksdb_writebatch_put(
                        batch, key.baseAddress!.assumingMemoryBound(to: CChar.self), key.count,
                        value.baseAddress!.assumingMemoryBound(to: CChar.self), value.count)
                }
            }
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, batch, &error)
        try check(error, "write")
        versions[commit.stream] = version
    }

    private func scan(prefix: [UInt8]?) -> (events: Int, bytes: Int) {
        let iterator = rocksdb_create_iterator(db, readOptions)
        defer { rocksdb_iter_destroy(iterator) }
        if let prefix {
            prefix.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(iterator, $0.baseAddress, $0.count) } }
        } else {
            rocksdb_iter_seek_to_first(iterator)
        }
        var count = 0
        var bytes = 0
        while rocksdb_iter_valid(iterator) != 0 {
            var keyLength = 0
            let key = UnsafeRawBufferPointer(start: rocksdb_iter_key(iterator, &keyLength), count: keyLength)
            if let prefix, !(keyLength == prefix.count + 8 && key.starts(with: prefix)) { break }
            // The value looked at in place (no copy), as DugongStore's lending reads do.
            var valueLength = 0
            _ = rocksdb_iter_value(iterator, &valueLength)
            bytes += valueLength
            count += 1
            rocksdb_iter_next(iterator)
        }
        return (count, bytes)
    }

    func replay(stream: String) async throws -> (events: Int, bytes: Int) {
        scan(prefix: Array(stream.utf8) + [0])
    }

    func replayAll() async throws -> (events: Int, bytes: Int) {
        scan(prefix: nil)
    }

    func reopen() async throws {
        rocksdb_close(db)
        try open()
    }

    func close() async throws {
        rocksdb_close(db)
        db = nil
    }
}

// MARK: - The ideal log

final class IdealLogSystem: SystemUnderTest, @unchecked Sendable {
    let directory: String
    private let durable: Bool
    private var log: OpaquePointer?

    private var path: String { directory + "/ideal.log" }

    init(directory: String, durable: Bool) async throws {
        self.directory = directory
        self.durable = durable
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard let log = ideal_log_create(directory + "/ideal.log", 64 << 20) else { throw BenchmarkFailure("ideal log: create failed") }
        self.log = log
    }

    func append(_ commit: WorkloadCommit) async throws {
        var joined: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(commit.events.count)
        for event in commit.events {
            let start = joined.count
            Self.pack(event, stream: commit.stream, into: &joined)
            lengths.append(joined.count - start)
        }
        let status = joined.withUnsafeBufferPointer { events in
            lengths.withUnsafeBufferPointer { lengths in
                ideal_log_append(log, events.baseAddress, lengths.baseAddress, lengths.count, durable ? 1 : 0)
            }
        }
        guard status == 0 else { throw BenchmarkFailure("ideal log: append failed") }
    }

    /// An event's fields as the ideal log's callers pack them (see ideal_log.h).
    static func pack(_ event: NewEvent, stream: String, into bytes: inout [UInt8]) {
        func short(_ text: String) {
            bytes.append(UInt8(text.utf8.count))
            bytes += text.utf8
        }
        func long(_ data: Data) {
            withUnsafeBytes(of: UInt32(data.count).littleEndian) { bytes += $0 }
            data.withUnsafeBytes { bytes += $0 }
        }
        short(stream)
        short(event.type)
        withUnsafeBytes(of: event.id.uuid) { bytes += $0 }
        withUnsafeBytes(of: Int64(event.timestamp.timeIntervalSince1970 * 1000).littleEndian) { bytes += $0 }
        long(event.data)
        long(event.metadata)
    }

    func replay(stream: String) async throws -> (events: Int, bytes: Int) {
        throw BenchmarkFailure("the ideal log has no index")
    }

    func replayAll() async throws -> (events: Int, bytes: Int) {
        var bytes = 0
        let events = ideal_log_replay(path, &bytes)
        guard events >= 0 else { throw BenchmarkFailure("ideal log: replay found damage") }
        return (events, bytes)
    }

    func reopen() async throws {}

    func close() async throws {
        if let log { ideal_log_close(log) }
        log = nil
    }
}
