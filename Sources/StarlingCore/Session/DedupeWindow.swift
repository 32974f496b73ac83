/// The event ids a node deduplicates against: every event folded during the last `windowMs` of
/// log time (the newest `received_at` folded so far), keyed by a 64-bit hash of scope and id.
///
/// A hash is only a candidate: `NodeIndex.storedCopy` confirms it against the stored record's
/// own id and scope, so two different ids that share a hash are both stored (every arrival of a
/// key stays listed, newest to oldest through `prev`). Memory is bounded by the window, not by
/// the log: entries leave in the order they came, once log time has moved `windowMs` past their
/// arrival. About 60–70 bytes an id: a 40-byte entry in the arrival ring and one table slot.
/// Pure and deterministic: time comes from the records, so replaying the log rebuilds it.
public struct DedupeWindow: Sendable {
    /// Where a stored copy is, and when it arrived (40 bytes).
    struct Entry: Sendable {
        var key: UInt64
        var seq: UInt64
        var at: Int64
        /// Arrival number of the previous entry with the same key (older), or -1.
        var prev: Int64
        var blockOffset: UInt32
        var segment: UInt32
        var index: UInt32

        var ref: EventRef {
            EventRef(location: RecordLocation(segment: segment, blockOffset: UInt64(blockOffset), index: index), ts: 0, receivedAt: 0, seq: seq)
        }
    }

    public let windowMs: Int64
    /// Arrivals in order; `entries[i]` has arrival number `base + i`.
    var entries = ChunkedQueue<Entry>()
    var base: Int64 = 0
    /// Key → arrival number of its newest entry.
    var newestOf = HashedKeyTable()
    /// The newest `received_at` folded (log time).
    public internal(set) var newest: Int64 = .min

    public init(windowMs: Int64) { self.windowMs = max(0, windowMs) }

    /// Entries held.
    public var count: Int { entries.count }

    /// Log time before which arrivals may have been forgotten.
    public var start: Int64 { newest == .min ? .min : TimeMath.subtract(newest, windowMs) }

    public static func key(_ eventID: String, in scope: SubjectKey) -> UInt64 {
        var id = eventID
        return id.withUTF8 { key(scopeFNV: scope.ringKeyFNV, eventID: UnsafeRawBufferPointer($0)) }
    }

    /// The FNV-1a of the scope's ring key, 0xFF, the id, without building the ring key string
    /// (0xFF never occurs in UTF-8, so (scope, id) pairs cannot run into each other). The one
    /// spelling of the key, for strings and for a record's bytes (`Record.dedupeKey`).
    @inline(__always)
    static func key(scopeFNV: UInt64, eventID: UnsafeRawBufferPointer) -> UInt64 {
        StableHash.fnv1a64(continuing: StableHash.fnv1a64(continuing: scopeFNV, byte: 0xFF), bytes: eventID)
    }

    func entry(_ number: Int64) -> Entry? {
        let i = Int(number - base)
        return number >= base && i < entries.count ? entries[i] : nil
    }

    /// False when no arrival in the window has this key (then `candidates` is empty): one probe.
    public func mayHold(_ key: UInt64) -> Bool { newestOf[key] != nil }

    /// Refs that may hold this id (to be confirmed by reading them), oldest first. Only their
    /// location and seq are kept (what confirming and re-shipping a copy need).
    public func candidates(_ key: UInt64) -> [EventRef] {
        var out: [EventRef] = []
        var n = newestOf[key] ?? -1
        while n >= 0, let e = entry(n) {
            if e.key == key { out.append(e.ref) }
            n = e.prev
        }
        return out.reversed()
    }

    public mutating func insert(_ key: UInt64, _ ref: EventRef) {
        newest = max(newest, ref.receivedAt)
        append(key, ref, at: newest)
        prune()
    }

    mutating func append(_ key: UInt64, _ ref: EventRef, at: Int64) {
        let number = base + Int64(entries.count)
        let prev = newestOf.exchange(key, number) ?? -1
        entries.append(Entry(key: key, seq: ref.seq, at: at, prev: prev,
                             blockOffset: UInt32(truncatingIfNeeded: ref.location.blockOffset),
                             segment: ref.location.segment, index: ref.location.index))
    }

    /// Forgets arrivals older than the window (whole chunks of the queue are freed as they empty).
    mutating func prune() {
        let limit = start
        while let e = entries.first, e.at < limit {
            if newestOf[e.key] == base { newestOf[e.key] = nil }   // it was the key's only one left
            entries.removeFirst()
            base += 1
        }
    }

    /// Drops refs into deleted segments (retention): nothing is left there to confirm against.
    public mutating func forget(segments: Set<UInt32>) {
        let kept = entries.filter { !segments.contains($0.segment) }
        entries = ChunkedQueue()
        base = 0
        newestOf = HashedKeyTable(capacity: kept.count)
        for e in kept { append(e.key, e.ref, at: e.at) }
    }
}
