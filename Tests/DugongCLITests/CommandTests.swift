import Dugong
import DugongStore
import Foundation
import Testing

@Suite("The dugong tool, run as a subprocess", .serialized)
struct CommandTests {
    static func jsonObject(_ line: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    // Found by a review: inputs that crashed the tool, names it mixed up, stores it left behind.
    @Test func extremeTimesAreRefusedNotCrashedOn() throws {
        let store = CLI.storePath("extreme-times")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        // A 12-digit year overflowed the seconds; the top of the millisecond range overflowed a
        // Date's milliseconds on the way back.
        for time in ["+999999999999-01-01T00:00:00Z", "-999999999999-01-01T00:00:00Z", "+292278994-08-17T07:12:55.807Z"] {
            let read = try CLI.run(["read-all", store, "--since", time])
            #expect(read.status == 64, "\(time): \(read.status) \(read.stderr)")
            let append = try CLI.run(["append", store, "s"], input: #"{"type":"T","timestamp":"\#(time)"}"#)
            #expect(append.status == 65 && append.stderr.contains("line 1"), "\(time): \(append.status) \(append.stderr)")
        }
        #expect(try CLI.run(["read-all", store]).lines.count == 1)
    }

    // Found by a review: a bound finer than a millisecond was cut to its millisecond, so
    // --since let in an earlier event and --until left out one before it.
    @Test func timeBoundsFinerThanAMillisecondCompareExactly() throws {
        let store = CLI.storePath("fine-times")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let input = #"{"stream":"a","type":"T","timestamp":"2024-01-01T00:00:00.000Z"}"# + "\n"
            + #"{"stream":"a","type":"U","timestamp":"2024-01-01T00:00:00.001Z"}"#
        #expect(try CLI.run(["import", store], input: input).status == 0)
        let cases: [([String], [String])] = [
            (["--since", "2024-01-01T00:00:00.0005Z"], ["U"]),
            (["--until", "2024-01-01T00:00:00.0005Z"], ["T"]),
            (["--since", "2024-01-01T00:00:00.000000Z"], ["T", "U"]),
            (["--until", "2024-01-01T00:00:00.0010Z"], ["T"]),
            (["--since", "2024-01-01T01:00:00.0005+01:00"], ["U"]),
            // A date alone is its midnight UTC (it was refused as "not an ISO 8601 time").
            (["--since", "2024-01-01"], ["T", "U"]),
            (["--until", "2024-01-01"], []),
            (["--since", "2023-12-31", "--until", "2024-01-02"], ["T", "U"]),
        ]
        for (options, types) in cases {
            let read = try CLI.run(["read-all", store] + options)
            #expect(read.status == 0, "\(options): \(read.stderr)")
            #expect(try read.lines.map { try Self.jsonObject($0)["type"] as? String } == types, "\(options): \(read.stdout)")
        }
        #expect(try CLI.run(["read-all", store, "--since", "2024-1-1"]).status == 64)
    }

    // Found by a review: append took a line's "version" and stored the event at another one.
    // Lines with versions (what `read` prints) must get those versions, or nothing is written.
    @Test func appendHoldsLinesToTheVersionsTheyGive() throws {
        let store = CLI.storePath("append-versions")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let wrong = try CLI.run(["append", store, "a"], input: #"{"type":"T","version":7}"#)
        #expect(wrong.status == 2 && wrong.stderr.contains("6"), "\(wrong.status) \(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: store), "the failed append removed the store it created")
        let lines = #"{"type":"T","version":1,"id":"11111111-1111-1111-1111-111111111111"}"# + "\n"
            + #"{"type":"T","version":2,"id":"22222222-2222-2222-2222-222222222222"}"#
        let first = try CLI.run(["append", store, "a"], input: lines)
        #expect(first.status == 0 && first.stdout.contains(#""firstVersion":1"#), "\(first.stdout) \(first.stderr)")
        #expect(try CLI.run(["append", store, "a"], input: lines).status == 0, "run again: recognized as the same commit")
        #expect(try CLI.run(["read", store, "a"]).lines.count == 2)
        let copied = try CLI.run(["append", store, "b"], input: try CLI.run(["read", store, "a"]).stdout.replacingOccurrences(of: #""stream":"a""#, with: #""stream":"b""#))
        #expect(copied.status == 0, "lines `read` printed: \(copied.stderr)")
        let mixed = try CLI.run(["append", store, "a"], input: #"{"type":"T","version":3}"# + "\n" + #"{"type":"T"}"#)
        #expect(mixed.status == 65 && mixed.stderr.contains("line 2"), "\(mixed.stderr)")
        let gap = try CLI.run(["append", store, "a"], input: #"{"type":"T","version":3}"# + "\n" + #"{"type":"T","version":5}"#)
        #expect(gap.status == 65 && gap.stderr.contains("line 2"), "\(gap.stderr)")
        let disagree = try CLI.run(["append", store, "a", "--expected-version", "no-stream"], input: #"{"type":"T","version":3}"#)
        #expect(disagree.status == 64, "\(disagree.stderr)")
        #expect(try CLI.run(["read", store, "a"]).lines.count == 2)
    }

    // Found by a review: a name the store refuses (a NUL, too long) was reported without its
    // line, and an unpaired surrogate as an empty name.
    @Test func refusedNamesAreReportedWithTheirLine() throws {
        let store = CLI.storePath("bad-names")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let long = String(repeating: "x", count: 1025)
        for (line, says) in [
            (#"{"type":"T\u0000"}"#, "NUL"), (#"{"type":"\#(long)"}"#, "1025 bytes"),
            (#"{"type":"T","stream":"s\ud800"}"#, "unpaired surrogate"),
        ] {
            let appended = try CLI.run(["append", store, "s"], input: #"{"type":"Fine"}"# + "\n" + line)
            #expect(appended.status == 65 && appended.stderr.contains("line 2") && appended.stderr.contains(says), "\(appended.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: store))
    }

    // A black-box review: `append -dash s` and `append st -high` printed the help and exited 0
    // (the parser took `-dash` for bundled flags, `-h` among them): nothing written, success
    // said. Such arguments are refused (64) with the way to give them; after `--` they work.
    @Test func anArgumentLikeBundledFlagsIsRefusedNotTakenForHelp() throws {
        let store = CLI.storePath("dashes")
        defer { try? FileManager.default.removeItem(atPath: store) }
        for arguments in [["append", "-dash", "s"], ["append", store, "-high"], ["append", store, "-xyz"], ["read-all", store, "--type", "-hx"]] {
            let refused = try CLI.run(arguments, input: #"{"type":"T"}"#)
            #expect(refused.status == 64 && refused.stderr.contains("is not an option") && refused.stdout.isEmpty, "\(arguments): \(refused.stderr)")
        }
        #expect(try CLI.run(["append", store, "--", "-high"], input: #"{"type":"T"}"#).status == 0)
        #expect(try CLI.run(["read", store, "--", "-high"]).lines.count == 1)
        #expect(try CLI.run(["read-all", store, "--type=-hx"]).status == 0, "a value given as --name=VALUE")
        #expect(try CLI.run(["append", "-h"]).status == 0, "-h alone is help")
    }

    // Found by a black-box test: lines reusing stored ids for other events were taken for a
    // retry (exit 0, nothing written, an acknowledgement like a new commit's).
    @Test func linesReusingStoredIdsForOtherEventsAreConflicts() throws {
        let store = CLI.storePath("reused-ids")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let line = #"{"type":"Opened","data":{"owner":"Ada"},"id":"33333333-3333-3333-3333-333333333333"}"#
        #expect(try CLI.run(["append", store, "a"], input: line).status == 0)
        let again = try CLI.run(["append", store, "a"], input: line)
        #expect(again.status == 0 && again.stdout.contains(#""duplicate":true"#), "\(again.stdout)")
        let decomposed = line.replacingOccurrences(of: "Opened", with: "Op\u{65}\u{301}ned")
        let composed = line.replacingOccurrences(of: "Opened", with: "Op\u{e9}ned")
        #expect(try CLI.run(["append", store, "b"], input: composed).status == 0)
        let normalized = try CLI.run(["append", store, "b"], input: decomposed)
        #expect(normalized.status == 2, "a type that differs only in its normalization is another type: \(normalized.stderr)")
        for changed in [line.replacingOccurrences(of: "Ada", with: "Mallory"), line.replacingOccurrences(of: "Opened", with: "Closed")] {
            let reused = try CLI.run(["append", store, "a"], input: changed)
            #expect(reused.status == 2 && reused.stderr.contains("line 1"), "\(reused.status) \(reused.stderr)")
        }
        #expect(try CLI.run(["read", store, "a"]).lines.count == 1)
        // Import: a line at a stored version with the stored id and other data.
        let exported = try CLI.run(["export", store]).stdout
        let imported = try CLI.run(["import", store], input: exported.replacingOccurrences(of: "Ada", with: "Eve"))
        #expect(imported.status == 2 && imported.stderr.contains("other data"), "\(imported.stderr)")
        #expect(try CLI.run(["import", store], input: exported).status == 0, "the same lines again are skipped")
    }

    // Found by a black-box test with several processes: a retry (lines with the ids of a stored
    // commit) was recognized only as the stream's last commit; after another process's append
    // it was written again (exit 0), and an id reused for another event was written too.
    @Test func aRetryIsRecognizedAfterLaterCommitsAndPartOfOneIsAConflict() throws {
        let store = CLI.storePath("retry-later")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let first = #"{"type":"L1","id":"11111111-1111-1111-1111-111111111111"}"#
        let second = #"{"type":"L2","id":"22222222-2222-2222-2222-222222222222"}"#
        #expect(try CLI.run(["append", store, "s"], input: first + "\n" + second).status == 0)
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"Z"}"#).status == 0)
        let retry = try CLI.run(["append", store, "s"], input: first + "\n" + second)
        #expect(retry.status == 0 && retry.stdout.contains(#""firstVersion":1,"lastVersion":2"#) && retry.stdout.contains(#""duplicate":true"#), "\(retry.stdout) \(retry.stderr)")
        let tail = try CLI.run(["append", store, "s"], input: second)
        #expect(tail.status == 2 && tail.stderr.contains("not as one commit of its own"), "a commit's last event alone is part of it: \(tail.stderr)")
        for (input, says) in [
            (second + "\n" + first, "line 2"),  // out of order
            (first + "\n" + #"{"type":"New"}"#, "line 2"),  // part of a commit, then a new event
            (first.replacingOccurrences(of: "L1", with: "Other") + "\n" + second, "line 1"),  // an id reused for another event
            (first.replacingOccurrences(of: "}", with: #","version":4}"#) + "\n" + second.replacingOccurrences(of: "}", with: #","version":5}"#), "not the line's version 4"),
        ] {
            let refused = try CLI.run(["append", store, "s"], input: input)
            #expect(refused.status == 2 && refused.stderr.contains(says) && refused.stderr.contains("nothing was written"), "\(input): \(refused.status) \(refused.stderr)")
        }
        #expect(try CLI.run(["read", store, "s"]).lines.count == 3, "nothing was written again")
        // From a review: part of a commit, or parts of two, are not a commit of their own; an
        // expected version the stored commit does not meet is a conflict as it was before.
        let third = #"{"type":"L3","id":"44444444-4444-4444-4444-444444444444"}"#
        #expect(try CLI.run(["append", store, "t"], input: [first, second, third].joined(separator: "\n")).status == 0)
        #expect(try CLI.run(["append", store, "t"], input: #"{"type":"L4","id":"55555555-5555-5555-5555-555555555555"}"#).status == 0)
        for (input, says) in [
            (second + "\n" + third, "not as one commit of its own"),
            (third + "\n" + #"{"type":"L4","id":"55555555-5555-5555-5555-555555555555"}"#, "not as one commit of its own"),
        ] {
            let refused = try CLI.run(["append", store, "t"], input: input)
            #expect(refused.status == 2 && refused.stderr.contains(says), "\(refused.stderr)")
        }
        let whole = [first, second, third].joined(separator: "\n")
        let wrongExpectation = try CLI.run(["append", store, "t", "--expected-version", "9"], input: whole)
        #expect(wrongExpectation.status == 2 && wrongExpectation.stderr.contains("does not hold"), "\(wrongExpectation.stderr)")
        #expect(try CLI.run(["append", store, "t", "--expected-version", "0"], input: whole).stdout.contains(#""duplicate":true"#))
        // Lines that repeat a stored id more often than the stream holds it: said so (the message
        // said the id was not in the stream).
        let twice = try CLI.run(["append", store, "t"], input: first + "\n" + first)
        #expect(twice.status == 2 && twice.stderr.contains("comes more often in the lines than in 't'"), "\(twice.stderr)")
        // The commit that began the stream did not find it existing: stream-exists does not hold.
        let notExisting = try CLI.run(["append", store, "t", "--expected-version", "stream-exists"], input: whole)
        #expect(notExisting.status == 2 && notExisting.stderr.contains("does not hold"), "\(notExisting.stderr)")
        #expect(try CLI.run(["append", store, "t", "--expected-version", "any"], input: whole).stdout.contains(#""duplicate":true"#))
        // A commit that repeats an id, and a commit its stream no longer shows (truncated).
        let repeated = #"{"type":"R","id":"66666666-6666-6666-6666-666666666666"}"#
        #expect(try CLI.run(["append", store, "u"], input: repeated + "\n" + repeated).status == 0)
        #expect(try CLI.run(["append", store, "u"], input: repeated + "\n" + repeated).stdout.contains(#""duplicate":true"#))
        #expect(try CLI.run(["truncate-stream", store, "t", "--before", "3"]).status == 0)
        let hidden = try CLI.run(["append", store, "t"], input: whole)
        #expect(hidden.status == 0 && hidden.stdout.contains(#""firstVersion":1,"lastVersion":3"#) && hidden.stdout.contains(#""duplicate":true"#), "\(hidden.stdout) \(hidden.stderr)")
        #expect(try CLI.run(["read", store, "t"]).lines.count == 2, "versions 3 and 4, nothing written again")
    }

    // Found by a black-box test: a failed append that made a store in an empty directory left
    // the store there (only a directory it created was removed).
    @Test func aFailedAppendInAnEmptyDirectoryLeavesItEmpty() throws {
        let store = CLI.storePath("empty-directory")
        defer { try? FileManager.default.removeItem(atPath: store) }
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let appended = try CLI.run(["append", store, "a", "--expected-version", "3"], input: #"{"type":"T"}"#)
        #expect(appended.status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store) == [])
    }

    // Found by a review: deleting a stream that never had an event wrote a record (the stream
    // was then listed) while saying it did nothing.
    @Test func deletingAStreamWithoutEventsWritesNothing() throws {
        let store = CLI.storePath("delete-nothing")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "a"], input: #"{"type":"T"}"#).status == 0)
        let deleted = try CLI.run(["delete-stream", store, "never-seen"])
        #expect(deleted.status == 0 && deleted.stdout.contains("no versions to hide"), "\(deleted.stdout)")
        #expect(try CLI.run(["streams", store]).lines.count == 1)
        #expect(!(try CLI.run(["export", store]).stdout.contains("never-seen")))
        // Truncating before version 1 hides nothing either: it made a stream of the name (read
        // exit 0, listed, exported), which a compaction then dropped.
        let truncated = try CLI.run(["truncate-stream", store, "never-seen", "--before", "1"])
        #expect(truncated.status == 0 && truncated.stdout.contains("no versions to hide"), "\(truncated.stdout)")
        #expect(try CLI.run(["read", store, "never-seen"]).status == 66)
        #expect(try CLI.run(["streams", store]).lines.count == 1)
        let imported = try CLI.run(["import", store], input: #"{"stream":"new/2","truncateBefore":1}"#)
        let exported = try CLI.run(["export", store]).stdout
        #expect(imported.status == 0 && !exported.contains("new/2"), "\(imported.stderr)")
    }

    // The store tells names apart by their bytes: café spelled NFC and NFD are two streams, for
    // `import` and `streams --sizes` too (a table keyed by String took them for one).
    @Test func namesThatDifferOnlyInNormalizationAreTwoStreams() throws {
        let store = CLI.storePath("normalization")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let input = #"{"stream":"caf\u00e9","type":"T","data":{"n":1}}"# + "\n" + #"{"stream":"cafe\u0301","type":"T","data":{"n":22}}"#
        let imported = try CLI.run(["import", store], input: input)
        #expect(imported.status == 0, "\(imported.stderr)")
        let nfc = try CLI.run(["read", store, "caf\u{e9}"])
        let nfd = try CLI.run(["read", store, "cafe\u{301}"])
        #expect(nfc.lines.count == 1 && nfd.lines.count == 1, "\(nfc.stdout) \(nfd.stdout)")
        #expect(try Self.jsonObject(nfc.lines[0])["version"] as? Int == 1 && (try Self.jsonObject(nfd.lines[0]))["version"] as? Int == 1)
        let sizes = try CLI.run(["streams", store, "--sizes", "--json"])
        #expect(sizes.status == 0 && sizes.lines.count == 2, "\(sizes.stdout)")
        #expect(try sizes.lines.compactMap { try Self.jsonObject($0)["bytes"] as? Int }.sorted() == [7, 8], "\(sizes.stdout)")
    }

    // A command that created the store and then failed with nothing written leaves nothing
    // behind (a new store reserves a whole segment).
    @Test func aFailedCommandRemovesTheStoreItCreated() throws {
        let store = CLI.storePath("leftover")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let imported = try CLI.run(["import", store], input: "{")
        #expect(imported.status == 65)
        #expect(!FileManager.default.fileExists(atPath: store))
        let appended = try CLI.run(["append", store, "s", "--expected-version", "3"], input: #"{"type":"T"}"#)
        #expect(appended.status == 2, "\(appended.stderr)")
        #expect(!FileManager.default.fileExists(atPath: store))
        // An existing store stays.
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        #expect(try CLI.run(["import", store], input: "{").status == 65)
        #expect(try CLI.run(["read", store, "s"]).lines.count == 1)
        // The directories made for a store at a new nested path go too (found by a black-box
        // run: they stayed), but not one that held something before.
        let top = CLI.storePath("nested")
        defer { try? FileManager.default.removeItem(atPath: top) }
        #expect(try CLI.run(["import", top + "/deep/er/store"], input: "{").status == 65)
        #expect(!FileManager.default.fileExists(atPath: top), "the failed import removed the directories it made")
        try FileManager.default.createDirectory(atPath: top + "/kept", withIntermediateDirectories: true)
        #expect(try CLI.run(["append", top + "/deep/store", "s", "--expected-version", "3"], input: #"{"type":"T"}"#).status == 2)
        #expect(!FileManager.default.fileExists(atPath: top + "/deep") && FileManager.default.fileExists(atPath: top + "/kept"))
    }

    @Test func appendThenReadPrintsTheEventsAsJSONLines() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let input = """
            {"type":"Opened","data":{"owner":"Ada"},"id":"00112233-4455-6677-8899-aabbccddeeff"}

            {"type":"Deposited","data":{"amount":100},"metadata":{"by":"teller"}}
            {"type":"Blob","data":{"base64":"AAEC/w=="}}
            """
        let append = try CLI.run(["append", store, "account/1", "--expected-version", "no-stream"], input: input)
        #expect(append.status == 0, "\(append.stderr)")
        #expect(append.lines == [#"{"stream":"account/1","firstVersion":1,"lastVersion":3,"firstPosition":0,"lastPosition":2}"#])

        let read = try CLI.run(["read", store, "account/1"])
        #expect(read.status == 0 && read.stderr.isEmpty)
        #expect(read.lines.count == 3)
        let first = try Self.jsonObject(read.lines[0])
        #expect(first["stream"] as? String == "account/1" && first["version"] as? Int == 1 && first["position"] as? Int == 0)
        #expect(first["id"] as? String == "00112233-4455-6677-8899-aabbccddeeff" && first["type"] as? String == "Opened")
        #expect((first["data"] as? [String: Any])?["owner"] as? String == "Ada")
        #expect(first["metadata"] is NSNull)
        let timestamp = try #require(first["timestamp"] as? String)
        #expect(timestamp.hasSuffix("Z") && timestamp.count == 24, "ISO 8601 with milliseconds: \(timestamp)")
        #expect(((try Self.jsonObject(read.lines[1]))["metadata"] as? [String: Any])?["by"] as? String == "teller")
        #expect(((try Self.jsonObject(read.lines[2]))["data"] as? [String: Any])?["base64"] as? String == "AAEC/w==")

        let backward = try CLI.run(["read", store, "account/1", "--backward", "--limit", "2"])
        #expect(try backward.lines.map { try Self.jsonObject($0)["version"] as? Int } == [3, 2])
        let from = try CLI.run(["read", store, "account/1", "--from", "2", "--limit", "1"])
        #expect(try from.lines.map { try Self.jsonObject($0)["version"] as? Int } == [2])
        let all = try CLI.run(["read-all", store, "--from", "1"])
        #expect(try all.lines.map { try Self.jsonObject($0)["position"] as? Int } == [1, 2])
    }

    @Test func anAppendConflictExitsWithTwoNamingTheVersions() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "s/1"], input: #"{"type":"A"}"#)
        let conflict = try CLI.run(["append", store, "s/1", "--expected-version", "no-stream"], input: #"{"type":"B"}"#)
        #expect(conflict.status == 2 && conflict.stdout.isEmpty)
        #expect(conflict.stderr.contains("expected no stream, actual version 1"), "\(conflict.stderr)")
        let exact = try CLI.run(["append", store, "s/1", "--expected-version", "5"], input: #"{"type":"B"}"#)
        #expect(exact.status == 2 && exact.stderr.contains("expected version 5, actual version 1"))
        let bad = try CLI.run(["append", store, "s/1", "--expected-version", "sometimes"], input: #"{"type":"B"}"#)
        #expect(bad.status != 0 && bad.stderr.contains("expected-version"))
        // A negative version is refused as a value (it was read as an unknown option: "Missing value").
        let negative = try CLI.run(["append", store, "s/1", "--expected-version", "-1"], input: #"{"type":"B"}"#)
        #expect(negative.status == 64 && negative.stderr.contains("The value '-1' is invalid"), "\(negative.stderr)")
    }

    @Test func aBadInputLineIsNamedAndNothingOfItsCommitIsWritten() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let append = try CLI.run(["append", store, "s/1"], input: "{\"type\":\"A\"}\n{\"type\":\"B\"\n")
        #expect(append.status == 65 && append.stderr.contains("line 2: not valid JSON"), "\(append.stderr)")
        let input = """
            {"stream":"a/1","type":"A"}
            {"stream":"a/1","type":"B"}
            {"stream":"b/1","type":"C"}
            {"stream":"b/1","data":{}}
            """
        let imported = try CLI.run(["import", store, "--batch", "2", "--acks"], input: input)
        #expect(imported.status == 65 && imported.stderr.contains("line 4: \"type\" must be a non-empty string"), "\(imported.stderr)")
        #expect(imported.lines.count == 1, "the a/1 commit was acknowledged")
        let all = try CLI.run(["read-all", store])
        #expect(try all.lines.map { try Self.jsonObject($0)["type"] as? String } == ["A", "B"], "nothing of b/1's commit")
    }

    /// The README's limits, at the line and one past it (a check reached only past them), and
    /// two output rules the README states.
    @Test func limitsHoldExactlyAtTheirBounds() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let longest = String(repeating: "é", count: 512)  // 1,024 bytes
        #expect(try CLI.run(["append", store, longest], input: #"{"type":"T"}"#).status == 0)
        #expect(try CLI.run(["append", store, longest + "x"], input: #"{"type":"T"}"#).status == 65)
        #expect(try CLI.run(["append", store, "s/1"], input: #"{"type":"\#(longest)"}"#).status == 0)
        // 4 MiB of data and metadata: data as base64 of 4 MiB − 2 bytes, metadata `{}`.
        let fourMiB = Data(repeating: 7, count: 4 << 20 - 2).base64EncodedString()
        #expect(try CLI.run(["append", store, "big"], input: #"{"type":"T","data":{"base64":"\#(fourMiB)"},"metadata":{}}"#).status == 0)
        let over = Data(repeating: 7, count: 4 << 20 - 1).base64EncodedString()
        #expect(try CLI.run(["append", store, "big"], input: #"{"type":"T","data":{"base64":"\#(over)"},"metadata":{}}"#).status == 65)
        for (size, status) in [("4095", 64), ("4096", 0), ("1073741824", 0), ("1073741825", 64)] {
            let other = CLI.storePath()
            defer { try? FileManager.default.removeItem(atPath: other) }
            #expect(try CLI.run(["import", other, "--segment-size", size], input: #"{"stream":"s","type":"T"}"#).status == status, "\(size)")
        }
        // The bytes `null` and JSON with spaces around it print as base64 (as JSON they would
        // read back otherwise).
        for bytes in ["null", " 1", "1 "] {
            let encoded = Data(bytes.utf8).base64EncodedString()
            #expect(try CLI.run(["append", store, "odd"], input: #"{"type":"T","data":{"base64":"\#(encoded)"}}"#).status == 0)
            let read = try CLI.run(["read", store, "odd", "--backward", "--limit", "1"])
            #expect(read.stdout.contains(#""data":{"base64":"\#(encoded)"}"#), "\(bytes): \(read.stdout)")
        }
        // read-all --backward goes from the log's end down to --from.
        let positions = try CLI.run(["read-all", store, "--from", "2", "--backward"]).lines.map { try Self.jsonObject($0)["position"] as? Int }
        #expect(positions == [5, 4, 3, 2], "\(positions)")
    }

    /// Found by a black-box test in a hostile environment (each case was a wrong exit 0, a
    /// hang or a death by signal).
    @Test func aHostileEnvironmentGetsTypedErrors() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let d = CLI.binary
        // A non-blocking stdin is waited on: both lines land (the first alone did, exit 0).
        let nonBlocking = try CLI.run(shell: """
            python3 -c '
            import os, fcntl, subprocess, time
            r, w = os.pipe(); fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
            p = subprocess.Popen(["\(d)", "append", "\(store)", "acct"], stdin=r); os.close(r)
            os.write(w, b"{\\"type\\":\\"A\\"}\\n"); time.sleep(0.5)
            os.write(w, b"{\\"type\\":\\"B\\"}\\n"); os.close(w)
            raise SystemExit(p.wait())'
            """)
        #expect(nonBlocking.status == 0, "\(nonBlocking.stderr)")
        #expect(try CLI.run(["read", store, "acct"]).lines.count == 2)
        // stdin that cannot be read (a directory) is an error, not the end of the input.
        let directoryInput = try CLI.run(shell: "'\(d)' import '\(store)' < /")
        #expect(directoryInput.status == 74 && directoryInput.stderr.contains("cannot read stdin"), "\(directoryInput.stderr)")
        // A writer whose reader went away says what it did (it died by SIGPIPE, silent).
        let piped = try CLI.run(shell: "{ echo '{\"type\":\"C\"}' | '\(d)' append '\(store)' acct; echo \"status $?\" >&2; } | (exec <&-; sleep 1)")
        #expect(piped.stderr.contains("status 74") && piped.stderr.contains("stays committed"), "\(piped.stderr)")
        // A FIFO where a store file belongs: no hang in open(); the saved index is only a
        // shortcut (a scan replaces it), the manifest is not.
        for (name, statuses) in [("dugong.index", [0]), ("dugong.manifest", [1, 74])] as [(String, [Int32])] {
            let path = store + "/" + name
            let saved = store + "/saved"
            try? FileManager.default.moveItem(atPath: path, toPath: saved)
            #expect(mkfifo(path, 0o644) == 0)
            let fifo = try CLI.run(shell: "timeout 20 '\(d)' verify '\(store)'")
            #expect(statuses.contains(fifo.status), "\(name): \(fifo.status) \(fifo.stderr)")
            try FileManager.default.removeItem(atPath: path)
            try? FileManager.default.moveItem(atPath: saved, toPath: path)
        }
        // A store behind a loop of symbolic links is not "not found" (66): the lookup failed.
        let loop = store + "-loop"
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        defer { try? FileManager.default.removeItem(atPath: loop) }
        let looped = try CLI.run(["verify", loop])
        #expect(looped.status == 74 && looped.stderr.contains("symbolic links"), "\(looped.status) \(looped.stderr)")
        // A compaction past the file-size limit: 74 (it died by SIGXFSZ).
        let lines = (0..<400).map { #"{"stream":"s/\#($0 % 4)","type":"T","data":{"n":\#($0),"pad":"\#(String(repeating: "x", count: 60))"}}"# }
        #expect(try CLI.run(["import", store, "--segment-size", "8192"], input: lines.joined(separator: "\n")).status == 0)
        #expect(try CLI.run(["delete-stream", store, "s/1"]).status == 0)
        let limited = try CLI.run(shell: "ulimit -f 12; '\(d)' compact '\(store)'")
        #expect(limited.status == 74, "\(limited.status) \(limited.stderr)")
        #expect(try CLI.run(["verify", store]).status == 0)
    }

    // Found by a black-box run: a signal before the import's store was open (or while it
    // waited for the lock) killed it with nothing said, and a signal while its acknowledgements
    // went to a reader that had stopped reading (its end kept open) did not end it at all.
    @Test func anImportStopsAtASignalWhileItWaitsForTheLockOrItsReader() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        // A writer that holds the lock (an import waiting for its input).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: CLI.binary)
        holder.arguments = ["import", store]
        let held = Pipe()
        holder.standardInput = held
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer {
            try? held.fileHandleForWriting.close()
            holder.waitUntilExit()
        }
        Thread.sleep(forTimeInterval: 1)
        let waiting = try CLI.start(["import", store, "--wait", "60"], input: #"{"stream":"s","type":"T"}"#)
        defer { waiting.remove() }
        Thread.sleep(forTimeInterval: 1)
        Glibc.kill(waiting.process.processIdentifier, SIGTERM)
        waiting.process.waitUntilExit()
        let said = waiting.result().stderr
        #expect(waiting.process.terminationReason == .uncaughtSignal && waiting.process.terminationStatus == SIGTERM, "\(said)")
        #expect(said.contains("stopped by SIGTERM while waiting for the store's write lock: nothing was written"), "\(said)")
        try? held.fileHandleForWriting.close()
        holder.waitUntilExit()

        // Acknowledgements to a reader that stopped: the signal ends the import 5 s later.
        let lines = (0..<4000).map { #"{"stream":"s/\#($0 % 50)","type":"T"}"# }.joined(separator: "\n")
        let stuck = Process()
        stuck.executableURL = URL(fileURLWithPath: CLI.binary)
        stuck.arguments = ["import", store, "--acks", "--batch", "1"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        stuck.standardInput = input
        stuck.standardOutput = output
        stuck.standardError = errors
        try stuck.run()
        input.fileHandleForWriting.write(Data(lines.utf8))
        Thread.sleep(forTimeInterval: 2)  // the acknowledgements fill the pipe nobody reads
        let start = ContinuousClock.now
        Glibc.kill(stuck.processIdentifier, SIGTERM)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        stuck.waitUntilExit()
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(stuck.terminationReason == .uncaughtSignal && stuck.terminationStatus == SIGTERM, "\(stderr)")
        #expect(stderr.contains("stopped by SIGTERM: the output was not read for 5 s"), "\(stderr)")
        try? input.fileHandleForWriting.close()
        _ = output
        #expect(try CLI.run(["verify", store]).status == 0)
    }

    // Found by a black-box run: a store whose files' paths exceed PATH_MAX (its directory's
    // does not) was "damaged: segment file … missing"; the look failed, the file is there.
    @Test func aFileNameTooLongIsASystemErrorNotDamage() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        let parent = (store as NSString).deletingLastPathComponent, name = (store as NSString).lastPathComponent
        // The directory's path just under PATH_MAX (4096), its files' over it.
        let padding = String(repeating: "./", count: (4090 - parent.count - name.count) / 2)
        let long = parent + "/" + padding + name
        #expect(long.utf8.count < 4096 && (long + "/00000000000000000000.dseg").utf8.count >= 4096)
        let verified = try CLI.run(["verify", long])
        #expect(verified.status == 74 && verified.stderr.contains("File name too long"), "\(verified.status) \(verified.stderr)")
        // An empty path is said to be one (it was "cannot open : opendir() failed", 74 or 66).
        for command in [["import", ""], ["append", "", "s"], ["read-all", ""], ["verify", ""]] {
            let empty = try CLI.run(command, input: #"{"stream":"s","type":"T"}"#)
            #expect(empty.status == 64 && empty.stderr.contains("the store's path is empty"), "\(command[0]): \(empty.status) \(empty.stderr)")
        }
        // A mistyped URL is not taken for a directory (`import postgres:/db` made one).
        let mistyped = try CLI.run(shell: "cd '\(parent)' && echo '{\"stream\":\"s\",\"type\":\"T\"}' | '\(CLI.binary)' import postgres:/db")
        #expect(mistyped.status == 64 && mistyped.stderr.contains("looks like a PostgreSQL URL but is not one"), "\(mistyped.stderr)")
        #expect(!FileManager.default.fileExists(atPath: parent + "/postgres:"))
    }

    // Found by a black-box run: `dugong import s` (a new store at a relative path of one
    // character) died by SIGILL: Foundation's `deletingLastPathComponent` traps on such a path.
    @Test func aStoreAtAOneCharacterRelativePathIsCreated() throws {
        let parent = CLI.storePath()
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        for name in ["s", "x/", "y//", "1"] {
            let made = try CLI.run(shell: "cd '\(parent)' && echo '{\"stream\":\"a\",\"type\":\"T\"}' | '\(CLI.binary)' import '\(name)'")
            #expect(made.status == 0 && made.stderr.contains("imported 1 event"), "\(name): \(made.status) \(made.stderr)")
        }
        let nested = try CLI.run(shell: "cd '\(parent)' && echo '{\"type\":\"T\"}' | '\(CLI.binary)' append 'n/e/w' s")
        #expect(nested.status == 0 && FileManager.default.fileExists(atPath: parent + "/n/e/w/dugong.manifest"), "\(nested.stderr)")
    }

    // Found by a black-box run: a commit that failed with another in flight behind it was said
    // twice (the writer fails every commit after a failed one, with the same error).
    @Test func anImportThatFailsSaysWhyOnce() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        var random = SeededRandom(seed: 27)
        let incompressible = Data((0..<150_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }).base64EncodedString()
        let small = (0..<60).map { #"{"stream":"s/\#($0 % 3)","type":"T","data":{"n":\#($0)}}"# }
        let lines = small + [#"{"stream":"big","type":"T","data":{"pad":"\#(incompressible)"}}"#] + small
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-import-\(UUID().uuidString.prefix(8)).jsonl")
        defer { try? FileManager.default.removeItem(at: input) }
        try Data(lines.joined(separator: "\n").utf8).write(to: input)
        // The large event needs a segment of its own, larger than the file-size limit allows.
        let failed = try CLI.run(shell: "ulimit -f 100; '\(CLI.binary)' import '\(store)' --segment-size 32768 --batch 10 < '\(input.path)'")
        #expect(failed.status == 74, "\(failed.status) \(failed.stderr)")
        #expect(failed.stderr.components(separatedBy: "the write failed").count == 2, "said once: \(failed.stderr)")
        #expect(failed.stderr.contains("the commit of lines 61...") && failed.stderr.contains("imported 60 events in 6 commits"), "\(failed.stderr)")
        #expect(try CLI.run(["verify", store]).status == 0)
    }

    /// `--acks`: one line per run of one stream's lines in each durable commit (the help said
    /// one per commit).
    @Test func importAcknowledgesEachRunOfAStreamsLines() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let input = ["a/1", "b/1", "a/1", "c/1", "c/1"].map { #"{"stream":"\#($0)","type":"X"}"# }.joined(separator: "\n")
        let imported = try CLI.run(["import", store, "--acks", "--batch", "3"], input: input)
        #expect(imported.status == 0 && imported.stderr.contains("imported 5 events in 2 commits"), "\(imported.stderr)")
        let acks = try imported.lines.map { line -> String in
            let object = try Self.jsonObject(line)
            return "\(object["stream"] as? String ?? "?") \(object["firstVersion"] as? Int ?? 0)-\(object["lastVersion"] as? Int ?? 0)"
        }
        #expect(acks == ["a/1 1-1", "b/1 1-1", "a/1 2-2", "c/1 1-2"], "\(imported.stdout)")
    }

    // Found by a black-box run: `--acks` printed nothing for a line that changed nothing — a
    // lifecycle line already in effect (every export of a compacted store has one: the stream
    // begins where it is truncated) and an event line skipped as already stored (the documented
    // re-run of an interrupted import). A producer waiting for each line's acknowledgement
    // waited forever.
    @Test func importAcknowledgesLinesThatChangeNothing() throws {
        let source = CLI.storePath()
        let store = CLI.storePath()
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: store)
        }
        #expect(try CLI.run(["append", source, "s"], input: "{\"type\":\"a\"}\n{\"type\":\"b\"}\n{\"type\":\"c\"}\n").status == 0)
        #expect(try CLI.run(["truncate-stream", source, "s", "--before", "2"]).status == 0)
        #expect(try CLI.run(["tombstone-stream", source, "gone"]).status == 0)
        #expect(try CLI.run(["compact", source]).status == 0)
        let exported = try CLI.run(["export", source])
        #expect(exported.status == 0 && exported.lines.count == 4, "\(exported.stdout)")
        func acknowledgements(_ run: CLI.Result) throws -> [String] {
            try run.lines.map { line in
                let object = try Self.jsonObject(line)
                if let before = object["truncateBefore"] as? Int { return "\(object["stream"] as? String ?? "?") truncateBefore \(before)" }
                if object["tombstone"] != nil { return "\(object["stream"] as? String ?? "?") tombstone" }
                let versions = "\(object["firstVersion"] as? Int ?? 0)-\(object["lastVersion"] as? Int ?? 0)"
                return "\(object["stream"] as? String ?? "?") \(versions)\(object["duplicate"] as? Bool == true ? " duplicate" : "")"
            }
        }
        let first = try CLI.run(["import", store, "--acks"], input: exported.stdout)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try acknowledgements(first) == ["s 2-3", "gone tombstone", "s truncateBefore 2"], "\(first.stdout)")
        // Run again: every line is in the store already, and each is acknowledged.
        let again = try CLI.run(["import", store, "--acks"], input: exported.stdout)
        #expect(again.status == 0 && again.stderr.contains("skipped 2 already in the store"), "\(again.stderr)")
        #expect(try acknowledgements(again) == ["s 2-2 duplicate", "s 3-3 duplicate", "gone tombstone", "s truncateBefore 2"], "\(again.stdout)")
        // In input order: a new line before a skipped one is acknowledged first.
        let mixed = try CLI.run(["import", store, "--acks"], input: #"{"stream":"t","type":"x"}"# + "\n" + exported.lines[0])
        #expect(try acknowledgements(mixed) == ["t 1-1", "s 2-2 duplicate"], "\(mixed.stdout)")
    }

    // Found by a black-box run: a line that repeats an earlier line of the same commit (the
    // same stream, version and id) was skipped without an acknowledgement.
    @Test func importAcknowledgesALineThatRepeatsOneOfItsCommit() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let line = #"{"stream":"a","version":1,"type":"t","id":"11111111-1111-1111-1111-111111111111"}"#
        let next = #"{"stream":"a","version":2,"type":"t","id":"22222222-2222-2222-2222-222222222222"}"#
        let imported = try CLI.run(["import", store, "--acks"], input: [line, line, next].joined(separator: "\n") + "\n")
        #expect(imported.status == 0 && imported.stderr.contains("skipped 1 already in the store"), "\(imported.stderr)")
        let acks = try imported.lines.map { line -> String in
            let object = try Self.jsonObject(line)
            return "\(object["firstVersion"] as? Int ?? 0)-\(object["lastVersion"] as? Int ?? 0)\(object["duplicate"] as? Bool == true ? " duplicate" : "")"
        }
        #expect(acks == ["1-1", "1-1 duplicate", "2-2"], "\(imported.stdout)")
    }

    // Found by a black-box run: `export --from P --skip-damage` of a clean store took the
    // versions of each stream before P for lost, left out the stream's later events and its
    // lifecycle lines, and exited 1.
    @Test func anExportFromAPositionSkippingDamageOfACleanStoreIsTheExportWithout() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "a"], input: String(repeating: "{\"type\":\"t\"}\n", count: 10)).status == 0)
        #expect(try CLI.run(["append", store, "b"], input: "{\"type\":\"t\"}\n").status == 0)
        #expect(try CLI.run(["append", store, "c"], input: "{\"type\":\"t\"}\n{\"type\":\"t\"}\n").status == 0)
        #expect(try CLI.run(["truncate-stream", store, "a", "--before", "8"]).status == 0)
        #expect(try CLI.run(["truncate-stream", store, "b", "--before", "2"]).status == 0)
        for from in ["0", "5", "11", "13"] {
            let plain = try CLI.run(["export", store, "--from", from])
            let salvaging = try CLI.run(["export", store, "--from", from, "--skip-damage"])
            #expect(plain.status == 0 && salvaging.status == 0, "from \(from): \(salvaging.stderr)")
            #expect(salvaging.stdout == plain.stdout, "from \(from):\n\(salvaging.stdout)\nwithout --skip-damage:\n\(plain.stdout)")
        }
    }

    // From a black-box run: a file saved with a byte order mark read "line 1: not a JSON object".
    @Test func aByteOrderMarkIsNamed() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let imported = try CLI.run(["import", store], input: "\u{FEFF}" + #"{"stream":"s","type":"T"}"#)
        #expect(imported.status == 65 && imported.stderr.contains("line 1") && imported.stderr.contains("byte order mark"), "\(imported.stderr)")
        let appended = try CLI.run(["append", store, "s"], input: "\u{FEFF}" + #"{"type":"T"}"#)
        #expect(appended.status == 65 && appended.stderr.contains("byte order mark"), "\(appended.stderr)")
    }

    @Test func aLockedStoreIsReported() async throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let log = try EventLog.open(at: store, options: .init(createIfMissing: true))
        try await log.append([NewEvent(type: "A", data: Data())], to: "s/1")
        let append = try CLI.run(["append", store, "s/1"], input: #"{"type":"B"}"#)
        #expect(append.status == 75 && append.stderr.contains("locked by another process"), "\(append.stderr)")
        let delete = try CLI.run(["delete-stream", store, "s/1"])
        #expect(delete.status == 75 && delete.stderr.contains("locked"))
        // Readers need no lock.
        let read = try CLI.run(["read", store, "s/1"])
        #expect(read.status == 0 && read.lines.count == 1)
        let verify = try CLI.run(["verify", store])
        #expect(verify.status == 0 && verify.stdout.contains("clean"))
        log.close()
    }

    /// `--wait SECONDS`: a command that needs the lock tries again until the writer lets go,
    /// or the time is up (then exit 75, as without it).
    @Test func waitRetriesTheLockUntilTheWriterCloses() async throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let log = try EventLog.open(at: store, options: .init(createIfMissing: true))
        try await log.append([NewEvent(type: "A", data: Data())], to: "s/1")
        for command in [["tombstone-stream", store, "s/2"], ["compact", store], ["upgrade", store]] {
            let start = ContinuousClock.now
            let refused = try CLI.run(command + ["--wait", "0.3"])
            #expect(refused.status == 75 && refused.stderr.contains("locked"), "\(command[0]): \(refused.stderr)")
            #expect(ContinuousClock.now - start >= .milliseconds(300), "\(command[0]) waited")
        }
        #expect(try CLI.run(["append", store, "s/1", "--wait", "-1"], input: #"{"type":"B"}"#).status == 64)
        let waiting = try CLI.start(["append", store, "s/1", "--wait", "120"], input: #"{"type":"B"}"#)
        defer { waiting.remove() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(waiting.process.isRunning, "still waiting for the lock")
        log.close()
        waiting.process.waitUntilExit()
        #expect(waiting.result().status == 0, "\(waiting.result().stderr)")
        #expect(try CLI.run(["read", store, "s/1"]).lines.count == 2)
    }

    @Test func verifyExitsWithOneAndNamesSegmentAndOffsetAfterAByteIsFlipped() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        for round in 0..<3 {
            let lines = (0..<5).map { #"{"type":"T","data":{"round":\#(round),"i":\#($0),"text":"some words to compress"}}"# }
            _ = try CLI.run(["append", store, "s/\(round)"], input: lines.joined(separator: "\n"))
        }
        let clean = try CLI.run(["verify", store])
        #expect(clean.status == 0 && clean.stdout.contains("clean: 1 segment, 3 event frames, 15 events, 3 streams"), "\(clean.stdout)")
        let segment = store + "/00000000000000000000.dseg"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        // The second frame starts where the first ends: 128 + 40 + its stored length.
        let firstLength = Int(bytes[132]) | Int(bytes[133]) << 8
        let second = 128 + 40 + firstLength
        bytes[second + 40] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: segment))
        let damaged = try CLI.run(["verify", store])
        #expect(damaged.status == 1)
        #expect(damaged.stdout.contains("00000000000000000000.dseg at offset \(second): damaged-frame"), "\(damaged.stdout)")
        let json = try CLI.run(["verify", store, "--json"])
        #expect(json.status == 1)
        let report = try Self.jsonObject(json.stdout)
        let problem = try #require((report["problems"] as? [[String: Any]])?.first)
        #expect(problem["segment"] as? String == "00000000000000000000.dseg" && problem["offset"] as? Int == second)
        #expect(problem["kind"] as? String == "damaged-frame")
    }

    // README: verify warns, exit 0, of segment files the manifest does not list, which the next
    // writer removes (here a copy of the segment, as a compaction killed before it removed the
    // old set leaves it).
    @Test func verifyWarnsOfALeftoverSegmentAndTheNextWriterRemovesIt() throws {
        let store = CLI.storePath("leftover")
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        let leftover = store + "/00000000000000000000-1.dseg"
        try FileManager.default.copyItem(atPath: store + "/00000000000000000000.dseg", toPath: leftover)
        let warned = try CLI.run(["verify", store])
        #expect(warned.status == 0, "\(warned.stdout) \(warned.stderr)")
        #expect(warned.stdout.contains("warning: 00000000000000000000-1.dseg at offset 0: leftover-file"), "\(warned.stdout)")
        #expect(try CLI.run(["append", store, "s"], input: #"{"type":"T"}"#).status == 0)
        #expect(!FileManager.default.fileExists(atPath: leftover))
        let after = try CLI.run(["verify", store])
        #expect(after.status == 0 && !after.stdout.contains("warning"), "\(after.stdout)")
    }

    @Test func exportImportExportRoundTripsIdentically() throws {
        let source = CLI.storePath("source")
        let target = CLI.storePath("target")
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: target)
        }
        var lines: [String] = []
        for index in 0..<4000 {
            let data = index % 7 == 0 ? #"{"base64":"AP8Q"}"# : #"{"amount":\#(index),"note":"n\#(index % 13)","ratio":0.5}"#
            lines.append(#"{"stream":"acc/\#(index % 50)","type":"T\#(index % 3)","data":\#(data),"metadata":{"i":\#(index)},"timestamp":"2024-11-29T06:44:55.\#(String(format: "%03d", index % 1000))Z"}"#)
        }
        let imported = try CLI.run(["import", source, "--batch", "7", "--acks"], input: lines.joined(separator: "\n"))
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(!imported.lines.isEmpty)
        #expect(try CLI.run(["truncate-stream", source, "acc/1", "--before", "30"]).status == 0)
        #expect(try CLI.run(["tombstone-stream", source, "acc/2"]).status == 0)
        #expect(try CLI.run(["delete-stream", source, "acc/3"]).status == 0)
        let first = try CLI.run(["export", source])
        #expect(first.status == 0 && first.lines.count == 4003)
        let reimported = try CLI.run(["import", target], input: first.stdout)
        #expect(reimported.status == 0, "\(reimported.stderr)")
        let second = try CLI.run(["export", target])
        #expect(second.stdout == first.stdout)
        #expect(try CLI.run(["read", target, "acc/2"]).stdout.isEmpty)
        #expect(try CLI.run(["read", target, "acc/1"]).lines.count == 51)
    }

    @Test func statsDescribeTheStore() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "big/1"], input: (0..<9).map { _ in #"{"type":"T","data":{"x":1}}"# }.joined(separator: "\n"))
        _ = try CLI.run(["append", store, "small/1"], input: #"{"type":"T"}"#)
        let stats = try CLI.run(["stats", store])
        #expect(stats.status == 0 && stats.stdout.contains("events: 10 in 2 streams"), "\(stats.stdout)")
        #expect(stats.stdout.contains("big/1  9 versions"))
        let json = try Self.jsonObject(try CLI.run(["stats", store, "--json"]).stdout)
        #expect(json["events"] as? Int == 10 && (json["segments"] as? [Any])?.count == 1)
        #expect(stats.stdout.contains("format version \(EventLog.formatVersion)") && !stats.stdout.contains("older format version"))
        #expect((json["segments"] as? [[String: Any]])?.first?["formatVersion"] as? Int == EventLog.formatVersion)
        #expect(stats.stdout.contains("compression: ") && stats.stdout.contains("× ("), "\(stats.stdout)")
    }

    /// A store without events has no compression ratio to show (its frames are bookkeeping).
    @Test func statsOfAStoreWithoutEventsShowNoRatio() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["import", store], input: "").status == 0)
        let stats = try CLI.run(["stats", store])
        #expect(stats.status == 0 && stats.stdout.contains("events: 0 in 0 streams"), "\(stats.stdout)")
        #expect(stats.stdout.contains("compression: none yet (no events)") && !stats.stdout.contains("×"), "\(stats.stdout)")
    }

    /// A store of format version 3 (the fixture of DugongStoreTests): `stats` names each
    /// segment's version and says how to convert the older ones; after `compact`, none is older.
    @Test func statsNameOlderSegmentsAndHowToConvertThem() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DugongStoreTests/Fixtures/v3-store")
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        try FileManager.default.copyItem(atPath: fixture.path, toPath: store)
        let before = try CLI.run(["stats", store])
        #expect(before.status == 0 && before.stdout.contains("format version 3"), "\(before.stdout)")
        #expect(before.stdout.contains("3 segment(s) of an older format version") && before.stdout.contains("dugong compact \(store)"))
        // `upgrade` (version 1 stores) names them too, instead of "already format version 4".
        let upgrade = try CLI.run(["upgrade", store])
        #expect(upgrade.status == 0 && upgrade.stdout.contains("the oldest segment is of format version 3, which this build reads (versions 2 to \(EventLog.formatVersion))"), "\(upgrade.stdout)")
        #expect(try Self.jsonObject(try CLI.run(["upgrade", store, "--json"]).stdout)["fromVersion"] as? Int == 3)
        #expect(try CLI.run(["compact", store]).status == 0)
        #expect(FileManager.default.fileExists(atPath: store + "/dugong.index"), "compact leaves an index file for the next opens")
        let after = try CLI.run(["stats", store])
        #expect(after.status == 0 && !after.stdout.contains("older format version") && !after.stdout.contains("format version 3"), "\(after.stdout)")
    }

    // Found by a black-box review: `upgrade` of a store whose manifest was lost said it was not
    // a store (exit 66), of one whose manifest was damaged that it was damaged (exit 1), and
    // both named a `dugong salvage` there is not.
    @Test(arguments: ["lost", "damaged"]) func upgradeOfAStoreWhoseManifestWasLostOrDamagedSaysItIsDamaged(_ manifest: String) throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s/1"], input: #"{"type":"First"}"#).status == 0)
        if manifest == "lost" {
            try FileManager.default.removeItem(atPath: store + "/dugong.manifest")
        } else {
            try Data("not a manifest".utf8).write(to: URL(fileURLWithPath: store + "/dugong.manifest"))
        }
        let upgrade = try CLI.run(["upgrade", store])
        #expect(upgrade.status == 1, "\(manifest): \(upgrade.status) \(upgrade.stderr)")
        #expect(upgrade.stderr.contains("dugong export --skip-damage") && !upgrade.stderr.contains("salvage"), "\(upgrade.stderr)")
        #expect(try CLI.run(["export", store, "--skip-damage"]).stdout.contains("First"))
    }

    // Found by a black-box run: `upgrade` of a current store beside an unreadable file under a
    // segment's name said "segment files left out of the manifest removed" (on every run) of
    // a file it never removes.
    @Test func upgradeSaysWhatItRemovedAndWhatItKept() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "s/1"], input: #"{"type":"First"}"#).status == 0)
        let garbage = store + "/00000000000000000099.dseg"
        try Data("garbage\n".utf8).write(to: URL(fileURLWithPath: garbage))
        let upgrade = try CLI.run(["upgrade", store])
        #expect(upgrade.status == 0, "\(upgrade.stderr)")
        #expect(!upgrade.stdout.contains("manifest removed") && upgrade.stdout.contains("00000000000000000099.dseg left out of the manifest and kept"), "\(upgrade.stdout)")
        #expect(FileManager.default.fileExists(atPath: garbage))
    }

    // Found by a black-box run: deleting or truncating a tombstoned stream said it "can never
    // be appended to again", of a command that appends nothing.
    @Test func aDeleteOrTruncationOfATombstonedStreamSaysWhatIsRefused() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(try CLI.run(["append", store, "a"], input: #"{"type":"T"}"#).status == 0)
        #expect(try CLI.run(["tombstone-stream", store, "a"]).status == 0)
        for command in [["delete-stream", store, "a"], ["truncate-stream", store, "a", "--before", "1"]] {
            let refused = try CLI.run(command)
            #expect(refused.status == 2 && refused.stderr.contains(#""a" is tombstoned: it reads as empty for good, and is neither deleted nor truncated again"#), "\(command[0]): \(refused.stderr)")
        }
    }

    // Found by a black-box run: a follower ended by a signal in the middle of a write to a pipe
    // left its last JSON line cut. It now ends between whole lines, by the same signal.
    @Test func aFollowerStoppedByASignalEndsBetweenWholeLines() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let lines = (0..<3000).map { #"{"stream":"s/\#($0 % 5)","type":"T","data":{"i":\#($0),"pad":"\#(String(repeating: "x", count: 200))"}}"# }
        #expect(try CLI.run(["import", store], input: lines.joined(separator: "\n")).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["read-all", store, "--follow"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Nobody reads yet: the follower fills the pipe and waits in a write of a batch of lines.
        Thread.sleep(forTimeInterval: 1.5)
        Glibc.kill(process.processIdentifier, SIGTERM)
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGTERM, "\(process.terminationReason) \(process.terminationStatus)")
        #expect(printed.count > 0 && printed.last == UInt8(ascii: "\n"), "\(printed.count) bytes, the last line: \(String(decoding: printed.suffix(80), as: UTF8.self))")
    }

    // Found by a black-box run: SIGINT or SIGTERM during an import ended it at once, without
    // its summary, with events durable that no acknowledgement had named (a re-run of lines
    // without versions would have written them twice). It now stops between lines: what it read
    // is committed and acknowledged, stderr names the last line, and the signal ends it.
    @Test(arguments: [SIGINT, SIGTERM])
    func anImportStoppedByASignalCommitsWhatItReadAndSaysWhere(_ signal: Int32) throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["import", store, "--acks"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let lines = (1...5).map { #"{"stream":"s/1","type":"T","data":{"i":\#($0)}}"# }
        input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        // Acknowledged before the import waits for more input; then half a line follows.
        var acknowledged = Data()
        while !acknowledged.contains(UInt8(ascii: "\n")) { acknowledged += output.fileHandleForReading.availableData }
        input.fileHandleForWriting.write(Data(#"{"stream":"s/1","type":"T","da"#.utf8))
        Thread.sleep(forTimeInterval: 0.3)
        Glibc.kill(process.processIdentifier, signal)
        let printed = acknowledged + output.fileHandleForReading.readDataToEndOfFile()
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == signal, "\(process.terminationReason) \(process.terminationStatus)")
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        #expect(said.contains("imported 5 events in 1 commit") && said.contains("stopped by \(name) after line 5"), "\(said)")
        #expect(String(decoding: printed, as: UTF8.self) == #"{"stream":"s/1","firstVersion":1,"lastVersion":5,"firstPosition":0,"lastPosition":4}"# + "\n")
        let read = try CLI.run(["read", store, "s/1"])
        #expect(read.status == 0 && read.stdout.split(separator: "\n").count == 5, "the half line is not imported: \(read.stdout)")
        #expect(FileManager.default.fileExists(atPath: store + "/dugong.index"), "the store was closed before the signal ended the import")
    }

    @Test func readAllFollowPrintsEventsAsTheyAreCommitted() async throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        _ = try CLI.run(["append", store, "s/1"], input: #"{"type":"First"}"#)
        let follower = try CLI.start(["read-all", store, "--follow"])
        defer {
            follower.kill()
            follower.remove()
        }
        _ = try CLI.run(["append", store, "s/1"], input: #"{"type":"Second"}"#)
        _ = try CLI.run(["append", store, "s/2"], input: #"{"type":"Third"}"#)
        // (Up to 20 s, as the follower tests wait: a process starting while many run is slow.)
        var lines: [String] = []
        for _ in 0..<400 where lines.count < 3 {
            try await Task.sleep(for: .milliseconds(50))
            lines = follower.result().lines
        }
        #expect(try lines.map { try Self.jsonObject($0)["type"] as? String } == ["First", "Second", "Third"])
    }

    @Test func everyCommandHasHelpWithAnExampleAndErrorsNameTheirCause() throws {
        for command in ["bench", "verify", "compact", "stats", "read", "read-all", "append", "import", "export",
                        "delete-stream", "truncate-stream", "tombstone-stream", "demo"] {
            let help = try CLI.run([command, "--help"])
            #expect(help.status == 0 && help.stdout.contains("dugong \(command)") && help.stdout.contains("xample"), "\(command)")
        }
        let missing = try CLI.run(["read", "/nonexistent/store", "s/1"])
        #expect(missing.status == 66 && missing.stderr.contains("/nonexistent/store does not exist"))
        let notAStore = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-cli-notes-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: notAStore, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: notAStore) }
        try Data("hi".utf8).write(to: notAStore.appendingPathComponent("notes.txt"))
        let wrong = try CLI.run(["stats", notAStore.path])
        #expect(wrong.status == 66 && wrong.stderr.contains("is not a Dugong store"))
        // Writers refuse it too, and leave nothing in it (they left a dugong.lock).
        for writer in [["append", notAStore.path, "s/1"], ["import", notAStore.path], ["compact", notAStore.path], ["upgrade", notAStore.path], ["bench", "--dir", notAStore.path]] {
            let refused = try CLI.run(writer, input: #"{"type":"A","stream":"s/1"}"# + "\n")
            #expect([64, 66].contains(refused.status), "\(writer): \(refused.status) \(refused.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: notAStore.path) == ["notes.txt"], "\(writer)")
        }
    }

    @Test func benchAndDemoRun() throws {
        let bench = try CLI.run(["bench", "--events", "2000", "--batch", "50", "--streams", "20", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let results = try Self.jsonObject(bench.stdout)
        #expect(results["verifiedClean"] as? Bool == true && (results["appendEventsPerSecond"] as? Double ?? 0) > 0)
        #expect(results["streams"] as? Int == 20)
        // 7 events in one commit reach one stream, whatever --streams asks.
        let small = try CLI.run(["bench", "--events", "7", "--streams", "100"])
        #expect(small.status == 0 && small.stdout.contains("7 events of ~") && small.stdout.contains("100 per commit, 1 stream,") && small.stdout.contains("replay one stream (1 stream,"), "\(small.stdout)")
        let demo = try CLI.run(["demo", "--in-memory"])
        #expect(demo.status == 0 && demo.stdout.contains("conflict caught"))
        // A port without --studio is a wrong argument (it was ignored: found by a black-box run).
        let port = try CLI.run(["demo", "--in-memory", "--port", "8080"])
        #expect(port.status == 64 && port.stderr.contains("--port is the Studio's: it goes with --studio"), "\(port.stderr)")
    }

    @Test func compactShrinksTheStoreAndReadAllAgreesOnEverySurvivor() throws {
        let store = CLI.storePath()
        defer { try? FileManager.default.removeItem(atPath: store) }
        var lines: [String] = []
        for index in 0..<600 {
            lines.append(#"{"stream":"s/\#(index % 6)","type":"T","data":{"i":\#(index),"words":"padding padding \#(index * 7919 % 1000)"}}"#)
        }
        #expect(try CLI.run(["import", store, "--batch", "5"], input: lines.joined(separator: "\n")).status == 0)
        #expect(try CLI.run(["delete-stream", store, "s/1"]).status == 0)
        #expect(try CLI.run(["truncate-stream", store, "s/2", "--before", "50"]).status == 0)
        #expect(try CLI.run(["tombstone-stream", store, "s/3"]).status == 0)
        let before = try CLI.run(["read-all", store]).lines
        let dry = try CLI.run(["compact", store, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("events: 600 before, would keep 351"), "\(dry.stdout)")
        let compact = try CLI.run(["compact", store, "--json"])
        #expect(compact.status == 0, "\(compact.stderr)")
        let report = try Self.jsonObject(compact.stdout)
        #expect(report["eventsAfter"] as? Int == 351)
        #expect((report["bytesAfter"] as? Int ?? .max) < (report["bytesBefore"] as? Int ?? 0))
        #expect(try CLI.run(["verify", store]).status == 0)
        let after = try CLI.run(["read-all", store]).lines
        let afterPositions = Set(try after.map { try Self.jsonObject($0)["position"] as? Int })
        #expect(after.count == 351)
        #expect(after.allSatisfy(before.contains), "every surviving line is byte for byte as it was")
        for line in before {
            let event = try Self.jsonObject(line)
            let stream = event["stream"] as? String
            let version = event["version"] as? Int ?? 0
            let survives = stream == "s/0" || stream == "s/4" || stream == "s/5" || (stream == "s/2" && version >= 50)
            #expect(afterPositions.contains(event["position"] as? Int) == survives, "\(line)")
        }
        // A writer holds the lock: compaction is refused.
        let writer = try EventLog.open(at: store)
        let refused = try CLI.run(["compact", store])
        writer.close()
        #expect(refused.status == 75 && refused.stderr.contains("locked by another process"))
    }
}
