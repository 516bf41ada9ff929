import ArgumentParser
import DugongStore
import Foundation

/// `dugong streams`: the streams of a store, with their versions and states.
struct Streams: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a store's streams: version, visible versions, state.",
        discussion: """
            One line per stream, in the order the streams began: its name (control characters \\
            escaped), its version (the last event's; appends continue after it), the versions \\
            reads return, and its state: live, truncated (its first versions hidden), hidden \\
            (deleted, or truncated past its last version) or tombstoned. --json prints JSON \\
            Lines instead. Reads without the write lock.

            Example:
              dugong streams /var/lib/app/events --category account
            """
    )

    @Argument(help: "The store's directory.") var store: String
    @Option(help: "Only streams whose name starts with this.") var prefix: String?
    @Option(help: "Only streams of this category (the name before its first \"/\").") var category: String?
    @Flag(help: "Print JSON Lines.") var json = false

    func run() throws {
        let log = try StoreAccess.open(store)
        defer { log.close() }
        do {
            let names: [String]
            if let category {
                names = try log.streams(inCategory: category)
            } else {
                names = try log.streamNames()
            }
            for name in names where prefix.map({ name.utf8.starts(with: $0.utf8) }) ?? true {
                guard let info = try log.info(stream: name) else { continue }
                let state = info.isTombstoned ? "tombstoned" : info.readsAsEmpty ? "hidden" : info.firstVisibleVersion > 1 ? "truncated" : "live"
                let visible = info.readsAsEmpty ? "none" : "\(info.firstVisibleVersion)...\(info.version)"
                if json {
                    Terminal.emit(
                        "{\"stream\":\(JSONLines.quoted(name)),\"version\":\(info.version),\"firstVisibleVersion\":\(info.firstVisibleVersion),\"state\":\"\(state)\"}")
                } else {
                    Terminal.emit("\(Self.escaped(name))  version \(info.version)  visible \(visible)  \(state)")
                }
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
    }

    /// A name for a terminal: control characters (and backslashes) as escapes, so that a name
    /// cannot move the cursor or hide itself.
    static func escaped(_ name: String) -> String {
        var result = ""
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                if scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }
}
