/// Where two values of one type differ, found through reflection: how the repository checks that
/// a snapshot restores a state that is not `Equatable` (a `Codable` conformance that leaves out
/// a stored property restores it as its default, and re-encoding the restored state cannot tell).
///
/// Parts that are `Equatable` are compared with `==`; the others part by part through `Mirror`
/// (stored properties, elements, an enum's case and payload, a class's and its superclasses'
/// properties); a dictionary's entries by key, whatever their order. Below `maximumDepth` levels
/// (deep or cyclic graphs of objects) nothing more is compared.
enum StructuralDifference {
    static let maximumDepth = 32

    /// The first difference between `value` and `other` (as "path: what"), or nil when none was found.
    static func between(_ value: Any, _ other: Any, at path: String) -> String? {
        difference(value, other, at: path, depth: 0)
    }

    private static func difference(_ value: Any, _ other: Any, at path: String, depth: Int) -> String? {
        guard depth < maximumDepth else { return nil }
        if let equatable = value as? any Equatable {
            if equatable.isEqual(to: other) { return nil }
            // Unequal: the part that differs, when the parts tell.
            return partsDifference(value, other, at: path, depth: depth) ?? "\(path) is \(shown(value)), restored as \(shown(other))"
        }
        return partsDifference(value, other, at: path, depth: depth)
    }

    private static func partsDifference(_ value: Any, _ other: Any, at path: String, depth: Int) -> String? {
        let mirror = Mirror(reflecting: value)
        let otherMirror = Mirror(reflecting: other)
        guard mirror.subjectType == otherMirror.subjectType else {
            return "\(path) is a \(mirror.subjectType), restored as a \(otherMirror.subjectType)"
        }
        if mirror.displayStyle == .dictionary {
            return entriesDifference(mirror, otherMirror, at: path, depth: depth)
        }
        let parts = allChildren(mirror)
        let otherParts = allChildren(otherMirror)
        if parts.isEmpty, otherParts.isEmpty {
            let (text, otherText) = (String(reflecting: value), String(reflecting: other))
            return text == otherText ? nil : "\(path) is \(shown(value)), restored as \(shown(other))"
        }
        guard parts.count == otherParts.count else {
            return "\(path) is \(shown(value)), restored as \(shown(other))"
        }
        for (index, (part, otherPart)) in zip(parts, otherParts).enumerated() {
            guard part.label == otherPart.label else {
                return "\(path) is \(shown(value)), restored as \(shown(other))"
            }
            let partPath = part.label.map { "\(path).\($0)" } ?? "\(path)[\(index)]"
            if let found = difference(part.value, otherPart.value, at: partPath, depth: depth + 1) { return found }
        }
        return nil
    }

    /// A dictionary's entries matched by key (its order depends on its history, not its contents).
    private static func entriesDifference(_ mirror: Mirror, _ otherMirror: Mirror, at path: String, depth: Int) -> String? {
        func entriesByKey(_ mirror: Mirror) -> [AnyHashable: Any]? {
            var entries: [AnyHashable: Any] = [:]
            for child in mirror.children {
                let pair = Array(Mirror(reflecting: child.value).children)
                guard pair.count == 2, let key = pair[0].value as? AnyHashable else { return nil }
                entries[key] = pair[1].value
            }
            return entries
        }
        guard let entries = entriesByKey(mirror), let otherEntries = entriesByKey(otherMirror) else { return nil }
        guard entries.count == otherEntries.count else {
            return "\(path) holds \(entries.count) entries, restored with \(otherEntries.count)"
        }
        for (key, value) in entries {
            guard let otherValue = otherEntries[key] else { return "\(path)[\(shown(key.base))] is not restored" }
            if let found = difference(value, otherValue, at: "\(path)[\(shown(key.base))]", depth: depth + 1) { return found }
        }
        return nil
    }

    /// A value's parts, a class's inherited stored properties included.
    private static func allChildren(_ mirror: Mirror) -> [Mirror.Child] {
        var children = Array(mirror.children)
        var ancestor = mirror.superclassMirror
        while let next = ancestor {
            children += next.children
            ancestor = next.superclassMirror
        }
        return children
    }

    private static func shown(_ value: Any) -> String {
        let text = String(reflecting: value)
        return text.count <= 80 ? text : String(text.prefix(77)) + "..."
    }
}

extension Equatable {
    /// Whether `other` is a value of this type equal to this one.
    func isEqual(to other: Any) -> Bool {
        guard let other = other as? Self else { return false }
        return self == other
    }
}
