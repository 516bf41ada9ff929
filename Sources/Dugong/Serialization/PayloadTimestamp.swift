import Foundation

/// How a `Date` in an event payload or a snapshot is written: an ISO 8601 UTC string that
/// decodes to exactly the same `Date`, and that JSON readers (the `dugong` tool, JavaScript,
/// PostgreSQL `jsonb`) read as the same instant.
///
/// - A date that is a whole number of seconds since 1970 is written without a fraction:
///   `2024-11-29T09:26:40Z`.
/// - Otherwise with the fewest fraction digits, up to 9, that give the date back when read as
///   "seconds since 1970" (as `Date(timeIntervalSince1970:)` computes it): a date made from
///   milliseconds is `2024-11-29T09:26:40.123Z`, one made from microseconds has 6 digits.
/// - A `Date` those cannot express (it is stored as seconds since 2001, a grid finer than the
///   1970 one by up to a factor of two) is written with 10 or more digits, read as seconds since
///   2001: exact, and the same instant to any reader that keeps nanoseconds or less.
///
/// Reading accepts any number of fraction digits, and `Z` or an offset (`+02:00`). Years 0000 (`Date.distantPast`) to
/// 9999 only; a `Date` outside them, or not finite, cannot be written (an `EncodingError`).
public enum PayloadTimestamp {
    /// Seconds from 1970-01-01 to 2001-01-01, Foundation's reference date.
    static let referenceOffset = 978_307_200.0
    /// From here on, fraction digits count from 2001.
    static let digitsFromReferenceDate = 10
    static let earliest = -62_167_219_200  // 0000-01-01T00:00:00Z, seconds since 1970
    static let latest = 253_402_300_800  // 10000-01-01T00:00:00Z

    /// The ISO 8601 text of `date`; `nil` when it is not finite or outside the years 0000 to 9999.
    public static func string(from date: Date) -> String? {
        let sinceReference = date.timeIntervalSinceReferenceDate
        guard sinceReference.isFinite else { return nil }
        // Seconds since 1970 when they hold the date exactly; their shortest decimal is then
        // the fewest digits that give it back (`Date(timeIntervalSince1970:)` subtracts the
        // reference offset, exactly on this grid).
        let since1970 = sinceReference + referenceOffset
        if since1970 - referenceOffset == sinceReference, let text = text(decimal: since1970.shortestDecimal, base: 0),
            fractionDigits(text) < digitsFromReferenceDate, self.date(from: text) == date
        {
            return text
        }
        var decimal = sinceReference.shortestDecimal
        if !decimal.contains(".") { decimal += "." }
        decimal += String(repeating: "0", count: max(0, digitsFromReferenceDate - (decimal.count - decimal.firstIndex(of: ".")!.utf16Offset(in: decimal) - 1)))
        guard let text = text(decimal: decimal, base: Int(referenceOffset)), self.date(from: text) == date else { return nil }
        return text
    }

