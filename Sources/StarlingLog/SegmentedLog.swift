#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore
import Synchronization

/// When the log calls fdatasync (see ARCHITECTURE.md, "fsync policy").
public enum FsyncPolicy: String, Sendable, CaseIterable {
    /// Before every acknowledgement (group commit amortises it).
    case always
    /// On a timer (`--fsync-interval-ms`); acknowledgements wait only for write(2).
    case interval
    /// Never explicitly; the OS writes back.
    case never
}

/// A record too large for a block the reader accepts; nothing of the append was written.
public struct RecordTooLarge: Error, CustomStringConvertible, Sendable {
    public var index: Int
    public var bytes: Int
    public var limit: Int
    public var description: String { "record \(index) is \(bytes) bytes, the limit is \(limit)" }
}

/// What recovery found, for logs and metrics.
public struct RecoveryReport: Sendable {
    public var segments = 0
    /// Sealed segments not scanned (covered by the checkpoint and their index files).
    public var skippedSegments = 0
    public var blocks = 0
    public var records = 0
    public var bytes = 0
    /// Bytes cut from the tail of the last segment (a torn write).
    public var truncatedBytes = 0
    /// Corrupt regions skipped in the middle of the log (bit rot), and their size.
    public var corruptBlocks = 0
    public var corruptBytes = 0
    /// Segments whose 16-byte header was damaged; their blocks were recovered all the same.
    public var corruptHeaders = 0
    public var messages: [String] = []
}

/// The append-only, segmented log in `DIR/log/<UTC day>/<segment>.seg`.
///
/// Segment file: a 16-byte header (`"STLSEG"`, u16 format version, u32 segment number,
/// u32 CRC32C of the previous 12 bytes) followed by blocks (`BlockCodec`).
/// Segment numbers grow across days; a block never spans two days or two segments.
///
/// Threading: `recover`, `append`, `sync` and `applyRetention` are called by one writer
/// thread; `readBlock` may be called concurrently from any thread.
public final class SegmentedLog: @unchecked Sendable {
    public static let segmentMagic: [UInt8] = Array("STLSEG".utf8)
    public static let segmentVersion: UInt16 = 1
    public static let segmentHeaderBytes = 16

    public let directory: String
    public let limits: Limits
    /// The reader's bound on one block's payload, the same number the writer keeps to.
    var maxPayloadBytes: Int { limits.blockPayloadBytesMax }

    struct Segment {
        var number: UInt32
        var day: String
        var path: String
    }

    struct Shared {
        var segments: [UInt32: Segment] = [:]
        var readFDs: [UInt32: Int32] = [:]
    }
    let shared = Mutex(Shared())

    // Writer-thread state.
    var active: Segment?
    var activeFD: Int32 = -1
    var activeSize = 0
    var nextSeq: UInt64 = 1
    var nextSegment: UInt32 = 1
    public private(set) var dirty = false
    /// Total bytes of all segments.
    public private(set) var totalBytes = 0

    public init(directory: String, limits: Limits = Limits()) {
        self.directory = directory
        self.limits = limits
    }

    deinit {
        if activeFD >= 0 { close(activeFD) }
        shared.withLock { s in for fd in s.readFDs.values { close(fd) } }
    }

    var logDir: String { directory + "/log" }

    func segmentPath(day: String, number: UInt32) -> String {
        let n = String(number)
        return "\(logDir)/\(day)/\(String(repeating: "0", count: max(0, 10 - n.count)))\(n).seg"
    }

    public var lastSeq: UInt64 { nextSeq - 1 }

    // MARK: Recovery

