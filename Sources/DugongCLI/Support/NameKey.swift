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
