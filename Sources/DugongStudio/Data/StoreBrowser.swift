import Dugong
import DugongStore
import Foundation
import Synchronization

/// What the page asks of an embedded store, answered as JSON text: bounded pages, never a
/// whole stream or log.
///
/// Every answer is computed from the store as it is now; nothing here writes except
/// ``compact()`` (and only when the Studio allows maintenance).
final class StoreBrowser: StudioSource {
    /// The open store; replaced when compaction reopens it.
    private let current: Mutex<EventLog>
    let directory: String
    let options: EventLog.Options
    /// The application's aggregate types (none: no states).
    private let aggregateTypes: [any Aggregate.Type]
    /// The last verify and compaction of this session, as JSON.
    private let lastRuns = Mutex<(verify: String?, compact: String?)>((nil, nil))
    /// Damage reads met since the Studio opened the store (the first few, each once).
    private let damageSeen = Mutex<[String]>([])

    func noteDamage(_ description: String) {
        damageSeen.withLock { seen in
            if seen.count < 10, !seen.contains(description) { seen.append(description) }
        }
    }

    /// The most a page holds.
    static let maximumPage = 500
    /// Events read at a time for a page: events can be large (a page is bounded in bytes too).
    static let readBatch = 16
    /// The most events read at a time by a page of the log. Each read decompresses the frames it
    /// reaches: 16 at a time decompressed a commit of 50,000 events 3,000 times per 50,000
    /// scanned (a filtered page took minutes). A page's reads start at ``readBatch`` and double
    /// while a read holds less than ``logReadBytes`` (large events stay few at a time).
    static let logReadBatch = 1024
    static let logReadBytes = 1 << 20
    /// The most events one filtered log request looks at (the page goes on from where it stopped).
    static let scanBudget = 20_000

    init(log: EventLog, aggregates: [any Aggregate.Type]) throws {
        current = Mutex(log)
        directory = log.directory
        options = log.options
        aggregateTypes = aggregates
        // Their event types must not conflict: checked now, once.
        if !aggregates.isEmpty { _ = try AggregateQueryService(store: EventLogStore(log: log), aggregates: aggregates) }
    }

    /// Questions about the aggregates, on the store as it is now (compaction reopens it).
    var aggregates: AggregateQueryService? {
        // (The store as it is: the reads the service makes go through ``log``'s checks.)
        let log = current.withLock { $0 }
        return aggregateTypes.isEmpty
            ? nil
            : try? AggregateQueryService(store: EventLogStore(log: log), snapshotStore: EventLogSnapshotStore(log: log), aggregates: aggregateTypes)
    }

    /// The store, refreshed first when it is open read-only (another process may write it;
    /// damage in what it wrote is reported by the reads that reach it).
    ///
    /// - Throws: the refresh's damage: the store was put back from an older copy, or lost
    ///   events this Studio has shown (served as they were, silently, before).
    var log: EventLog {
        get throws {
            let log = current.withLock { $0 }
            if log.options.readOnly {
                do {
                    try log.refresh()
                } catch let error as StoreError where error.isDamage {
                    throw error
                } catch {
                    // (Anything else, an I/O error, is met again by the reads if it lasts.)
                }
            }
            return log
        }
    }

    // MARK: Store

    /// The store's counts, sizes, what opening it found, and this session's verify and compaction.
    func overview() throws -> String {
        let log = try self.log
        let statistics = try log.statistics()
        let segments = statistics.segments.map {
            JSONText.object(["name": JSONText.quoted($0.name), "bytes": "\($0.fileBytes)", "firstPosition": "\($0.firstPosition)"])
        }
        let damage = log.damageFoundAtOpen.map { JSONText.quoted($0.description) }
        let runs = lastRuns.withLock { $0 }
        return JSONText.object([
            "kind": JSONText.quoted("directory"),
            "directory": JSONText.quoted(directory),
            "readOnly": "\(log.options.readOnly)",
            "events": "\(statistics.events)",
            "streams": "\(statistics.streams)",
            "headPosition": "\(statistics.headPosition)",
            "fileBytes": "\(statistics.fileBytes)",
            "frameBytes": "\(statistics.frameBytes)",
            "eventFrames": "\(log.eventFrameCount)",
            "rawPayloadBytes": "\(statistics.rawPayloadBytes)",
            // null without events: the ratio of bookkeeping frames alone says nothing.
            "compressionRatio": statistics.events == 0 ? "null" : String(format: "%.2f", statistics.compressionRatio),
            "segments": JSONText.array(segments),
            "tornBytesAtOpen": "\(log.recovery.tornBytesDiscarded)",
            "damageAtOpen": JSONText.array(damage),
            "damageSeen": JSONText.array(damageSeen.withLock { $0 }.map(JSONText.quoted)),
            "lastVerify": runs.verify,
            "lastCompaction": runs.compact,
            "aggregates": aggregates.map { service in
                JSONText.array(service.types().map { JSONText.object(["origin": JSONText.quoted($0.origin), "type": JSONText.quoted($0.type)]) })
            },
        ])
    }

