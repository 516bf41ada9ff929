import Dugong
import Testing

@Suite("Log cursors")
struct LogCursorTests {
    @Test func cursorsOrderByTransactionThenPosition() {
        let cursors = [
            LogCursor.start, LogCursor(position: 1), LogCursor(position: 1 << 62), LogCursor(transaction: 1, position: 0),
            LogCursor(transaction: 1, position: 5), LogCursor(transaction: 2, position: 0), LogCursor(transaction: .max, position: .max),
        ]
        #expect(cursors == cursors.shuffled().sorted())
        #expect(zip(cursors, cursors.dropFirst()).allSatisfy { $0 < $1 })
        #expect(LogCursor(transaction: 3, position: 9).successor == LogCursor(transaction: 3, position: 10))
        #expect(LogCursor(position: 9) < LogCursor(position: 9).successor)
    }

    @Test func theTextFormReadsBack() {
        for cursor in [LogCursor.start, LogCursor(position: 42), LogCursor(transaction: 7, position: 0), LogCursor(transaction: .max, position: .max)] {
            #expect(LogCursor(cursor.description) == cursor, "\(cursor)")
        }
        #expect(LogCursor(position: 42).description == "42")
        #expect(LogCursor(transaction: 7, position: 3).description == "7:3")
        for text in ["", ":", "1:", ":1", "1:2:3", "-1", "+1", "x", "1 ", "18446744073709551616", "١٢"] {
            #expect(LogCursor(text) == nil, "\(text)")
        }
    }
}
