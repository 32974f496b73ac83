import StarlingCluster
import StarlingCore
import StarlingLog

/// Where the next catch-up page starts. On the wire it is the cursor's `key` (its `skip` is 0):
/// only the node that made it reads it back. A token it cannot read (from another release)
/// starts over; the requester's store drops what it already holds.
enum CatchUpPosition: Equatable {
    /// Identity links, from key hash `hash` on, past the first `skip` links of that hash.
    case links(hash: UInt64, skip: Int)
    /// The log, from record `index` of the block at `offset` of `segment`.
    case log(segment: UInt32, offset: UInt64, index: Int)

    static let start = CatchUpPosition.links(hash: 0, skip: 0)

    var token: String {
        switch self {
        case .links(let hash, let skip): return "L1:\(String(hash, radix: 16)):\(skip)"
        case .log(let segment, let offset, let index): return "G1:\(segment):\(offset):\(index)"
        }
    }

    init?(token: String) {
        let parts = token.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.first {
        case "L1"?:
            guard parts.count == 3, let hash = UInt64(parts[1], radix: 16), let skip = Int(parts[2]), skip >= 0 else { return nil }
            self = .links(hash: hash, skip: skip)
        case "G1"?:
            guard parts.count == 4, let segment = UInt32(parts[1]), let offset = UInt64(parts[2]), let index = Int(parts[3]),
                  index >= 0 else { return nil }
            self = .log(segment: segment, offset: offset, index: index)
        default:
            return nil
        }
    }
}

/// Catch-up reads: what a peer should hold, page by page, without walking the sessions.
///
/// A page first sends identity links (they live in memory: a link outlives the days of the
/// records that made it), in key-hash order; then it streams the log in order, block by block,
/// and sends each event received at or after `since` whose routing key `wants`. Each block is
/// read once per catch-up, sequentially; sealed segments whose index says nothing in them is
/// that recent are skipped, and in the open segment the scan starts at a `ScanMarks` mark (the
/// anti-entropy pass asks for two minutes). Link records in the log are not sent a second time.
extension Engine {
    /// Stored bytes of log a page scans at most (a page that finds little returns early with its
    /// cursor, so a selective catch-up never outlasts the request's timeout).
    public static let catchUpScanBytesMax = 8 << 20

    struct CatchUpPage {
        let maxRecords: Int
        let maxBytes: Int
        var records: [Record] = []
        var bytes = 0

        /// True when `r` does not fit (a page always takes its first record).
        func full(adding r: Record) -> Bool {
            !records.isEmpty && (bytes + r.encodedCount > maxBytes || records.count >= maxRecords)
        }

        mutating func add(_ r: Record) {
            records.append(r)
            bytes += r.encodedCount
        }
    }

    /// One page of catch-up for a peer: links, then events received at or after `since` whose
    /// routing key (`session`, `u:user`, `t:terminal`) `wants`; at most about `maxRecords` records
    /// and at most `maxBytes` bytes of them. Returns the records and where to continue (nil when done).
    public func catchUp(wants: (String) -> Bool, since: Int64, from: CatchUpCursor?, maxRecords: Int,
                        maxBytes: Int = .max, scanBytesMax: Int = Engine.catchUpScanBytesMax) -> ([Record], CatchUpCursor?) {
        var page = CatchUpPage(maxRecords: maxRecords, maxBytes: maxBytes)
        var position = from.flatMap { CatchUpPosition(token: $0.key) } ?? .start
        if case .links(let hash, let skip) = position {
            if let next = catchUpLinks(wants: wants, since: since, hash: hash, skip: skip, into: &page) {
                return (page.records, CatchUpCursor(key: next.token, skip: 0))
            }
            position = .log(segment: 0, offset: 0, index: 0)
        }
        guard case .log(let segment, let offset, let index) = position else { return (page.records, nil) }
        let next = catchUpLog(wants: wants, since: since, segment: segment, offset: offset, index: index,
                              scanBytesMax: scanBytesMax, into: &page)
        return (page.records, next.map { CatchUpCursor(key: $0.token, skip: 0) })
    }

