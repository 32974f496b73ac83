/// The event ids a node deduplicates against: every event folded during the last `windowMs` of
/// log time (the newest `received_at` folded so far), keyed by a 64-bit hash of scope and id.
///
/// A hash is only a candidate: `NodeIndex.storedCopy` confirms it against the stored record's
/// own id and scope, so two different ids that share a hash are both stored (a colliding key
/// keeps every ref it was given, in `more`). Memory is bounded by the window, not by the log:
/// entries leave in the order they came, once log time has moved `windowMs` past their arrival.
/// Pure and deterministic: time comes from the records, so replaying the log rebuilds it.
public struct DedupeWindow: Sendable {
    public let windowMs: Int64
    var first: [UInt64: EventRef] = [:]
    /// Further refs of keys already in `first` (hash collisions and repeats beyond the window).
    var more: [UInt64: [EventRef]] = [:]
    /// Arrival order: key, ref seq and the log time at arrival.
    var order: [(key: UInt64, seq: UInt64, at: Int64)] = []
    var head = 0
    /// The newest `received_at` folded (log time).
    public internal(set) var newest: Int64 = .min

    public init(windowMs: Int64) { self.windowMs = max(0, windowMs) }

    /// Entries held.
    public var count: Int { order.count - head }

    /// Log time before which arrivals may have been forgotten.
    public var start: Int64 { newest == .min ? .min : TimeMath.subtract(newest, windowMs) }

    public static func key(_ eventID: String, in scope: SubjectKey) -> UInt64 {
        // 0xFF never occurs in UTF-8, so (scope, id) pairs cannot run into each other.
        var h = StableHash.offsetBasis
        for b in scope.ringKey.utf8 { h = (h ^ UInt64(b)) &* StableHash.prime }
        h = (h ^ 0xFF) &* StableHash.prime
        for b in eventID.utf8 { h = (h ^ UInt64(b)) &* StableHash.prime }
        return h
    }

    /// Refs that may hold this id (to be confirmed by reading them), oldest first.
    public func candidates(_ key: UInt64) -> [EventRef] {
        guard let f = first[key] else { return [] }
        return [f] + (more[key] ?? [])
    }

    public mutating func insert(_ key: UInt64, _ ref: EventRef) {
        newest = max(newest, ref.receivedAt)
        if first[key] == nil {
            first[key] = ref
        } else {
            more[key, default: []].append(ref)
        }
        order.append((key, ref.seq, newest))
        prune()
    }

    /// Forgets arrivals older than the window; compacts the arrival list now and then.
    mutating func prune() {
        let limit = start
        while head < order.count && order[head].at < limit {
            let (key, seq, _) = order[head]
            head += 1
            if first[key]?.seq == seq {
                if var rest = more[key], !rest.isEmpty {
                    first[key] = rest.removeFirst()
                    more[key] = rest.isEmpty ? nil : rest
                } else {
                    first[key] = nil
                }
            } else if var rest = more[key], let i = rest.firstIndex(where: { $0.seq == seq }) {
                rest.remove(at: i)
                more[key] = rest.isEmpty ? nil : rest
            }
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Drops refs into deleted segments (retention): nothing is left there to confirm against.
    public mutating func forget(segments: Set<UInt32>) {
        first = first.filter { !segments.contains($0.value.location.segment) }
        more = more.compactMapValues { list in
            let kept = list.filter { !segments.contains($0.location.segment) }
            return kept.isEmpty ? nil : kept
        }
        for (k, list) in more where first[k] == nil {
            first[k] = list[0]
            more[k] = list.count > 1 ? Array(list.dropFirst()) : nil
        }
        var kept = Set(first.values.map(\.seq))
        for list in more.values { kept.formUnion(list.map(\.seq)) }
        order = order[head...].filter { kept.contains($0.seq) }
        head = 0
    }
}
