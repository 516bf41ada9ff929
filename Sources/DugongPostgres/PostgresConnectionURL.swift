#if Postgres
import Foundation
import PostgresNIO

/// Connection settings from a `postgres://` URL, as libpq reads them:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or a Unix socket's directory as the
/// `host` query parameter (`postgres://USER@/DATABASE?host=/run/postgresql`). Without a
/// password in the URL, `PGPASSWORD` is used when set (keep passwords off command lines).
public enum PostgresConnectionURL {
    public static func configuration(
        from text: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> PostgresClient.Configuration {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw PostgresStoreError.invalidURL("expected postgres://user@host/database, got '\(text)'")
        }
        guard let user = url.user, !user.isEmpty else { throw PostgresStoreError.invalidURL("no user in '\(text)'") }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let password = url.password ?? environment["PGPASSWORD"]
        if let socketDirectory = url.queryItems?.first(where: { $0.name == "host" })?.value, socketDirectory.hasPrefix("/") {
            let port = url.port ?? 5432
            return PostgresClient.Configuration(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password,
                database: database.isEmpty ? nil : database)
        }
        guard let host = url.host, !host.isEmpty else { throw PostgresStoreError.invalidURL("no host in '\(text)'") }
        return PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: user, password: password, database: database.isEmpty ? nil : database,
            tls: .disable)
    }
}
#endif
