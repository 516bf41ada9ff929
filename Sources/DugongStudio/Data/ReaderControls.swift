import Dugong
import Foundation

/// The application's running readers of the global log (projections and consumers), which an
/// embedded Studio with maintenance allowed can pause, resume and rewind, and whose parked
/// messages it lists and replays.
struct ReaderControls: Sendable {
    let readers: [any GlobalLogReader]

    func reader(_ name: String) throws -> any GlobalLogReader {
        guard let reader = readers.first(where: { $0.checkpointName == name }) else {
            throw Refusal(status: 404, message: "no running reader '\(name)' (the application gave the Studio: \(readers.map(\.checkpointName).joined(separator: ", ")))")
        }
        return reader
    }

    /// Each reader: name, paused or not, where it reads on from, parked messages (consumers).
    func list() async throws -> String {
        var rows: [String] = []
        for reader in readers {
            let parked = try await (reader as? EventConsumer)?.parked().count
            rows.append(
                JSONText.object([
                    "name": JSONText.quoted(reader.checkpointName), "paused": "\(await reader.isPaused)",
                    "cursor": JSONText.quoted(try await reader.cursor().description), "parked": parked.map { "\($0)" },
                ]))
        }
        return JSONText.array(rows)
    }

    func parked(_ name: String) async throws -> String {
        guard let consumer = try reader(name) as? EventConsumer else {
            throw Refusal(status: 409, message: "'\(name)' is not a consumer: only consumers park messages")
        }
        return JSONText.array(
            try await consumer.parked().map { message in
                JSONText.object([
                    "position": message.position.map { "\($0)" }, "stream": JSONText.quoted(AggregateStreamName.name(of: message.event.stream)),
                    "version": "\(message.event.sequenceNumber)", "type": JSONText.quoted(message.event.eventType),
                    "id": JSONText.quoted(message.event.id.uuidString.lowercased()), "error": JSONText.quoted(message.error),
                    "attempts": "\(message.attempts)",
                ])
            })
    }

    func replayParked(_ name: String) async throws -> String {
        guard let consumer = try reader(name) as? EventConsumer else {
            throw Refusal(status: 409, message: "'\(name)' is not a consumer: only consumers park messages")
        }
        return "{\"replayed\":\(try await consumer.replayParked())}"
    }

    func pause(_ name: String) async throws -> String {
        let reader = try reader(name)
        await reader.pause()
        return try await state(reader)
    }

    func resume(_ name: String) async throws -> String {
        let reader = try reader(name)
        await reader.resume()
        return try await state(reader)
    }

    /// Moves a paused reader's checkpoint to `cursor` (`start`: the beginning).
    func rewind(_ name: String, to text: String) async throws -> String {
        let reader = try reader(name)
        guard let cursor = text == "start" ? LogCursor.start : LogCursor(text) else {
            throw Refusal.badParameter("to must be a cursor of the log (P or T:P) or start, not '\(text)'")
        }
        do {
            try await reader.rewind(to: cursor)
        } catch let error as CheckpointError {
            throw Refusal(status: 409, message: "\(error)")
        }
        return try await state(reader)
    }

    private func state(_ reader: any GlobalLogReader) async throws -> String {
        JSONText.object([
            "name": JSONText.quoted(reader.checkpointName), "paused": "\(await reader.isPaused)",
            "cursor": JSONText.quoted(try await reader.cursor().description),
        ])
    }
}
