import StarlingCore

/// Which events of a request go to which owner (pure): owners in the order their first event
/// appears, each with the indices of its events in request order.
public struct IngestRoute: Sendable, Equatable {
    public var owners: [String]
    public var indices: [[Int]]

    public init(keys: [SubjectKey], ring: HashRing, me: String) {
        self.init(count: keys.count, ring: ring, me: me) { RingHash.hash(keys[$0]) }
    }

    /// Routes `count` items whose ring hashes `hash(i)` gives (asked only when the ring has more
    /// than one member), without building their subject keys.
    public init(count: Int, ring: HashRing, me: String, hash: (Int) -> UInt64) {
        owners = []
        indices = []
        // By member index (the last slot: `me`, for an empty ring): no string hashing per event.
        var slot = [Int](repeating: -1, count: ring.members.count + 1)
        for i in 0..<count {
            let m = ring.ownerIndex(ofHash: hash(i)) ?? ring.members.count
            if slot[m] >= 0 {
                indices[slot[m]].append(i)
            } else {
                slot[m] = owners.count
                owners.append(m < ring.members.count ? ring.members[m] : me)
                indices.append([i])
            }
        }
    }
}
