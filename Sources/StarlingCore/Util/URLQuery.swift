/// Query-string and path decoding (application/x-www-form-urlencoded rules).
public enum URLQuery {
    /// Splits "a=1&b=x%20y" into a dictionary; the first occurrence of a name wins.
    public static func parse(_ query: Substring) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0], plusIsSpace: true), !name.isEmpty else { continue }
            let value = parts.count > 1 ? decode(parts[1], plusIsSpace: true) ?? "" : ""
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    /// Percent-decodes; nil when an escape is malformed or the result is not UTF-8.
    public static func decode(_ s: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hex(h), let lv = hex(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else if b == UInt8(ascii: "+") && plusIsSpace {
                bytes.append(0x20)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    /// Splits a request target into decoded path segments and the raw query.
    public static func splitTarget(_ uri: String) -> (segments: [String], query: Substring)? {
        let q = uri.firstIndex(of: "?")
        let path = q.map { uri[..<$0] } ?? Substring(uri)
        let query = q.map { uri[uri.index(after: $0)...] } ?? ""
        var segs: [String] = []
        for raw in path.split(separator: "/", omittingEmptySubsequences: true) {
            guard let d = decode(raw, plusIsSpace: false) else { return nil }
            segs.append(d)
        }
        return (segs, query)
    }
}
