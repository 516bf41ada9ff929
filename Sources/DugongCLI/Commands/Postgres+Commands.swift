#if Postgres
import ArgumentParser
import Dugong
import DugongExample
import DugongPostgres
import DugongStore
import Foundation

// The commands that speak PostgreSQL: the same lines and messages as on a directory store.
// PostgreSQL holds the framework's events (PostgresEventStore): every event is shown as the
// embedded store holds it (EventLogStore's layout: the envelope in the metadata), so that
// `export` prints the same lines from both and `import` moves them either way.

extension PostgresEventStore.StreamState {
    /// The state as the embedded store's commands describe one.
    var info: EventLog.StreamInfo {
        EventLog.StreamInfo(
            version: version, firstVisibleVersion: firstVisibleVersion, isTombstoned: isTombstoned, firstStoredVersion: firstStoredVersion)
    }
}

extension Export {
    func runOnPostgres() async throws {
        try await PostgresAccess.with(store) { database in
            let states = try await database.forEachCommittedEvent { page in
                var text = ""
                for recorded in page { text += JSONLines.line(for: try recorded.storedEvent(), withPosition: false) + "\n" }
                Terminal.write(text, to: STDOUT_FILENO)
            }
            // PostgreSQL removes no rows: every stored event was printed.
            Self.lifecycleLines(of: states.map { ($0.name, $0.info) }) { _, info in (info.version, info.version >= info.firstStoredVersion) }
        }
    }
}

extension Import {
    func runOnPostgres() async throws {
        if segmentSize != nil { throw Terminal.fail("--segment-size is a directory store's option", code: ExitStatus.usage.rawValue) }
        if acks { throw Terminal.fail("--acks is a directory store's option (a PostgreSQL commit is durable when it returns)", code: ExitStatus.usage.rawValue) }
        if lock.seconds != 0 { throw Terminal.fail("--wait is a directory store's option (PostgreSQL takes many writers)", code: ExitStatus.usage.rawValue) }
        var stoppedAfter: Int?
        try await PostgresAccess.with(store, creating: true) { database in
            let importer = PostgresImporter(database: database, url: store, batch: batch)
            var lines = InputLines(maximumEventSize: Import.largestEvent)
            lines.endsAtStopSignal = true
            do {
                while let (number, text) = try lines.next() {
                    try await importer.take(try Append.parse(text, line: number), line: number)
                }
                try await importer.flush()
            } catch {
                importer.finish()
                throw error
            }
            importer.finish()
            stoppedAfter = lines.stoppedBySignal ? lines.number : nil
        }
        // After the connections closed.
        if let stoppedAfter { Self.reportStop(afterLine: stoppedAfter) }
    }
}

/// One import into PostgreSQL: lines packed into transactions of up to `batch` events.
final class PostgresImporter {
    let database: PostgresEventStore
    let url: String
    let batch: Int
    private var pending: [StreamAppend] = []
    /// The raw name of the last pending append's stream.
    private var pendingName: NameKey?
    private var pendingEvents = 0
    /// The pending commit's bytes, as a directory store's import counts them (at most
    /// ``Importer/commitBytes``; one larger event goes alone): the whole batch went in one
    /// transaction, and a batch of large events over 1 GiB failed as "the server closed the
    /// connection".
    private var pendingBytes = 0
    /// Streams that begin later than version 1 (their first versions were removed where they
    /// came from), recorded when the commit holding their first event is written: recorded at
    /// once, a bad line later left the record (and the commits before it) behind.
    private var pendingBegins: [(name: String, version: Int, line: Int)] = []
    private var firstLine = 0
    /// Each stream's version as the database and the pending commit leave it. Streams are
    /// told apart by their names' bytes, as the database does (``NameKey``; `String` and
    /// `StreamID` compare by canonical equivalence, which took `café` spelled NFC and NFD for
    /// one stream and put the second's events in the first).
    private var versions: [NameKey: Int] = [:]
    private var tombstoned: Set<NameKey> = []
    private var imported = 0
    private var skipped = 0
    private var commits = 0
    /// The pending commit's lines, to take again when the commit raced another import.
    private var pendingInputs: [(input: JSONLines.Input, line: Int)] = []
    /// How often the commit being written was taken again after a race (0 after each commit).
    private var raceRetries = 0
    /// While the other import goes on, a commit taken again may meet its next commit: taken
    /// again once more, up to this many times (each time the other import got further).
    static let maximumRaceRetries = 100

