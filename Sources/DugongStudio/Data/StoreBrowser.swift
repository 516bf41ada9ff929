import Dugong
import DugongStore
import Foundation
import Synchronization

/// What the page asks of an embedded store, answered as JSON text: bounded pages, never a
/// whole stream or log.
///
/// Every answer is computed from the store as it is now; nothing here writes except
/// ``compact()`` (and only when the Studio allows maintenance).
final class StoreBrowser: Sendable {
    /// The open store; replaced when compaction reopens it.
    private let current: Mutex<EventLog>
    let directory: String
    let options: EventLog.Options
    /// The application's aggregates, when the Studio is embedded: states, diffs.
    let aggregates: AggregateQueryService?
    /// The last verify and compaction of this session, as JSON.
    private let lastRuns = Mutex<(verify: String?, compact: String?)>((nil, nil))

    /// The most a page holds.
    static let maximumPage = 500
    /// The most events one filtered log request looks at (the page goes on from where it stopped).
    static let scanBudget = 20_000

    init(log: EventLog, aggregates: [any Aggregate.Type]) throws {
        current = Mutex(log)
        directory = log.directory
        options = log.options
        self.aggregates = aggregates.isEmpty ? nil : try AggregateQueryService(store: EventLogStore(log: log), aggregates: aggregates)
    }

    /// The store, refreshed first when it is open read-only (another process may write it;
    /// damage in what it wrote is reported by the reads that reach it).
    var log: EventLog {
        let log = current.withLock { $0 }
        if log.options.readOnly { _ = try? log.refresh() }
        return log
    }

    // MARK: Store

    /// The store's counts, sizes, what opening it found, and this session's verify and compaction.
    func overview() throws -> String {
        let log = self.log
        let statistics = try log.statistics()
        let segments = statistics.segments.map {
            JSONText.object(["name": JSONText.quoted($0.name), "bytes": "\($0.fileBytes)", "firstPosition": "\($0.firstPosition)"])
        }
        let damage = log.damageFoundAtOpen.map { JSONText.quoted($0.description) }
        let runs = lastRuns.withLock { $0 }
        return JSONText.object([
            "directory": JSONText.quoted(directory),
            "readOnly": "\(log.options.readOnly)",
            "events": "\(statistics.events)",
            "streams": "\(statistics.streams)",
            "headPosition": "\(statistics.headPosition)",
            "fileBytes": "\(statistics.fileBytes)",
            "frameBytes": "\(statistics.frameBytes)",
            "rawPayloadBytes": "\(statistics.rawPayloadBytes)",
            "compressionRatio": String(format: "%.2f", statistics.compressionRatio),
            "segments": JSONText.array(segments),
            "tornBytesAtOpen": "\(log.recovery.tornBytesDiscarded)",
            "damageAtOpen": JSONText.array(damage),
            "lastVerify": runs.verify,
            "lastCompaction": runs.compact,
            "aggregates": aggregates.map { service in
                JSONText.array(service.types().map { JSONText.object(["origin": JSONText.quoted($0.origin), "type": JSONText.quoted($0.type)]) })
            },
        ])
    }

    // MARK: Streams

    /// Categories (the part of a name before its first `/`) with their numbers of streams.
    func categories() throws -> String {
        var counts: [String: Int] = [:]
        for name in try log.streamNames() {
            let category = name.firstIndex(of: "/").map { String(name[..<$0]) } ?? ""
            counts[category, default: 0] += 1
        }
        return JSONText.array(counts.sorted { $0.key < $1.key }.map { JSONText.object(["category": JSONText.quoted($0.key), "streams": "\($0.value)"]) })
    }

    /// Streams whose names contain `search` (all when empty), in the order they first
    /// appeared, from the `after`-th stream on; `next` says where the following page starts.
    func streams(search: String, after: Int, limit: Int) throws -> String {
        let log = self.log
        let names = try log.streamNames()
        var rows: [String] = []
        var index = min(after, names.count)
        var scanned = 0
        while index < names.count, rows.count < limit, scanned < Self.scanBudget * 10 {
            let name = names[index]
            index += 1
            scanned += 1
            guard search.isEmpty || name.localizedCaseInsensitiveContains(search), let info = try log.info(stream: name) else { continue }
            rows.append(
                JSONText.object([
                    "stream": JSONText.quoted(name), "version": "\(info.version)", "firstVisibleVersion": "\(info.firstVisibleVersion)",
                    "tombstoned": "\(info.isTombstoned)", "empty": "\(info.readsAsEmpty)",
                ]))
        }
        return JSONText.object([
            "streams": JSONText.array(rows), "next": index < names.count ? "\(index)" : "null", "total": "\(names.count)",
        ])
    }

