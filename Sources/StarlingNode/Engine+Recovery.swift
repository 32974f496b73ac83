import Logging
import StarlingCore
import StarlingLog

/// Start-up: the checkpoint, the sealed segments' index files, and a scan of what they do not cover.
extension Engine {
    /// What start-up does with each segment.
    enum SegmentPlan: Equatable {
        /// Covered by the checkpoint and a sound index file: not read at all.
        case skip
        /// Covered by the checkpoint, index missing or unusable: scanned to rebuild the index only.
        case indexOnly
        /// After the checkpoint, index sound: folded for state, refs stay on disk.
        case fold
        /// After the checkpoint, index missing or unusable: folded and its index rebuilt.
        case foldAndIndex
        /// The segment appends go on in: folded with its refs kept in memory.
        case open
    }

    /// Opens the log. The checkpoint (if sound) restores the index as of the end of a sealed
    /// segment; sealed segments with a sound index file need no refs in memory; a missing index (a
    /// crash after the roll) or a torn, damaged or stale one (counted) is rebuilt from a scan.
    /// Only what no checkpoint covers is folded, so start-up time follows the open segment, not
    /// the log. A damaged checkpoint (counted) means a full fold, as without one.
    static func recover(_ log: SegmentedLog, sealed: SealedIndexes, config: NodeConfig, metrics: NodeMetrics,
                        logger: Logger) throws -> (NodeIndex, RecoveryReport, Int) {
        let segments = log.discover()
        removeUnfinishedWrites(config.dataDir, segments: segments)
        let (restored, base, nextSeq) = restoreCheckpoint(config: config, metrics: metrics, logger: logger, segments: segments)
        var idx = restored
        var plans: [UInt32: SegmentPlan] = [:]
        for (i, seg) in segments.enumerated() {
            if i == segments.count - 1 {
                try? FileIO.removeTree(seg.indexPath)   // appends go on here: an index of it would be stale
                plans[seg.number] = .open
                break
            }
            let covered = base.map { seg.number <= $0 } ?? false
            let size = FileIO.fileSize(seg.path) ?? -1
            do {
                sealed.add(try SegmentIndexFile(path: seg.indexPath, segment: seg.number, segmentBytes: size))
                plans[seg.number] = covered ? .skip : .fold
            } catch {
                if FileIO.exists(seg.indexPath) {
                    logger.warning("index \(seg.indexPath) is unusable (\(error)); rebuilding it from the segment")
                    metrics.indexDamaged.increment()
                }
                plans[seg.number] = covered ? .indexOnly : .foldAndIndex
            }
        }
        var rebuilder = IndexRebuilder(segments: segments, sealed: sealed, metrics: metrics, logger: logger)
        var skipped = 0
        let limits = config.limits
        let report = try log.recover(skip: { plans[$0] == .skip }, nextSeqAtLeast: nextSeq) { record, location, seq in
            // A record that passed its CRC but cannot be folded (a time out of range, an oversize
            // field: written by a faulty or older peer) is skipped and counted, never allowed to
            // trap; the rest of its block is recovered.
            if let problem = record.problem(limits: limits) {
                skipped += 1
                if skipped <= 10 { logger.error("log recovery skipped record seq \(seq) in segment \(location.segment): \(problem)") }
                return
            }
            let plan = plans[location.segment] ?? .open
            if plan == .indexOnly || plan == .foldAndIndex {
                rebuilder.add(record, at: location, seq: seq)
            }
            if plan != .indexOnly {
                idx.apply(record, at: location, seq: seq, keepRef: plan == .open)
            }
        }
        rebuilder.finish(plans.filter { $0.value == .indexOnly || $0.value == .foldAndIndex }.map(\.key))
        return (idx, report, skipped)
    }

    /// Writes and opens one segment's index file; nil (logged, counted) when it cannot, and the
    /// caller keeps the entries in memory. Used by seals and by start-up's rebuilds alike.
    static func writeIndexFile(_ entries: [IndexEntry], segment: UInt32, segmentBytes: Int, path: String,
                               metrics: NodeMetrics, logger: Logger) -> SegmentIndexFile? {
        do {
            try SegmentIndexFile.write(entries, segment: segment, segmentBytes: segmentBytes, to: path)
            return try SegmentIndexFile(path: path, segment: segment, segmentBytes: segmentBytes)
        } catch {
            logger.error("could not write index \(path): \(error); its entries stay in memory")
            metrics.indexWriteErrors.increment()
            return nil
        }
    }