    init(database: PostgresEventStore, url: String, batch: Int) {
        self.database = database
        self.url = url
        self.batch = batch
    }

    private func version(of name: String) async throws -> Int {
        if let known = versions[NameKey(name)] { return known }
        let state = try await database.state(ofStreamNamed: name)
        if state?.isTombstoned == true { tombstoned.insert(NameKey(name)) }
        versions[NameKey(name)] = state?.version ?? 0
        return state?.version ?? 0
    }

    private func fail(_ line: Int, _ message: String, _ status: ExitStatus) -> ExitCode {
        Terminal.fail("line \(line): \(message)", code: status.rawValue)
    }

    func take(_ input: JSONLines.Input, line: Int) async throws {
        switch input {
        case .event(nil, _, _, _):
            throw fail(line, "\"stream\" is missing", .badInput)
        case .event(let name?, let given, let event, _):
            guard let stream = AggregateStreamName.streamID(of: name) else {
                throw fail(
                    line, "'\(name)' is not an aggregate's stream name (as the framework names them: origin, type and id): PostgreSQL holds the framework's aggregates",
                    .badInput)
            }
            // PostgreSQL keeps a stream as its origin, type, id and tenant: a name spelled other
            // than the framework spells them ("%61:T/x" for "a:T/x") was stored under the
            // framework's spelling, silently (and two such names became one stream).
            let spelled = AggregateStreamName.name(of: stream)
            guard spelled.utf8.elementsEqual(name.utf8) else {
                throw fail(
                    line, "'\(name)' is not spelled as the framework spells stream names ('\(spelled)'): PostgreSQL keeps a stream as its origin, type, id and tenant, so it would become '\(spelled)'",
                    .badInput)
            }
            let current = try await version(of: name)
            let version = given ?? current + 1
            guard version >= 1, version <= Int(Int64.max) else { throw fail(line, "version \(version) is out of range", .badInput) }
            // As a directory store's import: what one store exports, any store imports (found by
            // a black-box run: a line without a version took a stream past 2^62 - 1 here, and
            // the export was refused everywhere else).
            guard version <= EventLog.maximumVersion else {
                throw fail(line, "'\(name)' would pass the largest version, \(EventLog.maximumVersion) (2^62 - 1)", .badInput)
            }
            let stored = StoredEvent(
                stream: name, version: version, position: 0, id: event.id, type: event.type,
                timestampMilliseconds: event.timestamp.millisecondsSince1970, data: event.data, metadata: event.metadata)
            let domain: SerializedDomainEvent
            do {
                domain = try EventLogStore.domainEvent(stored, of: stream)
            } catch {
                throw fail(line, "the metadata is not the framework's envelope ({\"schemaVersion\": …}): PostgreSQL holds the framework's events", .badInput)
            }
            // Checked here too, for the line's number (the adapter names only the commit's).
            do {
                try PostgresEventStore.checkedRow(domain)
            } catch let error as EventStoreError {
                if case .invalidAppend(_, let reason) = error { throw fail(line, reason, .badInput) }
                throw error
            }
            // Only what reads back byte for byte is written: `export` must print this very line.
            let form = try EventLogStore.storedForm(of: domain)
            guard form.data == event.data, form.metadata == event.metadata else {
                throw fail(
                    line, "the event would not read back from PostgreSQL byte for byte (its envelope holds fields, spellings or a key order the framework does not write)",
                    .badInput)
            }
            if version <= current {
                // A version an earlier line of this commit gave: compared with that line, and
                // nothing is written to find out (a conflict leaves nothing of the commit).
                if let earlier = try pendingEvent(of: name, version: version) {
                    if let conflict = StoreAccess.conflictWithEarlierLine(
                        id: earlier.id, type: earlier.type, data: earlier.data, metadata: earlier.metadata, line: event, stream: name,
                        version: version)
                    {
                        throw fail(line, conflict, .conflict)
                    }
                    skipped += 1
                    return
                }
                if let begin = pendingBegins.first(where: { NameKey($0.name) == NameKey(name) }) {
                    throw fail(
                        line,
                        "version \(version) of '\(name)' is before the version the stream begins at (\(begin.version), line \(begin.line)), so the line cannot be compared with it",
                        .conflict)
                }
                // An import run again: the stored event must be this one.
                let existing = try await database.recordedEvents(ofStreamNamed: name, from: version, maxCount: 1, includeHidden: true).first
                guard let existing, existing.event.sequenceNumber == version else {
                    throw fail(line, "version \(version) of '\(name)' is before the version the stream begins at, so the line cannot be compared with it", .conflict)
                }
                guard existing.event.id == event.id else {
                    throw fail(
                        line,
                        "'\(name)' has version \(version) already, as another event (id \(existing.event.id.uuidString.lowercased()), not \(event.id.uuidString.lowercased()))",
                        .conflict)
                }
                // The same id is not enough, as in a directory store: a line whose type, data or
                // metadata differ is not the stored event (it was skipped as imported already).
                let held = try EventLogStore.storedForm(of: existing.event)
                let stored = StoredEvent(
                    stream: name, version: version, position: 0, id: held.id, type: held.type,
                    timestampMilliseconds: held.timestamp.millisecondsSince1970, data: held.data, metadata: held.metadata)
                if let difference = StoreAccess.difference(stored, event) {
                    throw fail(
                        line,
                        "version \(version) of '\(name)' is stored with this id (\(event.id.uuidString.lowercased())) and \(difference): the line is not the stored event",
                        .conflict)
                }
                skipped += 1
                return
            }
            guard !tombstoned.contains(NameKey(name)) else { throw fail(line, "'\(name)' is tombstoned: no events can be added to it", .conflict) }
            if version > current + 1 {
                guard current == 0 else { throw fail(line, "version \(version) of '\(name)' does not follow its version \(current)", .badInput) }
            }
            let size = EventLog.commitSize(of: event, in: name)
            if pendingBytes + size > Importer.commitBytes { try await flush() }
            if version > current + 1 {
                // The stream began later where it came from (its first versions were removed):
                // recorded with the commit that holds its first event.
                pendingBegins.append((name, version, line))
            }
            pendingInputs.append((input, line))
            if !pending.isEmpty, pendingName == NameKey(name) {
                pending[pending.count - 1].events.append(domain)
            } else {
                if pending.isEmpty { firstLine = line }
                pending.append(StreamAppend(stream: stream, events: [domain], expected: .exact(version - 1)))
                pendingName = NameKey(name)
            }
            versions[NameKey(name)] = version
            pendingEvents += 1
            pendingBytes += size
            if pendingEvents >= batch || pendingBytes >= Importer.commitBytes { try await flush() }
        case .truncate(let name, let before):
            try await flush()
            // Already so (an import run again; a tombstoned stream hides every version).
            if let state = try await database.state(ofStreamNamed: name), state.isTombstoned || state.firstVisibleVersion >= before { return }
            do {
                if try await version(of: name) == 0 && before > 1 {
                    try await database.beginStream(named: name, atVersion: before)
                    versions[NameKey(name)] = before - 1
                }
                try await database.truncate(streamNamed: name, before: before)
                commits += 1  // a commit of its own, counted as a directory store counts it
            } catch {
                // Another import of the same lines may have made it so meanwhile.
                if let state = try? await database.state(ofStreamNamed: name), state.isTombstoned || state.firstVisibleVersion >= before { return }
                throw PostgresAccess.fail(error, url: url, prefix: "line \(line): ")
            }
        case .tombstone(let name):
            try await flush()
            if try await database.state(ofStreamNamed: name)?.isTombstoned != true {
                do {
                    try await database.tombstone(streamNamed: name)
                    commits += 1
                } catch PostgresStoreError.streamTombstoned {
                    // Another import of the same lines tombstoned it meanwhile: so it is.
                } catch {
                    throw PostgresAccess.fail(error, url: url, prefix: "line \(line): ")
                }
            }
            tombstoned.insert(NameKey(name))
        }
    }

