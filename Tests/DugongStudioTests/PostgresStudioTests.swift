#if Studio && Postgres
import Dugong
import DugongExample
import DugongPostgres
import DugongStore
@testable import DugongStudio
import DugongTesting
import Foundation
import Testing

@Suite(
    "Studio on PostgreSQL",
    .enabled(if: ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"] != nil, "DUGONG_POSTGRES_URL is not set: no PostgreSQL server"))
struct PostgresStudioTests {
    static func json(_ answer: HTTPClient.Answer) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any]
    }

    /// The same answers as on an embedded store: streams, a stream's events with their
    /// envelope, the log paged by `transaction:position` cursors and filtered, an aggregate
    /// event's states and changes, checkpoints and their lag, the live tail; bad cursors are a
    /// 400, and nothing can change the database.
    @Test func theStudioReadsAPostgreSQLDatabase() async throws {
        let database = try await PostgresTestDatabase.create(onServer: ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"]!)
        do {
            let store = PostgresEventStore(client: database.client)
            let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
            _ = try await accounts.create(id: "ada") { try $0.open(owner: "Ada") }
            guard var ada = try await accounts.load("ada") else { throw StudioFixtureError.notCreated }
            try ada.execute { try $0.deposit(100) }
            ada.stamp(EventContext(correlationID: "order-17"))
            try await accounts.commit(&ada)
            _ = try await accounts.create(id: "bob") { try $0.open(owner: "Bob") }
            var checkpoint = try await Checkpoint.load("balances", from: store)
            try await checkpoint.save(LogCursor.start, to: store)
            try await store.waitForCommittedEvents()
            let studio = try Studio(postgres: store, label: "postgres://test", aggregates: [BankAccount.self])
            try await withStudio(studio) { port in
                let overview = try #require(Self.json(try await HTTPClient.send(port: port, "/api/overview")))
                #expect(overview["kind"] as? String == "postgres" && overview["events"] as? Int == 4)
                let streams = try #require(Self.json(try await HTTPClient.send(port: port, "/api/streams?search=ada")))
                #expect((streams["streams"] as? [[String: Any]])?.map { $0["stream"] as? String } == ["bank:BankAccount/ada"])
                let stream = try #require(Self.json(try await HTTPClient.send(port: port, "/api/stream?name=bank:BankAccount/ada")))
                let events = try #require(stream["events"] as? [[String: Any]])
                #expect(events.map { $0["type"] as? String } == ["AccountOpened", "MoneyDeposited"])
                #expect((events[1]["envelope"] as? [String: Any])?["correlationID"] as? String == "order-17")
                #expect(try await HTTPClient.send(port: port, "/api/stream?name=bank:BankAccount/zed").status == 404)
                // (A NUL, which PostgreSQL's text cannot hold, failed the query: a 500.)
                #expect(try await HTTPClient.send(port: port, "/api/stream?name=a%00b").status == 404)
                #expect(try await HTTPClient.send(port: port, "/api/aggregate-event?stream=bank:BankAccount/a%00&version=1").status == 404)

                // The log, two events a page, by the cursors it gives.
                var seen: [String] = []
                var from = ""
                for _ in 0..<10 {
                    let page = try #require(Self.json(try await HTTPClient.send(port: port, "/api/log?limit=2&from=\(from)")))
                    seen += (page["events"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
                    from = try #require(page["next"] as? String)
                    if page["complete"] as? Bool == true { break }
                }
                #expect(seen == ["AccountOpened", "MoneyDeposited", "AccountOpened", "CheckpointSaved"])
                let deposits = try #require(Self.json(try await HTTPClient.send(port: port, "/api/log?type=MoneyDeposited")))
                #expect((deposits["events"] as? [[String: Any]])?.count == 1)
                // Found by a black-box run: a bare position read as the cursor 0:N (before every
                // event: everything again), and a cursor past the log's end answered "complete"
                // (and the tail waited there): both are refused, as a directory store's Studio
                // refuses a position past its head.
                for path in ["/api/log?from=5", "/api/tail?from=5", "/api/log?from=99999999:1", "/api/tail?from=99999999:1"] {
                    let refused = try await HTTPClient.send(port: port, path)
                    #expect(refused.status == 400, "\(path): \(refused.status) \(refused.body)")
                }
                #expect(try await HTTPClient.send(port: port, "/api/log?from=0").status == 200)
                #expect(try await HTTPClient.send(port: port, "/api/log?from=12x").status == 400)
                #expect(try await HTTPClient.send(port: port, "/api/tail?from=1:2:3").status == 400)

                let deposit = try #require(Self.json(try await HTTPClient.send(port: port, "/api/aggregate-event?stream=bank:BankAccount/ada&version=2")))
                #expect((deposit["changes"] as? [[String: Any]])?.first?["after"] as? String == "100")
                let checkpoints = try #require(Self.json(try await HTTPClient.send(port: port, "/api/checkpoints")))
                let rows = try #require(checkpoints["checkpoints"] as? [[String: Any]])
                #expect(rows.first?["name"] as? String == "balances" && (rows.first?["behind"] as? Int ?? 0) >= 3)

                // The live tail from the end as it is now (the request may reach the server after
                // the commit): a commit made while it is open arrives.
                let end = try await store.endCursor().description
                async let tail = HTTPClient.send(port: port, "/api/tail?from=\(end)", until: "late")
                try await Task.sleep(for: .milliseconds(500))
                _ = try await accounts.create(id: "late") { try $0.open(owner: "Late") }
                let answer = try await tail
                #expect(answer.body.contains("bank:BankAccount/late") && !answer.body.contains("\"owner\":\"Ada\""))

                // Nothing changes a database from the Studio.
                let verify = try await HTTPClient.send(port: port, "POST", "/api/verify", headers: ["X-Dugong-CSRF": studio.guardian.csrfToken])
                #expect(verify.status == 403)
            }
            #expect(throws: StudioError.noMaintenanceOnPostgres) {
                try Studio(postgres: store, label: "x", options: .init(allowMaintenance: true, allowCompaction: true))
            }
        } catch {
            try await database.drop()
            throw error
        }
        try await database.drop()
    }

    // From a review: a database lists streams by when they began, a stream that never began
    // (tombstoned before any event) first; one tombstoned between two pages shifted the list,
    // and the next page, an index into it, repeated a stream. The page's fingerprint of the
    // streams before its index (`nextCheck`) tells, and the answer starts again.
    @Test func pagesOfStreamsStartAgainWhenAStreamIsListedBeforeThem() async throws {
        let database = try await PostgresTestDatabase.create(onServer: ProcessInfo.processInfo.environment["DUGONG_POSTGRES_URL"]!)
        do {
            let store = PostgresEventStore(client: database.client)
            let accounts = AggregateRepository<BankAccount>(eventStore: store, registry: try EventRegistry(BankAccount.self))
            for id in ["ada", "bob", "cy", "dee"] { _ = try await accounts.create(id: id) { try $0.open(owner: id) } }
            let studio = try Studio(postgres: store, label: "postgres://test", aggregates: [BankAccount.self])
            try await withStudio(studio) { port in
                func names(_ page: [String: Any]) -> [String] { (page["streams"] as? [[String: Any]])?.compactMap { $0["stream"] as? String } ?? [] }
                let first = try #require(Self.json(try await HTTPClient.send(port: port, "/api/streams?limit=2")))
                #expect(first["restarted"] as? Bool == false && names(first).count == 2)
                let next = try #require(first["next"] as? Int), check = try #require(first["nextCheck"] as? String)
                try await store.tombstone(streamNamed: "reserved")
                let second = try #require(Self.json(try await HTTPClient.send(port: port, "/api/streams?limit=100&after=\(next)&afterCheck=\(check)")))
                #expect(second["restarted"] as? Bool == true, "\(second)")
                #expect(names(second).sorted() == ["bank:BankAccount/ada", "bank:BankAccount/bob", "bank:BankAccount/cy", "bank:BankAccount/dee", "reserved"])
            }
        } catch {
            try await database.drop()
            throw error
        }
        try await database.drop()
    }
}
#endif
