#if Studio
import Dugong
import DugongStore
import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle

/// The Studio's answers: JSON (a problem is `{"error": "…"}` with a 4xx or 5xx status), the page,
/// and the live tail's server-sent events.
enum Reply {
    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json("{\"error\":" + JSONText.quoted(message) + "}", status: status)
    }
}


extension Request {
    /// A whole-number parameter within `range`, `fallback` when absent.
    func number<Number: FixedWidthInteger>(_ name: String, _ fallback: Number, in range: ClosedRange<Number>) throws -> Number {
        guard let text = uri.queryParameters.get(name) else { return fallback }
        guard let value = Number(String(text)) else { throw Refusal.badParameter("\(name) must be a whole number, not '\(text)'") }
        guard range.contains(value) else { throw Refusal.badParameter("\(name) must be between \(range.lowerBound) and \(range.upperBound), not \(value)") }
        return value
    }

    /// A text parameter; `nil` when absent or empty.
    func text(_ name: String) -> String? {
        uri.queryParameters.get(name).map { String($0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A time parameter: ISO 8601 (`2026-11-30T12:00:00Z`, milliseconds optional; a date alone is
    /// its midnight UTC, and digits past the milliseconds round up), as `dugong read-all` takes
    /// it. (Bare numbers were taken as milliseconds since 1970: a year typed into the page's
    /// box, `2026`, was 2 seconds into 1970, and the page showed every event. Found by a
    /// black-box run; refused now, as the tool refuses them.)
    func time(_ name: String) throws -> Int64? {
        guard let text = text(name) else { return nil }
        if let milliseconds = PayloadTimestamp.bound(from: text) { return milliseconds }
        throw Refusal.badParameter(
            "\(name) must be a time such as 2026-11-30T12:00:00Z, or a date such as 2026-11-30 (its midnight UTC), not '\(text)'")
    }

    /// The log's filter: `type`, `stream` (a prefix), `since` (at or after) and `until`
    /// (before), as `dugong read-all` takes them.
    func logFilter() throws -> LogFilter {
        let filter = LogFilter(type: text("type"), streamPrefix: text("stream"), since: try time("since"), until: try time("until"))
        if let since = filter.since, let until = filter.until, since >= until {
            throw Refusal.badParameter("since is not before until (until is exclusive)")
        }
        return filter
    }
}

extension Studio {
    func addRoutes(to router: Router<BasicRequestContext>) {
        let source = self.source
        let readers = self.readers
        let guardian = self.guardian
        let maintenance = options.allowMaintenance
        let compaction = options.allowMaintenance && options.allowCompaction
        let stopping = self.stopping

        /// Runs `body` on the Studio's own threads (``ReadThreads``); a bad parameter is a 400,
        /// a store error a 500 that says what failed.
        @Sendable func answer(_ body: () async throws -> Response) async -> Response {
            do {
                return try await withTaskExecutorPreference(ReadThreads.shared) {
                    // This Studio's compactions close the store under the requests in flight and
                    // open it again: such a request runs again, on the store as it is now.
                    for _ in 1..<4 where compaction {
                        do { return try await body() } catch StoreError.closed {}
                    }
                    return try await body()
                }
            } catch let refusal as Refusal {
                return Reply.problem(HTTPResponse.Status(code: refusal.status), refusal.message)
            } catch let error as StoreError where error.isDamage {
                // Health says so from now on (it showed only damage found at open).
                source.noteDamage("\(error)")
                return Reply.json("{\"error\":" + JSONText.quoted("\(error)") + ",\"damage\":true}", status: .internalServerError)
            } catch {
                return Reply.problem(.internalServerError, "\(error)")
            }
        }

        router.get("/") { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                    .contentSecurityPolicy: "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
                    .init("X-Frame-Options")!: "DENY",
                ],
                body: ResponseBody(
                    byteBuffer: ByteBuffer(string: StudioPage.html(csrfToken: guardian.csrfToken, maintenance: maintenance, compaction: compaction))))
        }
        router.get("/api/overview") { _, _ in
            await answer { Reply.json(try await source.overview()) }
        }
        router.get("/api/categories") { _, _ in
            await answer { Reply.json(try await source.categories()) }
        }
        router.get("/api/streams") { request, _ in
            await answer {
                Reply.json(
                    try await source.streams(
                        search: request.text("search") ?? "", category: request.uri.queryParameters.get("category").map { String($0) },
                        after: try request.number("after", 0, in: 0...Int.max), afterCheck: request.text("afterCheck"),
                        limit: try request.number("limit", 50, in: 1...StoreBrowser.maximumPage)))
            }
        }
        router.get("/api/stream") { request, _ in
            await answer {
                guard let name = request.text("name") else { throw Refusal.badParameter("name (the stream's) is missing") }
                let from = try request.number("from", 1, in: 1...Int.max)
                guard let page = try await source.stream(name, from: from, limit: try request.number("limit", 50, in: 1...StoreBrowser.maximumPage)) else {
                    return Reply.problem(.notFound, "the store has no stream '\(name)'")
                }
                return Reply.json(page)
            }
        }
        router.get("/api/log") { request, _ in
            await answer {
                let limit = try request.number("limit", 50, in: 1...StoreBrowser.maximumPage)
                return Reply.json(try await source.log(from: request.text("from"), limit: limit, filter: try request.logFilter()))
            }
        }
        router.get("/api/checkpoints") { _, _ in
            await answer { Reply.json(try await source.checkpoints()) }
        }
        router.get("/api/aggregate-event") { request, _ in
            await answer {
                guard source.aggregates != nil else {
                    return Reply.problem(.notFound, "states need the application's aggregate types: embed DugongStudio in the application")
                }
                guard let name = request.text("stream") else { throw Refusal.badParameter("stream is missing") }
                var version = try request.number("version", 0, in: 1...Int.max)
                if request.text("at") != nil, version != 0 {
                    throw Refusal.badParameter("give version or at (a time), not both")
                }
                if let milliseconds = try request.time("at") {
                    guard let found = try await source.version(of: name, asOf: milliseconds) else {
                        return Reply.problem(.notFound, "'\(name)' has no event at or before that time")
                    }
                    version = found
                }
                guard version >= 1 else { throw Refusal.badParameter("version (at least 1) or at (a time) is missing") }
                guard let page = try await source.aggregateEvent(stream: name, version: version) else {
                    return Reply.problem(.notFound, "'\(name)' is not an aggregate stream of the store with version \(version)")
                }
                return Reply.json(page)
            }
        }
        router.get("/api/tail") { request, _ in
            await answer {
                let start: String
                let filter = try request.logFilter()
                do {
                    // A reconnecting browser says where it was (the last `id:` it got), and asks
                    // the address it first asked (whose `from` is where it began): the former wins.
                    let reconnected = request.headers[HTTPField.Name("Last-Event-ID")!].flatMap { $0.isEmpty ? nil : $0 }
                    let given = reconnected ?? request.text("from")
                    start = try await withTaskExecutorPreference(ReadThreads.shared) {
                        // (Refuses a cursor this source cannot read.)
                        guard let given else { return try await source.tailStart() }
                        _ = try await source.tailPage(from: given, filter: filter)
                        return given
                    }
                } catch let error as StoreError where error.isDamage {
                    // An event stream that says so: an error answer would leave a reconnecting
                    // browser nothing to show but "reconnecting".
                    source.noteDamage("\(error)")
                    return Response(
                        status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: Self.damageEvent(error))))
                }
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                    body: ResponseBody { writer in
                        // (On the cooperative pool, as Hummingbird runs it: the tail mostly waits,
                        // and its end at a stop must not wait for the Studio's threads. Its
                        // reads run on them: tails catching up on a long log held every thread
                        // of the pool, and every other request waited.)
                        try await Self.tail(source, from: start, filter: filter, until: stopping, into: &writer)
                        // The body's end (the last chunk): without it the answer stays open, and
                        // the server's shutdown and the client wait for it.
                        try await writer.finish(nil)
                    })
            }
        }
        router.get("/api/readers") { _, _ in
            await answer { Reply.json(try await readers.list()) }
        }
        router.get("/api/readers/parked") { request, _ in
            await answer {
                guard let name = request.text("name") else { throw Refusal.badParameter("name (the reader's) is missing") }
                return Reply.json(try await readers.parked(name))
            }
        }
        for action in ["pause", "resume", "rewind", "replay"] {
            router.post("/api/readers/\(action)") { request, _ in
                await answer {
                    guard maintenance else {
                        return Reply.problem(.forbidden, "read-only: the application starts its Studio with allowMaintenance to \(action) readers")
                    }
                    guard let name = request.text("name") else { throw Refusal.badParameter("name (the reader's) is missing") }
                    switch action {
                    case "pause": return Reply.json(try await readers.pause(name))
                    case "resume": return Reply.json(try await readers.resume(name))
                    case "replay": return Reply.json(try await readers.replayParked(name))
                    default:
                        guard let to = request.text("to") else { throw Refusal.badParameter("to (a cursor, or start) is missing") }
                        return Reply.json(try await readers.rewind(name, to: to))
                    }
                }
            }
        }
        router.post("/api/verify") { _, _ in
            await answer {
                guard maintenance else { return Reply.problem(.forbidden, "read-only: start the Studio with --allow-maintenance to verify") }
                return Reply.json(try await source.verify())
            }
        }
        router.post("/api/compact") { _, _ in
            await answer {
                guard compaction else {
                    return Reply.problem(
                        .forbidden, "compaction needs a Studio that owns the store: `dugong studio --allow-maintenance` with the application stopped")
                }
                return Reply.json(try await source.compact())
            }
        }
    }

    /// What ends a wait of the live tail.
    private enum Wakeup: Sendable {
        case events, quiet, shutdown
    }

    /// Sends the log's events from `position` on that `filter` admits as server-sent events,
    /// each with the cursor after it as its `id:` (a browser that reconnects says the last one
    /// it got: nothing twice, nothing skipped; an `event: cursor` after events the filter left
    /// out),
    /// waiting for new ones, with a comment every 15 s so that a closed page
    /// ends it; it ends when the Studio stops (`stopping`: the server's graceful shutdown waits
    /// for open answers), and after an `event: damage` when the log cannot be read further (a
    /// browser would reconnect to the same damage for ever).
    static func tail(
        _ source: any StudioSource, from cursor: String, filter: LogFilter, until stopping: StopSignal,
        into writer: inout any ResponseBodyWriter
    ) async throws {
        var next = cursor
        // `id:` at once: a browser that loses the connection before the first event comes
        // back from here, not from a later end of the log.
        try await writer.write(ByteBuffer(string: "retry: 1000\nid: \(next)\n\n"))
        while !Task.isCancelled, !stopping.isStopped {
            let page: (events: [(json: String, next: String)], next: String)
            do {
                page = try await withTaskExecutorPreference(ReadThreads.shared) { try await source.tailPage(from: next, filter: filter) }
            } catch let error as StoreError where error.isDamage {
                source.noteDamage("\(error)")
                try await writer.write(ByteBuffer(string: damageEvent(error)))
                return
            }
            // Other failures (a database connection lost) end the answer with an error: the
            // browser reconnects from the last event it got.
            if page.events.isEmpty, page.next != next {
                // Events the filter left out: the browser reconnects after them, and the page
                // resumes after them (`event: cursor`).
                next = page.next
                try await writer.write(ByteBuffer(string: "event: cursor\nid: \(next)\ndata: {\"next\":\"\(next)\"}\n\n"))
                continue
            }
            if page.events.isEmpty {
                let after = next
                let wakeup: Wakeup
                do {
                    wakeup = try await Self.wake(source, after: after, until: stopping)
                } catch let error as StoreError where error.isDamage {
                    // (The store put back from an older copy: the wait's refresh says so.)
                    source.noteDamage("\(error)")
                    try await writer.write(ByteBuffer(string: damageEvent(error)))
                    return
                }
                switch wakeup {
                case .events: continue
                case .quiet: try await writer.write(ByteBuffer(string: ": still here\n\n"))
                case .shutdown: return
                }
                continue
            }
            var text = ""
            for event in page.events { text += "id: \(event.next)\ndata: \(event.json)\n\n" }
            next = page.next
            try await writer.write(ByteBuffer(string: text))
        }
    }

    /// The tail's last event when the log cannot be read further.
    static func damageEvent(_ error: StoreError) -> String {
        "event: damage\ndata: {\"error\":" + JSONText.quoted("\(error)") + "}\n\n"
    }

    /// What ends the live tail's wait after `after`: events, 15 s of quiet, or the Studio's stop.
    private static func wake(_ source: any StudioSource, after: String, until stopping: StopSignal) async throws -> Wakeup {
        try await withThrowingTaskGroup(of: Wakeup.self) { group in
            group.addTask {
                try await source.waitForEvents(from: after)
                return .events
            }
            group.addTask {
                try await Task.sleep(for: .seconds(15))
                return .quiet
            }
            group.addTask {
                try await stopping.wait()
                return .shutdown
            }
            defer { group.cancelAll() }
            do {
                return try await group.next() ?? .shutdown
            } catch where Task.isCancelled || stopping.isStopped {
                // The server stopping cancels its answers' tasks too: the sleep's cancellation
                // came first now and then, and the tail ended without its last chunk.
                return .shutdown
            }
        }
    }
}

#endif
