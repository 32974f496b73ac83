/// Splitting what a sender has into frames the receiver accepts. Receivers refuse a frame over
/// `FrameLimits.bodyBytesMax` as sent (and it closes the shared connection, failing every request
/// on it), so every sender of a list (replicate, forward, catch-up pages, query answers) cuts
/// the list into runs of at most `Limits.frameItemBytesMax` bytes of items.
public enum FrameBudget {
    /// Consecutive runs of `sizes` (in order, covering every index once), each holding at most
    /// `maxBytes` bytes and `maxCount` items. An item larger than `maxBytes` is a run of its own
    /// (the caller's item bound, `Limits.recordBytesMax`, keeps that from happening).
    public static func runs(sizes: [Int], maxBytes: Int, maxCount: Int = .max) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0, bytes = 0
        for (i, size) in sizes.enumerated() {
            if i > start && (bytes + size > maxBytes || i - start >= maxCount) {
                out.append(start..<i)
                start = i
                bytes = 0
            }
            bytes += size
        }
        if start < sizes.count { out.append(start..<sizes.count) }
        return out
    }

    /// Bytes an item takes in a body beyond its own bytes (its u32 length, and for forwarded
    /// items their small fixed fields).
    public static let itemOverhead = 16
}
