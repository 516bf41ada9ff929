#if Postgres
import DugongPostgres
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
}

@Suite("PostgreSQL connection URLs")
struct PostgresConnectionURLTests {
    @Test func urlsReadAsLibpqReadsThem() throws {
        let socket = try PostgresConnectionURL.configuration(from: "postgres://dugong@/postgres?host=/tmp/pg", environment: [:])
        #expect(socket.unixSocketPath == "/tmp/pg/.s.PGSQL.5432" && socket.username == "dugong" && socket.database == "postgres")
        let tcp = try PostgresConnectionURL.configuration(from: "postgresql://app@db.internal:6543/events", environment: ["PGPASSWORD": "secret"])
        #expect(tcp.host == "db.internal" && tcp.port == 6543 && tcp.database == "events" && tcp.password == "secret")
        #expect(try PostgresConnectionURL.configuration(from: "postgres://app:inline@h/d", environment: ["PGPASSWORD": "env"]).password == "inline")
        for bad in ["http://app@h/d", "postgres://h/d", "postgres://app@/d", "not a url"] {
            #expect(throws: PostgresStoreError.self, "\(bad)") { try PostgresConnectionURL.configuration(from: bad, environment: [:]) }
        }
    }
}
#endif
