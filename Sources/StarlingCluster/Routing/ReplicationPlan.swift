import StarlingCore

/// Where the records of one write group go (pure): each record to the other members of each
/// of its keys' replica sets, in frames that fit (`FrameBudget`). The owner answers 202 only
/// when every frame of every follower was stored (`Placement.acknowledged`).
public struct ReplicationPlan: Sendable, Equatable {
    /// One `replicate` frame's records (log encoding) for one follower.
    public struct Shipment: Sendable, Equatable {
        public var follower: String
        public var records: [[UInt8]]
    }
    public var shipments: [Shipment]

    public enum Refusal: Error, Sendable, Equatable {
        /// The ring has fewer than rf members for this key: never acknowledge with fewer copies.
        case notEnoughReplicas(key: String)
    }

    /// Plans `records` (this node's own, or stored copies of repeats) for the ring as `me` sees it.
    /// Followers come in the order they first appear, so the plan is deterministic.
    public static func plan(_ records: [Record], ring: HashRing, rf: Int, me: String,
                            frameBytes: Int) -> Result<ReplicationPlan, Refusal> {
        // Followers by member index: no per-record allocation or string hashing for an event
        // (one key); a link names up to three keys, whose follower sets are merged.
        let meIndex = ring.memberIndex(me)
        var order: [Int] = []
        var perFollower = [[[UInt8]]](repeating: [], count: ring.members.count)
        var listed: [Int] = []           // one record's followers, in the order first met (reused)
        func follow(_ hash: UInt64) -> Bool {
            Placement.forEachFollower(ofHash: hash, ring: ring, rf: rf, me: meIndex) { m in
                if !listed.contains(m) { listed.append(m) }
            }
        }
        for r in records {
            listed.removeAll(keepingCapacity: true)
            if r.kind == .event {
                guard follow(RingHash.hash(subjectOf: r)) else { return .failure(.notEnoughReplicas(key: SubjectKey(of: r).ringKey)) }
            } else {
                for key in SubjectKey.all(of: r) {
                    guard follow(RingHash.hash(key)) else { return .failure(.notEnoughReplicas(key: key.ringKey)) }
                }
            }
            guard !listed.isEmpty else { continue }
            let bytes = r.encoded
            for t in listed {
                if perFollower[t].isEmpty { order.append(t) }
                perFollower[t].append(bytes)
            }
        }
        var shipments: [Shipment] = []
        for follower in order {
            let recs = perFollower[follower]
            for run in FrameBudget.runs(sizes: recs.map { $0.count + FrameBudget.itemOverhead }, maxBytes: frameBytes) {
                shipments.append(Shipment(follower: ring.members[follower], records: Array(recs[run])))
            }
        }
        return .success(ReplicationPlan(shipments: shipments))
    }
}