    /// The date `text` names (see the type's description), or `nil` when it is not one.
    public static func date(from text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse(Array($0)) }
    }

    // MARK: Writing

    /// `decimal` seconds since 1970 + `base`, as ISO 8601 (its fraction digits kept).
    private static func text(decimal: String, base: Int) -> String? {
        guard let (whole, fraction) = split(decimal) else { return nil }
        let since1970 = whole + base
        guard since1970 >= earliest, since1970 < latest else { return nil }
        let (days, second) = floorDivide(since1970, 86_400)
        let (year, month, day) = civil(fromDays: days)
        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T"
        text += pad(second / 3600, 2) + ":" + pad(second / 60 % 60, 2) + ":" + pad(second % 60, 2)
        if !fraction.isEmpty { text += "." + fraction }
        return text + "Z"
    }

    private static func fractionDigits(_ text: String) -> Int {
        guard let point = text.firstIndex(of: ".") else { return 0 }
        return text.distance(from: point, to: text.endIndex) - 2  // the digits between "." and "Z"
    }

    /// A decimal as whole seconds (rounded down) and the fraction's digits from them:
    /// `-5.25` is -6 and `75`.
    private static func split(_ decimal: String) -> (Int, String)? {
        let negative = decimal.hasPrefix("-")
        let parts = decimal.dropFirst(negative ? 1 : 0).split(separator: ".", omittingEmptySubsequences: false)
        guard let magnitude = Int(parts[0]) else { return nil }
        let digits = parts.count > 1 ? String(parts[1]) : ""
        guard negative, digits.contains(where: { $0 != "0" }) else { return (negative ? -magnitude : magnitude, digits) }
        return (-magnitude - 1, complement(digits))
    }

    /// `1 - 0.digits`, to as many digits (`digits` not all zero): the nines' complement plus one.
    private static func complement(_ digits: String) -> String {
        var result = digits.utf8.map { 9 - ($0 - UInt8(ascii: "0")) }
        var index = result.count - 1
        while result[index] == 9 {
            result[index] = 0
            index -= 1
        }
        result[index] += 1
        return String(decoding: result.map { $0 + UInt8(ascii: "0") }, as: UTF8.self)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    // MARK: Reading

    private static func parse(_ bytes: [UInt8]) -> Date? {
        guard let (since1970, fraction) = parts(bytes), since1970 >= earliest, since1970 < latest else { return nil }
        if fraction.count < digitsFromReferenceDate {
            guard let seconds = Double(decimal(since1970, fraction)) else { return nil }
            return Date(timeIntervalSince1970: seconds)
        }
        guard let seconds = Double(decimal(since1970 - Int(referenceOffset), fraction)) else { return nil }
        return Date(timeIntervalSinceReferenceDate: seconds)
    }

    /// An ISO 8601 UTC timestamp's whole seconds since 1970 and its fraction digits. The year
    /// has 4 digits, or a sign and 6 or more (ISO 8601's expanded years, as JavaScript writes
    /// them); `Z` or an offset follows.
    private static func parts(_ bytes: [UInt8]) -> (Int, String)? {
        var start = 0
        var sign = 1
        if let first = bytes.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first == UInt8(ascii: "-") ? -1 : 1
            start = 1
        }
        var yearEnd = start
        while yearEnd < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[yearEnd]) { yearEnd += 1 }
        guard start == 0 ? yearEnd == 4 : (6...12).contains(yearEnd - start) else { return nil }
        let b = yearEnd - 4  // the fixed layout below counts from here
        guard bytes.count >= b + 20, bytes[b + 4] == UInt8(ascii: "-"), bytes[b + 7] == UInt8(ascii: "-"),
            bytes[b + 10] == UInt8(ascii: "T") || bytes[b + 10] == UInt8(ascii: "t"), bytes[b + 13] == UInt8(ascii: ":"),
            bytes[b + 16] == UInt8(ascii: ":"),
            let magnitude = number(bytes[start..<yearEnd]), let month = number(bytes[(b + 5)..<(b + 7)]),
            let day = number(bytes[(b + 8)..<(b + 10)]), let hour = number(bytes[(b + 11)..<(b + 13)]),
            let minute = number(bytes[(b + 14)..<(b + 16)]), let second = number(bytes[(b + 17)..<(b + 19)])
        else { return nil }
        let year = sign * magnitude
        guard (1...12).contains(month), (1...daysIn(month, of: year)).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        var index = b + 19
        var fraction = ""
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > start else { return nil }
            fraction = String(decoding: bytes[start..<index], as: UTF8.self)
        }
        guard index < bytes.count else { return nil }
        var offset = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard index + 6 == bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                let hours = number(bytes[(index + 1)..<(index + 3)]), let minutes = number(bytes[(index + 4)..<(index + 6)]),
                hours < 24, minutes < 60
            else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
            index += 6
        default:
            return nil
        }
        guard index == bytes.count else { return nil }
        // Years of up to 12 digits are read: their seconds may not fit an Int.
        let (dayStart, overflowed) = days(fromCivil: year, month, day).multipliedReportingOverflow(by: 86_400)
        let (seconds, overflowedToo) = dayStart.addingReportingOverflow(hour * 3600 + minute * 60 + second - offset)
        guard !overflowed, !overflowedToo else { return nil }
        return (seconds, fraction)
    }

    // MARK: Milliseconds (the tool's event timestamps)

    /// Milliseconds since 1970 as `2024-11-29T06:44:55.123Z`: UTC, the proleptic Gregorian
    /// calendar (also before 1582), three fraction digits; a year outside 0000 to 9999 in ISO
    /// 8601's expanded form (`+012345-…`, `-000001-…`).
    public static func millisecondString(_ milliseconds: Int64) -> String {
        let (seconds, millisecond) = floorDivide(Int(milliseconds), 1000)
        let (days, second) = floorDivide(seconds, 86_400)
        let (year, month, day) = civil(fromDays: days)
        let yearText = (0...9999).contains(year) ? pad(year, 4) : (year < 0 ? "-" : "+") + pad(abs(year), 6)
        return yearText + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(second / 3600, 2) + ":" + pad(second / 60 % 60, 2)
            + ":" + pad(second % 60, 2) + "." + pad(millisecond, 3) + "Z"
    }

    /// The milliseconds since 1970 `text` names (as ``millisecondString(_:)`` writes it, or
    /// with fewer or more fraction digits, beyond the third dropped; `Z` or an offset), or `nil`.
    public static func milliseconds(from text: String) -> Int64? {
        var text = text
        guard let (seconds, fraction) = text.withUTF8({ parts(Array($0)) }) else { return nil }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        let millisecond = Int((fraction + "000").prefix(3))!
        let (total, overflowedToo) = whole.addingReportingOverflow(millisecond)
        guard !overflow, !overflowedToo, let result = Int64(exactly: total) else { return nil }
        return result
    }

    /// The first whole millisecond since 1970 at or after the instant `text` names, for the bounds
    /// of a time range (`dugong read-all --since/--until`, the Studio's filter): as
    /// ``milliseconds(from:)``, except that fraction digits beyond the third round up instead of
    /// being dropped (stored times are whole milliseconds, so "at or after" and "before" then
    /// compare exactly), and that a calendar date alone (`2026-11-30`) is its first moment in UTC.
    public static func bound(from text: String) -> Int64? {
        if text.utf8.count == 10, text.wholeMatch(of: /[0-9]{4}-[0-9]{2}-[0-9]{2}/) != nil {
            return bound(from: text + "T00:00:00Z")
        }
        guard let milliseconds = milliseconds(from: text) else { return nil }
        guard let dot = text.firstIndex(of: ".") else { return milliseconds }
        let finer = text[text.index(after: dot)...].prefix(while: \.isASCII).prefix(while: \.isNumber).dropFirst(3)
        return finer.contains { $0 != "0" } ? milliseconds.addingReportingOverflow(1).partialValue : milliseconds
    }

    /// `whole + 0.fraction` as decimal text that `Double` parses exactly rounded.
    private static func decimal(_ whole: Int, _ fraction: String) -> String {
        guard !fraction.isEmpty else { return String(whole) }
        guard whole < 0, fraction.contains(where: { $0 != "0" }) else { return "\(whole).\(fraction)" }
        // -6 + 0.75 is -(5 + 0.25).
        return "-\(-whole - 1).\(complement(fraction))"
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return value
    }

    // MARK: The calendar (proleptic Gregorian, days from 1970-01-01)

    private static func floorDivide(_ value: Int, _ divisor: Int) -> (Int, Int) {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }

    private static func daysIn(_ month: Int, of year: Int) -> Int {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        return month == 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].contains(month) ? 30 : 31
    }

    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
