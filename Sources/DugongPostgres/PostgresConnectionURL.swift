import Foundation
#if Postgres
import NIOSSL
import PostgresNIO
#endif

/// Connection settings from a `postgres://` URL, as libpq reads them:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=FILE]`, or a Unix
/// socket's directory as the `host` query parameter (`postgres://USER@/DATABASE?host=/run/postgresql`).
///
/// The password: the URL's, else `PGPASSWORD`, else the first matching line of the password
/// file (`PGPASSFILE`, or `~/.pgpass`: `host:port:database:user:password`, `*` for any, `\:`
/// for a colon; ignored unless only its owner can read it) — so that no password need be on a
/// command line. `sslmode`: `disable`, `prefer` (TLS when the server offers it, unverified; the
/// default over TCP), `require` (TLS, unverified), `verify-ca` (the server's certificate
/// checked against the trust roots), `verify-full` (and its host name); trust roots from
/// `sslrootcert`, else the system's. A Unix socket never uses TLS. `connect_timeout` (seconds;
/// PostgresNIO's 10 by default), `application_name`, and `options` (`-c name=value` server
/// settings, such as `statement_timeout` or `lock_timeout` in milliseconds).
public enum PostgresConnectionURL {
    /// The URL with its password replaced by `***`, for messages and logs (in every build:
    /// the tool says why a build without the `Postgres` trait refuses a URL).
    public static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@"),
            let colon = text[scheme.upperBound..<at].firstIndex(of: ":")
        else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

#if Postgres
extension PostgresConnectionURL {
    public static func configuration(
        from text: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> PostgresClient.Configuration {
        let shown = redacted(text)
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw PostgresStoreError.invalidURL("expected postgres://user@host/database, got '\(shown)'")
        }
        guard let user = url.user, !user.isEmpty else { throw PostgresStoreError.invalidURL("no user in '\(shown)'") }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let port = url.port ?? 5432
        // libpq refuses a parameter it does not know; so does this reader, and one libpq knows
        // but this one does not use (`sslcert`, `target_session_attrs`, …) is refused too, rather
        // than connecting otherwise than the URL asks. Each may be given once.
        var given: Set<String> = []
        for item in url.queryItems ?? [] {
            guard Self.parameters.contains(item.name) else {
                throw PostgresStoreError.invalidURL(
                    "parameter '\(item.name)' in '\(shown)' is not supported: expected "
                        + Self.parameters.sorted().joined(separator: ", "))
            }
            guard item.value != nil else {
                throw PostgresStoreError.invalidURL("parameter '\(item.name)' in '\(shown)' has no value: expected \(item.name)=…")
            }
            guard given.insert(item.name).inserted else {
                throw PostgresStoreError.invalidURL("parameter '\(item.name)' given twice in '\(shown)'")
            }
        }
        func parameter(_ name: String) -> String? { url.queryItems?.first(where: { $0.name == name })?.value }
        if let host = parameter("host"), !host.hasPrefix("/") {
            throw PostgresStoreError.invalidURL(
                "host '\(host)' in '\(shown)': the host parameter names a Unix socket's directory (an absolute path); put a server's name after the '@'")
        }
        // The mode is checked whatever the connection (a Unix socket never uses TLS): a wrong one
        // was refused over TCP only (found by a black-box run).
        let tls = try tls(mode: parameter("sslmode") ?? "prefer", rootCertificates: parameter("sslrootcert"), shown: shown)
        // libpq also takes the socket directory percent-encoded in the host's place
        // (`postgres://user@%2Fvar%2Frun%2Fpostgresql/db`).
        let socketInHost = url.host.flatMap { $0.hasPrefix("/") ? $0 : nil }
        if socketInHost != nil, parameter("host") != nil {
            throw PostgresStoreError.invalidURL("two socket directories in '\(shown)': one in the host's place, one in the host parameter")
        }
        var configuration: PostgresClient.Configuration
        if let socketDirectory = parameter("host") ?? socketInHost {
            let password = url.password ?? environment["PGPASSWORD"]
                ?? passwordFile(environment, host: socketDirectory, port: port, database: database, user: user)
            configuration = PostgresClient.Configuration(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password,
                database: database.isEmpty ? nil : database)
        } else {
            guard let host = url.host, !host.isEmpty else { throw PostgresStoreError.invalidURL("no host in '\(shown)'") }
            let password = url.password ?? environment["PGPASSWORD"]
                ?? passwordFile(environment, host: host, port: port, database: database, user: user)
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database.isEmpty ? nil : database, tls: tls)
        }
        if let text = parameter("connect_timeout") {
            guard let seconds = Int(text), seconds > 0 else {
                throw PostgresStoreError.invalidURL("connect_timeout '\(text)' in '\(shown)': expected a positive number of seconds")
            }
            configuration.options.connectTimeout = .seconds(seconds)
        }
        if let name = parameter("application_name") { configuration.options.additionalStartupParameters.append(("application_name", name)) }
        if let text = parameter("options") { configuration.options.additionalStartupParameters += try settings(text, shown: shown) }
        return configuration
    }

