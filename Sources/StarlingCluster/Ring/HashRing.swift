import StarlingCore

/// The hash that places keys and virtual nodes on the ring.
///
/// Stable across processes, machines and releases (never Swift's `Hasher`, which is seeded
/// per process): FNV-1a 64 of the UTF-8 bytes, then the SplitMix64 finalizer. FNV-1a alone
/// mixes poorly into the high bits for short, similar strings such as `"n1#17"`; the finalizer
/// spreads every input bit over the whole word, so vnodes land uniformly.
public enum RingHash {
    public static func hash(_ s: String) -> UInt64 {
        finalize(StableHash.fnv1a64(s))
    }

    /// The hash of a subject's ring key (`SubjectKey.ringKey`), without building that string.
    public static func hash(_ key: SubjectKey) -> UInt64 {
        finalize(key.ringKeyFNV)
    }

    /// The hash of an incoming event's subject (`SubjectKey(sessionID:userID:terminalID:)`).
    public static func hash(subjectOf e: IncomingEvent) -> UInt64 {
        finalize(SubjectKey(sessionID: e.sessionID, userID: e.userID, terminalID: e.terminalID).ringKeyFNV)
    }

    /// The hash of a record's subject (an event's one subject), read from its bytes.
    public static func hash(subjectOf r: Record) -> UInt64 {
        finalize(r.subjectFNV)
    }

