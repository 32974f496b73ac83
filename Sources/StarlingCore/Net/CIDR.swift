/// An IPv4 or IPv6 address, stored as 128 bits. IPv4 addresses are stored v4-mapped
/// (`::ffff:a.b.c.d`), so `1.2.3.4` and `::ffff:1.2.3.4` are the same address (`isV4` is true
/// for both): a client seen through a dual-stack socket compares equal to its plain IPv4 form.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The high and low 64 bits of the 128-bit address (network byte order).
    let high: UInt64
    let low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Accepts "1.2.3.4", "::1", "2001:db8::1", "::ffff:1.2.3.4", and IPv6 in brackets ("[::1]").
    /// Rejects everything else, including zone ids ("fe80::1%eth0"), IPv4 parts with leading zeros
    /// ("01.2.3.4") and surrounding whitespace.
    public init?(_ text: String) {
        guard let parsed = IPText.parseAddress(text) else { return nil }
        self.init(high: parsed.high, low: parsed.low)
    }

    /// True for IPv4 addresses, including IPv4-mapped IPv6 ones.
    public var isV4: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        isV4 ? (low >> 24) & 0xFF == 127 : (high == 0 && low == 1)
    }

    /// Canonical text: dotted quad for IPv4 (also for v4-mapped IPv6), RFC 5952 for IPv6.
    public var description: String {
        isV4 ? IPText.formatV4(UInt32(truncatingIfNeeded: low)) : IPText.formatV6(high: high, low: low)
    }
}

/// An IPv4 or IPv6 network. IPv4 networks are stored as the matching v4-mapped IPv6 network,
/// so they match both IPv4 and v4-mapped IPv6 addresses.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// Network bits (host bits cleared) and the prefix length over all 128 bits.
    let high: UInt64
    let low: UInt64
    let prefix128: Int

    /// Accepts "127.0.0.1/32", "10.0.0.0/8", "::1/128", "fe80::/10"; a bare address means /32 or /128.
    /// Host bits set in the address are cleared ("10.1.2.3/8" is "10.0.0.0/8").
    /// An IPv6 network inside `::ffff:0:0/96` is the equivalent IPv4 network.
    public init?(_ text: String) {
        var addressText = Substring(text)
        var prefixText: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            prefixText = text[text.index(after: slash)...]
        }
        guard let address = IPText.parseAddress(String(addressText)) else { return nil }
        let maxPrefix = address.writtenAsV4 ? 32 : 128
        var prefix = maxPrefix
        if let prefixText {
            guard !prefixText.isEmpty, prefixText.utf8.count <= 3,
                  prefixText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let p = Int(prefixText), p <= maxPrefix
            else { return nil }
            prefix = p
        }
        let p128 = address.writtenAsV4 ? prefix + 96 : prefix
        let masks = CIDR.masks(p128)
        self.high = address.high & masks.high
        self.low = address.low & masks.low
        self.prefix128 = p128
    }

    /// Whether `address` lies in this network. An IPv4 network matches IPv4 and v4-mapped IPv6 addresses.
    public func contains(_ address: IPAddress) -> Bool {
        let masks = CIDR.masks(prefix128)
        return address.high & masks.high == high && address.low & masks.low == low
    }

    /// Comma-separated networks, spaces allowed around entries ("10.0.0.0/8, ::1").
    /// An empty or all-space text is the empty list; nil if any entry is invalid or empty.
    public static func parseList(_ text: String) -> [CIDR]? {
        if text.allSatisfy({ $0 == " " || $0 == "\t" }) { return [] }
        var result: [CIDR] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = entry.drop(while: { $0 == " " || $0 == "\t" })
            var end = trimmed.endIndex
            while end > trimmed.startIndex {
                let before = trimmed.index(before: end)
                guard trimmed[before] == " " || trimmed[before] == "\t" else { break }
                end = before
            }
            guard let cidr = CIDR(String(trimmed[trimmed.startIndex..<end])) else { return nil }
            result.append(cidr)
        }
        return result
    }

    /// True for IPv4 networks (including v4-mapped IPv6 networks of prefix 96 and longer).
    public var isV4: Bool { prefix128 >= 96 && high == 0 && low >> 32 == 0xFFFF }

    /// The prefix length in the network's own family (0...32 for IPv4, 0...128 for IPv6).
    public var prefixLength: Int { isV4 ? prefix128 - 96 : prefix128 }

    /// The network address (host bits cleared).
    public var network: IPAddress { IPAddress(high: high, low: low) }

    /// "10.0.0.0/8", "fe80::/10".
    public var description: String {
        if isV4 { return "\(IPText.formatV4(UInt32(truncatingIfNeeded: low)))/\(prefixLength)" }
        return "\(IPText.formatV6(high: high, low: low))/\(prefix128)"
    }

    private static func masks(_ p: Int) -> (high: UInt64, low: UInt64) {
        let p = max(0, min(128, p))
        let high: UInt64 = p >= 64 ? .max : ~(UInt64.max >> UInt64(p))
        let low: UInt64 = p <= 64 ? 0 : ~(UInt64.max >> UInt64(p - 64))
        return (high, low)
    }
}

