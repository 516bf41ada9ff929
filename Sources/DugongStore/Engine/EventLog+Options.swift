extension EventLog {
    /// How a store is opened and how it behaves.
    public struct Options: Sendable {
        /// Create the directory and an empty store when there is none. Default `false`.
        public var createIfMissing = false
        /// Bytes preallocated for each new segment file (4 KiB to 1 GiB). A commit larger than
        /// this gets a segment of its own, as large as it needs. Default: for a store that exists,
        /// its own size (what it was created, rolled or last compacted with, as its segments'
        /// capacities tell), so that the segments its writers and compactions add are as large
        /// as the ones it has; for a new store, 64 MiB. Set it to change a store's size from here
        /// on.
        public var segmentSize: Int {
            get { chosenSegmentSize ?? Self.defaultSegmentSize }
            set { chosenSegmentSize = newValue }
        }
        /// The size set, or nil for the default (the store's own, or 64 MiB).
        var chosenSegmentSize: Int?
        static let defaultSegmentSize = 64 << 20
        /// The largest event accepted, data and metadata together. Default 4 MiB.
        public var maximumEventSize = 4 << 20
        /// When an append returns. Default ``Durability/synchronous``.
        public var durability = Durability.synchronous
        /// How many decoded frames reads keep in memory. Default 256.
        public var frameCacheCapacity = 256
        /// Group commit: a frame is closed once its payload reaches this size (a larger commit
        /// is a frame of its own). Default 64 KiB: a read of one event decodes its whole frame,
        /// so after a burst of small commits (an import, pipelined `send`s) 1 MiB frames made
        /// every single-aggregate read decode ~1 MiB (DEFLATE's window is 32 KiB: larger frames
        /// compress little better).
        public var targetFrameSize = 64 << 10

        /// Open for reading only: no lock is taken (a writer may have the store open), nothing is
        /// repaired, created or removed, and every write throws ``StoreError/readOnly``. A torn
        /// tail is left alone (it may be a write in progress); ``EventLog/refresh()`` picks up
        /// what a writer appended since. With no writer running (after a crash or a power cut,
        /// which may leave the head file older than what was acknowledged), it serves what the
        /// next writable open will keep, after syncing the newest segment (FORMAT.md §8,
        /// "No writer present"). Default `false`.
        public var readOnly = false

        /// How often a read-only store being followed (``EventLog/subscribe(from:)``,
        /// ``EventLog/waitForEvents(after:)``) looks for what a writer in another process
        /// committed: it reads the head file, which the writer updates after every commit.
        /// Default 10 ms; a new commit reaches a follower about half of this after its
        /// acknowledgement, on average.
        public var followInterval: Duration = .milliseconds(10)

        /// Load the index saved at the last clean close (`dugong.index`) and scan only what
        /// was appended after it, instead of scanning every segment. Default `true`; `dugong
        /// verify` turns it off to check every frame, and then the unused space after the last
        /// frame is checked to be zeros too.
        public var useIndexFile = true

        /// Accept appends to a store in which opening found damage. Default `false`: a damaged
        /// frame may hold events of any stream, and appending could reuse their versions; such a
        /// store opens for reading (and for `dugong verify`) only.
        public var acceptWritesDespiteDamage = false

        /// Test hook: called before each frame write and each sync; what it throws is treated
        /// as that system call failing.
        var faults: (@Sendable (FaultPoint) throws -> Void)?
        /// Test hook: called after each step of a compaction; what it throws stops it there.
        var compactionFaults: (@Sendable (CompactionStep) throws -> Void)?

        /// Test hook: called when a read-only open or refresh has read the manifest, before it
        /// opens the segments the manifest lists.
        var readingHook: (@Sendable () -> Void)?
        /// Test hook: called when a read-only open or refresh has opened the files and read the
        /// head, just before it scans them all.
        var scanningHook: (@Sendable () -> Void)?
        /// How many segments before the newest a read-only store's refresh looks at, at most,
        /// once a second (in turn); a test sets fewer.
        var olderSegmentsPerLook = 256
        /// Test hook: called when a read-only store's refresh is about to scan the new frames
        /// through the maps it has (not when it opens the files anew).
        var incrementalScanHook: (@Sendable () -> Void)?

        /// The longest stream name or event type, in UTF-8 bytes.
        public static let maximumNameLength = 1024

        public init(createIfMissing: Bool = false) {
            self.createIfMissing = createIfMissing
        }
    }

    /// Where the test hook ``Options/faults`` is called.
    enum FaultPoint: Sendable {
        case write, sync
    }

    /// When an append is acknowledged, and what a crash may cost.
    public enum Durability: Sendable, Equatable {
        /// After its frame is on disk (`fdatasync`): nothing acknowledged is ever lost. Appends
        /// that arrive together share one frame and one sync (group commit).
        case synchronous
        /// After its frame is written to the page cache, without any sync: a process crash loses
        /// nothing, but a power failure or kernel crash may lose acknowledged appends.
        case unsafeNoSync
    }
}

extension EventLog.Options {
    /// These options with ``segmentSize`` the store's own when none was set: the smallest
    /// capacity among its segments that were preallocated past their frames (the active one,
    /// and each whose frames end before its capacity: the next segment's header records where
    /// they end). Those were made by the store's creation, a writer's roll or a compaction's
    /// last segment with the size in effect, or, for one commit larger than that, larger; a
    /// compaction's sealed segments are only as long as their frames and say nothing of it.
    func adoptingSegmentSize(of segments: [Segment]) -> Self {
        guard chosenSegmentSize == nil, let active = segments.last else { return self }
        var smallest = Int(active.header.capacity)
        for (segment, next) in zip(segments, segments.dropFirst()) where segment.header.capacity > next.header.previousEnd {
            smallest = min(smallest, Int(segment.header.capacity))
        }
        var options = self
        options.chosenSegmentSize = min(max(smallest, 4096), 1 << 30)
        return options
    }
}
