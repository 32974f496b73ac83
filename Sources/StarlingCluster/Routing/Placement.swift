import StarlingCore

/// Where events go: pure functions of the ring, used by the node's routing and replication
/// and by the deterministic simulation.
public enum Placement {
    /// The ring keys a stored record belongs to (a link belongs to its session and identities).
    public static func keys(of r: Record) -> [String] {
        SubjectKey.all(of: r).map(\.ringKey)
    }

    /// The node that stores an event first: the ring owner of its key (`me` when the ring is empty).
    public static func owner(of key: String, ring: HashRing, me: String) -> String {
        ring.owner(of: key) ?? me
    }

    /// The members other than `me` that must also hold a copy of `key` for `rf` copies in all:
    /// the key's replica set without `me`, cut to `rf - 1`. nil when the ring has too few members
    /// (then the write must be refused, never acknowledged with fewer copies).
    public static func followers(of key: String, ring: HashRing, rf: Int, me: String) -> [String]? {
        var out: [String] = []
        let complete = forEachFollower(ofHash: RingHash.hash(key), ring: ring, rf: rf, me: ring.memberIndex(me)) {
            out.append(ring.members[$0])
        }
        return complete ? out : nil
    }

    /// `followers` as member indexes, without allocating: calls `body` with each of the first
    /// `rf - 1` members other than `me` (an index in `ring.members`, or nil when not a member)
    /// among the first `rf + 1` of the key's replica set. False when there are fewer (the write
    /// must be refused).
    public static func forEachFollower(ofHash h: UInt64, ring: HashRing, rf: Int, me: Int?, _ body: (Int) -> Void) -> Bool {
        let wanted = rf - 1
        guard wanted > 0 else { return true }
        var found = 0
        ring.forEachReplica(ofHash: h, count: rf + 1) { m in
            if m != me {
                body(m)
                found += 1
            }
            return found < wanted
        }
        return found >= wanted
    }

    /// Fencing: may `sender` write `key` to this node? Only a member of the key's replica set
    /// in this node's view (a replaced, stale owner is refused). A node outside the ring (still
    /// joining) accepts, since it has no view to judge by.
    public static func accepts(replicaOf key: String, from sender: String, ring: HashRing, rf: Int, me: String) -> Bool {
        ReplicaFence(sender: sender, ring: ring, rf: rf, me: me).accepts(hash: RingHash.hash(key))
    }

    /// Catch-up source rule: should `responder` send `key` to `requester`? Only when the
    /// requester replicates the key in its current ring and, when `previous` is given, did not
    /// before; and only from one source: the first member of the key's replica set in `source`
    /// (the previous ring, else the current one) that is live now and is not the requester.
    public static func sendsHandoff(key: String, responder: String, requester: String, current: HashRing,
                                    previous: HashRing?, rf: Int) -> Bool {
        guard current.replicas(of: key, count: rf).contains(requester) else { return false }
        // Without a previous ring every holder sends (the store dedupes): a single source chosen
        // from the current ring may itself be a new replica that does not hold the key yet.
        guard let previous else { return true }
        if previous.replicas(of: key, count: rf).contains(requester) { return false }
        let live = Set(current.members)
        let source = previous.replicas(of: key, count: rf + 2).first { $0 != requester && live.contains($0) }
        // A key whose whole previous replica set is gone: any holder sends.
        return source == nil || source == responder
    }

    /// Anti-entropy rule: a responder sends the copies it holds as a stand-in (it is not in the
    /// key's replica set) to a requester that is.
    public static func sendsStandIn(key: String, responder: String, requester: String, current: HashRing, rf: Int) -> Bool {
        let set = current.replicas(of: key, count: rf)
        return set.contains(requester) && !set.contains(responder)
    }

    /// Whether a query answer may miss data because `unanswered` members did not answer. For
    /// one key (a session): when its whole replica set, in any of `rings`, is among them (the
    /// current ring, where writes go; the previous one, whose copies a handoff may still be
    /// moving; the ring of every member not removed, down ones included, where a dead member's
    /// copies were). Every acknowledged write is on a key's whole replica set, so one answering
    /// member of each set is enough. For a query over many keys (`key` nil: an identity's
    /// sessions), when `rf` or more did not answer (some key may have every copy among them).
    public static func mayMiss(key: String?, unanswered: Set<String>, rings: [HashRing], rf: Int) -> Bool {
        guard !unanswered.isEmpty else { return false }
        guard let key else { return unanswered.count >= max(rf, 1) }
        return rings.contains { ring in
            let set = ring.replicas(of: key, count: rf)
            return !set.isEmpty && set.allSatisfy(unanswered.contains)
        }
    }

    /// The ack rule: a write is acknowledged only if it is stored locally and every follower
    /// stored it.
    public static func acknowledged(storedLocally: Bool, followerAcks: [Bool]) -> Bool {
        storedLocally && followerAcks.allSatisfy { $0 }
    }
}

/// `Placement.accepts` for one sender and many keys (a replicated batch): the member lookups
/// are done once, and each key costs one ring walk with no allocation.
public struct ReplicaFence: Sendable {
    let ring: HashRing
    let rf: Int
    /// nil: this node is outside the ring (accept all); -1: the sender is not a member.
    let sender: Int?

    public init(sender: String, ring: HashRing, rf: Int, me: String) {
        self.ring = ring
        self.rf = rf
        self.sender = ring.memberIndex(me) == nil ? nil : (ring.memberIndex(sender) ?? -1)
    }

    /// Whether the sender is in the replica set (`rf + 1` members) of the key hashed to `h`.
    public func accepts(hash h: @autoclosure () -> UInt64) -> Bool {
        guard let sender else { return true }
        guard sender >= 0 else { return false }
        var found = false
        ring.forEachReplica(ofHash: h(), count: rf + 1) { m in
            found = m == sender
            return !found
        }
        return found
    }
}
