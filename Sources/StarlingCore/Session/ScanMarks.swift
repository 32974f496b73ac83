/// Where a scan of the open segment for records received at or after some time may start.
///
/// Catch-up streams the log in order; the periodic anti-entropy pass asks only for the last
/// minutes, which sit at the end of the open segment. Every `step` bytes of that segment this
/// keeps a mark: a block offset and the newest `received_at` of every record before it. A scan
/// for `since` starts at the last mark whose records before it are all older than `since`
/// (receive times are not in log order: replicas keep their owner's, so the newest-so-far is
/// what is kept). About 64 marks for a 64 MiB segment; rebuilt when start-up folds the open
/// segment, never persisted.
public struct ScanMarks: Sendable, Equatable {
    public static let defaultStep: UInt64 = 1 << 20

    public let step: UInt64
    /// The segment the marks are about (a record of another segment starts afresh).
    public private(set) var segment: UInt32?
    /// (block offset, newest `received_at` of the records in blocks before it), ascending.
    public private(set) var marks: [(offset: UInt64, newestBefore: Int64)] = []
    var block: UInt64 = 0
    var blockNewest: Int64 = .min
    var newestBefore: Int64 = .min

    public init(step: UInt64 = ScanMarks.defaultStep) {
        self.step = max(step, 1)
    }

    /// A record at `location` received at `receivedAt` (records come in log order).
    public mutating func observe(_ location: RecordLocation, receivedAt: Int64) {
        if location.segment != segment {
            self = ScanMarks(step: step)
            segment = location.segment
            block = location.blockOffset
        } else if location.blockOffset != block {
            newestBefore = max(newestBefore, blockNewest)
            block = location.blockOffset
            blockNewest = .min
            if location.blockOffset >= (marks.last?.offset ?? 0) + step {
                marks.append((location.blockOffset, newestBefore))
            }
        }
        blockNewest = max(blockNewest, receivedAt)
    }

    /// The offset in `segment` to scan from for records received at or after `since`; nil when
    /// the marks are of another segment or none can be skipped (scan from the segment's start).
    public func start(in segment: UInt32, since: Int64) -> UInt64? {
        guard segment == self.segment else { return nil }
        return marks.last { $0.newestBefore < since }?.offset
    }

    public static func == (a: ScanMarks, b: ScanMarks) -> Bool {
        a.step == b.step && a.segment == b.segment && a.block == b.block && a.blockNewest == b.blockNewest
            && a.newestBefore == b.newestBefore && a.marks.elementsEqual(b.marks) { $0.offset == $1.offset && $0.newestBefore == $1.newestBefore }
    }
}