    // MARK: Streams

    func categories() throws -> String {
        Self.categories(of: try log.streamNames())
    }

    /// Streams whose names contain `search` (all when empty), in the order they first
    /// appeared, from the `after`-th stream on; `next` says where the following page starts
    /// (and `nextCheck` what came before it: a compaction reorders the list).
    func streams(search: String, category: String?, after: Int, afterCheck: String?, limit: Int) throws -> String {
        let log = try self.log
        let names = try log.streamNames()
        var rows: [String] = []
        var (index, check, restarted) = StreamListCheck.start(in: names, after: after, afterCheck: afterCheck)
        var scanned = 0
        while index < names.count, rows.count < limit, scanned < Self.scanBudget * 10 {
            let name = names[index]
            index += 1
            check.add(name)
            scanned += 1
            guard Self.isIn(category, name), Self.matches(name, search: search), let info = try log.info(stream: name)
            else { continue }
            rows.append(
                Self.streamRow(
                    name, version: info.version, firstVisibleVersion: info.firstVisibleVersion, tombstoned: info.isTombstoned,
                    empty: info.readsAsEmpty))
        }
        return JSONText.object([
            "streams": JSONText.array(rows), "next": index < names.count ? "\(index)" : "null",
            "nextCheck": index < names.count ? JSONText.quoted(check.text) : "null", "total": "\(names.count)",
            "restarted": "\(restarted)",
        ])
    }

    /// A page of a stream's events from version `from` on.
    func stream(_ name: String, from version: Int, limit: Int) throws -> String? {
        let log = try self.log
        guard let info = try log.info(stream: name) else { return nil }
        let first = max(version, info.firstVisibleVersion, 1)
        var page = PageRows(limit: limit)
        var next: Int?
        var from = first
        // A few events at a time: what a page holds is bounded in bytes, not what it reads.
        reading: while !info.readsAsEmpty, !page.isFull {
            let events = try log.read(stream: name, from: from, maxCount: Self.readBatch)
            for event in events {
                guard page.add(Self.event(event)) else {
                    next = event.version
                    break reading
                }
                next = event.version < info.version ? event.version + 1 : nil
            }
            guard events.count == Self.readBatch, let last = events.last else { break }
            from = last.version + 1
        }
        return JSONText.object([
            "stream": JSONText.quoted(name), "version": "\(info.version)", "firstVisibleVersion": "\(info.firstVisibleVersion)",
            "tombstoned": "\(info.isTombstoned)", "events": page.json, "next": next.map { "\($0)" } ?? "null",
        ])
    }

    // MARK: The log

    /// Up to `limit` events of the log from position `from` on that pass `filter`, looking at
    /// no more than ``scanBudget`` events; `next` is where the following page starts.
    func log(from cursor: String?, limit: Int, filter: LogFilter) throws -> String {
        let position = try Self.position(cursor ?? "0")
        let log = try self.log
        let head = log.headPosition
        // As the live tail refuses it: a page past the head answered "complete", as if the log
        // ended there.
        guard position <= head else { throw Refusal.badParameter("from \(position) is past the log's head (\(head)): no event has it yet") }
        var hidden = HiddenEvents(log: log)
        var page = PageRows(limit: limit)
        let scan = try scanLog(log, from: position, head: head) { event in
            guard filter.admits(event) else { return true }
            let json = event.json(next: "\(event.position + 1)", hidden: try hidden.contains(event), mayBeHidden: hidden.mayBeHidden(event))
            // An event that does not fit starts the next page.
            guard page.add(json) else { return false }
            return page.isFull ? nil : true
        }
        return JSONText.object([
            "events": page.json, "next": JSONText.quoted("\(scan.next)"), "head": JSONText.quoted("\(head)"), "scanned": "\(scan.scanned)",
            "complete": "\(scan.next >= head)", "damage": scan.damage.map { JSONText.quoted("\($0)") } ?? "null",
        ])
    }

