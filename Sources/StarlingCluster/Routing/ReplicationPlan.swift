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
        var order: [String] = []
        var perFollower: [String: [[UInt8]]] = [:]
        for r in records {
            var targets: [String] = []
            for key in Placement.keys(of: r) {
                guard let f = Placement.followers(of: key, ring: ring, rf: rf, me: me) else {
                    return .failure(.notEnoughReplicas(key: key))
                }
                for t in f where !targets.contains(t) { targets.append(t) }
            }
            guard !targets.isEmpty else { continue }
            let bytes = r.encoded
            for t in targets {
                if perFollower[t] == nil { order.append(t) }
                perFollower[t, default: []].append(bytes)
            }
        }
        var shipments: [Shipment] = []
        for follower in order {
            let recs = perFollower[follower]!
            for run in FrameBudget.runs(sizes: recs.map { $0.count + FrameBudget.itemOverhead }, maxBytes: frameBytes) {
                shipments.append(Shipment(follower: follower, records: Array(recs[run])))
            }
        }
        return .success(ReplicationPlan(shipments: shipments))
    }
}
