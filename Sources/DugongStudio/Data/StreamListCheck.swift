/// A fingerprint of the stream names before a page's index (64-bit FNV-1a over their UTF-8
/// bytes, each name ended by 0xFF, which UTF-8 never holds), so that the next page can tell that
/// the list is no longer the one the page was cut from: a compaction reorders it (streams it
/// rewrote lifecycle records of come first) and drops streams (one with nothing but a snapshot
/// at version 0), and a database lists a stream begun or tombstoned meanwhile before others.
/// An index alone then skipped or repeated streams; with a fingerprint that differs, the page
/// starts again from the first stream and says so. Names are compared byte for byte.
struct StreamListCheck: Equatable {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(_ name: String) {
        for byte in name.utf8 { mix(byte) }
        mix(0xFF)
    }

    private mutating func mix(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }

    /// The fingerprint as the page carries it: 16 hex digits.
    var text: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The fingerprint of the first `count` of `names`.
    static func of(_ names: some Sequence<String>, count: Int) -> StreamListCheck {
        var check = StreamListCheck()
        for name in names.prefix(count) { check.add(name) }
        return check
    }

    /// Where a page asked with `after` and `afterCheck` (a page's `next` and `nextCheck`) starts
    /// in `names`, the fingerprint of the names before it, and whether it starts again from the
    /// first because those names are no longer the ones the earlier page saw.
    static func start(in names: some Collection<String>, after: Int, afterCheck: String?) -> (index: Int, check: StreamListCheck, restarted: Bool) {
        let check = of(names, count: min(after, names.count))
        guard after > 0, let afterCheck, after > names.count || check.text != afterCheck else {
            return (min(after, names.count), check, false)
        }
        return (0, StreamListCheck(), true)
    }
}