    /// The event (as stored) an earlier line gave `version` of `name` in the commit being packed.
    private func pendingEvent(of name: String, version: Int) throws -> NewEvent? {
        for append in pending.reversed() where NameKey(AggregateStreamName.name(of: append.stream)) == NameKey(name) {
            guard case .exact(let before) = append.expected else { continue }
            let offset = version - before - 1
            if offset >= 0, offset < append.events.count { return try EventLogStore.storedForm(of: append.events[offset]) }
        }
        return nil
    }

    /// Writes the pending events in one transaction (after the beginnings of streams whose
    /// first events they hold, each a transaction of its own: a failure between them leaves a
    /// stream that begins later and holds nothing yet, which the import run again fills).
    func flush() async throws {
        guard !pending.isEmpty else { return }
        let appends = pending
        let begins = pendingBegins
        let inputs = pendingInputs
        pending = []
        pendingBegins = []
        pendingInputs = []
        pendingName = nil
        pendingEvents = 0
        pendingBytes = 0
        do {
            for begin in begins { try await database.beginStream(named: begin.name, atVersion: begin.version) }
            let results = try await database.append(appends)
            // Appends another import stored meanwhile (the same file run twice at once) were
            // duplicates: skipped, not imported ("imported 0 events in 2 commits; skipped 0").
            for (append, result) in zip(appends, results) {
                if result.wasDuplicate { skipped += append.events.count } else { imported += append.events.count }
            }
            if results.contains(where: { !$0.wasDuplicate }) { commits += 1 }
            raceRetries = 0
        } catch where raceRetries < Self.maximumRaceRetries && Self.mayHaveRacedTheSameLines(error) {
            // Another import of the same lines got there first with part of the commit (some
            // of its events, a stream's beginning, a tombstone after the stream's events):
            // the commit's lines are taken again as a run again takes them, against the
            // database as it is now — each stored one compared and skipped, the rest written.
            // (Found by a black-box run: one of two imports of an export with lifecycle lines
            // failed with "partial duplicate", "cannot begin at version 10" or "tombstoned".)
            raceRetries += 1
            for (input, _) in inputs {
                if case .event(let name?, _, _, _) = input {
                    versions.removeValue(forKey: NameKey(name))
                    tombstoned.remove(NameKey(name))
                }
            }
            for (input, line) in inputs { try await take(input, line: line) }
            try await flush()
        } catch {
            throw PostgresAccess.fail(error, url: url, prefix: "the commit of lines \(firstLine)...: ")
        }
    }

