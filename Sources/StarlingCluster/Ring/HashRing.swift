import StarlingCore

/// The hash that places keys and virtual nodes on the ring.
///
/// Stable across processes, machines and releases (never Swift's `Hasher`, which is seeded
/// per process): FNV-1a 64 of the UTF-8 bytes, then the SplitMix64 finalizer. FNV-1a alone
/// mixes poorly into the high bits for short, similar strings such as `"n1#17"`; the finalizer
/// spreads every input bit over the whole word, so vnodes land uniformly.
public enum RingHash {
    public static func hash(_ s: String) -> UInt64 {
        var z = StableHash.fnv1a64(s)
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
    }

    public var isEmpty: Bool { members.isEmpty }

    /// The owner of `key`: the member of the first vnode clockwise from `hash(key)`. nil when empty.
    public func owner(of key: String) -> String? {
        guard !points.isEmpty else { return nil }
        if members.count == 1 { return members[0] }   // a ring of one owns every key: no hashing
        return members[Int(owners[startIndex(for: RingHash.hash(key))])]
    }

    /// Up to `count` distinct members, walking clockwise from the owner (the owner first).
    public func replicas(of key: String, count: Int) -> [String] {
        guard count > 0, !points.isEmpty else { return [] }
        let wanted = min(count, members.count)
        var taken = [Bool](repeating: false, count: members.count)
        var out: [String] = []
        out.reserveCapacity(wanted)
        var i = startIndex(for: RingHash.hash(key))
        var visited = 0
        while out.count < wanted && visited < points.count {
            let owner = Int(owners[i])
            if !taken[owner] {
                taken[owner] = true
                out.append(members[owner])
            }
            i = i + 1 == points.count ? 0 : i + 1
            visited += 1
        }
        return out
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

    /// Index of the first point `>= h`, wrapping to 0 past the end.
    private func startIndex(for h: UInt64) -> Int {
        var lo = 0
        var hi = points.count
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