    /// Links of the identities `wants` with a link made at or after `since`, from key hash `hash`
    /// on (items of one hash: identities by key, each one's links in the order made; new links
    /// are appended, so a `skip` stays right). nil when every link was sent.
    func catchUpLinks(wants: (String) -> Bool, since: Int64, hash: UInt64, skip: Int, into page: inout CatchUpPage) -> CatchUpPosition? {
        typealias Found = (hash: UInt64, key: String, subject: SubjectKey, links: [NodeIndex.Link])
        var found: [Found] = []
        // Under the index lock only cheap work: a time test, then the key's hash.
        index.withLock { idx in
            for (make, map) in [(SubjectKey.user, idx.users), (SubjectKey.terminal, idx.terminals)] {
                for (id, e) in map where e.newestReceivedAt >= since && !e.links.isEmpty {
                    let subject = make(id)
                    let key = subject.ringKey
                    let h = StableHash.fnv1a64(key)
                    if h >= hash { found.append((h, key, subject, e.links)) }
                }
            }
        }
        found.removeAll { !wants($0.key) }
        found.sort { $0.hash != $1.hash ? $0.hash < $1.hash : $0.key < $1.key }
        var (current, item) = (hash, 0)
        for f in found {
            if f.hash != current { (current, item) = (f.hash, 0) }
            var (userID, terminalID) = ("", "")
            switch f.subject {
            case .user(let u): userID = u
            case .terminal(let t): terminalID = t
            case .session: break
            }
            for l in f.links {
                defer { item += 1 }
                guard l.linkedAt >= since, !(current == hash && item < skip) else { continue }
                let r = Record(kind: .link, ts: l.linkedAt, receivedAt: l.linkedAt, sessionID: l.sessionID, userID: userID, terminalID: terminalID)
                if page.full(adding: r) { return .links(hash: current, skip: item) }
                page.add(r)
            }
        }
        return nil
    }

    /// Streams the log from record `index` of the block at `offset` of `segment` (0: the first
    /// segment). nil when the end of the log was reached.
    func catchUpLog(wants: (String) -> Bool, since: Int64, segment first: UInt32, offset resume: UInt64, index resumeIndex: Int,
                    scanBytesMax: Int, into page: inout CatchUpPage) -> CatchUpPosition? {
        let headers = sealed.headers
        let marks = index.withLock { $0.scanMarks }
        let segments = log.segmentNumbers
        var scanned = 0
        for (n, segment) in segments.enumerated() where segment >= first {
            var offset = UInt64(SegmentedLog.segmentHeaderBytes)
            var skip = 0
            if segment == first && resume > 0 {
                (offset, skip) = (resume, resumeIndex)
            } else {
                // Nothing received that recently in this sealed segment (its index says so).
                if let h = headers[segment], h.count == 0 || h.maxReceivedAt < since { continue }
                offset = max(offset, marks.start(in: segment, since: since) ?? 0)
            }
            guard let end = log.segmentBytes(segment) else { continue }   // removed by retention meanwhile
            while offset < UInt64(end) {
                let block: (records: [Record], next: UInt64)
                do {
                    block = try log.readBlockForScan(segment: segment, offset: offset)
                } catch {
                    // A block being appended right now, at the end of the newest segment, reads as
                    // torn: the requester gets it by replication. Anything else is damage that
                    // recovery skipped too: go on at the next valid block.
                    let next = try? log.nextValidBlock(segment: segment, after: offset, end: end)
                    if next != nil || n < segments.count - 1 {
                        logger.warning("catch-up: unreadable block in segment \(segment) at offset \(offset): \(error)")
                        metrics.catchUpScanErrors.increment()
                    }
                    guard let next else { break }
                    offset = next
                    continue
                }
                for (i, r) in block.records.enumerated() where i >= skip {
                    guard r.kind == .event, r.receivedAt >= since, Self.catchUpSends(r, wants: wants) else { continue }
                    if page.full(adding: r) { return .log(segment: segment, offset: offset, index: i) }
                    page.add(r)
                }
                skip = 0
                scanned += Int(block.next - offset)
                offset = block.next
                if scanned >= scanBytesMax { return .log(segment: segment, offset: offset, index: 0) }
            }
        }
        return nil
    }

    /// Whether a catch-up sends event `r`: by its session's key; an event without a session by
    /// any identity it is listed under.
    static func catchUpSends(_ r: Record, wants: (String) -> Bool) -> Bool {
        if !r.sessionID.isEmpty { return wants(r.sessionID) }
        return NodeIndex.subjects(listing: r).contains { wants($0.ringKey) }
    }
}