    /// Temporary files of index or checkpoint writes a crash cut short (never renamed, so never
    /// read): removed, so they do not pile up.
    static func removeUnfinishedWrites(_ dir: String, segments: [SegmentedLog.SegmentInfo]) {
        var dirs = Set(segments.map { String($0.path[..<($0.path.lastIndex(of: "/") ?? $0.path.endIndex)]) })
        dirs.insert(dir)
        for d in dirs {
            for name in FileIO.list(d) where name.hasSuffix(".tmp") { try? FileIO.removeTree(d + "/" + name) }
        }
    }

    /// The checkpoint's index, the segment it covers and the log's next sequence number after it;
    /// a fresh index when there is none or it cannot be used.
    static func restoreCheckpoint(config: NodeConfig, metrics: NodeMetrics, logger: Logger,
                                  segments: [SegmentedLog.SegmentInfo]) -> (NodeIndex, UInt32?, UInt64) {
        let fresh = NodeIndex(ttl: config.ttl, dedupeWindowMs: config.dedupeWindowMs)
        do {
            guard let c = try Checkpoint.read(in: config.dataDir) else { return (fresh, nil, 1) }
            // It must cover a sealed segment of this log: older than the segment appends go to.
            guard let last = segments.last, c.segment < last.number else {
                logger.warning("checkpoint of segment \(c.segment) is ahead of the log; folding the whole log")
                metrics.checkpointDamaged.increment()
                return (fresh, nil, 1)
            }
            let idx = try NodeIndex(snapshot: c.body, ttl: config.ttl, dedupeWindowMs: config.dedupeWindowMs)
            logger.info("restored the checkpoint of segment \(c.segment)")
            return (idx, c.segment, c.nextSeq)
        } catch {
            logger.warning("checkpoint is unusable (\(error)); folding the whole log")
            metrics.checkpointDamaged.increment()
            return (fresh, nil, 1)
        }
    }
}

/// Collects the index entries of the segments start-up rebuilds, one segment at a time (records
/// come in log order), and writes each file when its segment is done.
struct IndexRebuilder {
    let segments: [SegmentedLog.SegmentInfo]
    let sealed: SealedIndexes
    let metrics: NodeMetrics
    let logger: Logger
    var current: (segment: UInt32, entries: [IndexEntry])?
    var done = Set<UInt32>()

    init(segments: [SegmentedLog.SegmentInfo], sealed: SealedIndexes, metrics: NodeMetrics, logger: Logger) {
        self.segments = segments
        self.sealed = sealed
        self.metrics = metrics
        self.logger = logger
    }

    mutating func add(_ r: Record, at location: RecordLocation, seq: UInt64) {
        if current?.segment != location.segment {
            flush()
            current = (location.segment, [])
        }
        let ref = EventRef(location: location, ts: r.ts, receivedAt: r.receivedAt, seq: seq)
        current!.entries += SealedIndexes.entries(of: r, ref: ref)
    }

    mutating func flush() {
        guard let c = current else { return }
        current = nil
        write(c.segment, c.entries)
    }

    /// Writes the last one, and an empty index for rebuilt segments that held no record.
    mutating func finish(_ all: [UInt32]) {
        flush()
        for n in all.sorted() where !done.contains(n) { write(n, []) }
    }

    mutating func write(_ segment: UInt32, _ entries: [IndexEntry]) {
        done.insert(segment)
        guard let info = segments.first(where: { $0.number == segment }), let size = FileIO.fileSize(info.path) else { return }
        if let file = Engine.writeIndexFile(entries, segment: segment, segmentBytes: size, path: info.indexPath,
                                            metrics: metrics, logger: logger) {
            sealed.add(file)
            metrics.indexRebuilt.increment()
        } else {
            sealed.addUnwritten(segment, entries)
        }
    }
}