    /// The query parameters this reader uses (each with libpq's meaning).
    static let parameters: Set<String> = ["host", "sslmode", "sslrootcert", "connect_timeout", "application_name", "options"]

    /// libpq's `options`: server settings as `-c name=value` (or `-cname=value`), separated by
    /// spaces, e.g. `options=-c%20statement_timeout%3D5000` for statements of at most 5 s.
    static func settings(_ text: String, shown: String) throws -> [(String, String)] {
        var settings: [(String, String)] = []
        var words = text.split(separator: " ").map(String.init)[...]
        while let word = words.popFirst() {
            let setting: String
            if word == "-c", let next = words.popFirst() {
                setting = next
            } else if word.hasPrefix("-c"), word.count > 2 {
                setting = String(word.dropFirst(2))
            } else {
                throw PostgresStoreError.invalidURL("options '\(text)' in '\(shown)': expected -c name=value")
            }
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw PostgresStoreError.invalidURL("options '\(text)' in '\(shown)': expected -c name=value")
            }
            settings.append((String(setting[..<equals]), String(setting[setting.index(after: equals)...])))
        }
        return settings
    }

    static func tls(mode: String, rootCertificates: String?, shown: String) throws -> PostgresClient.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let rootCertificates { configuration.trustRoots = .file(rootCertificates) }
        switch mode {
        case "disable", "allow":
            return .disable
        case "prefer":
            configuration.certificateVerification = .none
            return .prefer(configuration)
        case "require":
            configuration.certificateVerification = .none
            return .require(configuration)
        case "verify-ca":
            configuration.certificateVerification = .noHostnameVerification
            return .require(configuration)
        case "verify-full":
            configuration.certificateVerification = .fullVerification
            return .require(configuration)
        default:
            throw PostgresStoreError.invalidURL(
                "sslmode '\(mode)' in '\(shown)': expected disable, prefer, require, verify-ca or verify-full")
        }
    }

    /// The password of the first line of the password file that matches, as libpq reads it;
    /// `nil` without a file, or when others than its owner may read it.
    static func passwordFile(_ environment: [String: String], host: String, port: Int, database: String, user: String) -> String? {
        guard let path = environment["PGPASSFILE"] ?? environment["HOME"].map({ $0 + "/.pgpass" }),
            let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let permissions = attributes[.posixPermissions] as? Int, permissions & 0o077 == 0,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        // A socket connection matches "localhost" or its directory, as in libpq.
        let hosts: Set<String> = host.hasPrefix("/") ? ["localhost", host] : [host]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var fields: [String] = [""]
            var escaped = false
            for character in line {
                if escaped {
                    fields[fields.count - 1].append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == ":" && fields.count < 5 {
                    fields.append("")
                } else {
                    fields[fields.count - 1].append(character)
                }
            }
            guard fields.count == 5 else { continue }
            func matches(_ field: String, _ values: Set<String>) -> Bool { field == "*" || values.contains(field) }
            if matches(fields[0], hosts), matches(fields[1], ["\(port)"]), matches(fields[2], [database]), matches(fields[3], [user]) {
                return fields[4]
            }
        }
        return nil
    }
}
#endif
