@testable import Dugong
import Foundation
import Testing

@Suite("Dates in payloads")
struct PayloadTimestampTests {
    @Test func aDateMadeFromMillisecondsIsWrittenWithThemAndComesBackEqual() throws {
        let date = Date(timeIntervalSince1970: 1_732_870_000.123)
        let text = try #require(PayloadTimestamp.string(from: date))
        #expect(text == "2024-11-29T08:46:40.123Z")
        #expect(PayloadTimestamp.date(from: text) == date)
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSince1970: 1_732_870_000)) == "2024-11-29T08:46:40Z")
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSince1970: 1_732_870_000.000_001)) == "2024-11-29T08:46:40.000001Z")
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSince1970: -0.25)) == "1969-12-31T23:59:59.75Z")
    }

    @Test func everyFiniteDateInTheYearsZeroToNineThousandRoundTripsExactly() throws {
        var generator = SystemRandomNumberGenerator()
        var samples: [Date] = [.distantPast, .distantFuture, Date(timeIntervalSinceReferenceDate: 0),
            Date(timeIntervalSinceReferenceDate: .leastNonzeroMagnitude), Date(timeIntervalSinceReferenceDate: -.leastNonzeroMagnitude),
            Date(timeIntervalSinceReferenceDate: 1e-300), Date(timeIntervalSinceReferenceDate: -1e-9), Date()]
        for _ in 0..<3000 {
            let seconds = Double.random(in: -63_145_526_400...252_423_993_599, using: &generator)
            samples.append(Date(timeIntervalSinceReferenceDate: seconds))
            samples.append(Date(timeIntervalSince1970: ((seconds + 978_307_200) * 1000).rounded() / 1000))
            samples.append(Date(timeIntervalSinceReferenceDate: Double(bitPattern: UInt64.random(in: 0...0x3FF0_0000_0000_0000, using: &generator))))
        }
        for date in samples {
            let text = try #require(PayloadTimestamp.string(from: date), "\(date.timeIntervalSinceReferenceDate)")
            #expect(PayloadTimestamp.date(from: text) == date, "\(date.timeIntervalSinceReferenceDate) → \(text)")
        }
    }

    @Test func datesNoReaderCanTakeAreRefusedAndOldSpellingsAreRead() {
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSinceReferenceDate: .nan)) == nil)
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSinceReferenceDate: .infinity)) == nil)
        #expect(PayloadTimestamp.string(from: Date(timeIntervalSinceReferenceDate: 1e15)) == nil)
        #expect(PayloadTimestamp.date(from: "2024-11-29T08:46:40Z") == Date(timeIntervalSince1970: 1_732_870_000))
        #expect(PayloadTimestamp.date(from: "2024-11-29T10:46:40+02:00") == Date(timeIntervalSince1970: 1_732_870_000))
        for bad in ["", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-11-29 09:26:40Z", "2024-11-29T09:26:40.Z", "nan", "2024-11-29T09:26:40"] {
            #expect(PayloadTimestamp.date(from: bad) == nil, "\(bad)")
        }
        // Years of 12 digits are read, but their seconds overflow (it trapped).
        for far in ["+999999999999-01-01T00:00:00Z", "-999999999999-12-31T23:59:59Z", "+292278994-08-17T07:12:55.808Z"] {
            #expect(PayloadTimestamp.date(from: far) == nil, "\(far)")
            #expect(PayloadTimestamp.milliseconds(from: far) == nil, "\(far)")
        }
    }
}