    /// Whether `error` may be what another import of the same lines left (the commit is then
    /// taken again line by line): some of its events stored, a stream begun or tombstoned; or a
    /// conflict, when the other import's small commits kept moving the streams of a large one
    /// (the adapter decides again after each concurrent write, 16 times, then says conflict: in
    /// 1 run of ~10 of `twoImportsOfAnExportWithLifecycleLinesAtOnceBothSucceed`, batches of 7
    /// against 1,000). Taken again, lines another import stored are compared and skipped, and a
    /// real conflict (other events at their versions) is refused as a run again refuses it.
    static func mayHaveRacedTheSameLines(_ error: any Error) -> Bool {
        switch error {
        case EventStoreError.partialDuplicate, EventStoreError.conflict, PostgresStoreError.streamTombstoned, PostgresStoreError.invalidChange: true
        default: false
        }
    }

    func finish() {
        Terminal.error(
            "imported \(imported) event\(imported == 1 ? "" : "s") in \(commits) commit\(commits == 1 ? "" : "s"); skipped \(skipped) already in the store")
    }
}

extension Read {
    func runOnPostgres() async throws {
        try await PostgresAccess.with(store) { database in
            let events = try await database.recordedEvents(
                ofStreamNamed: stream, from: from, maxCount: limit ?? .max, backward: backward)
            guard let state = try await database.state(ofStreamNamed: stream) else {
                throw Terminal.fail("\(PostgresAccess.redacted(store)) has no stream '\(Streams.escaped(stream))'", code: ExitStatus.notFound.rawValue)
            }
            var printer = EventPrinter(format: format)
            printer.print(try events.map { try $0.storedEvent() }, cursors: events.map(\.cursor))
            if events.isEmpty, state.readsAsEmpty {
                Terminal.error(state.isTombstoned ? "stream '\(stream)' is tombstoned" : "stream '\(stream)' is deleted or truncated: no version is visible")
            }
        }
    }
}

