#if Studio
import DugongExample
import DugongStore
import DugongStudio

// The README's Studio snippet, as it is there (it compiles here; the server tests run the
// same calls).
enum StudioReadmeSnippets {
    static func embed(_ log: EventLog) throws {
        let studio = try Studio(log: log, aggregates: [BankAccount.self])  // read-only unless options say otherwise
        let serving = Task { try await studio.run { url in print("Dugong Studio: \(url)") } }
        serving.cancel()                                                   // stops it; open answers end first (live tails too)
    }
}
#endif
