#if Postgres
import Dugong
import DugongPostgres
import DugongStore
import Foundation
import PostgresNIO
import Testing

// The README's PostgreSQL snippet, as it is there (it compiles here; the contract suites run
// the same calls against a server).
enum PostgresReadmeSnippets {
    static func connect() async throws -> PostgresEventStore {
        let client = PostgresClient(configuration: try PostgresConnectionURL.configuration(from: "postgres://app@db.internal/events"))
        let pool = Task { await client.run() }         // the connection pool, for as long as the client is used
        try await PostgresSchema.migrate(client)       // versioned, idempotent, safe from several instances
        let store = PostgresEventStore(client: client) // the EventStore port: events byte for byte, in `dugong_events`
        pool.cancel()
        return store
    }

    func eventStore(postgres client: PostgresClient?) throws -> Projection.Store {
        if let client { return PostgresEventStore(client: client) }                        // several instances, one server
        return EventLogStore(log: try EventLog.open(at: "/var/lib/app/events", options: .init(createIfMissing: true)))  // one process, one disk
    }
}

@Suite("PostgreSQL connection URLs")
struct PostgresConnectionURLTests {
    @Test func urlsReadAsLibpqReadsThem() throws {
        let socket = try PostgresConnectionURL.configuration(from: "postgres://dugong@/postgres?host=/tmp/pg", environment: [:])
        #expect(socket.unixSocketPath == "/tmp/pg/.s.PGSQL.5432" && socket.username == "dugong" && socket.database == "postgres")
        let tcp = try PostgresConnectionURL.configuration(from: "postgresql://app@db.internal:6543/events", environment: ["PGPASSWORD": "secret"])
        #expect(tcp.host == "db.internal" && tcp.port == 6543 && tcp.database == "events" && tcp.password == "secret")
        #expect(try PostgresConnectionURL.configuration(from: "postgres://app:inline@h/d", environment: ["PGPASSWORD": "env"]).password == "inline")
        // libpq's other form of a socket directory: percent-encoded in the host's place.
        let encoded = try PostgresConnectionURL.configuration(from: "postgres://dugong@%2Ftmp%2Fpg/postgres", environment: [:])
        #expect(encoded.unixSocketPath == "/tmp/pg/.s.PGSQL.5432" && encoded.database == "postgres")
        // (A wrong sslmode was refused over TCP only; two socket directories are one too many.)
        for bad in [
            "http://app@h/d", "postgres://h/d", "postgres://app@/d", "not a url", "postgres://app@h/d?sslmode=sometimes",
            "postgres://app@/d?host=/tmp/pg&sslmode=sometimes", "postgres://app@%2Ftmp%2Fpg/d?host=/tmp/other",
        ] {
            #expect(throws: PostgresStoreError.self, "\(bad)") { try PostgresConnectionURL.configuration(from: bad, environment: [:]) }
        }
        let tuned = try PostgresConnectionURL.configuration(
            from: "postgres://app@h/d?connect_timeout=3&application_name=billing&options=-c%20statement_timeout%3D5000%20-clock_timeout=100",
            environment: [:])
        #expect(tuned.options.connectTimeout == .seconds(3))
        #expect(tuned.options.additionalStartupParameters.map { "\($0.0)=\($0.1)" } == ["application_name=billing", "statement_timeout=5000", "lock_timeout=100"])
        // Unknown parameters (libpq refuses them too), ones this reader does not use, a parameter
        // given twice and a host parameter that is not a socket directory are refused.
        for bad in [
            "connect_timeout=0", "connect_timeout=soon", "options=statement_timeout%3D5", "options=-c%20%3D5", "bogus=1",
            "sslcert=/c.pem", "sslmode=require&sslmode=disable", "host=db.internal", "Sslmode=require", "sslmode",
        ] {
            #expect(throws: PostgresStoreError.self, "\(bad)") { try PostgresConnectionURL.configuration(from: "postgres://app@h/d?\(bad)", environment: [:]) }
        }
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            #expect(throws: Never.self) { try PostgresConnectionURL.configuration(from: "postgres://app@h/d?sslmode=\(mode)", environment: [:]) }
        }
        // A password never reaches a message.
        #expect(PostgresConnectionURL.redacted("postgres://app:hunter2@h/d") == "postgres://app:***@h/d")
        do {
            _ = try PostgresConnectionURL.configuration(from: "postgres://app:hunter2@/d", environment: [:])
            Issue.record("no host, yet accepted")
        } catch {
            #expect(!"\(error)".contains("hunter2") && "\(error)".contains("app:***@"))
        }
    }

    /// The password file, as libpq reads it: first matching line, `*` and `\:`, a socket as
    /// "localhost"; ignored when others may read it; PGPASSWORD and the URL come first.
    @Test func passwordsComeFromThePasswordFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-pgpass-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: file) }
        let lines = [
            "# comment", "other:5432:*:app:wrong", "db.internal:6543:events:app:pa\\:ss", "localhost:*:*:app:from-socket", "*:*:*:*:anything",
        ]
        try Data(lines.joined(separator: "\n").utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        let environment = ["PGPASSFILE": file.path]
        #expect(try PostgresConnectionURL.configuration(from: "postgres://app@db.internal:6543/events", environment: environment).password == "pa:ss")
        #expect(try PostgresConnectionURL.configuration(from: "postgres://app@/events?host=/run/pg", environment: environment).password == "from-socket")
        #expect(try PostgresConnectionURL.configuration(from: "postgres://bob@h/d", environment: environment).password == "anything")
        #expect(
            try PostgresConnectionURL.configuration(from: "postgres://app@db.internal:6543/events", environment: environment.merging(["PGPASSWORD": "env"]) { $1 })
                .password == "env")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        #expect(try PostgresConnectionURL.configuration(from: "postgres://bob@h/d", environment: environment).password == nil)
    }
}
#endif
