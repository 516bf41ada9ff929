import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// Opening a store for a command, with errors a person can act on.
enum StoreAccess {
    /// Opens the store at `path` for reading (no lock: works while a writer has it open), or for
    /// writing (takes the lock).
    static func open(_ path: String, forWriting: Bool = false, creating: Bool = false, segmentSize: Int? = nil) throws -> EventLog {
        var options = EventLog.Options(createIfMissing: creating)
        options.readOnly = !forWriting
        if let segmentSize { options.segmentSize = segmentSize }
        do {
            return try EventLog.open(at: path, options: options)
        } catch let error as StoreError {
            throw Terminal.fail(describe(error, path: path))
        } catch {
            throw Terminal.fail("cannot open \(path): \(error)")
        }
    }

    static func describe(_ error: StoreError, path: String) -> String {
        switch error {
        case .notFound: "\(path) does not exist (no store there)"
        case .locked: "\(path) is locked by another process: a writer has the store open"
        default: "\(error)"
        }
    }
}

/// `--expected-version any|no-stream|stream-exists|N`.
extension ExpectedVersion: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "any": self = .any
        case "no-stream": self = .noStream
        case "stream-exists": self = .streamExists
        default:
            guard let version = Int(argument), version >= 0 else { return nil }
            self = .exact(version)
        }
    }
}
