/// Case-insensitive ASCII substring search over UTF-8, without allocating
/// (`String.contains` and `lowercased()` are far too slow for the ingest path).
public enum ASCIISearch {
    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    /// `needle` must be lowercase ASCII.
    public static func contains(_ haystack: String, _ needle: StaticString) -> Bool {
        var h = haystack
        return h.withUTF8 { hay in
            needle.withUTF8Buffer { nee in
                let n = nee.count, m = hay.count
                guard n > 0 else { return true }
                guard m >= n else { return false }
                let first = nee[0]
                var i = 0
                while i <= m - n {
                    if lower(hay[i]) == first {
                        var j = 1
                        while j < n && lower(hay[i + j]) == nee[j] { j += 1 }
                        if j == n { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }

    /// Case-insensitive equality with a lowercase ASCII `word`.
    public static func equals(_ s: String, _ word: StaticString) -> Bool {
        var s = s
        return s.withUTF8 { a in
            word.withUTF8Buffer { w in
                a.count == w.count && zip(a, w).allSatisfy { lower($0) == $1 }
            }
        }
    }
}
