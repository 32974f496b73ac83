/// A parsed JSON document.
///
/// Numbers keep the exact text they were written with (validated against the
/// RFC 8259 grammar by the parser), so nothing is lost or rounded on the way
/// through the server: `-1.50e3` is stored and written back as `-1.50e3`.
/// Objects keep their fields in input order, duplicates included.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The raw number text exactly as given, e.g. `"-1.50e3"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object as an ordered list of fields. Duplicate keys are kept as given;
/// lookups return the first occurrence.
public struct JSONObject: Sendable, Equatable {
    /// The fields in input order, duplicates kept.
    public var fields: [(key: String, value: JSONValue)]

    public init(_ fields: [(key: String, value: JSONValue)] = []) {
        self.fields = fields
    }

    /// The value of the first field named `key`, or nil when there is none.
    public subscript(key: String) -> JSONValue? {
        for field in fields where field.key == key {
            return field.value
        }
        return nil
    }

    /// How many times `key` appears.
    public func count(of key: String) -> Int {
        var n = 0
        for field in fields where field.key == key {
            n += 1
        }
        return n
    }

    /// Replaces every occurrence of `key` by a single field at the position of the
    /// first occurrence, or appends the field when the key is absent.
    public mutating func set(_ key: String, _ value: JSONValue) {
        guard let first = fields.firstIndex(where: { $0.key == key }) else {
            fields.append((key: key, value: value))
            return
        }
        fields[first].value = value
        var i = fields.count - 1
        while i > first {
            if fields[i].key == key { fields.remove(at: i) }
            i -= 1
        }
    }

    /// Removes every field named `key`.
    public mutating func remove(_ key: String) {
        fields.removeAll { $0.key == key }
    }

    /// Two objects are equal when they hold the same fields in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.fields.count == rhs.fields.count else { return false }
        for i in lhs.fields.indices {
            let l = lhs.fields[i]
            let r = rhs.fields[i]
            if l.key != r.key || l.value != r.value { return false }
        }
        return true
    }
}

/// Why a JSON text was rejected.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset in the input where the problem was found.
    public var offset: Int
    /// Human-readable reason, e.g. "unexpected character 'x' at byte 12".
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { message }
}
