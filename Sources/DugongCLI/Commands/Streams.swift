import ArgumentParser
import DugongStore
import Foundation

/// `dugong streams`: the streams of a store, with their versions and states.
struct Streams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a store's streams: version, visible versions, state, events and sizes.",
        discussion: """
            One line per stream, in the order the streams began (after a compaction, the \
            streams that were deleted, truncated or tombstoned come first): its name (control characters \
            escaped), its version (the last event's; appends continue after it), the versions \
            reads return, and its state: live, truncated (its first versions hidden), hidden \
            (deleted, or truncated past its last version) or tombstoned; then how many events \
            the log holds for it (hidden ones too, until compaction removes them). --sizes adds \
            their data and metadata bytes (it reads the whole log once). --json prints JSON \
            Lines instead. Reads without the write lock. When the open (or the read of \
            --sizes) finds damage it prints what the rest of the store says, then names the \
            damage and exits 1: the damage may have held streams, versions or lifecycle \
            records. (An open checks the frames written since the last clean close, every \
            frame when the store has no saved index; `dugong verify` checks them all.)

            Examples:
              dugong streams /var/lib/app/events --category account
              dugong streams /var/lib/app/events --prefix account/4 --sizes
            """
    )

    @Argument(help: "The store's directory, or a postgres:// URL.") var store: String
    @Option(help: "Only streams whose name starts with this.") var prefix: String?
    @Option(help: "Only streams of this category (the name before its first \"/\"; a name without \"/\" has none).") var category: String?
    @Flag(help: "Also the bytes of each stream's event data and metadata (reads the whole log).") var sizes = false
    @Flag(help: "Print JSON Lines.") var json = false

    func run() async throws {
        if PostgresAccess.isURL(store) { return try await runOnPostgres() }
        let log = try StoreAccess.open(store)
        defer { log.close() }
        do {
            // With --category, the same list filtered (the engine's category list holds only
            // streams with events, in the order of their first event).
            let names = try log.streamNames().filter { name in category.map { isStream(name, ofCategory: $0) } ?? true }
            let bytes = sizes ? try Self.payloadBytes(in: log) : [:]
            for name in names where prefix.map({ name.utf8.starts(with: $0.utf8) }) ?? true {
                guard let info = try log.info(stream: name) else { continue }
                emit(name, info, events: info.version - info.firstStoredVersion + 1, bytes: bytes[NameKey(name)] ?? 0)
            }
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        try StoreAccess.failIfDamaged(log, path: store, what: "streams, versions and states above")
    }

    /// One stream's line: `events` stored (hidden ones too), `bytes` of them with --sizes.
    func emit(_ name: String, _ info: EventLog.StreamInfo, events: Int, bytes: Int) {
        let state = info.isTombstoned ? "tombstoned" : info.readsAsEmpty ? "hidden" : info.firstVisibleVersion > 1 ? "truncated" : "live"
        let visible = info.readsAsEmpty ? "none" : "\(info.firstVisibleVersion)...\(info.version)"
        if json {
            let size = sizes ? ",\"bytes\":\(bytes)" : ""
            Terminal.emit(
                "{\"stream\":\(JSONLines.quoted(name)),\"version\":\(info.version),\"firstVisibleVersion\":\(info.firstVisibleVersion),\"state\":\"\(state)\",\"events\":\(events)\(size)}")
        } else {
            let size = sizes ? "  \(Stats.size(bytes))" : ""
            Terminal.emit("\(Self.escaped(name))  version \(info.version)  visible \(visible)  \(state)  \(events) event\(events == 1 ? "" : "s")\(size)")
        }
    }

    /// Each stream's data and metadata bytes over the whole log (hidden events included).
    static func payloadBytes(in log: EventLog) throws -> [NameKey: Int] {
        var bytes: [NameKey: Int] = [:]
        var position: UInt64 = 0
        while true {
            let page = try log.readAll(from: position, maxCount: 4096)
            guard let last = page.last else { return bytes }
            for event in page { bytes[NameKey(event.stream), default: 0] += event.data.count + event.metadata.count }
            position = last.position + 1
        }
    }

    /// A name for a terminal: control characters, bidirectional overrides and isolates (and
    /// backslashes) as escapes, so that a name cannot move the cursor, hide itself or show its
    /// characters in another order.
    static func escaped(_ name: String) -> String {
        var result = ""
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            default:
                if scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
                    || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
                {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }
}
