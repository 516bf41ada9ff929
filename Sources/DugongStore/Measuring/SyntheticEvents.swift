import Dugong
import Foundation

/// Deterministic synthetic events for measuring stores: ~170-byte JSON events of three types
/// (like `{"type":"MoneyDeposited","aggregateId":"acc-7","amount":…,"currency":"EUR","ts":…,
/// "meta":{…}}`) with 16-byte ids, the same sequence for the same seed. Used by `dugong bench`
/// and the Benchmarks package.
public struct SyntheticEvents: Sendable {
    private var random: SeededRandom

    public init(seed: UInt64 = 0x5EED) { random = SeededRandom(seed: seed) }

    /// The next pseudo-random number (SplitMix64).
    public mutating func next() -> UInt64 { random.next() }

    /// The event types, in the proportions they occur (one third each).
    public static let types = ["MoneyDeposited", "MoneyWithdrawn", "InterestAccrued"]

    /// One event of aggregate number `stream`, about 170 bytes of JSON.
    public mutating func event(stream: Int, at milliseconds: Int64) -> NewEvent {
        let type = Self.types[Int(next() % 3)]
        let amount = next() % 100_000
        let user = next() % 10_000
        let trace = String(next(), radix: 16)
        let json = #"{"type":"\#(type)","aggregateId":"acc-\#(stream)","amount":\#(amount),"currency":"EUR","ts":\#(milliseconds),"meta":{"user":"u-\#(user)","ip":"10.0.\#(user % 256).\#(amount % 256)","trace":"\#(trace)"}}"#
        let high = next()
        let low = next()
        let id = UUID(uuid: withUnsafeBytes(of: (high, low)) { $0.load(as: uuid_t.self) })
        return NewEvent(id: id, type: type, timestamp: Date(millisecondsSince1970: milliseconds), data: Data(json.utf8))
    }
}
