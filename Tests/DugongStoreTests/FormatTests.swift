import CDugongShims
import Dugong
@testable import DugongStore
import Foundation
import Testing

@Suite("Format building blocks")
struct FormatTests {
    @Test func crc32cMatchesTheStandardCheckValues() {
        let check = Array("123456789".utf8)
        #expect(check.withUnsafeBytes { Checksum.crc32c($0) } == 0xE306_9283)
        #expect(check.withUnsafeBytes { dugong_crc32c_portable(0, $0.baseAddress, $0.count) } == 0xE306_9283)
        let zeros = [UInt8](repeating: 0, count: 32)
        #expect(zeros.withUnsafeBytes { Checksum.crc32c($0) } == 0x8A91_36AA)  // RFC 3720 B.4
        let ones = [UInt8](repeating: 0xFF, count: 32)
        #expect(ones.withUnsafeBytes { Checksum.crc32c($0) } == 0x62A8_AB43)
        let ascending = (0..<32).map { UInt8($0) }
        #expect(ascending.withUnsafeBytes { Checksum.crc32c($0) } == 0x46DD_794E)
    }

    @Test func hardwareAndPortableCRCsAgreeOnEveryLengthAndAlignment() {
        let bytes = (0..<1100).map { _ in UInt8.random(in: 0...255) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in stride(from: 0, to: 1080, by: 7) {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    #expect(dugong_crc32c(0, slice.baseAddress, length) == dugong_crc32c_portable(0, slice.baseAddress, length))
                }
            }
            // Continuing a CRC equals computing it at once.
            let first = UnsafeRawBufferPointer(rebasing: all[0..<500])
            let second = UnsafeRawBufferPointer(rebasing: all[500..<1100])
            #expect(Checksum.crc32c(second, continuing: Checksum.crc32c(first)) == Checksum.crc32c(all))
        }
    }

    @Test func maskingRoundTrips() {
        for crc: UInt32 in [0, 1, 0xE306_9283, .max, 0x8000_0000] {
            #expect(Checksum.unmask(Checksum.mask(crc)) == crc)
            #expect(Checksum.mask(crc) != crc)
        }
        #expect(Checksum.mask(0xE306_9283) == 0xC78A_B0E5)  // computed independently: rotr15 + 0xA282EAD8
    }

    @Test(arguments: [Codec.deflate, .zstandard, .lz4])
    func compressionRoundTripsAndDeclinesIncompressibleData(codec: Codec) throws {
        let json = Array(String(repeating: #"{"type":"MoneyDeposited","amount":100,"currency":"EUR"}"#, count: 40).utf8)
        let compressed = try #require(json.withUnsafeBytes { Compression.compress($0, codec: codec) })
        #expect(compressed.count < json.count / 4)
        #expect(compressed.withUnsafeBytes { Compression.decompress($0, count: json.count, codec: codec) } == json)
        // Exactly the raw length: one byte more or less is refused.
        #expect(compressed.withUnsafeBytes { Compression.decompress($0, count: json.count + 1, codec: codec) } == nil)
        #expect(compressed.withUnsafeBytes { Compression.decompress($0, count: json.count - 1, codec: codec) } == nil)
        // The stored form ends exactly at its length: cut short, or followed by anything, it is refused.
        #expect(compressed.dropLast().withUnsafeBytes { Compression.decompress($0, count: json.count, codec: codec) } == nil)
        #expect((compressed + compressed).withUnsafeBytes { Compression.decompress($0, count: json.count, codec: codec) } == nil)
        #expect((compressed + [0]).withUnsafeBytes { Compression.decompress($0, count: json.count, codec: codec) } == nil)
        var damaged = compressed
        damaged[damaged.count / 2] ^= 0xFF
        let decompressed = damaged.withUnsafeBytes { Compression.decompress($0, count: json.count, codec: codec) }
        #expect(decompressed != json)
        let random = (0..<4096).map { _ in UInt8.random(in: 0...255) }
        #expect(random.withUnsafeBytes { Compression.compress($0, codec: codec) } == nil)
        // The other codec cannot read it.
        let other: Codec = codec == .deflate ? .zstandard : .deflate
        #expect(compressed.withUnsafeBytes { Compression.decompress($0, count: json.count, codec: other) } != json)
    }

    /// With a dictionary, a payload decompresses only with the same dictionary (Zstandard's
    /// raw-content dictionaries carry no id, like DEFLATE's: the frame's dictionary check is
    /// what tells a wrong one; FORMAT.md §7).
    /// (`prepared`: the dictionary as the writer holds it, digested once for Zstandard.)
    @Test(arguments: [Codec.deflate, .zstandard, .lz4], [false, true])
    func aDictionaryIsNeededToDecompress(codec: Codec, prepared: Bool) throws {
        let dictionary = Array(String(repeating: #"{"type":"MoneyDeposited","amount":1,"currency":"EUR","user":"u-7"}"#, count: 60).utf8)
        let payload = Array(#"{"type":"MoneyDeposited","amount":2,"currency":"EUR","user":"u-8"}"#.utf8)
        let with = try #require(payload.withUnsafeBytes {
            prepared
                ? Compression.compress($0, dictionary: PresetDictionary(dictionary, codec: codec), codec: codec)
                : Compression.compress($0, dictionary: dictionary, codec: codec)
        })
        let without = payload.withUnsafeBytes { Compression.compress($0, codec: codec) }
        #expect(with.count < (without?.count ?? payload.count))
        #expect(with.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: dictionary, codec: codec) } == payload)
        #expect(with.withUnsafeBytes { Compression.decompress($0, count: payload.count, codec: codec) } != payload)
        let other = Array(dictionary.reversed())
        #expect(with.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: other, codec: codec) } != payload)
    }

    /// A segment dictionary is raw content whatever its first bytes (FORMAT.md §7): one that
    /// begins with Zstandard's dictionary magic (0xEC30A437, little-endian) is not parsed as a
    /// Zstandard dictionary. (Events' bytes make the dictionary: a user can write these bytes.)
    /// The reader takes such a dictionary another way than others; both must decode the same.
    @Test func aDictionaryBeginningLikeAZstandardDictionaryIsRawContent() throws {
        let text = Array(String(repeating: #"{"type":"MoneyDeposited","amount":1,"currency":"EUR","user":"u-7"}"#, count: 60).utf8)
        let payload = Array(#"{"type":"MoneyDeposited","amount":2,"currency":"EUR","user":"u-8"}"#.utf8)
        let dictionaries = [[0x37, 0xA4, 0x30, 0xEC] + text, text, [0x37, 0xA4, 0x30, 0xEC, 0, 0, 0, 0] + text]
        for (dictionary, prepared) in dictionaries.flatMap({ [($0, false), ($0, true)] }) {
            let frame = try #require(payload.withUnsafeBytes {
                prepared
                    ? Compression.compress($0, dictionary: PresetDictionary(dictionary, codec: .zstandard), codec: .zstandard)
                    : Compression.compress($0, dictionary: dictionary, codec: .zstandard)
            })
            #expect(frame.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: dictionary, codec: .zstandard) } == payload)
            // The dictionary was used: without it (or with another) the bytes do not come back.
            #expect(frame.withUnsafeBytes { Compression.decompress($0, count: payload.count, codec: .zstandard) } != payload)
            #expect(frame.withUnsafeBytes {
                Compression.decompress($0, count: payload.count, dictionary: Array(dictionary.reversed()), codec: .zstandard)
            } != payload)
        }
    }

    /// Found when dictionaries came to be digested: a payload that did not fit (noise) left the
    /// thread's compressor mid-frame with the digest still referenced, and the next frame,
    /// compressed without a dictionary, was compressed with it; no reader could decode it (the
    /// follower and compaction tests found stores damaged at once).
    @Test func aFrameThatDoesNotFitLeavesNoDictionaryBehind() throws {
        var random = SeededRandom(seed: 5)
        let noise = (0..<2_000).map { _ in UInt8(truncatingIfNeeded: random.below(256)) }
        let dictionary = PresetDictionary(Array(String(repeating: #"{"type":"MoneyDeposited","amount":1}"#, count: 100).utf8), codec: .zstandard)
        let payload = Array(String(repeating: #"{"type":"MoneyDeposited","amount":2}"#, count: 20).utf8)
        for _ in 0..<2 {
            #expect(noise.withUnsafeBytes { Compression.compress($0, dictionary: dictionary, codec: .zstandard) } == nil)
            let frame = try #require(payload.withUnsafeBytes { Compression.compress($0, codec: .zstandard) })
            let decodes = frame.withUnsafeBytes { Compression.decompress($0, count: payload.count, codec: .zstandard) } == payload
            #expect(decodes, "a frame compressed without a dictionary decodes without one")
            let withDictionary = try #require(payload.withUnsafeBytes { Compression.compress($0, dictionary: dictionary, codec: .zstandard) })
            #expect(withDictionary.withUnsafeBytes {
                Compression.decompress($0, count: payload.count, dictionary: dictionary.bytes, codec: .zstandard)
            } == payload)
        }
    }

    /// What FORMAT.md §7 says of the writer's Zstandard frames: the magic, no content size, no
    /// checksum, no dictionary id, a window of at most 8 MiB; and what a reader refuses: frames
    /// of other magics (skippable frames, Zstandard's pre-1.0 formats, which Debian's libzstd
    /// decodes).
    @Test func zstandardFramesAreAsDocumented() throws {
        var random = SeededRandom(seed: 12)
        for size in [100, 5_000, 70_000, 1_000_000, 6_000_000] {
            var payload: [UInt8] = []
            while payload.count < size {
                payload += Array(#"{"type":"MoneyDeposited","amount":\#(random.below(100_000)),"user":"u-\#(random.below(10_000))"}"#.utf8)
            }
            for (dictionary, prepared) in [([], false), (Array(payload.prefix(4096).reversed()), false), (Array(payload.prefix(4096).reversed()), true)] {
                let frame = try #require(payload.withUnsafeBytes {
                    prepared
                        ? Compression.compress($0, dictionary: PresetDictionary(dictionary, codec: .zstandard), codec: .zstandard)
                        : Compression.compress($0, dictionary: dictionary, codec: .zstandard)
                })
                #expect(Array(frame.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
                let descriptor = frame[4]
                #expect(descriptor & 0xC0 == 0, "no content size")
                #expect(descriptor & 0x20 == 0, "not a single segment: a window descriptor follows")
                #expect(descriptor & 0x04 == 0, "no content checksum")
                #expect(descriptor & 0x03 == 0, "no dictionary id")
                let exponent = Int(frame[5] >> 3), mantissa = Int(frame[5] & 7)
                let window = (1 << (10 + exponent)) + (1 << (10 + exponent)) / 8 * mantissa
                #expect(window <= 8 << 20, "window \(window) for \(size) bytes")
                #expect(frame.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: dictionary, codec: .zstandard) } == payload)
            }
        }
        // A frame of Zstandard 0.7's format (magic 0xFD2FB527) holding "hello", and a skippable
        // frame: libzstd would decode the first and skip the second.
        let legacy: [UInt8] = [0x27, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 0x40, 0x00, 0x05] + Array("hello".utf8) + [0xC0, 0x00, 0x00]
        #expect(legacy.withUnsafeBytes { Compression.decompress($0, count: 5, codec: .zstandard) } == nil)
        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        #expect(skippable.withUnsafeBytes { Compression.decompress($0, count: 0, codec: .zstandard) } == nil)
    }

    /// An LZ4 block is read as LZ4's block format has it (FORMAT.md §7): a match offset of 0
    /// is not LZ4 (liblz4's decoder would copy whatever its output buffer held), nor is a match
    /// that starts within the last 12 bytes of the output or ends within its last 5, nor a
    /// block that ends after a match.
    @Test func lz4BlocksAreHeldToTheBlockFormat() {
        func decoded(_ block: [UInt8], _ count: Int) -> [UInt8]? {
            block.withUnsafeBytes { Compression.decompress($0, count: count, codec: .lz4) }
        }
        // 8 literals, a match of 4 from 4 back, 12 literals: 24 bytes.
        let literals = Array("abcdefgh".utf8), tail = Array("123456789012".utf8)
        let valid: [UInt8] = [0x80] + literals + [0x04, 0x00, 0xC0] + tail
        #expect(decoded(valid, 24) == literals + Array("efgh".utf8) + tail)
        var zeroOffset = valid
        zeroOffset[9] = 0
        #expect(decoded(zeroOffset, 24) == nil)
        var beforeTheStart = valid
        beforeTheStart[9] = 9
        #expect(decoded(beforeTheStart, 24) == nil)
        // A match of 11 ending 5 bytes before the end is allowed; of 12, 4 before, is not.
        #expect(decoded([0x87] + literals + [0x04, 0x00, 0x50] + Array("12345".utf8), 24) != nil)
        #expect(decoded([0x88] + literals + [0x04, 0x00, 0x40] + Array("1234".utf8), 24) == nil)
        // A match starting 11 bytes before the end.
        #expect(decoded([0xD0] + Array("abcdefghijklm".utf8) + [0x04, 0x00, 0x70] + Array("1234567".utf8), 24) == nil)
        // Ending after a match, with no last literals.
        #expect(decoded([0x80] + literals + [0x04, 0x00], 12) == nil)
        #expect(decoded(valid.dropLast(), 23) == nil)
    }

    /// FORMAT.md §7's LZ4 rules, decoded byte by byte as the text says (the model the engine's
    /// one-pass C reader is held to): nil for anything the text calls damage.
    static func lz4AsFormatSays(_ block: [UInt8], count: Int, history: ArraySlice<UInt8>) -> [UInt8]? {
        var output = Array(history)
        let end = history.count + count
        var at = 0
        func length(_ start: Int) -> Int? {
            var value = start
            guard start == 15 else { return value }
            while true {
                guard at < block.count else { return nil }
                value += Int(block[at])
                at += 1
                if block[at - 1] != 255 { return value }
            }
        }
        while true {
            guard at < block.count else { return nil }  // ended after a match
            let token = Int(block[at])
            at += 1
            guard let literals = length(token >> 4), literals <= block.count - at, output.count + literals <= end else { return nil }
            output += block[at..<(at + literals)]
            at += literals
            if at == block.count { break }  // the last sequence: literals only
            guard output.count <= end - 12, at + 2 <= block.count else { return nil }
            let offset = Int(block[at]) | Int(block[at + 1]) << 8
            at += 2
            guard offset >= 1, offset <= output.count, let extra = length(token & 15), output.count + extra + 4 <= end - 5 else { return nil }
            for _ in 0..<(extra + 4) { output.append(output[output.count - offset]) }
        }
        return output.count == end ? Array(output[history.count...]) : nil
    }

    /// The engine's LZ4 reader (one pass, in C) decodes every block exactly as FORMAT.md's
    /// rules do (`lz4AsFormatSays`), and whatever it accepts liblz4's safe decoder decodes to
    /// the same bytes: blocks made by liblz4 with and without a dictionary, each changed in every
    /// way a damaged or crafted block may be (bytes changed, cut, added; a raw length off by a
    /// few; the dictionary shorter or missing), blocks made sequence by sequence around every
    /// limit, and random bytes. (liblz4 1.9.4 accepts more: offset 0, and on its path for short
    /// sequences a match ending within the last 5 bytes.)
    @Test func theLZ4ReaderDecodesAsTheFormatSays() {
        var random = SeededRandom(seed: 0x4C5A_3442)
        let words = [#"{"type":"#, #""MoneyDeposited""#, #","amount":"#, "1250", #","currency":"EUR""#, "}", "aaaa", "0", "\u{1}"]
        func text(_ count: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            while bytes.count < count {
                if random.next() % 5 == 0 {
                    bytes.append(UInt8(truncatingIfNeeded: random.next()))
                } else {
                    bytes += words[Int(random.next() % UInt64(words.count))].utf8
                }
            }
            return Array(bytes.prefix(count))
        }
        let dictionaries: [[UInt8]] = [[], text(4096), text(16), Array(repeating: 0x61, count: 300)]
        let digests = dictionaries.map { $0.isEmpty ? nil : $0.withUnsafeBytes { dugong_lz4_digest($0.baseAddress, $0.count) } }
        defer { for digest in digests { dugong_lz4_digest_free(digest) } }
        // The block, the dictionary and the output each end where an inaccessible page begins:
        // a read or write past any of them stops the test process (no sanitizer needed).
        let blockPage = GuardedBytes(capacity: 64 << 10), historyPage = GuardedBytes(capacity: 8 << 10)
        let outputPage = GuardedBytes(capacity: 64 << 10)
        /// `room`: bytes past `count` the engine's reader may write (its faster path needs 32).
        func decoded(_ block: [UInt8], _ count: Int, _ dictionary: ArraySlice<UInt8>, liblz4: Bool, room: Int = 0) -> [UInt8]? {
            let block = blockPage.atEnd(block), history = historyPage.atEnd(Array(dictionary))
            let output = outputPage.room(count + room)
            let result = liblz4
                ? dugong_lz4_decompress_liblz4(block.baseAddress, block.count, output.baseAddress, count, history.baseAddress, history.count)
                : dugong_lz4_decompress(block.baseAddress, block.count, output.baseAddress, count, count + room, history.baseAddress, history.count)
            return result == 0 ? Array(output.prefix(count)) : nil
        }
        var compared = (accepted: 0, refused: 0)
        func compare(_ block: [UInt8], _ count: Int, _ dictionary: ArraySlice<UInt8>, _ what: @autoclosure () -> String) {
            // Raw length 0 is not compared: no frame has it (a frame holds a record), and liblz4
            // reads the low bits of that block's one token where the format does not.
            guard count >= 1, !block.isEmpty else { return }
            let ours = decoded(block, count, dictionary, liblz4: false)
            let model = Self.lz4AsFormatSays(block, count: count, history: dictionary)
            #expect(ours == model, "\(what()): ours \(ours.map { "\($0.count) bytes" } ?? "refused"), the format's \(model.map { "\($0.count) bytes" } ?? "refused"); block \(block)")
            // With room to spare (the engine's reads give 258 bytes), the same.
            #expect(decoded(block, count, dictionary, liblz4: false, room: Int(random.next() % 80)) == model, "\(what()), with room: not the format's; block \(block)")
            if let ours {
                #expect(decoded(block, count, dictionary, liblz4: true) == ours, "\(what()): liblz4 decodes otherwise; block \(block)")
                compared.accepted += 1
            } else {
                compared.refused += 1
            }
        }
        let trials = 3_000
        for trial in 0..<trials {
            let which = trial % dictionaries.count
            let dictionary = dictionaries[which]
            let payload = trial % 7 == 0 ? (0..<Int(1 + random.next() % 600)).map { _ in UInt8(truncatingIfNeeded: random.next()) } : text(Int(1 + random.next() % 600))
            var block = [UInt8](repeating: 0, count: payload.count + payload.count / 255 + 16)
            let length = payload.withUnsafeBytes { payload in
                block.withUnsafeMutableBytes { block in
                    dugong_lz4_compress(payload.baseAddress, payload.count, block.baseAddress, block.count, digests[which])
                }
            }
            guard length > 0 else {
                Issue.record("liblz4 did not compress \(payload.count) bytes")
                continue
            }
            block.removeSubrange(length...)
            #expect(decoded(block, payload.count, dictionary[...], liblz4: false) == payload, "trial \(trial): the block does not decode to its payload")
            compare(block, payload.count, dictionary[...], "trial \(trial), intact")
            for change in 0..<12 {
                var changed = block
                var count = payload.count
                var history = dictionary[...]
                let at = Int(random.next() % UInt64(block.count))
                switch change {
                case 0, 1: changed[at] ^= UInt8(1 << (random.next() % 8))
                case 2, 3: changed[at] = UInt8(truncatingIfNeeded: random.next())
                case 4: changed[at] = [0, 255, 0xF0, 0x0F, 0xFF][Int(random.next() % 5)]
                case 5: changed.removeSubrange(at...)
                case 6: changed.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
                case 7: changed.append(UInt8(truncatingIfNeeded: random.next()))
                case 8: count += [-3, -1, 1, 2, 5][Int(random.next() % 5)]
                case 9: history = history.dropFirst(Int(random.next() % UInt64(history.count + 1)))
                case 10: history = []
                default:
                    // Two changes: an offset made small (0, 1 or a few) where one was.
                    changed[at] = UInt8(random.next() % 3)
                    changed[Int(random.next() % UInt64(block.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                compare(changed, count, history, "trial \(trial), change \(change) at \(at)")
            }
            let noise = (0..<Int(1 + random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next() % 4 == 0 ? 0 : random.next()) }
            compare(noise, Int(1 + random.next() % 80), dictionary[...], "trial \(trial), random bytes")
            // A block made sequence by sequence with lengths and offsets around every limit (the
            // end rules, offsets into and past the history, length extensions), its raw length
            // what it decodes to or a byte or two off.
            var made: [UInt8] = []
            var produced = 0
            func lengthBytes(_ extra: Int) -> [UInt8] {
                Array(repeating: 255, count: extra / 255) + [UInt8(extra % 255)]
            }
            for _ in 0..<Int(random.next() % 4) {
                let literals = Int(random.next() % (random.next() % 4 == 0 ? 40 : 16))
                let match = 4 + Int(random.next() % (random.next() % 4 == 0 ? 300 : 16))
                let reach = produced + dictionary.count
                // Offsets of 0 to 2, near the output (overlapping matches: 1 to 40), or anywhere
                // in and just past the history.
                let offset = switch random.next() % 5 {
                case 0: Int(random.next() % 3)
                case 1: Int(1 + random.next() % 40)
                default: min(65_535, max(0, reach + Int(random.next() % 5) - 2 - Int(random.next() % UInt64(max(reach, 1)))))
                }
                made.append(UInt8(min(literals, 15) << 4 | min(match - 4, 15)))
                if literals >= 15 { made += lengthBytes(literals - 15) }
                made += (0..<literals).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                made += [UInt8(offset & 0xFF), UInt8(offset >> 8)]
                if match - 4 >= 15 { made += lengthBytes(match - 19) }
                produced += literals + match
            }
            let last = Int(random.next() % 20)
            made.append(UInt8(min(last, 15) << 4 | Int(random.next() % 16)))
            if last >= 15 { made += lengthBytes(last - 15) }
            made += (0..<last).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            compare(made, produced + last + [0, 0, 0, -1, 1, -2][Int(random.next() % 6)], dictionary[...], "trial \(trial), made")
        }
        // Every short match the faster paths take or turn away: each offset from 1 to 48 (into
        // the output after 24 literals, and on into 40 bytes of history), each length from 4 to
        // 40, with and without room past the output.
        let history = Array(text(40)[...])
        for offset in 1...64 {
            for match in 4...40 {
                let literals = (0..<24).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let last = (0..<8).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                var block: [UInt8] = [0xF0 | UInt8(min(match - 4, 15)), 9] + literals + [UInt8(offset), 0]
                if match - 4 >= 15 { block.append(UInt8(match - 19)) }
                block += [0x80] + last
                compare(block, 24 + match + 8, history[...], "offset \(offset), match \(match)")
            }
        }
        // Both verdicts occur often enough for the comparison to mean something.
        #expect(compared.accepted > trials * 2 && compared.refused > trials * 5, "\(compared)")
    }

    /// The writer's choice for small payloads (FORMAT.md §7): an LZ4 block when it packs about as
    /// small as a Zstandard frame (events like the dictionary's), a Zstandard frame when the
    /// dictionary matches little and only Zstandard's entropy coding packs the payload; from 512
    /// bytes on, Zstandard alone.
    @Test func smallPayloadsAreLZ4BlocksUnlessZstandardPacksThemMuchSmaller() throws {
        let dictionary = PresetDictionary(
            Array(String(repeating: #"{"type":"MoneyDeposited","amount":1,"currency":"EUR","user":"u-7"}"#, count: 60).utf8), codec: .current)
        let like = Array(#"{"type":"MoneyDeposited","amount":2,"currency":"EUR","user":"u-8"}"#.utf8)
        // The dictionary's words in no order: many short matches, which Zstandard codes in
        // fewer bytes than LZ4's token and 2-byte offset each.
        var state: UInt64 = 7
        let words = [#""amount":"#, #""EUR","#, #""u-7""#, "Money", #"{"type":"#, #""currency":"#]
        let unlike = Array((0..<45).map { _ -> String in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return words[Int(state >> 33) % words.count]
        }.joined(separator: "1").utf8)
        func written(_ payload: [UInt8]) -> (stored: [UInt8], codec: Codec)? {
            payload.withUnsafeBytes { Compression.compressForWriting($0, dictionary: dictionary, formatVersion: Layout.formatVersion) }
        }
        let block = try #require(written(like))
        #expect(block.codec == .lz4)
        #expect(block.stored.withUnsafeBytes { Compression.decompress($0, count: like.count, dictionary: dictionary.bytes, codec: .lz4) } == like)
        let frame = try #require(written(unlike))
        #expect(frame.codec == .zstandard)
        #expect(frame.stored.withUnsafeBytes { Compression.decompress($0, count: unlike.count, dictionary: dictionary.bytes, codec: .zstandard) } == unlike)
        let lz4Alone = try #require(unlike.withUnsafeBytes { Compression.compress($0, dictionary: dictionary, codec: .lz4) } ?? Optional(unlike))
        #expect(frame.stored.count < lz4Alone.count - lz4Alone.count / 9)
        // 512 bytes and more: Zstandard, like version 4; in version 4, Zstandard whatever the size.
        let large = Array(repeating: like, count: 8).flatMap { $0 }
        #expect(large.withUnsafeBytes { Compression.compressForWriting($0, dictionary: dictionary, formatVersion: Layout.formatVersion) }?.codec == .zstandard)
        #expect(like.withUnsafeBytes { Compression.compressForWriting($0, dictionary: dictionary, formatVersion: 4) }?.codec == .zstandard)
    }

    /// Random payloads around the size where the writer switches codecs, with random
    /// dictionaries (none, 1 byte to the 32 KiB maximum, like the payload or not): whatever the
    /// writer picks saves 1/8 and decodes to the payload with the dictionary; decoding without
    /// it, or with one byte of the stored form changed, never traps.
    @Test func everySmallPayloadRoundTripsThroughTheWritersChoice() throws {
        var random = SeededRandom(seed: 35)
        var picked: [Codec: Int] = [:]
        let words = [#"{"type":"#, #""amount":"#, #""EUR""#, "Deposited", #"},"#, "u-", " "].map { Array($0.utf8) }
        func text(_ count: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            while bytes.count < count {
                switch random.below(3) {
                case 0: bytes += words[random.below(words.count)]
                case 1: bytes += (0..<random.below(6)).map { _ in UInt8(48 + random.below(10)) }
                default: bytes.append(UInt8(truncatingIfNeeded: random.next()))
                }
            }
            return Array(bytes.prefix(count))
        }
        for trial in 0..<1_500 {
            let payload = text(64 + random.below(600))
            let dictionaryBytes: [UInt8] = switch random.below(4) {
            case 0: []
            case 1: (0..<(1 + random.below(64))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 2: text(1 + random.below(Layout.maximumDictionarySize))
            default: text(Layout.dictionarySize)
            }
            let dictionary = dictionaryBytes.isEmpty ? nil : PresetDictionary(dictionaryBytes, codec: .current)
            guard let (stored, codec) = payload.withUnsafeBytes({
                Compression.compressForWriting($0, dictionary: dictionary, formatVersion: Layout.formatVersion)
            }) else { continue }
            picked[codec, default: 0] += 1
            #expect(codec == .zstandard || payload.count < Layout.lz4PayloadLimit, "trial \(trial)")
            #expect(stored.count <= payload.count - payload.count / 8, "trial \(trial)")
            let back = stored.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: dictionaryBytes, codec: codec) }
            #expect(back == payload, "trial \(trial): \(codec) with a dictionary of \(dictionaryBytes.count) bytes")
            // Without the dictionary, or with a byte changed, it decodes to anything or nothing
            // (the frame's checks tell those apart: §4, §7), and never traps.
            _ = stored.withUnsafeBytes { Compression.decompress($0, count: payload.count, codec: codec) }
            var damaged = stored
            damaged[random.below(damaged.count)] ^= UInt8(1 + random.below(255))
            _ = damaged.withUnsafeBytes { Compression.decompress($0, count: payload.count, dictionary: dictionaryBytes, codec: codec) }
        }
        // Both codecs are picked, each many times.
        #expect(picked[.lz4, default: 0] > 100 && picked[.zstandard, default: 0] > 100, "\(picked)")
    }

    /// The checksum of a range from prefixes (the search after damage) is the checksum of the
    /// range's bytes, for ranges within a block, across blocks, from the origin, to the end.
    @Test func rangeChecksumsAreTheChecksumsOfTheirBytes() {
        var random = SeededRandom(seed: 0xC2C)
        let block = RangeChecksums.blockSize
        let bytes = (0..<(40 * block + 123)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes.withUnsafeBytes { buffer in
            for origin in [0, 1, block - 1, block, 3 * block + 17] {
                var ranges = RangeChecksums(origin: origin)
                for trial in 0..<300 {
                    let start = origin + random.below(buffer.count - origin)
                    let end = trial % 5 == 0 ? buffer.count : start + random.below(buffer.count - start + 1)
                    let crc = trial % 3 == 0 ? 0 : UInt32(truncatingIfNeeded: random.next())
                    let expected = Checksum.crc32c(UnsafeRawBufferPointer(rebasing: buffer[start..<end]), continuing: crc)
                    #expect(ranges.crc32c(of: start..<end, in: buffer, continuing: crc) == expected, "origin \(origin), \(start)..<\(end)")
                }
                // The prefixes are made once: the bytes hashed stay within the buffer's size plus two partial blocks per range.
                #expect(ranges.bytesHashed <= buffer.count + 300 * 2 * RangeChecksums.blockSize)
            }
        }
        #expect(RangeChecksums.shift(0x1234_5678, by: 0) == 0x1234_5678)
    }

    @Test func segmentsOfEachVersionHaveTheirCodec() {
        #expect([1, 2, 3].map { Codec(formatVersion: $0) } == [.deflate, .deflate, .deflate])
        #expect(Codec(formatVersion: 4) == .zstandard && Codec(formatVersion: 5) == .zstandard)
        // The LZ4 flag: a codec of version 5 on; in an older segment, damage.
        #expect([2, 3, 4].map { Codec(formatVersion: $0, lz4Flag: true) } == [nil, nil, nil])
        #expect(Codec(formatVersion: 5, lz4Flag: true) == .lz4 && Codec(formatVersion: 5, lz4Flag: false) == .zstandard)
        // What a writer picks: LZ4 for payloads under 512 bytes, from version 5 on.
        #expect(Codec.forWriting(payloadSize: 511, formatVersion: 5) == .lz4)
        #expect(Codec.forWriting(payloadSize: 512, formatVersion: 5) == .zstandard)
        #expect(Codec.forWriting(payloadSize: 100, formatVersion: 4) == .zstandard)
        #expect(Codec.forWriting(payloadSize: 100, formatVersion: 3) == .deflate)
        #expect(Codec.current == .zstandard && Layout.formatVersion == 5)
    }

    @Test func varintsRoundTripAndMalformedInputIsRefused() throws {
        var writer = ByteWriter()
        let values: [UInt64] = [0, 1, 127, 128, 300, 16_383, 16_384, UInt64(UInt32.max), .max]
        for value in values { writer.varint(value) }
        #expect(Array(writer.bytes.prefix(4)) == [0x00, 0x01, 0x7F, 0x80])
        let decoded = try writer.bytes.withUnsafeBytes { raw throws in
            var reader = ByteReader(raw)
            let decoded = try values.map { _ in try reader.varint("value") }
            #expect(reader.remaining == 0)
            return decoded
        }
        #expect(decoded == values)
        for bad: [UInt8] in [[0x80], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], Array(repeating: 0x80, count: 11)] {
            bad.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                #expect(throws: ByteReader.Malformed.self) { try reader.varint("value") }
            }
        }
        [UInt8]([0x05, 0x61]).withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(throws: ByteReader.Malformed.self) { try reader.string("name") }
        }
        // A count against a negative limit (a member of an empty table, in a forged index file)
        // is malformed; it trapped.
        [UInt8]([0x00]).withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(throws: ByteReader.Malformed.self) { try reader.count("member", limit: -1) }
        }
        [UInt8]([0x02, 0xC3, 0x28]).withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(throws: ByteReader.Malformed.self) { try reader.string("name") }
        }
    }

    @Test func segmentNamesParseAndOrder() {
        let zero = Layout.SegmentName(firstPosition: 0, generation: 0)
        #expect(zero.fileName == "00000000000000000000.dseg")
        #expect(Layout.SegmentName(fileName: "00000000000000001234-2.dseg") == .init(firstPosition: 1234, generation: 2))
        for bad in ["0000000000000000000.dseg", "00000000000000000000-0.dseg", "00000000000000000000-01.dseg",
                    "0000000000000000000a.dseg", "00000000000000000000.seg", "dugong.lock", "00000000000000000000-.dseg"] {
            #expect(Layout.SegmentName(fileName: bad) == nil, "\(bad)")
        }
        #expect(zero < Layout.SegmentName(firstPosition: 0, generation: 1))
        #expect(Layout.SegmentName(firstPosition: 0, generation: 9) < Layout.SegmentName(firstPosition: 1, generation: 0))
    }

    @Test func framesRoundTripAndEveryFlippedBitIsCaught() throws {
        var builder = FrameBuilder(nextPosition: 41)
        let first = StoredEvent(
            stream: "s/1", version: 3, position: 41, id: UUID(), type: "T", timestampMilliseconds: -5,
            data: Data("{}".utf8), metadata: Data(), endsCommit: false)
        let second = StoredEvent(
            stream: "s/1", version: 4, position: 42, id: UUID(), type: "T", timestampMilliseconds: 5,
            data: Data(), metadata: Data("m".utf8), endsCommit: true)
        let snapshot = StoredSnapshot(stream: "s/1", version: 4, data: Data("state".utf8), metadata: Data())
        builder.append(first)
        builder.appendStreamMetadata(stream: "s/2", operation: .truncateBefore, version: 7)
        builder.append(second)
        builder.append(snapshot)
        let written: [Record] = [
            .event(first), .streamMetadata(stream: "s/2", operation: .truncateBefore, version: 7), .event(second), .snapshot(snapshot),
        ]
        let frame = builder.sealed(formatVersion: Layout.formatVersion).encoded(salt: 77, offset: 0)
        let probe = frame.withUnsafeBytes { FrameReader.probe($0, at: 0, salt: 77) }
        guard case .frame(let header) = probe else {
            Issue.record("frame did not probe as valid")
            return
        }
        #expect(header.firstPosition == 41 && header.eventCount == 2 && header.recordCount == 4)
        let records = try frame.withUnsafeBytes { bytes throws in try FrameReader.records(of: header, in: bytes, at: 0, dictionary: [], formatVersion: Layout.formatVersion) }
        #expect(records == written)
        // The index sees the same records as the builder gave it, whether written or read.
        #expect(IndexRecord.grouping(records) == builder.records)
        #expect(builder.records.count == 4)
        for bit in 0..<(frame.count * 8) {
            var flipped = frame
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            let probe = flipped.withUnsafeBytes { FrameReader.probe($0, at: 0, salt: 77) }
            if case .frame = probe { Issue.record("flipping bit \(bit) went unnoticed") }
        }
        // Valid only in its own segment (salt) and at its own offset.
        #expect(frame.withUnsafeBytes { FrameReader.probe($0, at: 0, salt: 78) } != .frame(header))
        let shifted = [0] + frame
        #expect(shifted.withUnsafeBytes { FrameReader.probe($0, at: 1, salt: 77) } != .frame(header))
    }
}

@Suite("Segment dictionaries")
struct DictionaryTests {
    static func header(_ frame: [UInt8]) -> FrameHeader? {
        if case .frame(let header) = frame.withUnsafeBytes({ FrameReader.probe($0, at: 0, salt: 1) }) { return header }
        return nil
    }

    @Test func aFrameCompressedWithADictionaryNeedsThatDictionary() throws {
        let dictionary = Array(String(repeating: #"{"type":"MoneyDeposited","aggregateId":"acc-1","currency":"EUR"}"#, count: 8).utf8)
        var builder = FrameBuilder(nextPosition: 0)
        let event = StoredEvent(
            stream: "account/1", version: 1, position: 0, id: UUID(), type: "MoneyDeposited", timestampMilliseconds: 0,
            data: Data(#"{"type":"MoneyDeposited","aggregateId":"acc-1","amount":5,"currency":"EUR"}"#.utf8),
            metadata: Data(), endsCommit: true)
        builder.append(event)
        let plain = builder.sealed(formatVersion: Layout.formatVersion).encoded(salt: 1, offset: 0)
        let withDictionary = builder.sealed(dictionary: PresetDictionary(dictionary, codec: .current), formatVersion: Layout.formatVersion)
            .encoded(salt: 1, offset: 0)
        #expect(withDictionary.count < plain.count)
        let header = try #require(Self.header(withDictionary))
        // A one-event frame: an LZ4 block (FORMAT.md §7).
        #expect(header.isCompressed && header.usesDictionary && header.isLZ4Block)
        let records = try withDictionary.withUnsafeBytes { try FrameReader.records(of: header, in: $0, at: 0, dictionary: dictionary, formatVersion: Layout.formatVersion) }
        #expect(records == [.event(event)])
        #expect(throws: FrameDamage.self) {
            try withDictionary.withUnsafeBytes { try FrameReader.records(of: header, in: $0, at: 0, dictionary: [], formatVersion: Layout.formatVersion) }
        }
        var other = dictionary
        other[10] ^= 0x55
        #expect(throws: FrameDamage.self) {
            try withDictionary.withUnsafeBytes { try FrameReader.records(of: header, in: $0, at: 0, dictionary: Array(other.reversed()), formatVersion: Layout.formatVersion) }
        }
    }

    /// Processes that each open the store for one small commit (the tool's `append`, a short
    /// job) together write enough for a dictionary: the writer recalls the segment's last
    /// payloads at its open. Without that, each wrote less than a dictionary's worth since its
    /// open and no frame was ever compressed.
    @Test func shortLivedWritersStillGetTheSegmentADictionary() async throws {
        let directory = TemporaryDirectory("dictionary-short-lived")
        defer { directory.remove() }
        var written: [StoredEvent] = []
        for index in 0..<80 {
            let log = try Fixture.open(directory)
            try await log.append(Fixture.events(1, size: 60), to: "s/\(index % 5)")
            written = try log.readAll(maxCount: 1000)
            log.close()
        }
        let path = directory.file("00000000000000000000.dseg")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let offsets = try Fixture.frameOffsets(of: path)
        let dictionaryFrames = offsets.filter { bytes[$0 + 24] == 0 && bytes[$0 + 12] & 0x03 != 0x03 && bytes[$0 + 8] > 1 }
        #expect(dictionaryFrames.count == 1, "one dictionary frame in the segment")
        // ~130 bytes of payload per event: the dictionary (4 KiB) once ~32 of them were written
        // (measured: 48 of the 80 frames use it).
        let usingIt = offsets.filter { bytes[$0 + 12] & 0x03 == 0x03 }.count
        #expect(usingIt >= 40, "\(usingIt) of 80 event frames use the dictionary")
        let log = try Fixture.open(directory)
        defer { log.close() }
        #expect(try log.readAll(maxCount: 1000) == written && written.count == 80)
    }

    @Test func singleEventCommitsAreCompressedWithTheSegmentsDictionary() async throws {
        let directory = TemporaryDirectory("dictionary")
        defer { directory.remove() }
        var log = try Fixture.open(directory)
        for index in 0..<300 {
            try await log.append(Fixture.events(1, size: 60), to: "s/\(index % 7)")
        }
        let all = try log.readAll(maxCount: 1000)
        let bytesPerEvent = Double(log.frameBytes) / 300
        log.close()
        let path = directory.file("00000000000000000000.dseg")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let flags = try Fixture.frameOffsets(of: path).map { bytes[$0 + 12] }
        // A dictionary frame holds no events and is compressed without a dictionary.
        let dictionaryFrames = try Fixture.frameOffsets(of: path).filter { bytes[$0 + 24] == 0 && bytes[$0 + 12] & 0x03 != 0x03 && bytes[$0 + 8] > 1 }
        #expect(dictionaryFrames.count == 1, "one dictionary frame in the segment")
        #expect(flags.filter { $0 & 0x03 == 0x03 }.count > 250, "most frames use the dictionary")
        // Measured: ~151 bytes per event with Zstandard (format version 4; ~140 with version 3's
        // DEFLATE): each ~200-byte payload stored in ~70 bytes plus its 40-byte frame header and
        // its share of the dictionary frame. Without the dictionary the payloads would not
        // compress at all (a frame is stored as is unless that saves 1/8).
        #expect(bytesPerEvent < 160, "\(bytesPerEvent) bytes per event")
        log = try Fixture.open(directory)
        defer { log.close() }
        #expect(try log.readAll(maxCount: 1000) == all)
    }

    @Test func aDamagedDictionaryMakesTheFramesUsingItUnreadable() async throws {
        let directory = TemporaryDirectory("dictionary-damage")
        defer { directory.remove() }
        var log = try Fixture.open(directory)
        for index in 0..<100 {
            try await log.append(Fixture.events(1, size: 60), to: "s/\(index % 7)")
        }
        log.close()
        let path = directory.file("00000000000000000000.dseg")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let dictionaryFrame = try #require(try Fixture.frameOffsets(of: path).first { bytes[$0 + 24] == 0 })
        bytes[dictionaryFrame + 100] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        log = try Fixture.open(directory, useIndexFile: false)
        defer { log.close() }
        #expect(!log.recovery.corruptions.isEmpty)
        #expect(try log.readAll(maxCount: 1000).count < 100)
        #expect(throws: StoreError.self) { try log.read(stream: "s/1") }
    }
}

/// Memory whose last usable byte lies just before a page the process may not touch: bytes
/// placed at its end are followed by a fault, so a read or write past them ends the process.
final class GuardedBytes {
    private let base: UnsafeMutableRawPointer
    private let usable: Int
    private let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    init(capacity: Int) {
        usable = (capacity + page - 1) / page * page
        let mapped = mmap(nil, usable + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        precondition(mapped != MAP_FAILED, "a test's guarded memory")
        base = mapped!
        precondition(mprotect(base + usable, page, PROT_NONE) == 0, "a test's guard page")
    }

    deinit { munmap(base, usable + page) }

    /// `bytes` copied to end exactly at the guard page.
    func atEnd(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        precondition(bytes.count <= usable)
        let start = base + (usable - bytes.count)
        bytes.withUnsafeBytes { if let source = $0.baseAddress { start.copyMemory(from: source, byteCount: $0.count) } }
        return UnsafeRawBufferPointer(start: start, count: bytes.count)
    }

    /// `count` writable bytes ending at the guard page, filled with 0xEE.
    func room(_ count: Int) -> UnsafeMutableRawBufferPointer {
        precondition(count <= usable)
        let region = UnsafeMutableRawBufferPointer(start: base + (usable - count), count: count)
        region.initializeMemory(as: UInt8.self, repeating: 0xEE)
        return region
    }
}