    /// Opens the log, scanning every segment in order and passing each valid record to `visit`
    /// with its location and sequence number. A torn or corrupt tail of the last segment is cut
    /// off; corrupt regions in the middle are skipped and reported.
    ///
    /// `skip`: sealed segments not to scan (a checkpoint and their index files cover them); they
    /// are opened for reads as they are. `nextSeqAtLeast`: the sequence numbers they hold end before it.
    public func recover(skip: (UInt32) -> Bool = { _ in false }, nextSeqAtLeast: UInt64 = 1,
                        _ visit: (Record, RecordLocation, UInt64) -> Void) throws -> RecoveryReport {
        try FileIO.mkdirs(logDir)
        var report = RecoveryReport()
        let found = discover().map { Segment(number: $0.number, day: $0.day, path: $0.path) }
        var lastHeaderDamaged = false
        nextSeq = max(nextSeq, nextSeqAtLeast)
        for (i, seg) in found.enumerated() {
            let isLast = i == found.count - 1
            if !isLast && skip(seg.number) {
                shared.withLock { $0.segments[seg.number] = seg }
                report.skippedSegments += 1
                totalBytes += FileIO.fileSize(seg.path) ?? 0
                nextSegment = max(nextSegment, seg.number + 1)
                continue
            }
            let scanned = try scan(seg, isLast: isLast, report: &report, visit: visit)
            let (validEnd, fileSize) = (scanned.validEnd, scanned.size)
            if isLast { lastHeaderDamaged = scanned.headerDamaged }
            if validEnd < fileSize && isLast && !scanned.headerDamaged {
                let fd = try FileIO.openFile(seg.path, flags: O_RDWR)
                defer { close(fd) }
                try FileIO.truncate(fd, to: validEnd, path: seg.path)
                try FileIO.sync(fd, path: seg.path)
                report.truncatedBytes += fileSize - validEnd
                report.messages.append("cut \(fileSize - validEnd) bytes of torn tail from \(seg.path) at offset \(validEnd)")
            }
            shared.withLock { $0.segments[seg.number] = seg }
            report.segments += 1
            totalBytes += scanned.headerDamaged ? fileSize : min(validEnd, fileSize)
            nextSegment = max(nextSegment, seg.number + 1)
        }
        // A segment with a damaged header is read but never written again (appends roll a new
        // segment): nothing in it is cut, so a block that recovery could not read stays on disk.
        if let last = found.last, !lastHeaderDamaged {
            active = last
            activeFD = try FileIO.openFile(last.path, flags: O_RDWR)
            activeSize = try FileIO.size(activeFD, path: last.path)
            if activeSize < Self.segmentHeaderBytes {
                // A segment whose header itself was torn (a crash while it was created, before
                // any block): rewrite the header.
                try writeSegmentHeader(fd: activeFD, number: last.number, path: last.path)
                activeSize = Self.segmentHeaderBytes
            }
        }
        return report
    }

    /// Scans one segment: the offset after its last valid block, the file size, and whether its
    /// header was damaged. A damaged header does not hide the blocks behind it: blocks carry their
    /// own magic and checksums, so they are read from offset 16 as usual.
    func scan(_ seg: Segment, isLast: Bool, report: inout RecoveryReport,
              visit: (Record, RecordLocation, UInt64) -> Void) throws -> (validEnd: Int, size: Int, headerDamaged: Bool) {
        let fd = try FileIO.openFile(seg.path, flags: O_RDONLY)
        defer { close(fd) }
        let size = try FileIO.size(fd, path: seg.path)
        let bytes = try FileIO.readAll(fd, count: size, at: 0, path: seg.path)
        return bytes.withUnsafeBytes { buf -> (validEnd: Int, size: Int, headerDamaged: Bool) in
            // Shorter than a header: torn while the segment was created, before any block.
            guard size >= Self.segmentHeaderBytes else { return (size, size, false) }
            let damaged = !checkSegmentHeader(buf, number: seg.number)
            if damaged {
                report.corruptHeaders += 1
                report.messages.append("segment \(seg.path) has a damaged header; its blocks are recovered and it takes no more appends")
            }
            var offset = Self.segmentHeaderBytes
            var validEnd = offset
            while offset < buf.count {
                if let (h, recs) = try? BlockCodec.decode(UnsafeRawBufferPointer(rebasing: buf[offset...]), maxPayloadBytes: maxPayloadBytes) {
                    for (i, r) in recs.enumerated() {
                        let seq = h.firstSeq + UInt64(i)
                        visit(r, RecordLocation(segment: seg.number, blockOffset: UInt64(offset), index: UInt32(i)), seq)
                        nextSeq = max(nextSeq, seq + 1)
                    }
                    report.blocks += 1
                    report.records += recs.count
                    report.bytes += h.totalBytes
                    offset += h.totalBytes
                    validEnd = offset
                    continue
                }
                // Invalid block: is there a valid block further on (corruption in the middle)?
                if let next = nextValidBlock(buf, after: offset) {
                    report.corruptBlocks += 1
                    report.corruptBytes += next - offset
                    report.messages.append("skipped \(next - offset) corrupt bytes in \(seg.path) at offset \(offset)")
                    offset = next
                    continue
                }
                if !isLast || damaged {
                    report.corruptBlocks += 1
                    report.corruptBytes += buf.count - offset
                    report.messages.append("ignored \(buf.count - offset) invalid bytes at the end of \(seg.path) from offset \(offset)")
                }
                break
            }
            return (validEnd, size, damaged)
        }
    }

