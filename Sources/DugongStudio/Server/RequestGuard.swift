#if Studio
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Checks every request before a route sees it:
/// - on loopback, its `Host` names this server (a page of another site that a DNS rebinding
///   points at this port sends its own name: refused);
/// - off loopback (where the machine's names are not known), it carries the access token
///   instead: `?token=` (the page's address, and its live log's), or `Authorization: Bearer`
///   (the page's requests). Never a cookie: a browser sends a host's cookies to every port of
///   that host, so any other service there would receive the token;
/// - a request that changes something (`POST`) carries the page's CSRF token in
///   `X-Dugong-CSRF` (another site's page can neither read it nor send the header).
final class RequestGuard: RouterMiddleware, Sendable {
    typealias Context = BasicRequestContext

    let host: String
    /// Whether the address is a loopback one (no access token needed).
    let isLoopback: Bool
    /// Random, 32 hex digits each.
    let accessToken: String
    let csrfToken: String
    private let port = Mutex(0)

    static let csrfHeader = HTTPField.Name("X-Dugong-CSRF")!
    static let hostField = HTTPField.Name("Host")!

    /// - Parameter host: the address it listens on; an IPv6 one bare or in brackets (`[::1]`).
    init(host: String) {
        let host = Self.bare(host)
        self.host = host
        isLoopback = Self.isLoopbackAddress(host)
        accessToken = Self.randomToken()
        csrfToken = Self.randomToken()
    }

    /// An IPv6 address without the brackets a URL puts around it; any other as it is.
    static func bare(_ host: String) -> String {
        host.count > 2 && host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Whether `host` is `localhost`, `::1` or an IPv4 address in 127.0.0.0/8 written as four
    /// numbers (a name that only begins with "127." may resolve anywhere).
    static func isLoopbackAddress(_ host: String) -> Bool {
        let lowered = host.lowercased()
        if lowered == "localhost" || lowered == "::1" { return true }
        let parts = lowered.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }

    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
    }

    func listening(on port: Int) {
        self.port.withLock { $0 = port }
    }

    /// The page's URL: with the access token off loopback.
    func pageURL() -> URL? {
        let port = port.withLock { $0 }
        let shown = host.contains(":") ? "[\(host)]" : host
        return URL(string: "http://\(shown):\(port)/" + (isLoopback ? "" : "?token=\(accessToken)"))
    }

    /// The names a loopback server answers to: the address it is bound to (as a `Host` header
    /// spells it: IPv6 in brackets) and the machine's own loopback names.
    var loopbackNames: [String] {
        let bound = host.contains(":") ? "[\(host.lowercased())]" : host.lowercased()
        return ["127.0.0.1", "localhost", "[::1]"] + (["127.0.0.1", "localhost", "[::1]"].contains(bound) ? [] : [bound])
    }

    /// The `Host` values this server answers to: on loopback, its own names with its port;
    /// elsewhere any (the access token is checked instead).
    func admits(host header: String?) -> Bool {
        guard isLoopback else { return true }
        guard let header else { return false }
        let port = port.withLock { $0 }
        // (On port 80 a browser sends the name alone.)
        return loopbackNames.contains { header.lowercased() == "\($0):\(port)" || (port == 80 && header.lowercased() == $0) }
    }

    /// The API's routes: the method each answers (GET also answers HEAD) and the query
    /// parameters it takes besides `token`. Another method is refused with 405 and `Allow`, and
    /// any other parameter with 400: a misspelt one (`?limt=5`) was ignored without a word, and
    /// a GET of a POST route read "no such route". (`addRoutes` registers the handlers; the
    /// Studio's tests ask every route with every method.)
    static let routes: [String: (method: HTTPRequest.Method, parameters: Set<String>)] = {
        let filter: Set<String> = ["type", "stream", "since", "until"]
        var routes: [String: (method: HTTPRequest.Method, parameters: Set<String>)] = [
            "/api/overview": (.get, []), "/api/categories": (.get, []), "/api/checkpoints": (.get, []), "/api/readers": (.get, []),
            "/api/streams": (.get, ["search", "category", "after", "afterCheck", "limit"]), "/api/stream": (.get, ["name", "from", "limit"]),
            "/api/log": (.get, filter.union(["from", "limit"])), "/api/tail": (.get, filter.union(["from"])),
            "/api/aggregate-event": (.get, ["stream", "version", "at"]), "/api/readers/parked": (.get, ["name"]),
            "/api/readers/rewind": (.post, ["name", "to"]), "/api/verify": (.post, []), "/api/compact": (.post, []),
        ]
        for action in ["pause", "resume", "replay"] { routes["/api/readers/\(action)"] = (.post, ["name"]) }
        return routes
    }()

