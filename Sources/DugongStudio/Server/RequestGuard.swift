#if Studio
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Checks every request before a route sees it:
/// - its `Host` names this server (a page of another site that a DNS rebinding points at this
///   port sends its own name: refused);
/// - off loopback, it carries the access token (`?token=` once, then the cookie the page sets);
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

    static let cookie = "dugong_studio"
    static let csrfHeader = HTTPField.Name("X-Dugong-CSRF")!

    init(host: String) {
        self.host = host
        isLoopback = ["127.0.0.1", "::1", "localhost"].contains(host) || host.hasPrefix("127.")
        accessToken = Self.randomToken()
        csrfToken = Self.randomToken()
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

    /// The `Host` values this server answers to.
    func admits(host header: String?) -> Bool {
        guard let header else { return false }
        let port = port.withLock { $0 }
        var names = ["127.0.0.1", "localhost", "[::1]"]
        if !isLoopback { names.append(host.contains(":") ? "[\(host)]" : host) }
        return names.contains { header.lowercased() == "\($0):\(port)" }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard admits(host: request.head.authority) else {
            return Reply.problem(.misdirectedRequest, "this server answers to 127.0.0.1 and localhost (and the address it was started on), not to '\(request.head.authority ?? "")'")
        }
        var grantsCookie = false
        if !isLoopback {
            let presented = request.uri.queryParameters.get("token").map { String($0) } ?? request.cookies[Self.cookie]?.value
            guard presented == accessToken else {
                return Reply.problem(.unauthorized, "this Studio is reachable from other machines: open the URL with the access token it printed")
            }
            grantsCookie = request.uri.queryParameters.get("token") != nil
        }
        switch request.method {
        case .get, .head:
            break
        case .post:
            guard request.headers[Self.csrfHeader] == csrfToken else {
                return Reply.problem(.forbidden, "a change needs the page's CSRF token (X-Dugong-CSRF): reload the page")
            }
        default:
            return Reply.problem(.methodNotAllowed, "\(request.method) is not supported: the Studio reads with GET and changes with POST")
        }
        var response = try await next(request, context)
        if grantsCookie {
            response.headers[.setCookie] = "\(Self.cookie)=\(accessToken); Path=/; HttpOnly; SameSite=Strict"
        }
        return response
    }
}
#endif