// MARK: - Text form

private enum IPText {
    /// Parses an address; `writtenAsV4` tells whether it was a plain dotted quad.
    static func parseAddress(_ text: String) -> (high: UInt64, low: UInt64, writtenAsV4: Bool)? {
        guard !text.utf8.isEmpty, text.utf8.count <= 64 else { return nil }
        var utf8 = Array(text.utf8)
        var bracketed = false
        if utf8.first == UInt8(ascii: "[") {
            guard utf8.count >= 2, utf8.last == UInt8(ascii: "]") else { return nil }
            utf8 = Array(utf8[1..<(utf8.count - 1)])
            bracketed = true
        }
        if utf8.contains(UInt8(ascii: ":")) {
            guard let (high, low) = parseV6(utf8[...]) else { return nil }
            return (high, low, false)
        }
        guard !bracketed, let v4 = parseV4(utf8[...]) else { return nil }
        return (0, 0xFFFF_0000_0000 | UInt64(v4), true)
    }

    /// Exactly four decimal parts 0...255, no leading zeros, no signs.
    static func parseV4(_ b: ArraySlice<UInt8>) -> UInt32? {
        var result: UInt32 = 0
        var parts = 0
        for part in b.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.count <= 3, parts < 4 else { return nil }
            if part.count > 1 && part.first == UInt8(ascii: "0") { return nil }
            var v: UInt32 = 0
            for c in part {
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                v = v * 10 + UInt32(c - UInt8(ascii: "0"))
            }
            guard v <= 255 else { return nil }
            result = result << 8 | v
            parts += 1
        }
        return parts == 4 ? result : nil
    }

    /// Groups of 1-4 hex digits separated by ':'; one '::' at most; an IPv4 tail allowed last.
    static func parseV6(_ b: ArraySlice<UInt8>) -> (UInt64, UInt64)? {
        let colon = UInt8(ascii: ":")
        var doubleColon: Int?
        var i = b.startIndex
        while i + 1 < b.endIndex {
            if b[i] == colon && b[i + 1] == colon {
                guard doubleColon == nil else { return nil }
                doubleColon = i
                i += 2
            } else {
                i += 1
            }
        }
        var groups: [UInt16]
        if let dc = doubleColon {
            let tail = b[(dc + 2)...]
            guard let head = parseGroups(b[..<dc], v4TailAllowed: false),
                  let rest = parseGroups(tail, v4TailAllowed: true),
                  head.count + rest.count <= 7
            else { return nil }
            // ":::" leaves a tail starting with ':'; parseGroups rejects that as an empty group.
            groups = head + [UInt16](repeating: 0, count: 8 - head.count - rest.count) + rest
        } else {
            guard let all = parseGroups(b, v4TailAllowed: true), all.count == 8 else { return nil }
            groups = all
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for k in 0..<4 { high = high << 16 | UInt64(groups[k]) }
        for k in 4..<8 { low = low << 16 | UInt64(groups[k]) }
        return (high, low)
    }

    private static func parseGroups(_ b: ArraySlice<UInt8>, v4TailAllowed: Bool) -> [UInt16]? {
        if b.isEmpty { return [] }
        let parts = b.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count <= 8 else { return nil }
        var groups: [UInt16] = []
        for (n, part) in parts.enumerated() {
            guard !part.isEmpty else { return nil }
            if v4TailAllowed && n == parts.count - 1 && part.contains(UInt8(ascii: ".")) {
                guard let v4 = parseV4(part) else { return nil }
                groups.append(UInt16(truncatingIfNeeded: v4 >> 16))
                groups.append(UInt16(truncatingIfNeeded: v4))
                continue
            }
            guard part.count <= 4 else { return nil }
            var v: UInt16 = 0
            for c in part {
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: return nil
                }
                v = v << 4 | UInt16(d)
            }
            groups.append(v)
        }
        return groups
    }

    static func formatV4(_ v: UInt32) -> String {
        "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run (first on a tie) of two or more
    /// zero groups as "::"; v4-mapped addresses as "::ffff:a.b.c.d".
    static func formatV6(high: UInt64, low: UInt64) -> String {
        if high == 0 && low >> 32 == 0xFFFF {
            return "::ffff:" + formatV4(UInt32(truncatingIfNeeded: low))
        }
        var groups = [UInt16](repeating: 0, count: 8)
        for k in 0..<4 {
            groups[k] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * k))
            groups[k + 4] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * k))
        }
        var bestStart = -1
        var bestLength = 1
        var k = 0
        while k < 8 {
            if groups[k] == 0 {
                var end = k
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - k > bestLength {
                    bestStart = k
                    bestLength = end - k
                }
                k = end
            } else {
                k += 1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}
