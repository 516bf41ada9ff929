// A package that uses Dugong as the README's "Using Dugong in a package" shows; tools/test
// builds and runs it against this repository.
import Dugong
import DugongStore
import Foundation

let directory = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : NSTemporaryDirectory() + "bank-service-events"
let log = try EventLog.open(at: directory, options: .init(createIfMissing: true))
defer { log.close() }
let commit = try await log.append([NewEvent(type: "AccountOpened", data: Data(#"{"owner":"Ada"}"#.utf8))], to: "account/1")
let events = try log.read(stream: "account/1")
print("account/1 is at version \(commit.lastVersion); \(events.count) event(s) read back")
