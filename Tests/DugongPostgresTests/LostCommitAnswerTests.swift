#if Postgres
import Dugong
import DugongPostgres
import DugongTesting
import Foundation
import Glibc
import PostgresNIO
import Synchronization
import Testing

/// The one failure killed backends never produce: a `COMMIT` that committed and whose answer was
/// lost on the way (a network cut, a crash after the commit's flush). A proxy between the
/// adapter and the server drops a `COMMIT`'s answer and cuts the connection; the append must say
/// it may have been committed, and sending it again must find it written, whole.
@Suite("PostgreSQL: a commit's answer lost", .enabled(if: TestServer.isAvailable, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct LostCommitAnswerTests {
    static func event(_ stream: StreamID, _ sequenceNumber: Int) -> SerializedDomainEvent {
        SerializedDomainEvent(
            origin: stream.origin, aggregateType: stream.aggregateType, eventType: "Happened", version: 1, id: UUID(),
            aggregateID: stream.aggregateID, payload: Data("#\(sequenceNumber)".utf8), sequenceNumber: sequenceNumber,
            timestamp: Date(millisecondsSince1970: 1_700_000_000_000))
    }

    static func stream(_ name: String) -> StreamID { StreamID(origin: "cuts", aggregateType: "Account", aggregateID: name) }

    /// `body` with a store whose connections go through a proxy, and a store connected directly.
    static func withProxy(_ body: (CommitCuttingProxy, PostgresEventStore, PostgresEventStore) async throws -> Void) async throws {
        try await TestServer.withFreshDatabase { direct, url in
            let proxy = try CommitCuttingProxy(server: url)
            defer { proxy.stop() }
            var configuration = try PostgresConnectionURL.configuration(from: proxy.url(for: url))
            configuration.options.maximumConnections = 8
            let client = PostgresClient(configuration: configuration)
            let running = Task { await client.run() }
            let result: Result<Void, any Error>
            do { result = .success(try await body(proxy, PostgresEventStore(client: client), PostgresEventStore(client: direct))) } catch { result = .failure(error) }
            running.cancel()
            await running.value
            try result.get()
        }
    }

    /// An append (`attempt`) sent until answered; returns whether any failure said it may have
    /// been committed, and the answer.
    static func untilAnswered(_ attempt: () async throws -> [AppendResult]) async throws -> (mayHaveCommitted: Bool, results: [AppendResult]) {
        var mayHaveCommitted = false
        for _ in 0..<50 {
            do {
                return (mayHaveCommitted, try await attempt())
            } catch let lost as PostgresConnectionLost {
                mayHaveCommitted = mayHaveCommitted || lost.mayHaveCommitted
                // (The pool may hand out the cut connection once more before it sees it closed.)
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        return (mayHaveCommitted, try await attempt())
    }

    @Test func aLoneAppendWhoseCommitAnswerIsLostIsFoundWrittenWhenSentAgain() async throws {
        try await Self.withProxy { proxy, store, direct in
            let stream = Self.stream("lone")
            let events = [Self.event(stream, 1), Self.event(stream, 2)]
            proxy.cutNextCommit(afterRows: 1)
            await #expect {
                try await store.append(events, to: stream, expecting: .noStream)
            } throws: { ($0 as? PostgresConnectionLost)?.mayHaveCommitted == true }
            #expect(proxy.cuts == 1)
            let again = try await store.append(events, to: stream, expecting: .noStream)
            #expect(again.wasDuplicate && again.version == 2)
            let stored = try await direct.read(stream)
            #expect(stored == events)
        }
    }

    @Test func aTransactionOfTwoStreamsWhoseCommitAnswerIsLostIsFoundWrittenWholeWhenSentAgain() async throws {
        try await Self.withProxy { proxy, store, direct in
            let (a, b) = (Self.stream("a"), Self.stream("b"))
            let appends = [
                StreamAppend(stream: a, events: [Self.event(a, 1)], expected: .noStream),
                StreamAppend(stream: b, events: [Self.event(b, 1), Self.event(b, 2)], expected: .noStream),
            ]
            proxy.cutNextCommit(afterRows: 3)
            let (mayHaveCommitted, results) = try await Self.untilAnswered { try await store.append(appends) }
            #expect(mayHaveCommitted && proxy.cuts == 1)
            #expect(results.map(\.wasDuplicate) == [true, true] && results.map(\.version) == [1, 2])
            let stored = [try await direct.read(a), try await direct.read(b)]
            #expect(stored == appends.map(\.events))
        }
    }

    /// Appends of many callers committed together: the cut batch's appends are each told that
    /// they may have been committed, and each finds itself written, once, when sent again.
    @Test func everyAppendOfABatchWhoseCommitAnswerIsLostIsToldAndFoundWritten() async throws {
        try await Self.withProxy { proxy, store, direct in
            let streams = (0..<32).map { Self.stream("s\($0)") }
            proxy.cutNextCommit(afterRows: 3)  // a batch of three appends or more
            let answers = try await withThrowingTaskGroup(of: (Bool, AppendResult).self) { group in
                for stream in streams {
                    group.addTask {
                        let events = [Self.event(stream, 1)]
                        let (mayHaveCommitted, results) = try await Self.untilAnswered {
                            [try await store.append(events, to: stream, expecting: .noStream)]
                        }
                        return (mayHaveCommitted, results[0])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let told = answers.filter(\.0)
            #expect(proxy.cuts == 1)
            #expect(told.count >= 3, "\(told.count) appends told they may have been committed")
            #expect(told.allSatisfy { $0.1.wasDuplicate }, "an append of the cut batch was not found written")
            #expect(answers.filter { !$0.0 }.allSatisfy { !$0.1.wasDuplicate })
            for stream in streams {
                let stored = try await direct.read(stream)
                #expect(stored.count == 1, "\(stream): \(stored.count) events")
            }
        }
    }
}

/// A proxy on a Unix socket in front of a PostgreSQL server's, forwarding bytes both ways, that
/// can drop the answer of one `COMMIT` and cut its connection at that point: the server has
/// committed, the client never hears it.
///
/// It reads the server's messages (a type byte, a 32-bit big-endian length that counts itself,
/// the body) to find `CommandComplete` (`C`) messages: `BEGIN` resets the count of rows
/// (`DataRow`, `D`) seen in the transaction, and an armed cut takes the first `COMMIT` whose
/// transaction returned at least the rows asked. (No SSL on a Unix socket: every message the
/// server sends is typed.)
final class CommitCuttingProxy: Sendable {
    let directory: String
    private let target: String
    private let listener: Int32
    /// Rows the transaction of the `COMMIT` to cut must have returned; `nil`: none armed.
    private let armed = Mutex<Int?>(nil)
    private let cutCount = Atomic(0)
    private let stopped = Atomic(false)
    /// Open sockets, shut down by ``stop()``.
    private let open = Mutex<Set<Int32>>([])

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(server url: String) throws {
        let components = URLComponents(string: url)
        guard let host = components?.queryItems?.first(where: { $0.name == "host" })?.value else {
            throw Failure(description: "\(url) names no Unix socket directory (?host=): the proxy speaks to Unix sockets only")
        }
        let name = ".s.PGSQL.\(components?.port ?? 5432)"
        target = host + "/" + name
        guard FileManager.default.fileExists(atPath: target) else { throw Failure(description: "no server socket at \(target)") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-proxy-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0, Self.withAddress(directory + "/" + name, { bind(listener, $0, $1) }) == 0, listen(listener, 64) == 0 else {
            let failure = Failure(description: "cannot listen at \(directory): errno \(errno)")
            if listener >= 0 { close(listener) }
            try? FileManager.default.removeItem(atPath: directory)
            throw failure
        }
        Thread.detachNewThread { [self] in acceptConnections() }
    }

    /// `url` with the proxy's directory as its host.
    func url(for url: String) -> String {
        var components = URLComponents(string: url)!
        components.queryItems = (components.queryItems ?? []).map { $0.name == "host" ? URLQueryItem(name: "host", value: directory) : $0 }
        return components.string!
    }

    /// Arms a cut: the answer of the next `COMMIT` whose transaction returned `rows` rows or
    /// more is dropped and its connection cut.
    func cutNextCommit(afterRows rows: Int) { armed.withLock { $0 = rows } }

    /// Cuts made.
    var cuts: Int { cutCount.load(ordering: .acquiring) }

    /// Stops accepting (the accepting thread closes the listener as it ends) and shuts down
    /// every proxied connection.
    func stop() {
        stopped.store(true, ordering: .releasing)
        shutdown(listener, Int32(SHUT_RDWR))
        open.withLock { for socket in $0 { shutdown(socket, Int32(SHUT_RDWR)) } }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path), "socket path too long: \(path)")
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }

    private func acceptConnections() {
        while true {
            let client = accept(listener, nil, nil)
            guard !stopped.load(ordering: .acquiring) else {
                if client >= 0 { close(client) }
                close(listener)
                return
            }
            guard client >= 0 else {
                // (EINTR, ECONNABORTED, out of descriptors for a moment: the proxy goes on.)
                usleep(5_000)
                continue
            }
            let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard server >= 0, Self.withAddress(target, { connect(server, $0, $1) }) == 0 else {
                close(client)
                if server >= 0 { close(server) }
                continue
            }
            open.withLock { $0.formUnion([client, server]) }
            let pair = Pair(client: client, server: server, proxy: self)
            Thread.detachNewThread { pair.forward(from: client, to: server, reading: false) }
            Thread.detachNewThread { pair.forward(from: server, to: client, reading: true) }
        }
    }

    /// Whether a `COMMIT` whose transaction returned `rows` rows is the one to cut (disarms).
    fileprivate func shouldCut(afterRows rows: Int) -> Bool {
        armed.withLock { armed in
            guard let wanted = armed, rows >= wanted else { return false }
            armed = nil
            cutCount.add(1, ordering: .releasing)
            return true
        }
    }

    fileprivate func closed(_ sockets: [Int32]) {
        open.withLock { $0.subtract(sockets) }
        for socket in sockets { close(socket) }
    }

    /// One proxied connection: two forwarding threads; the last to end closes both sockets.
    private final class Pair: Sendable {
        let client: Int32
        let server: Int32
        let proxy: CommitCuttingProxy
        let running = Atomic(2)

        init(client: Int32, server: Int32, proxy: CommitCuttingProxy) {
            self.client = client
            self.server = server
            self.proxy = proxy
        }

        func forward(from source: Int32, to destination: Int32, reading messages: Bool) {
            var pending: [UInt8] = []
            var rows = 0
            var chunk = [UInt8](repeating: 0, count: 65_536)
            loop: while true {
                let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                guard messages else {
                    guard send(destination, chunk, count) else { break }
                    continue
                }
                pending += chunk[0..<count]
                var offset = 0
                var cut = false
                while pending.count - offset >= 5 {
                    let length = pending[(offset + 1)..<(offset + 5)].reduce(0) { $0 << 8 | Int($1) }
                    guard length >= 4, pending.count - offset >= 1 + length else { break }
                    let type = pending[offset]
                    if type == UInt8(ascii: "D") { rows += 1 }
                    if type == UInt8(ascii: "C") {
                        let tag = String(decoding: pending[(offset + 5)..<(offset + length)].prefix { $0 != 0 }, as: UTF8.self)
                        if tag == "BEGIN" { rows = 0 }
                        if tag == "COMMIT" && proxy.shouldCut(afterRows: rows) {
                            cut = true
                            break
                        }
                    }
                    offset += 1 + length
                }
                let complete = Array(pending[0..<offset])
                pending.removeFirst(offset)
                guard send(destination, complete, complete.count), !cut else { break loop }
            }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
            if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { proxy.closed([client, server]) }
        }

        /// Sends `count` bytes of `bytes` whole (no SIGPIPE on a closed peer).
        private func send(_ socket: Int32, _ bytes: [UInt8], _ count: Int) -> Bool {
            var sent = 0
            while sent < count {
                let result = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { return false }
                sent += result
            }
            return true
        }
    }
}
#endif