    /// Reads the log from `position` toward `head`, handing each event to `body`: `true` goes
    /// on, `nil` takes the event and stops after it, `false` stops before it (the next scan
    /// starts there). At most ``scanBudget`` events, read ``readBatch`` at a time at first and
    /// twice as many each time while a read holds less than ``logReadBytes`` (each read
    /// decompresses the frames it reaches: 16 at a time decompressed a commit of 50,000 events
    /// 3,000 times). Damage met after the first event ends the scan (noted; the events before it
    /// are the caller's, and the next scan meets it); met at once, it is thrown. Returns where
    /// the next scan starts, how many events were taken, and the damage that ended it.
    func scanLog(
        _ log: EventLog, from position: UInt64, head: UInt64, _ body: (StoredEvent) throws -> Bool?
    ) throws -> (next: UInt64, scanned: Int, damage: StoreError?) {
        var next = position
        var scanned = 0
        var batchSize = Self.readBatch
        while scanned < Self.scanBudget, next < head {
            let batch: [StoredEvent]
            do {
                batch = try log.readAll(from: next, maxCount: min(batchSize, Self.scanBudget - scanned))
            } catch let error as StoreError where error.isDamage {
                // (A read stops before damage it reaches; it throws when the damage comes first.)
                noteDamage("\(error)")
                if next == position { throw error }
                return (next, scanned, error)
            }
            if batch.isEmpty {
                // Nothing is stored from `next` on: the positions up to the head held events a
                // compaction removed (it keeps positions). The scan reaches the head.
                return (head, scanned, nil)
            }
            if batch.reduce(0, { $0 + $1.data.count + $1.metadata.count }) < Self.logReadBytes {
                batchSize = min(batchSize * 2, Self.logReadBatch)
            }
            for event in batch {
                guard let goOn = try body(event) else { return (event.position + 1, scanned + 1, nil) }
                guard goOn else { return (next, scanned, nil) }
                scanned += 1
                next = event.position + 1
            }
        }
        return (next, scanned, nil)
    }

    // MARK: Checkpoints

    /// The framework's checkpoints in the store (projections and consumers) and how far each
    /// is behind the log's head.
    func checkpoints() throws -> String {
        let log = try self.log
        let head = log.headPosition
        var rows: [String] = []
        for name in try log.streams(inCategory: Self.checkpointCategory) {
            let recent = try log.read(stream: name, maxCount: 64, direction: .backward)
            guard let last = recent.first else { continue }
            let cursor = Self.checkpointCursor(last.data)
            // Its own saves from its cursor on are not events it is behind on (a caught-up
            // projection showed "1 behind": its last save).
            let ownSaves = cursor.map { cursor in UInt64(recent.prefix { $0.position >= cursor.position }.count) } ?? 0
            rows.append(
                JSONText.object([
                    "name": JSONText.quoted(String(name.dropFirst(Self.checkpointCategory.count + 1))),
                    "cursor": cursor.map { JSONText.quoted($0.description) } ?? "null",
                    "savedAt": JSONText.quoted(PayloadTimestamp.millisecondString(last.timestampMilliseconds)),
                    // Positions, not events: compaction leaves gaps.
                    "behind": cursor.map { cursor in
                        let after = head - min(cursor.position, head)
                        return "\(after - min(ownSaves, after))"
                    } ?? "null",
                ]))
        }
        return JSONText.object(["head": JSONText.quoted("\(head)"), "checkpoints": JSONText.array(rows)])
    }

    // MARK: Aggregates

    func domainEvent(stream name: String, version: Int) throws -> SerializedDomainEvent? {
        // Only a version a read of the stream returns (not one a truncation, delete or tombstone hid).
        let log = try self.log
        guard let id = AggregateStreamName.streamID(of: name), let info = try log.info(stream: name), !info.readsAsEmpty,
            version >= info.firstVisibleVersion, let stored = try log.storedEvent(of: name, version: version)
        else { return nil }
        return try? EventLogStore.domainEvent(stored, of: id)
    }

    func version(of name: String, asOf milliseconds: Int64) throws -> Int? {
        let log = try self.log
        guard let info = try log.info(stream: name), !info.readsAsEmpty else { return nil }
        var found: Int?
        var version = info.firstVisibleVersion
        while version <= info.version {
            let events = try log.read(stream: name, from: version, maxCount: 1024)
            guard let last = events.last else { break }
            for event in events where event.timestampMilliseconds <= milliseconds { found = event.version }
            version = last.version + 1
        }
        return found
    }