    /// Why `request` does not fit its route (a 405 or a 400), if it does not.
    static func routeProblem(_ request: Request) -> Response? {
        if request.uri.path == "/", request.method != .get, request.method != .head {
            // The page (its parameters are the browser's business: not checked).
            var refusal = Reply.problem(.methodNotAllowed, "/ (the page) answers GET only, not \(request.method)")
            refusal.headers[HTTPField.Name("Allow")!] = "GET, HEAD"
            return refusal
        }
        guard let route = routes[request.uri.path] else { return nil }
        guard request.method == route.method || (request.method == .head && route.method == .get) else {
            var refusal = Reply.problem(.methodNotAllowed, "\(request.uri.path) answers \(route.method) only, not \(request.method)")
            refusal.headers[HTTPField.Name("Allow")!] = route.method == .get ? "GET, HEAD" : "POST"
            return refusal
        }
        for (name, _) in request.uri.queryParameters where name != "token" && !route.parameters.contains(String(name)) {
            let taken = route.parameters.isEmpty ? "none" : route.parameters.sorted().joined(separator: ", ")
            return Reply.problem(.badRequest, "\(request.uri.path) takes no parameter \(String(name.prefix(80)).debugDescription) (it takes: \(taken))")
        }
        return nil
    }

    /// What is wrong with a query, if anything: a `%` not followed by two hex digits, bytes that
    /// are not UTF-8 once decoded (the parameters' decoder replaced such bytes with U+FFFD, and a
    /// stream named with that character was served for `%ff`), or a parameter given twice
    /// (which one counts would be a guess: the first one was taken, silently).
    static func queryProblem(_ query: String?) -> String? {
        guard let query else { return nil }
        var names: Set<[UInt8]> = []
        for component in query.split(separator: "&", omittingEmptySubsequences: true) {
            var bytes: [UInt8] = []
            var iterator = component.utf8.makeIterator()
            while let byte = iterator.next() {
                guard byte == UInt8(ascii: "%") else {
                    bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                    continue
                }
                guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                    return "the query's \(String(component.prefix(80)).debugDescription) has a '%' not followed by two hex digits"
                }
                bytes.append(high << 4 | low)
            }
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                return "the query's \(String(component.prefix(80)).debugDescription) is not UTF-8 once decoded"
            }
            let name = decoded.prefix { $0 != "=" }
            guard names.insert(Array(name.utf8)).inserted else {
                return "the query gives \(String(name.prefix(80)).debugDescription) more than once"
            }
        }
        return nil
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Compares in time that does not depend on where they differ.
    static func same(_ presented: String?, _ token: String) -> Bool {
        guard let presented else { return false }
        let a = Array(presented.utf8), b = Array(token.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // One Host only (RFC 9112: two are refused; which one a proxy would read is unknown).
        // The first is the request's authority; any other stays among the headers.
        guard request.headers[values: Self.hostField].isEmpty else {
            return Reply.problem(.badRequest, "a request has one Host header")
        }
        guard admits(host: request.head.authority) else {
            let port = port.withLock { $0 }
            let names = loopbackNames.map { "\($0):\(port)" }.joined(separator: ", ")
            return Reply.problem(.misdirectedRequest, "this server answers to \(names), not to '\(request.head.authority ?? "")' (open the address it printed)")
        }
        if !isLoopback {
            // (The scheme's name is case-insensitive, RFC 9110 §11.1.)
            let bearer = request.headers[.authorization].flatMap { $0.lowercased().hasPrefix("bearer ") ? String($0.dropFirst(7)) : nil }
            let presented = request.uri.queryParameters.get("token").map { String($0) } ?? bearer
            guard Self.same(presented, accessToken) else {
                var refusal = Reply.problem(
                    .unauthorized, "this Studio is reachable from other machines: open the URL with the access token it printed")
                // (RFC 9110 §15.5.2: a 401 says how to authenticate.)
                refusal.headers[.wwwAuthenticate] = "Bearer realm=\"Dugong Studio\""
                return refusal
            }
        }
        if let problem = Self.queryProblem(request.uri.query) { return Reply.problem(.badRequest, problem) }
        if let refusal = Self.routeProblem(request) { return refusal }
        switch request.method {
        case .get, .head:
            break
        case .post:
            guard Self.same(request.headers[Self.csrfHeader], csrfToken) else {
                return Reply.problem(.forbidden, "a change needs the page's CSRF token (X-Dugong-CSRF): reload the page")
            }
        default:
            var refusal = Reply.problem(.methodNotAllowed, "\(request.method) is not supported: the Studio reads with GET and changes with POST")
            refusal.headers[HTTPField.Name("Allow")!] = "GET, HEAD, POST"
            return refusal
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // (The router's answer to a path it does not know: an empty body, where every other
            // refusal says what is wrong.)
            return Reply.problem(.notFound, "no such page or API route: \(request.method) \(request.uri.path)")
        }
    }
}
#endif
