import CDugongRandom
import Foundation

/// Ids for new events.
public enum EventID {
    /// A new random (version 4, RFC 4122) UUID from the kernel's generator. What the ids of new
    /// events default to: Foundation's `UUID()` on Linux opens, reads and closes a random device
    /// for each id (3.7 µs on this project's machine, more than appending the event); this takes
    /// one `getrandom` call per 255 ids and is fork-safe.
    public static func random() -> UUID {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let status = withUnsafeMutableBytes(of: &bytes) { dugong_random_id($0.baseAddress!) }
        guard status == 0 else { return UUID() }  // no kernel randomness: Foundation's way
        bytes.6 = bytes.6 & 0x0F | 0x40  // version 4
        bytes.8 = bytes.8 & 0x3F | 0x80  // RFC 4122 variant
        return UUID(uuid: bytes)
    }
}