    func nextValidBlock(_ buf: UnsafeRawBufferPointer, after offset: Int) -> Int? {
        let m = BlockCodec.magic
        var i = offset + 1
        while i + BlockCodec.headerBytes <= buf.count {
            if buf[i] == m[0] && buf[i + 1] == m[1] && buf[i + 2] == m[2] && buf[i + 3] == m[3],
               (try? BlockCodec.decode(UnsafeRawBufferPointer(rebasing: buf[i...]), maxPayloadBytes: maxPayloadBytes)) != nil {
                return i
            }
            i += 1
        }
        return nil
    }

    func checkSegmentHeader(_ buf: UnsafeRawBufferPointer, number: UInt32) -> Bool {
        guard buf.count >= Self.segmentHeaderBytes else { return false }
        for i in 0..<6 where buf[i] != Self.segmentMagic[i] { return false }
        var r = ByteReader(buf, offset: 6)
        guard let v = r.u16(), let n = r.u32(), let crc = r.u32() else { return false }
        return v == Self.segmentVersion && n == number
            && CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buf[0..<12])) == crc
    }

    func writeSegmentHeader(fd: Int32, number: UInt32, path: String) throws {
        var h = Self.segmentMagic
        h.appendLE(Self.segmentVersion)
        h.appendLE(number)
        let crc = CRC32C.checksum(h)
        h.appendLE(crc)
        try h.withUnsafeBytes { (b) throws in try FileIO.writeAll(fd, b, at: 0, path: path) }
        try FileIO.truncate(fd, to: Self.segmentHeaderBytes, path: path)
    }

    // MARK: Appending

    func roll(day: String) throws {
        if activeFD >= 0 {
            try FileIO.sync(activeFD, path: active?.path ?? "")
            close(activeFD)
            activeFD = -1
        }
        let number = nextSegment
        let dayDir = "\(logDir)/\(day)"
        try FileIO.mkdirs(dayDir)
        let path = segmentPath(day: day, number: number)
        let fd = try FileIO.openFile(path, flags: O_RDWR | O_CREAT | O_TRUNC)
        do {
            try writeSegmentHeader(fd: fd, number: number, path: path)
            try FileIO.sync(fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        FileIO.syncDirectory(dayDir)
        FileIO.syncDirectory(logDir)
        nextSegment += 1
        let seg = Segment(number: number, day: day, path: path)
        active = seg
        activeFD = fd
        activeSize = Self.segmentHeaderBytes
        totalBytes += Self.segmentHeaderBytes
        shared.withLock { $0.segments[number] = seg }
    }

    /// Appends records as one or more blocks with a single write, returning each record's
    /// location and sequence number. On failure nothing is appended (the file is cut back).
    ///
    /// A block is closed before a record that would take its payload past
    /// `Limits.blockPayloadBytesMax` (what the reader accepts) and once it reaches
    /// `blockRecordsMax` records or `blockBytesMax` bytes. A record over `recordBytesMax` is
    /// refused (`RecordTooLarge`) before anything is written: it could make its block unreadable.
    public func append(_ records: [Record], nowMs: Int64) throws -> [(location: RecordLocation, seq: UInt64)] {
        guard !records.isEmpty else { return [] }
        let sizes = records.map(\.encodedCount)
        if let i = sizes.firstIndex(where: { $0 > limits.recordBytesMax }) {
            throw RecordTooLarge(index: i, bytes: sizes[i], limit: limits.recordBytesMax)
        }
        let day = Timestamps.utcDay(nowMs)
        if active == nil || active!.day != day || activeSize >= limits.segmentBytesMax {
            try roll(day: day)
        }
        guard let seg = active else { return [] }
        var out: [(location: RecordLocation, seq: UInt64)] = []
        out.reserveCapacity(records.count)
        var bytes: [UInt8] = []
        var payload: [UInt8] = []
        var payloadCount = 0
        var blockFirstSeq = nextSeq
        var seq = nextSeq
        let start = activeSize
        func flushBlock() {
            guard payloadCount > 0 else { return }
            bytes.append(contentsOf: BlockCodec.encode(records: payload, count: payloadCount, firstSeq: blockFirstSeq))
            payload.removeAll(keepingCapacity: true)
            payloadCount = 0
        }
        for (r, size) in zip(records, sizes) {
            if payloadCount > 0 && (payloadCount >= limits.blockRecordsMax || payload.count >= limits.blockBytesMax
                                    || payload.count + size > maxPayloadBytes) {
                flushBlock()
            }
            if payloadCount == 0 { blockFirstSeq = seq }
            r.encode(into: &payload)
            out.append((RecordLocation(segment: seg.number, blockOffset: UInt64(start + bytes.count), index: UInt32(payloadCount)), seq))
            payloadCount += 1
            seq += 1
        }
        flushBlock()
        do {
            try bytes.withUnsafeBytes { (b) throws in try FileIO.writeAll(activeFD, b, at: start, path: seg.path) }
        } catch {
            // Leave no partial block behind: a later successful append must follow valid bytes.
            try? FileIO.truncate(activeFD, to: start, path: seg.path)
            throw error
        }
        activeSize += bytes.count
        totalBytes += bytes.count
        nextSeq = seq
        dirty = true
        return out
    }

    /// fdatasync of the active segment, if anything was written since the last one.
    public func sync() throws {
        guard dirty, activeFD >= 0 else { return }
        try FileIO.sync(activeFD, path: active?.path ?? "")
        dirty = false
    }

    /// For an fdatasync off the writer thread (`--fsync interval`): a duplicate of the active
    /// segment's descriptor (a rotation that closes the original cannot close it under the
    /// syncing thread) and the segment's path, or nil when nothing was written since the last
    /// sync. Call where appends happen; the caller syncs and closes the descriptor.
    public func takeSyncHandle() -> (fd: Int32, path: String)? {
        guard dirty, activeFD >= 0 else { return nil }
        let d = dup(activeFD)
        guard d >= 0 else { return nil }
        dirty = false
        return (d, active?.path ?? "")
    }

    /// fdatasync and close of a handle from `takeSyncHandle` (any thread).
    public static func syncAndClose(_ handle: (fd: Int32, path: String)) throws {
        defer { close(handle.fd) }
        try FileIO.sync(handle.fd, path: handle.path)
    }

    // MARK: Reading

    /// Reads and verifies one block. Safe to call from any thread.
    public func readBlock(segment: UInt32, offset: UInt64) throws -> [Record] {
        guard let (h, payload) = try readStored(segment: segment, offset: offset) else { throw BlockCodec.DecodeError.truncated }
        return try payload.withUnsafeBytes { (b) throws in try BlockCodec.records(header: h, payload: b) }
    }

    /// Reads one block and returns its verified, uncompressed payload (records undecoded).
    public func readRawBlock(segment: UInt32, offset: UInt64) throws -> [UInt8] {
        guard let (h, payload) = try readStored(segment: segment, offset: offset) else { throw BlockCodec.DecodeError.truncated }
        return try payload.withUnsafeBytes { (b) throws in try BlockCodec.rawPayload(header: h, payload: b) }
    }

    /// `readRawBlock` if the block is in the page cache; nil if reading it would wait for the disk.
    public func readRawBlockIfCached(segment: UInt32, offset: UInt64) throws -> [UInt8]? {
        guard let (h, payload) = try readStored(segment: segment, offset: offset, cachedOnly: true) else { return nil }
        return try payload.withUnsafeBytes { (b) throws in try BlockCodec.rawPayload(header: h, payload: b) }
    }

    /// The segments known to the log (sealed and active), in order. Safe from any thread.
    /// The UTC days that have segments, oldest first.
    public var days: [String] { Array(Set(shared.withLock { $0.segments.values.map(\.day) })).sorted() }

    /// The UTC day (`YYYY-MM-DD`) a segment belongs to, if it exists.
    public func segmentDay(_ number: UInt32) -> String? { shared.withLock { $0.segments[number]?.day } }

    public var segmentNumbers: [UInt32] { shared.withLock { Array($0.segments.keys) }.sorted() }

    /// The current size of a known segment's file (nil once retention removed it).
    public func segmentBytes(_ number: UInt32) -> Int? {
        shared.withLock { $0.segments[number] }.flatMap { FileIO.fileSize($0.path) }
    }

    /// Reads and verifies the block at `offset` for a sequential scan: its records and the
    /// offset of the block after it. Safe to call from any thread.
    public func readBlockForScan(segment: UInt32, offset: UInt64) throws -> (records: [Record], next: UInt64) {
        guard let (h, payload) = try readStored(segment: segment, offset: offset) else { throw BlockCodec.DecodeError.truncated }
        let records = try payload.withUnsafeBytes { (b) throws in try BlockCodec.records(header: h, payload: b) }
        return (records, offset + UInt64(h.totalBytes))
    }

    /// The offset of the first valid block after `offset` and before `end` in a segment (a scan
    /// met a block it could not read: recovery skips such regions the same way). Reads the
    /// region whole: a rare path.
    public func nextValidBlock(segment: UInt32, after offset: UInt64, end: Int) throws -> UInt64? {
        guard let path = shared.withLock({ $0.segments[segment]?.path }), let start = Int(exactly: offset), start < end else { return nil }
        let fd = try FileIO.openFile(path, flags: O_RDONLY)
        defer { close(fd) }
        let count = min(end, try FileIO.size(fd, path: path)) - start
        guard count > 0 else { return nil }
        let bytes = try FileIO.readAll(fd, count: count, at: start, path: path)
        return bytes.withUnsafeBytes { buf in nextValidBlock(buf, after: 0) }.map { offset + UInt64($0) }
    }

    func readStored(segment: UInt32, offset: UInt64, cachedOnly: Bool = false) throws -> (BlockCodec.Header, [UInt8])? {
        let (fd, path): (Int32, String) = try shared.withLock { s in
            guard let seg = s.segments[segment] else { throw LogIOError(operation: "read", path: "segment \(segment)", errno: ENOENT) }
            if let fd = s.readFDs[segment] { return (fd, seg.path) }
            let fd = try FileIO.openFile(seg.path, flags: O_RDONLY)
            s.readFDs[segment] = fd
            return (fd, seg.path)
        }
        guard let off = Int(exactly: offset) else { throw BlockCodec.DecodeError.badLength }
        func read(_ count: Int, at position: Int) throws -> [UInt8]? {
            cachedOnly ? try FileIO.readCached(fd, count: count, at: position, path: path)
                : try FileIO.readAll(fd, count: count, at: position, path: path)
        }
        guard let head = try read(BlockCodec.headerBytes, at: off) else { return nil }
        let h = try head.withUnsafeBytes { (b) throws in try BlockCodec.header(b, maxPayloadBytes: maxPayloadBytes) }
        guard let payload = try read(h.storedBytes, at: off + BlockCodec.headerBytes) else { return nil }
        return (h, payload)
    }

    // MARK: Retention

    /// Deletes (or first moves to `archive`) every day directory older than `keepDays` days,
    /// never the day being written. Returns the removed days and their segment numbers.
    /// `throughSegment`: only days whose segments are all numbered at most this are removed; the
    /// others wait (`waiting` true).
    public func applyRetention(keepDays: Int, nowMs: Int64, archive: String?,
                               throughSegment: UInt32? = nil) throws -> (days: [String], segments: Set<UInt32>, waiting: Bool) {
        let dayMs: Int64 = 86_400_000
        let cutoff = nowMs - Int64(keepDays) * dayMs
        var days: [String] = []
        var removed = Set<UInt32>()
        var waiting = false
        for day in FileIO.list(logDir).sorted() {
            guard let start = Timestamps.parseUTCDay(day), start + dayMs <= cutoff, day != active?.day else { continue }
            if let limit = throughSegment,
               shared.withLock({ s in s.segments.values.contains { $0.day == day && $0.number > limit } }) {
                waiting = true
                continue
            }
            let victims: [UInt32] = shared.withLock { s in
                let v = s.segments.values.filter { $0.day == day }.map(\.number)
                for n in v {
                    if let fd = s.readFDs.removeValue(forKey: n) { close(fd) }
                    s.segments.removeValue(forKey: n)
                }
                return v
            }
            let path = "\(logDir)/\(day)"
            let size = FileIO.list(path).reduce(0) { acc, name in
                var st = stat()
                return acc + (stat(path + "/" + name, &st) == 0 ? Int(st.st_size) : 0)
            }
            if let archive {
                try FileIO.mkdirs(archive)
                let dest = "\(archive)/\(day)"
                try? FileIO.removeTree(dest)
                try FileIO.move(path, to: dest)
            } else {
                try FileIO.removeTree(path)
            }
            totalBytes = max(0, totalBytes - size)
            days.append(day)
            removed.formUnion(victims)
        }
        if !days.isEmpty { FileIO.syncDirectory(logDir) }
        return (days, removed, waiting)
    }

    /// Closes the files (the writer calls `sync` first).
    public func closeFiles() {
        if activeFD >= 0 {
            _ = fdatasync(activeFD)
            close(activeFD)
            activeFD = -1
        }
    }
}
