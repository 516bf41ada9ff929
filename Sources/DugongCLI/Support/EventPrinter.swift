import ArgumentParser
import Dugong
import DugongStore
import Foundation

/// How `read` and `read-all` print events.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// One JSON object per line (README, "The dugong tool"): for programs and `import`.
    case jsonl
    /// Aligned columns for people: position, stream, version, type, time and the data cut to
    /// ``EventPrinter/dataWidth`` characters; control characters in names escaped.
    case table
}

/// Prints events as JSON Lines or as a table, a batch at a time: a table's columns are as wide
/// as the widest value printed so far (they grow, never shrink, so `--follow` stays aligned as
/// far as it can).
struct EventPrinter {
    static let dataWidth = 60
    private static let header = ["position", "stream", "version", "type", "time", "data"]
    /// Columns aligned to the right (numbers).
    private static let rightAligned: Set<Int> = [0, 2]

    let format: OutputFormat
    private var widths: [Int] = header.map(\.count)
    private var printedHeader = false

    init(format: OutputFormat) { self.format = format }

    /// Prints `events`; with `cursors` (one per event: a PostgreSQL store's), JSON lines say
    /// each event's cursor too, and the table shows it as the position.
    mutating func print(_ events: some Collection<StoredEvent>, cursors: [LogCursor]? = nil) {
        guard !events.isEmpty else { return }
        precondition(cursors == nil || cursors!.count == events.count, "one cursor per event")
        var text = ""
        switch format {
        case .jsonl:
            for (index, event) in events.enumerated() { text += JSONLines.line(for: event, cursor: cursors?[index]) + "\n" }
        case .table:
            var rows = events.map(Self.row)
            if let cursors {
                for index in rows.indices { rows[index][0] = "\(cursors[index])" }
            }
            for row in rows {
                for (column, value) in row.enumerated() { widths[column] = max(widths[column], Self.width(value)) }
            }
            if !printedHeader {
                text += line(Self.header)
                printedHeader = true
            }
            for row in rows { text += line(row) }
        }
        Terminal.write(text, to: STDOUT_FILENO)
    }

    private static func row(_ event: StoredEvent) -> [String] {
        // JSON on one line may still hold tabs or carriage returns between its tokens, and its
        // strings C1 controls and line separators: none may reach the terminal.
        var data = String.UnicodeScalarView()
        for scalar in JSONLines.jsonText(of: event.data).unicodeScalars {
            if scalar.value < 0x20 {
                data.append(" ")
            } else if (0x7F..<0xA0).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}" {
                data.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                data.append(scalar)
            }
        }
        var text = String(data)
        if Self.width(text) > dataWidth {
            var cut = ""
            for character in text {
                guard Self.width(cut) + Self.width(String(character)) < dataWidth else { break }
                cut.append(character)
            }
            text = cut + "…"
        }
        return [
            "\(event.position)", Streams.escaped(event.stream), "\(event.version)", Streams.escaped(event.type),
            JSONLines.timestamp(event), text,
        ]
    }

    /// The columns `text` takes in a terminal: two for wide (East Asian) characters and emoji,
    /// one for every other character.
    static func width(_ text: String) -> Int {
        text.reduce(0) { total, character in
            let wide = character.unicodeScalars.contains { scalar in
                let value = scalar.value
                return scalar.properties.isEmojiPresentation || (0x1100...0x115F).contains(value) || (0x2E80...0xA4CF).contains(value)
                    || (0xAC00...0xD7A3).contains(value) || (0xF900...0xFAFF).contains(value) || (0xFE30...0xFE4F).contains(value)
                    || (0xFF00...0xFF60).contains(value) || (0xFFE0...0xFFE6).contains(value) || (0x20000...0x3FFFD).contains(value)
            }
            return total + (wide ? 2 : 1)
        }
    }

    private func line(_ row: [String]) -> String {
        var cells: [String] = []
        for (column, value) in row.enumerated() {
            let padding = String(repeating: " ", count: widths[column] - Self.width(value))
            if Self.rightAligned.contains(column) {
                cells.append(padding + value)
            } else {
                // The last column is not padded (no trailing spaces).
                cells.append(column == row.count - 1 ? value : value + padding)
            }
        }
        return cells.joined(separator: "  ") + "\n"
    }
}
