/// Whether stream `name` is of `category`: the part of the name before its first "/" is that
/// category, byte for byte (a category holds no "/": `acc/1` is no stream's category, and
/// `acc/1/2` is of `acc`). The same test for every command that takes `--category`.
func isStream(_ name: String, ofCategory category: String) -> Bool {
    let bytes = name.utf8
    guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return false }
    return bytes[..<slash].elementsEqual(category.utf8)
}

/// A stream name as the store tells names apart: by its UTF-8 bytes. `String`'s `==` is
/// canonical equivalence, which takes `café` spelled NFC and NFD for one name; the store keeps
/// two streams, and so does every table of streams the tool keeps.
struct NameKey: Hashable, Sendable {
    let name: String

    init(_ name: String) { self.name = name }

    static func == (a: NameKey, b: NameKey) -> Bool { a.name.utf8.elementsEqual(b.name.utf8) }

    func hash(into hasher: inout Hasher) {
        var name = name
        name.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