    /// A page of a stream's events from version `from` on.
    func stream(_ name: String, from version: Int, limit: Int) throws -> String? {
        let log = self.log
        guard let info = try log.info(stream: name) else { return nil }
        let first = max(version, info.firstVisibleVersion, 1)
        let events = info.readsAsEmpty ? [] : try log.read(stream: name, from: first, maxCount: limit)
        let next = events.last.map { $0.version < info.version ? "\($0.version + 1)" : "null" } ?? "null"
        return JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(info.version)", "firstVisibleVersion": "\(info.firstVisibleVersion)",
            "tombstoned": "\(info.isTombstoned)", "events": JSONText.array(events.map(Self.event)), "next": next,
        ])
    }

    // MARK: The log

    /// What the log's page is filtered by.
    struct LogFilter {
        var type: String?
        var streamPrefix: String?
        /// Milliseconds since 1970, inclusive.
        var since: Int64?
        var until: Int64?

        var isEmpty: Bool { type == nil && streamPrefix == nil && since == nil && until == nil }

        func admits(_ event: StoredEvent) -> Bool {
            if let type, event.type != type { return false }
            if let streamPrefix, !event.stream.hasPrefix(streamPrefix) { return false }
            if let since, event.timestampMilliseconds < since { return false }
            if let until, event.timestampMilliseconds > until { return false }
            return true
        }
    }

    /// Up to `limit` events of the log from position `from` on that pass `filter`, looking at
    /// no more than ``scanBudget`` events; `next` is where the following page starts.
    func log(from position: UInt64, limit: Int, filter: LogFilter) throws -> String {
        let log = self.log
        var rows: [String] = []
        var next = position
        var scanned = 0
        let head = log.headPosition
        scan: while rows.count < limit, scanned < Self.scanBudget, next < head {
            let batch = try log.readAll(from: next, maxCount: min(1024, Self.scanBudget - scanned))
            if batch.isEmpty { break }
            for event in batch {
                scanned += 1
                next = event.position + 1
                if filter.admits(event) {
                    rows.append(Self.event(event))
                    if rows.count == limit { break scan }
                }
            }
        }
        return JSONText.object([
            "events": JSONText.array(rows), "next": "\(next)", "headPosition": "\(head)", "scanned": "\(scanned)",
            "complete": "\(next >= head)",
        ])
    }

    // MARK: Checkpoints

    /// The framework's checkpoints in the store (projections and consumers) and how far each
    /// is behind the log's head.
    func checkpoints() throws -> String {
        let log = self.log
        let head = log.headPosition
        let category = AggregateStreamName.category(origin: Checkpoint.origin, aggregateType: "Checkpoint", tenantID: nil)
        var rows: [String] = []
        for name in try log.streams(inCategory: category) {
            guard let last = try log.read(stream: name, direction: .backward).first else { continue }
            let value = try? JSONValue(json: last.data)
            var position: UInt64?
            switch value?["position"] {
            case .int(let number)?: position = number >= 0 ? UInt64(number) : nil
            case .uint(let number)?: position = number
            default: position = nil
            }
            rows.append(
                JSONText.object([
                    "name": JSONText.quoted(String(name.dropFirst(category.count + 1))), "position": position.map { "\($0)" } ?? "null",
                    "savedAt": JSONText.quoted(Self.time(last.timestampMilliseconds)), // Positions, not events: compaction leaves gaps.
                    "positionsBehind": position.map { "\(head - min($0, head))" } ?? "null",
                ]))
        }
        return JSONText.object(["headPosition": "\(head)", "checkpoints": JSONText.array(rows)])
    }

    // MARK: Aggregates

    /// An aggregate stream's event with the aggregate's state before and after it, the
    /// difference, and the command context that caused it.
    func aggregateEvent(stream name: String, version: Int) async throws -> String? {
        guard let aggregates, let id = AggregateStreamName.streamID(of: name) else { return nil }
        guard let stored = try log.storedEvent(of: name, version: version) else { return nil }
        let event = try EventLogStore.domainEvent(stored, of: id)
        func state(_ sequenceNumber: Int) async throws -> JSONValue? {
            sequenceNumber < 1 ? nil
                : try await aggregates.state(
                    of: id.aggregateType, id: id.aggregateID, origin: id.origin, tenantID: id.tenantID, asOf: sequenceNumber)
        }
        let before = try await state(version - 1)
        let after = try await state(version)
        func text(_ value: JSONValue?) -> String {
            guard let value, let data = try? value.jsonData() else { return "null" }
            return JSONText.quoted(JSONText.indented(data) ?? "")
        }
        return JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(version)",
            "before": text(before), "after": text(after),
            "changes": JSONText.array(StateDifference.between(before, after).map(\.json)),
            "context": JSONText.object([
                "correlationID": JSONText.quoted(event.correlationID),
                "triggeredByEventID": JSONText.quoted(event.triggeredByEventID?.uuidString.lowercased()),
                "triggeredByUserID": JSONText.quoted(event.triggeredByUserID),
            ]),
        ])
    }

    /// The aggregate's version as of `date`: its last event at or before it.
    func aggregateVersion(stream name: String, asOf milliseconds: Int64) throws -> Int? {
        guard let info = try log.info(stream: name), !info.readsAsEmpty else { return nil }
        var found: Int?
        var version = info.firstVisibleVersion
        while version <= info.version {
            let events = try log.read(stream: name, from: version, maxCount: 1024)
            guard !events.isEmpty else { break }
            for event in events where event.timestampMilliseconds <= milliseconds { found = event.version }
            version = events.last!.version + 1
        }
        return found
    }

    // MARK: Maintenance

    func verify() throws -> String {
        let report = try log.verify()
        let json = JSONText.object([
            "at": JSONText.quoted(Self.time(Int64(Date().timeIntervalSince1970 * 1000))),
            "clean": "\(report.isClean)", "segments": "\(report.segments)", "frames": "\(report.frames)", "events": "\(report.events)",
            "streams": "\(report.streams)",
            "problems": JSONText.array(report.problems.map { JSONText.quoted($0.description) }),
            "warnings": JSONText.array(report.warnings.map { JSONText.quoted($0.description) }),
        ])
        lastRuns.withLock { $0.verify = json }
        return json
    }

    /// Compacts the store: closes it, compacts (the lock taken again), reopens it.
    func compact() throws -> String {
        let json = try current.withLock { log -> String in
            precondition(!log.options.readOnly, "compaction needs the store opened for writing")
            log.close()
            let report: CompactionReport
            do {
                report = try EventLog.compact(at: directory)
            } catch {
                log = try EventLog.open(at: directory, options: options)
                throw error
            }
            log = try EventLog.open(at: directory, options: options)
            return JSONText.object([
                "at": JSONText.quoted(Self.time(Int64(Date().timeIntervalSince1970 * 1000))),
                "eventsBefore": "\(report.eventsBefore)", "eventsAfter": "\(report.eventsAfter)",
                "bytesBefore": "\(report.bytesBefore)", "bytesAfter": "\(report.bytesAfter)",
                "segmentsBefore": "\(report.segmentsBefore)", "segmentsAfter": "\(report.segmentsAfter)",
            ])
        }
        lastRuns.withLock { $0.compact = json }
        return json
    }

    // MARK: Events as JSON

    /// Every field of a stored event; the framework's envelope when its metadata holds one.
    static func event(_ event: StoredEvent) -> String {
        var envelope: String?
        if let id = AggregateStreamName.streamID(of: event.stream), let domain = try? EventLogStore.domainEvent(event, of: id) {
            envelope = JSONText.object([
                "origin": JSONText.quoted(domain.origin), "aggregateType": JSONText.quoted(domain.aggregateType),
                "aggregateID": JSONText.quoted(domain.aggregateID), "tenantID": JSONText.quoted(domain.tenantID),
                "schemaVersion": "\(domain.version)", "correlationID": JSONText.quoted(domain.correlationID),
                "triggeredByEventID": JSONText.quoted(domain.triggeredByEventID?.uuidString.lowercased()),
                "triggeredByUserID": JSONText.quoted(domain.triggeredByUserID),
            ])
        }
        return JSONText.object([
            "stream": JSONText.quoted(event.stream), "version": "\(event.version)", "position": "\(event.position)",
            "id": JSONText.quoted(event.id.uuidString.lowercased()), "type": JSONText.quoted(event.type),
            "timestamp": JSONText.quoted(time(event.timestampMilliseconds)), "timestampMilliseconds": "\(event.timestampMilliseconds)",
            "data": JSONText.payload(event.data), "metadata": JSONText.payload(event.metadata), "envelope": envelope,
        ])
    }

    /// ISO 8601 with milliseconds, UTC.
    static func time(_ milliseconds: Int64) -> String {
        PayloadTimestamp.millisecondString(milliseconds)
    }
}
