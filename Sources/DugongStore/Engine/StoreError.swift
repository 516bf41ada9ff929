import Dugong

/// Why the engine refused an operation or could not open a store.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another writer (process, or another open in this process) holds the store's lock.
    case locked(directory: String)
    /// The directory does not exist, or holds no store (it is empty: a writer opening it
    /// would make one), and `createIfMissing` is off.
    case notFound(directory: String)
    /// The directory exists but is not a store (files that are not segments).
    case notAStore(directory: String, reason: String)
    /// The stream is not at the expected version. `actual` is its version (0: no events).
    case wrongExpectedVersion(stream: String, expected: ExpectedVersion, actual: Int)
    /// Some of the appended event ids are stored at their versions and some are not.
    case partialDuplicate(stream: String, storedCount: Int, appendedCount: Int)
    /// The stream was tombstoned and can never be appended to again.
    case streamTombstoned(stream: String)
    /// A stream name, event type or size limit was violated. Nothing was written.
    case invalidArgument(String)
    /// An event's data and metadata together exceed the configured maximum. Nothing was written.
    case eventTooLarge(stream: String, index: Int, size: Int, maximum: Int)
    /// Bytes on disk are damaged: the frame at `offset` of `segment` is not returned as data.
    case corruption(segment: String, offset: Int, reason: String)
    /// Opening found damage (the first of which is `first`); the store accepts no writes
    /// unless opened with `acceptWritesDespiteDamage`.
    indirect case damaged(first: StoreError)
    /// A write or sync failed; the store accepts nothing more. Reopen it to recover from disk.
    case failed(reason: String)
    /// A segment of another format version: version 1 stores are converted by
    /// ``EventLog/upgrade(at:)`` (`dugong upgrade`); later versions need a newer build.
    case unsupportedFormat(segment: String, version: Int)
    /// The commit's events (or an atomic append's) take more than ``EventLog/maximumCommitSize``
    /// bytes in their frame. Nothing was written.
    case commitTooLarge(size: Int, maximum: Int)
    /// The store was opened read-only.
    case readOnly
    /// The store was closed.
    case closed

    /// What a person can do with a damaged store.
    static let damagedStoreAdvice =
        "`dugong verify` lists the damage, and `dugong export --skip-damage` copies what is readable into a new store with `dugong import`"

    public var description: String {
        switch self {
        case .locked(let directory):
            "store \(directory) is locked by another process (or another open store in this process)"
        case .notFound(let directory):
            "no store at \(directory) (pass createIfMissing to create one)"
        case .notAStore(let directory, let reason):
            "\(directory) is not a Dugong store: \(reason)"
        case .wrongExpectedVersion(let stream, let expected, let actual):
            "wrong expected version on stream '\(stream)': expected \(expected), actual version \(actual)"
        case .partialDuplicate(let stream, let stored, let appended):
            "partial duplicate on stream '\(stream)': \(stored) of \(appended) events are already stored, the rest are not"
        case .streamTombstoned(let stream):
            "stream '\(stream)' is tombstoned and can never be appended to again"
        case .invalidArgument(let reason):
            "invalid argument: \(reason)"
        case .eventTooLarge(let stream, let index, let size, let maximum):
            "event #\(index + 1) (counted from 1) of the append to '\(stream)' is \(size) bytes (data + metadata), over the maximum of \(maximum)"
        case .corruption(let segment, let offset, let reason):
            // (The manifest, the head and the index are files of the store, not segments.)
            "corruption in \(segment.hasSuffix(Layout.segmentSuffix) ? "segment " : "")\(segment) at offset \(offset): \(reason)"
        case .damaged(let first):
            "the store is damaged and opened for reading only (\(first)); \(Self.damagedStoreAdvice) (in code, `EventLog.Options.acceptWritesDespiteDamage` opens it for writing as it is)"
        case .failed(let reason):
            "the store failed and accepts no more writes (reopen it to recover: the open keeps what is on disk, or finds it damaged): \(reason)"
        case .unsupportedFormat(let segment, let version) where version == 1:
            "segment \(segment) is of format version 1, which this build does not open: convert the store with `dugong upgrade <store>` (it keeps every event, position and version)"
        case .unsupportedFormat(let segment, let version):
            "segment \(segment) says format version \(version), which this build cannot read (it reads versions \(Layout.oldestReadableFormatVersion) to \(Layout.formatVersion)): a newer build may, or the header is damaged"
        case .commitTooLarge(let size, let maximum):
            "the commit takes \(size) bytes, over the maximum of \(maximum) per commit; split it into several commits"
        case .readOnly:
            "the store was opened read-only"
        case .closed:
            "the store is closed"
        }
    }
}
