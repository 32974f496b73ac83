import Testing
import StarlingCore
@testable import StarlingCluster

/// The per-record ring work is done on member indexes without allocating (`forEachReplica`,
/// `ReplicaFence`, `IngestRoute`, `ReplicationPlan`); each must agree with the plain definition
/// it replaced, on small rings and on a ring over 64 members (the bitmask's fallback).
@Suite struct RingIndexTests {
    static let rings: [HashRing] = [
        HashRing(members: ["a"], vnodes: 64),
        HashRing(members: ["a", "b", "c"], vnodes: 128),
        HashRing(members: (0..<8).map { "node-\($0)" }, vnodes: 64),
        HashRing(members: (0..<70).map { "m\($0)" }, vnodes: 8),
    ]

    static func keys(_ n: Int) -> [SubjectKey] {
        (0..<n).map { i in
            switch i % 3 {
            case 0: .session("s\(i)")
            case 1: .user("u\(i)")
            default: .terminal("t-é\(i)")
            }
        }
    }

    /// The owner by the ring's definition, found by a linear scan: the member of the first vnode
    /// at or after the hash (wrapping), equal positions ordered by member id.
    static func naiveOwner(_ ring: HashRing, hash h: UInt64) -> String? {
        var placed: [(point: UInt64, owner: Int)] = []
        for (m, id) in ring.members.enumerated() {
            for i in 0..<ring.vnodes { placed.append((RingHash.hash("\(id)#\(i)"), m)) }
        }
        placed.sort { $0.point != $1.point ? $0.point < $1.point : $0.owner < $1.owner }
        guard let first = placed.first else { return nil }
        return ring.members[(placed.first { $0.point >= h } ?? first).owner]
    }

    /// The bucketed search finds the same owner as a scan, for hashes on, just before and just
    /// after every vnode, at both ends of the space, and for ordinary keys.
    @Test func bucketedLookupFindsTheDefinedOwner() {
        for ring in Self.rings {
            var hashes: [UInt64] = [0, 1, .max, .max - 1, 1 << 63]
            for (m, id) in ring.members.enumerated() where m < 5 {
                for i in 0..<min(ring.vnodes, 40) {
                    let p = RingHash.hash("\(id)#\(i)")
                    hashes += [p, p &- 1, p &+ 1]
                }
            }
            hashes += Self.keys(300).map { RingHash.hash($0) }
            for h in hashes {
                #expect(ring.ownerIndex(ofHash: h).map { ring.members[$0] } == Self.naiveOwner(ring, hash: h), "hash \(h)")
            }
        }
    }

    @Test func subjectHashIsTheHashOfItsRingKey() {
        for key in Self.keys(30) {
            #expect(RingHash.hash(key) == RingHash.hash(key.ringKey))
            #expect(key.ringKeyFNV == StableHash.fnv1a64(Array(key.ringKey.utf8)))
        }
    }

    @Test func replicaWalkListsDistinctMembersOwnerFirst() {
        for ring in Self.rings {
            for key in Self.keys(200) {
                for count in [1, 2, 3, 5] {
                    let list = ring.replicas(of: key.ringKey, count: count)
                    #expect(list.count == min(count, ring.members.count))
                    #expect(Set(list).count == list.count)
                    #expect(list.first == ring.owner(of: key.ringKey))
                    #expect(ring.ownerIndex(ofHash: RingHash.hash(key)).map { ring.members[$0] } == ring.owner(of: key.ringKey))
                    // A longer walk extends a shorter one.
                    #expect(Array(ring.replicas(of: key.ringKey, count: count + 1).prefix(count)) == list)
                }
            }
        }
    }

    @Test func fenceAndFollowersAgreeWithTheirDefinitions() {
        for ring in Self.rings {
            let me = ring.members[ring.members.count / 2]
            let senders = Array(ring.members.prefix(4)) + ["stranger"]
            for key in Self.keys(150) {
                for rf in 1...3 {
                    let set = ring.replicas(of: key.ringKey, count: rf + 1)
                    for sender in senders {
                        let fence = ReplicaFence(sender: sender, ring: ring, rf: rf, me: me)
                        #expect(fence.accepts(hash: RingHash.hash(key)) == set.contains(sender))
                    }
                    // Outside the ring, a node has no view to judge by.
                    #expect(ReplicaFence(sender: "stranger", ring: ring, rf: rf, me: "outsider").accepts(hash: RingHash.hash(key)))
                    let others = set.filter { $0 != me }
                    let expected: [String]? = others.count >= rf - 1 ? Array(others.prefix(rf - 1)) : nil
                    #expect(Placement.followers(of: key.ringKey, ring: ring, rf: rf, me: me) == expected)
                }
            }
        }
    }

    @Test func routeGroupsEventsByOwnerInFirstAppearanceOrder() {
        for ring in Self.rings + [HashRing(members: [])] {
            let keys = Self.keys(300)
            let route = IngestRoute(keys: keys, ring: ring, me: "me")
            var owners: [String] = []
            var indices: [[Int]] = []
            for (i, k) in keys.enumerated() {
                let o = Placement.owner(of: k.ringKey, ring: ring, me: "me")
                if let s = owners.firstIndex(of: o) { indices[s].append(i) } else { owners.append(o); indices.append([i]) }
            }
            #expect(route.owners == owners && route.indices == indices)
        }
    }

    /// The plan by definition: each record to the union of its keys' followers, per follower in
    /// record order, followers in the order first met.
    @Test func replicationPlanAgreesWithPerKeyFollowers() throws {
        for ring in Self.rings where ring.members.count >= 3 {
            let me = ring.members[1]
            var records: [Record] = []
            for i in 0..<120 {
                if i % 10 == 9 {
                    records.append(Record(kind: .link, ts: 1, receivedAt: 1, sessionID: "s\(i)", userID: "u\(i)", terminalID: i % 20 == 9 ? "t\(i)" : ""))
                } else {
                    records.append(Record(kind: .event, ts: 1, receivedAt: 1, sessionID: i % 4 == 0 ? "" : "s\(i)", eventID: "e\(i)",
                                          userID: i % 4 == 0 ? "u\(i)" : ""))
                }
            }
            for rf in 1...3 {
                let plan = try ReplicationPlan.plan(records, ring: ring, rf: rf, me: me, frameBytes: 1 << 30).get()
                var order: [String] = []
                var per: [String: [[UInt8]]] = [:]
                for r in records {
                    var targets: [String] = []
                    for key in Placement.keys(of: r) {
                        for f in Placement.followers(of: key, ring: ring, rf: rf, me: me)! where !targets.contains(f) { targets.append(f) }
                    }
                    for t in targets {
                        if per[t] == nil { order.append(t) }
                        per[t, default: []].append(r.encoded)
                    }
                }
                #expect(plan.shipments.map(\.follower) == order)
                for s in plan.shipments { #expect(s.records == per[s.follower]) }
            }
        }
        let two = HashRing(members: ["a", "b"])
        #expect(ReplicationPlan.plan([Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "s")], ring: two, rf: 3, me: "a", frameBytes: 1 << 20)
            == .failure(.notEnoughReplicas(key: "s")))
    }
}
