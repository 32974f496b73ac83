/// Human durations for flags: "500ms", "90s", "30m", "2h", "30d"; a bare number is seconds.
public enum Durations {
    public static func parse(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let num = text.dropLast(suffix.count)
            // "ms" must not be read as "m" + "s": the first matching suffix in this order wins.
            guard let n = Int64(num), n > 0 else { return nil }
            let (v, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : v
        }
        guard let n = Int64(text), n > 0 else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1000)
        return overflow ? nil : v
    }
}
