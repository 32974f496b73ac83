/// Time sums that cannot trap. Times are epoch milliseconds from records, clients and peers;
/// a value near `Int64.max` (a crafted record, a wild clock) must clamp, not crash the node
/// (a trap while folding a record would repeat on every restart, since recovery replays it).
public enum TimeMath {
    /// `a + b`, clamped to `Int64.min ... Int64.max`.
    @inline(__always)
    public static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard overflow else { return sum }
        return b > 0 ? .max : .min
    }

    /// `a - b`, clamped.
    @inline(__always)
    public static func subtract(_ a: Int64, _ b: Int64) -> Int64 {
        let (diff, overflow) = a.subtractingReportingOverflow(b)
        guard overflow else { return diff }
        return b > 0 ? .min : .max
    }
}
