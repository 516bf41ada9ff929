import ArgumentParser
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

    mutating func print(_ events: some Collection<StoredEvent>) {
        guard !events.isEmpty else { return }
        var text = ""
        switch format {
        case .jsonl:
            for event in events { text += JSONLines.line(for: event) + "\n" }
        case .table:
            let rows = events.map(Self.row)
            for row in rows {
                for (column, value) in row.enumerated() { widths[column] = max(widths[column], value.count) }
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
        // JSON on one line may still hold tabs or carriage returns between its tokens.
        var data = String(String.UnicodeScalarView(JSONLines.jsonText(of: event.data).unicodeScalars.map { $0.value < 0x20 ? " " : $0 }))
        if data.count > dataWidth { data = String(data.prefix(dataWidth - 1)) + "…" }
        return [
            "\(event.position)", Streams.escaped(event.stream), "\(event.version)", Streams.escaped(event.type),
            JSONLines.timestamp(event), data,
        ]
    }

    private func line(_ row: [String]) -> String {
        var cells: [String] = []
        for (column, value) in row.enumerated() {
            let padding = String(repeating: " ", count: widths[column] - value.count)
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
