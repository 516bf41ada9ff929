import ArgumentParser
import DugongStore
import Foundation

/// `dugong export --skip-damage`: every event a damaged store can still read, each stream as an
/// unbroken run of versions, with what was skipped named on stderr.
struct Salvage {
    let log: EventLog
    let store: String
    /// Where events left out after a lost version go (JSON Lines), if anywhere.
    private let rejectsFile: FileHandle?
    /// The last version exported of each stream.
    private var exported: [NameKey: Int] = [:]
    /// The streams that lost a version, and which: their later events are left out.
    private var lost: [NameKey: Int] = [:]
    private var reported: Set<String> = []
    /// The export's first position (`--from`): versions of a stream that lie before it are not
    /// lost, only not exported.
    private var start: UInt64 = 0
    private var events = 0
    private var left = 0
    private var regions = 0

    init(log: EventLog, store: String, rejects: String?) throws {
        self.log = log
        self.store = store
        if let rejects {
            // Opened in place (a device or a pipe stays one; FileManager would replace it).
            let descriptor = open(rejects, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw Terminal.fail("cannot create \(rejects): \(String(cString: strerror(errno)))", code: ExitStatus.ioFailure.rawValue)
            }
            rejectsFile = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        } else {
            rejectsFile = nil
        }
    }

    mutating func run(from position: UInt64) throws {
        defer { try? rejectsFile?.close() }
        start = position
        do {
            var next = position
            while true {
                let page = try log.readAllSkippingDamage(from: next)
                for region in page.skipped { report(region) }
                for event in page.events { try take(event) }
                guard page.next > next || !page.events.isEmpty else { break }
                next = page.next
            }
            // Damage whose positions could not be told (it is in no range a read passes).
            for region in log.damageFoundAtOpen { report(region) }
            try lifecycleLines()
        } catch let error as StoreError {
            throw StoreAccess.fail(error, path: store)
        }
        Terminal.error(
            "exported \(events) event\(events == 1 ? "" : "s"); skipped \(regions) damaged region\(regions == 1 ? "" : "s"); left out \(left) event\(left == 1 ? "" : "s") after a lost version of \(lost.count) stream\(lost.count == 1 ? "" : "s")")
        if regions > 0 || left > 0 { throw ExitCode(ExitStatus.damaged.rawValue) }
    }

    private mutating func report(_ region: DamagedRegion) {
        guard reported.insert("\(region.file)@\(region.offset)").inserted else { return }
        regions += 1
        Terminal.error("dugong: skipped damaged data: \(region)")
    }

    /// Whether `version` of `stream` lies before the export's first position (readable there).
    private func liesBeforeStart(_ stream: String, version: Int) -> Bool {
        guard start > 0, version >= 1, let event = try? log.storedEvent(of: stream, version: version) else { return false }
        return event.position < start
    }

    private mutating func take(_ event: StoredEvent) throws {
        var expected = try exported[NameKey(event.stream)].map { $0 + 1 } ?? (log.info(stream: event.stream)?.firstStoredVersion ?? 1)
        // A stream's first event after --from continues the versions before it: not a loss (an
        // export from position 5 of a clean store left out every stream that began before it).
        if exported[NameKey(event.stream)] == nil, lost[NameKey(event.stream)] == nil, event.version > expected,
            liesBeforeStart(event.stream, version: event.version - 1)
        {
            expected = event.version
        }
        if lost[NameKey(event.stream)] == nil, event.version == expected {
            Terminal.emit(JSONLines.line(for: event, withPosition: false))
            exported[NameKey(event.stream)] = event.version
            events += 1
            return
        }
        if lost[NameKey(event.stream)] == nil {
            lost[NameKey(event.stream)] = expected
            let what = exported[NameKey(event.stream)] == nil ? "its first versions (or the record that began it at a later version)" : "version \(expected)"
            Terminal.error(
                "dugong: \(JSONLines.quoted(event.stream)) lost \(what): its versions from \(event.version) on (position \(event.position) first) are left out")
        }
        left += 1
        if let rejectsFile {
            do {
                try rejectsFile.write(contentsOf: Data((JSONLines.line(for: event) + "\n").utf8))
            } catch {
                throw Terminal.fail("cannot write the rejected events: \(error)", code: ExitStatus.ioFailure.rawValue)
            }
        }
    }

    /// The export's lifecycle lines, for the versions exported: a truncation beyond them hides
    /// them all.
    private func lifecycleLines() throws {
        try Export.lifecycleLines(in: log) { stream, info in
            // A stream whose versions all lie before --from is whole, as the export without
            // --skip-damage has it.
            if exported[NameKey(stream)] == nil, lost[NameKey(stream)] == nil, liesBeforeStart(stream, version: info.version) {
                return (info.version, info.version >= info.firstStoredVersion)
            }
            let last = exported[NameKey(stream)] ?? info.firstStoredVersion - 1
            if info.firstVisibleVersion > last + 1, last < info.version {
                Terminal.error(
                    "dugong: \(JSONLines.quoted(stream)) was truncated before version \(info.firstVisibleVersion); its salvaged versions end at \(last), so all are hidden")
            }
            return (last, exported[NameKey(stream)] != nil)
        }
    }
}
