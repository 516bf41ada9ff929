/// How a framework stream (origin, aggregate type, tenant, aggregate id) is named as one string
/// (the embedded store's stream names; PostgreSQL's `stream` column), reversibly:
///
///     <origin>:<aggregateType>/<aggregateID>              untenanted
///     <origin>:<aggregateType>@<tenantID>/<aggregateID>   tenanted
///
/// In origin, aggregate type and tenant, the bytes `%`, `:`, `@`, `/` and control characters are
/// percent-encoded (`%25`, `%3A`, `%40`, `%2F`, …); the aggregate id is kept as it is, since it
/// is everything after the first `/`. The part before the first `/` is the engine's category,
/// so "all aggregate ids of an origin, type and tenant" is one category lookup.
public enum AggregateStreamName {
    /// The engine stream name of `stream`.
    public static func name(of stream: StreamID) -> String {
        category(origin: stream.origin, aggregateType: stream.aggregateType, tenantID: stream.tenantID)
            + "/" + stream.aggregateID
    }

    /// The engine category holding the streams of one origin, aggregate type and tenant.
    public static func category(origin: String, aggregateType: String, tenantID: String?) -> String {
        let kind = escape(origin) + ":" + escape(aggregateType)
        return tenantID.map { kind + "@" + escape($0) } ?? kind
    }

    /// The framework stream an engine stream name stands for; `nil` when it is not of this form.
    public static func streamID(of name: String) -> StreamID? {
        guard let slash = name.firstIndex(of: "/") else { return nil }
        let category = name[..<slash]
        let aggregateID = String(name[name.index(after: slash)...])
        let tenantSplit = category.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let kind = tenantSplit[0].split(separator: ":", omittingEmptySubsequences: false)
        guard kind.count == 2, let origin = unescape(kind[0]), let type = unescape(kind[1]) else { return nil }
        var tenant: String?
        if tenantSplit.count == 2 {
            guard let value = unescape(tenantSplit[1]) else { return nil }
            tenant = value
        }
        return StreamID(origin: origin, aggregateType: type, aggregateID: aggregateID, tenantID: tenant)
    }

    private static func escape(_ component: String) -> String {
        var result = ""
        for scalar in component.unicodeScalars {
            switch scalar {
            case "%", ":", "@", "/", "\u{7F}", "\u{0}"..."\u{1F}":
                let value = UInt8(scalar.value)
                result += "%" + String(value >> 4, radix: 16, uppercase: true) + String(value & 0xF, radix: 16, uppercase: true)
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func unescape(_ component: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = component.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
