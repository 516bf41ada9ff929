import ArgumentParser
import DugongPostgres
import Foundation

/// Stores named by a `postgres://` (or `postgresql://`) URL instead of a directory: the
/// commands that speak PostgreSQL run through ``PostgresAccess/with(_:creating:_:)``; the
/// others refuse the URL with ``refuse(_:_:)``.
enum PostgresAccess {
    static func isURL(_ store: String) -> Bool {
        store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")
    }

    /// The URL without its password, for messages.
    static func redacted(_ url: String) -> String { PostgresConnectionURL.redacted(url) }

    /// Refuses a `postgres://` store for a command that works on a directory's files.
    static func refuse(_ store: String, _ reason: @autoclosure () -> String) throws {
        guard isURL(store) else { return }
        throw Terminal.fail("\(redacted(store)): \(reason())", code: ExitStatus.usage.rawValue)
    }
}

#if !Postgres
extension ParsableCommand {
    /// This build has no PostgreSQL: the command says how to get one.
    func runOnPostgres() async throws {
        throw Terminal.fail(
            "this dugong was built without PostgreSQL: build it with `swift build -c release --product dugong --traits Postgres`",
            code: ExitStatus.usage.rawValue)
    }
}
#endif