    // MARK: The live tail

    func tailStart() throws -> String { "\(try log.headPosition)" }

    func tailPage(from cursor: String, filter: LogFilter) throws -> (events: [(json: String, next: String)], next: String) {
        let start = try Self.position(cursor)
        let log = try self.log
        // A cursor past the head (another store's, or made up) would wait there and never show
        // the events appended up to it.
        let head = log.headPosition
        guard start <= head else { throw Refusal.badParameter("from \(start) is past the log's head (\(head)): no event has it yet") }
        var hidden = HiddenEvents(log: log)
        var page = PageRows(limit: 100)
        var events: [(json: String, next: String)] = []
        // Bounded as a page of the log is (a filter that admits nothing would read the whole
        // log in one call): the tail sends the cursor and comes back.
        let scan = try scanLog(log, from: start, head: head) { event in
            guard filter.admits(event) else { return true }
            let json = event.json(next: "\(event.position + 1)", hidden: try hidden.contains(event), mayBeHidden: hidden.mayBeHidden(event))
            guard page.add(json) else { return false }
            events.append((json, "\(event.position + 1)"))
            return page.isFull ? nil : true
        }
        return (events, "\(scan.next)")
    }

    /// Whether events of the log are ones their streams no longer show (truncated, deleted,
    /// tombstoned): each stream looked up once (keyed by bytes: names that differ only in
    /// Unicode normalization are different streams).
    struct HiddenEvents {
        let log: EventLog
        private var visibleFrom: [[UInt8]: (first: Int, tombstoned: Bool)] = [:]
        /// Where damage found at open ends: it may have held a delete, truncation or tombstone,
        /// which hides only events before it, so whether those are hidden is unknown (0: its
        /// positions cannot be told, and no event's visibility is known).
        private let damageEnds: [UInt64]

        init(log: EventLog) {
            self.log = log
            damageEnds = log.damageFoundAtOpen.map(\.positions.upperBound)
        }

        /// Whether a record that would hide `event` may have been lost to damage found at open
        /// (an event known to be hidden stays hidden: a lost record only hides more).
        func mayBeHidden(_ event: StoredEvent) -> Bool {
            damageEnds.contains { $0 > event.position || $0 == 0 }
        }

        mutating func contains(_ event: StoredEvent) throws -> Bool {
            let key = Array(event.stream.utf8)
            if visibleFrom[key] == nil {
                let info = try log.info(stream: event.stream)
                visibleFrom[key] = (info?.firstVisibleVersion ?? 1, info?.isTombstoned ?? false)
            }
            let visibility = visibleFrom[key]!
            return visibility.tombstoned || event.version < visibility.first
        }
    }

    func waitForEvents(from cursor: String) async throws {
        try await self.log.waitForEvents(after: try Self.position(cursor))
    }

    /// A position of this store's log, from the page.
    static func position(_ cursor: String) throws -> UInt64 {
        guard let position = UInt64(cursor) else { throw Refusal.badParameter("from must be a position of the log (a whole number), not '\(cursor)'") }
        return position
    }

    // MARK: Maintenance

    func verify() throws -> String {
        let report = try self.log.verify()
        let json = JSONText.object([
            "at": JSONText.quoted(PayloadTimestamp.millisecondString(Int64(Date().timeIntervalSince1970 * 1000))),
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
                "at": JSONText.quoted(PayloadTimestamp.millisecondString(Int64(Date().timeIntervalSince1970 * 1000))),
                "eventsBefore": "\(report.eventsBefore)", "eventsAfter": "\(report.eventsAfter)",
                "bytesBefore": "\(report.bytesBefore)", "bytesAfter": "\(report.bytesAfter)",
                "segmentsBefore": "\(report.segmentsBefore)", "segmentsAfter": "\(report.segmentsAfter)",
            ])
        }
        lastRuns.withLock { $0.compact = json }
        return json
    }

    /// An event of this store, and the cursor after it.
    static func event(_ event: StoredEvent) -> String {
        event.json(next: "\(event.position + 1)")
    }

}

extension StoreError {
    /// Damage in the store: reading further meets it again. (Here, not beside the routes: this
    /// file is built without the Studio trait too.)
    var isDamage: Bool {
        switch self {
        case .corruption, .damaged: true
        default: false
        }
    }
}