    static func finalize(_ fnv: UInt64) -> UInt64 {
        var z = fnv
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A consistent-hash ring of member ids with `vnodes` virtual nodes each.
///
/// Vnode `i` of member `m` sits at `RingHash.hash("\(m)#\(i)")`. A key belongs to the first vnode
/// at or clockwise after `RingHash.hash(key)`, wrapping past 2^64 - 1 to 0. Equal positions are
/// ordered by member id (UTF-8 byte order), so the result depends only on the set of ids, never on
/// the order they were given in. Adding a member only moves keys to it; removing one only moves
/// its own keys.
public struct HashRing: Sendable, Equatable {
    /// 2048 keeps every member within a few percent of its fair share: with v vnodes the share of
    /// a member varies by about 1/sqrt(v) (256 vnodes: ~6%, so ±10% fails for ordinary ids).
    public static let defaultVnodes = 2048
    /// `vnodes` is clamped to `1...vnodesMax` (1024 members x 4096 vnodes is 4 M points, the most we build).
    public static let vnodesMax = 4096

    /// Distinct member ids in UTF-8 byte order.
    public let members: [String]
    public let vnodes: Int
    /// Vnode positions, ascending; `owners[i]` is the index in `members` of the vnode at `points[i]`.
    private let points: [UInt64]
    private let owners: [Int32]
    /// `bucketStart[k]`: the index of the first point whose top `bucketBits` bits are ≥ k (and
    /// `points.count` at the end), so a lookup searches only its bucket's few points instead of
    /// the whole array (about one point per bucket: the binary search over all of them was a
    /// measured share of every routed and replicated record).
    private let bucketStart: [Int32]
    private let bucketBits: Int

    public init(members: [String], vnodes: Int = HashRing.defaultVnodes) {
        let ids = HashRing.distinctSorted(members)
        let v = min(max(vnodes, 1), HashRing.vnodesMax)
        var placed: [(point: UInt64, owner: Int32)] = []
        placed.reserveCapacity(ids.count * v)
        for (index, id) in ids.enumerated() {
            for i in 0..<v {
                placed.append((RingHash.hash("\(id)#\(i)"), Int32(index)))
            }
        }
        // Member indexes follow id order, so sorting ties by index breaks them by id.
        placed.sort { $0.point != $1.point ? $0.point < $1.point : $0.owner < $1.owner }
        self.members = ids
        self.vnodes = v
        self.points = placed.map(\.point)
        self.owners = placed.map(\.owner)
        // 2^bits buckets for about one point each, within 2^4 ... 2^20.
        let bits = min(max(Int.bitWidth - max(placed.count, 1).leadingZeroBitCount, 4), 20)
        var starts = [Int32](repeating: 0, count: (1 << bits) + 1)
        var i = 0
        for k in 0..<(1 << bits) {
            while i < placed.count && Int(placed[i].point >> UInt64(64 - bits)) < k { i += 1 }
            starts[k] = Int32(i)
        }
        starts[1 << bits] = Int32(placed.count)
        self.bucketStart = starts
        self.bucketBits = bits
    }

    public static func == (a: HashRing, b: HashRing) -> Bool {
        a.members == b.members && a.vnodes == b.vnodes
    }

    public var isEmpty: Bool { members.isEmpty }

    /// The owner of `key`: the member of the first vnode clockwise from `hash(key)`. nil when empty.
    public func owner(of key: String) -> String? {
        guard !points.isEmpty else { return nil }
        if members.count == 1 { return members[0] }   // a ring of one owns every key: no hashing
        return members[Int(owners[startIndex(for: RingHash.hash(key))])]
    }

    /// The index in `members` of the owner of a key whose `RingHash` is `h`; nil when empty.
    public func ownerIndex(ofHash h: @autoclosure () -> UInt64) -> Int? {
        guard !points.isEmpty else { return nil }
        if members.count == 1 { return 0 }   // a ring of one owns every key: no hashing
        return Int(owners[startIndex(for: h())])
    }

    /// The index of `id` in `members`, nil when it is not a member (ids compare by UTF-8 bytes).
    public func memberIndex(_ id: String) -> Int? {
        members.firstIndex { $0.utf8.elementsEqual(id.utf8) }
    }

    /// Up to `count` distinct members, walking clockwise from the owner (the owner first).
    public func replicas(of key: String, count: Int) -> [String] {
        var out: [String] = []
        out.reserveCapacity(min(max(count, 0), members.count))
        forEachReplica(ofHash: RingHash.hash(key), count: count) { out.append(members[$0]); return true }
        return out
    }

    /// Calls `body` with the index in `members` of up to `count` distinct members, walking
    /// clockwise from the owner of hash `h` (the owner first), as `replicas` lists them; stops
    /// when `body` returns false. Allocates nothing for rings of up to 64 members (it runs for
    /// every replicated record, on the owner and on the follower).
    public func forEachReplica(ofHash h: UInt64, count: Int, _ body: (Int) -> Bool) {
        guard count > 0, !points.isEmpty else { return }
        let wanted = min(count, members.count)
        var found = 0
        var i = startIndex(for: h)
        var visited = 0
        // Members seen: a bit each up to 64 members, else a flag array (the only allocation).
        var mask: UInt64 = 0
        var wide = members.count > 64 ? [Bool](repeating: false, count: members.count) : []
        func firstSight(_ m: Int) -> Bool {
            if wide.isEmpty {
                defer { mask |= 1 << UInt64(m) }
                return mask & (1 << UInt64(m)) == 0
            }
            defer { wide[m] = true }
            return !wide[m]
        }
        while found < wanted && visited < points.count {
            let owner = Int(owners[i])
            if firstSight(owner) {
                found += 1
                if !body(owner) { return }
            }
            i = i + 1 == points.count ? 0 : i + 1
            visited += 1
        }
    }

    /// The fraction of the 2^64 hash space each member owns (the values sum to 1).
    /// The vnode at `points[i]` owns the arc `(points[i-1], points[i]]`; the first one also owns the
    /// wrap-around arc past the last point.
    public func ownedShare() -> [String: Double] {
        guard let first = points.first, let last = points.last else { return [:] }
        let space = 18_446_744_073_709_551_616.0  // 2^64
        var arcs = [Double](repeating: 0, count: members.count)
        if first == last {
            // Every vnode sits on one position: its first holder owns everything.
            arcs[Int(owners[0])] = space
        } else {
            arcs[Int(owners[0])] += Double(first &- last)  // wraps: (last, 2^64) plus [0, first]
            for i in 1..<points.count {
                arcs[Int(owners[i])] += Double(points[i] - points[i - 1])
            }
        }
        var share: [String: Double] = [:]
        for (index, id) in members.enumerated() {
            share[id] = arcs[index] / space
        }
        return share
    }

    /// Index of the first point `>= h`, wrapping to 0 past the end. Searches h's bucket: every
    /// point before it is smaller than h, and the first point of the next bucket is larger.
    private func startIndex(for h: UInt64) -> Int {
        let k = Int(h >> UInt64(64 - bucketBits))
        var lo = Int(bucketStart[k])
        var hi = Int(bucketStart[k + 1])
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if points[mid] < h { lo = mid + 1 } else { hi = mid }
        }
        return lo == points.count ? 0 : lo
    }

    /// Ids sorted and de-duplicated by their UTF-8 bytes (not by Unicode canonical equivalence,
    /// which would merge ids whose hashes differ).
    static func distinctSorted(_ ids: [String]) -> [String] {
        let sorted = ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var out: [String] = []
        out.reserveCapacity(sorted.count)
        for id in sorted where !(out.last.map { $0.utf8.elementsEqual(id.utf8) } ?? false) {
            out.append(id)
        }
        return out
    }
}