extension ReadAll {
    /// Without --follow, every committed event as of one moment (complete even while a long
    /// transaction is open); with it, the global log as projections read it (rows of
    /// transactions older than every open one, so that none committing late is skipped).
    func runOnPostgres() async throws {
        // A bare number (a directory store's position, or the lines' "position") was taken as
        // the cursor 0:N, which is before every event: everything was printed.
        if from.transaction == 0, from != .start {
            throw Terminal.fail(
                "--from \(from.position) is a position; on PostgreSQL --from takes a cursor TRANSACTION:POSITION, as the lines' \"cursor\" field says",
                code: ExitStatus.usage.rawValue)
        }
        try await PostgresAccess.with(store) { database in
            var filter = self.filter
            var printer = EventPrinter(format: format)
            let collecting = last != nil || backward || count
            var kept: [StoredEvent] = []
            var keptCursors: [LogCursor] = []
            var matched = 0
            var remaining = collecting ? Int.max : limit ?? .max
            // By the names' bytes (``NameKey``): a table keyed by `String` took two streams
            // spelled NFC and NFD for one, and showed or hid one's events by the other's state.
            var states: [NameKey: EventLog.StreamInfo] = [:]
            func take(_ page: [RecordedEvent]) throws {
                var printing: [StoredEvent] = []
                var cursors: [LogCursor] = []
                defer { printer.print(printing, cursors: cursors) }
                for recorded in page where recorded.cursor >= from && remaining > 0 {
                    let event = try recorded.storedEvent()
                    guard try filter.accepts(event, info: { states[NameKey($0)] }) else { continue }
                    matched += 1
                    if count { continue }
                    if collecting {
                        kept.append(event)
                        keptCursors.append(recorded.cursor)
                        trim(&kept)
                        trim(&keptCursors)
                    } else {
                        printing.append(event)
                        cursors.append(recorded.cursor)
                        remaining -= 1
                    }
                }
            }
            if !follow {
                // The states are the snapshot's: read them first from the same moment.
                var pages: [[RecordedEvent]] = []
                let snapshot = try await database.forEachCommittedEvent { pages.append($0) }
                states = Dictionary(snapshot.map { (NameKey($0.name), $0.info) }, uniquingKeysWith: { a, _ in a })
                for page in pages { try take(page) }
                finish(matched: matched, kept: kept, cursors: keptCursors, printer: &printer)
                return
            }
            var cursor = from
            while remaining > 0 {
                let page = try await database.events(from: cursor, maxCount: 4096)
                if page.isEmpty {
                    try await database.waitForEvents(from: cursor)
                    continue
                }
                // Lifecycle changes since the last page.
                states = Dictionary(try await database.streamStates().map { (NameKey($0.name), $0.info) }, uniquingKeysWith: { a, _ in a })
                filter.forgetStreams()
                try take(page)
                cursor = page[page.count - 1].next
            }
        }
    }
}

extension Streams {
    func runOnPostgres() async throws {
        try await PostgresAccess.with(store) { database in
            var bytes: [NameKey: Int] = [:]
            var states: [PostgresEventStore.StreamState]
            if sizes {
                states = try await database.forEachCommittedEvent { page in
                    for recorded in page {
                        let event = try recorded.storedEvent()
                        bytes[NameKey(event.stream), default: 0] += event.data.count + event.metadata.count
                    }
                }
            } else {
                states = try await database.streamStates()
            }
            if let category { states = states.filter { isStream($0.name, ofCategory: category) } }
            for state in states where prefix.map({ state.name.utf8.starts(with: $0.utf8) }) ?? true {
                emit(state.name, state.info, events: state.storedEvents, bytes: bytes[NameKey(state.name)] ?? 0)
            }
        }
    }
}

extension Stats {
    func runOnPostgres() async throws {
        try await PostgresAccess.with(store) { database in
            let stats = try await database.statistics()
            let age = try await database.oldestOpenTransactionAge()
            if json {
                var fields = [
                    "\"store\":\(JSONLines.quoted(PostgresAccess.redacted(store)))", "\"schemaVersion\":\(stats.schemaVersion)",
                    "\"events\":\(stats.events)", "\"streams\":\(stats.streams)", "\"tableBytes\":\(stats.tableBytes)",
                    "\"payloadBytes\":\(stats.payloadBytes)",
                ]
                if let age { fields.append(String(format: "\"oldestOpenTransactionSeconds\":%.3f", Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18)) }
                Terminal.emit("{" + fields.joined(separator: ",") + "}")
                return
            }
            Terminal.emit("store: \(PostgresAccess.redacted(store)) (PostgreSQL, Dugong schema version \(stats.schemaVersion))")
            Terminal.emit("events: \(stats.events) in \(stats.streams) streams")
            Terminal.emit("table: \(Self.size(stats.tableBytes)) with its indexes; data and metadata \(Self.size(stats.payloadBytes))"
                + (stats.events > 0 ? String(format: " (%.1f bytes/event in the table)", Double(stats.tableBytes) / Double(stats.events)) : ""))
            if let age {
                Terminal.emit("oldest open transaction: \(age.formatted(.units(allowed: [.hours, .minutes, .seconds, .milliseconds], width: .narrow))) (readers of the global log wait for it)")
            }
        }
    }
}

extension Demo {
    func runOnPostgres() async throws {
        guard let store else { return }
        try await PostgresAccess.with(store, creating: true) { database in
            Terminal.emit("Dugong demo: a bank account on PostgreSQL at \(PostgresAccess.redacted(store))\n")
            try await BankAccountStory.run(on: database, snapshots: PostgresSnapshotStore(client: database.client)) { Terminal.emit($0) }
        }
    }
}

extension DeleteStream {
    func runOnPostgres() async throws {
        try await StreamChange.apply(url: store, stream: stream) { try await $0.delete(streamNamed: stream) }
    }
}

extension TruncateStream {
    func runOnPostgres() async throws {
        try await StreamChange.apply(url: store, stream: stream) { try await $0.truncate(streamNamed: stream, before: before) }
    }
}

extension TombstoneStream {
    func runOnPostgres() async throws {
        try await StreamChange.apply(url: store, stream: stream) { try await $0.tombstone(streamNamed: stream) }
    }
}

extension StreamChange {
    /// A lifecycle change on PostgreSQL, said as on a directory store.
    static func apply(url: String, stream: String, _ change: (PostgresEventStore) async throws -> Void) async throws {
        try await PostgresAccess.with(url, creating: true) { database in
            let before = try await database.state(ofStreamNamed: stream)
            try await change(database)
            guard let after = try await database.state(ofStreamNamed: stream) else { return Terminal.emit(noVersionsToHide(stream)) }
            Terminal.emit(describe(stream, before: before?.info, after: after.info))
        }
    }
}
#endif
