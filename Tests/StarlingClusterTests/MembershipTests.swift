import Testing
import StarlingCore
@testable import StarlingCluster

private func node(_ n: Int, inc: UInt64 = 0, _ status: MemberStatus = .up) -> MemberInfo {
    MemberInfo(id: "node-\(n)", peer: "10.0.0.\(n):7081", http: "10.0.0.\(n):8081", incarnation: inc, status: status)
}

private func sends(_ ds: [MembershipDirective]) -> [(String, MembershipMessage)] {
    ds.compactMap { if case .send(let to, let m) = $0 { return (to, m) } else { return nil } }
}

private func changed(_ ds: [MembershipDirective]) -> Bool {
    ds.contains { if case .changed = $0 { return true } else { return false } }
}

/// A node that founded its cluster at t=0 and already knows `others` as up.
private func founder(_ n: Int = 1, knowing others: [MemberInfo] = [], settings: MembershipSettings = .init()) -> Membership {
    var m = Membership(me: node(n), settings: settings, seed: 1)
    _ = m.start(seeds: [], now: 0)
    if !others.isEmpty { _ = m.receive(.joinAck(others), fromPeer: others[0].peer, now: 0) }
    return m
}

/// Delivers messages among `nodes` (keyed by peer address) until none is left, without faults.
private func pump(_ nodes: inout [String: Membership], from sender: String, _ ds: [MembershipDirective], now: Int64) {
    var queue = sends(ds).map { (from: sender, to: $0.0, m: $0.1) }
    var steps = 0
    while !queue.isEmpty && steps < 1_000 {
        let (from, to, m) = queue.removeFirst()
        steps += 1
        guard nodes[to] != nil else { continue }
        let out = nodes[to]!.receive(m, fromPeer: from, now: now)
        queue += sends(out).map { (from: to, to: $0.0, m: $0.1) }
    }
}

@Suite struct MembershipTests {
    @Test func aNodeWithoutSeedsFoundsAClusterAtOnce() {
        var m = Membership(me: node(1, inc: 4, .down), seed: 1)
        #expect(m.me.status == .joining)
        #expect(m.ringMembers.isEmpty)
        let out = m.start(seeds: [], now: 100)
        #expect(out == [.changed(epoch: 1)])
        #expect(m.me == node(1, inc: 4, .up))
        #expect(m.ringMembers == ["node-1"])
        // Its own address in the seed list does not count as a seed.
        var n = Membership(me: node(2), seed: 1)
        _ = n.start(seeds: [node(2).peer], now: 0)
        #expect(n.me.status == .up)
    }

    @Test func joinHandshake() {
        var a = founder(1)
        var b = Membership(me: node(2), seed: 2)
        let hello = b.start(seeds: [node(1).peer, node(3).peer], now: 0)
        #expect(sends(hello).map(\.0) == [node(1).peer, node(3).peer])
        #expect(sends(hello).first?.1 == .join(node(2, .joining)))
        #expect(b.me.status == .joining)

        let answer = a.receive(.join(node(2, .joining)), fromPeer: "ephemeral:5555", now: 10)
        // The reply goes to the advertised peer address, not the transport's.
        #expect(sends(answer).map(\.0) == [node(2).peer])
        #expect(sends(answer).first?.1 == .joinAck([node(1), node(2)]))
        #expect(changed(answer))
        #expect(a.ringMembers == ["node-1", "node-2"])

        let joined = b.receive(.joinAck([node(1), node(2)]), fromPeer: node(1).peer, now: 20)
        #expect(changed(joined))
        #expect(b.me.status == .up)
        #expect(b.members == [node(1), node(2)])
        #expect(b.ringMembers == ["node-1", "node-2"])
    }

    @Test func joiningNodesRetryTheSeeds() {
        var b = Membership(me: node(2), seed: 2)
        _ = b.start(seeds: [node(1).peer], now: 0)
        #expect(b.tick(now: 999).isEmpty)
        #expect(sends(b.tick(now: 1_000)).map(\.1) == [.join(node(2, .joining))])
        #expect(b.tick(now: 1_500).isEmpty)
    }

    @Test func whenEveryoneIsJoiningTheSmallestIDFounds() {
        var a = Membership(me: node(1), seed: 1)
        var b = Membership(me: node(2), seed: 2)
        _ = a.start(seeds: [node(2).peer], now: 0)
        _ = b.start(seeds: [node(1).peer], now: 0)
        // Too early: a join might still be answered by a live member.
        #expect(a.receive(.join(node(2, .joining)), fromPeer: node(2).peer, now: 500).isEmpty)
        // The larger id never founds.
        #expect(b.receive(.join(node(1, .joining)), fromPeer: node(1).peer, now: 5_000).isEmpty)
        #expect(b.me.status == .joining)
        let out = a.receive(.join(node(2, .joining)), fromPeer: node(2).peer, now: 1_000)
        #expect(a.me.status == .up)
        #expect(sends(out).first?.1 == .joinAck([node(1), node(2)]))
        _ = b.receive(.joinAck([node(1), node(2)]), fromPeer: node(1).peer, now: 1_010)
        #expect(b.me.status == .up)
    }

    @Test func supersedesOrdersIncarnationThenStatus() {
        let order: [MemberStatus] = [.joining, .up, .suspect, .leaving, .down, .left]
        for (i, s) in order.enumerated() {
            for (j, t) in order.enumerated() {
                #expect(node(1, inc: 5, s).supersedes(node(1, inc: 5, t)) == (i > j), "\(s) vs \(t)")
                #expect(node(1, inc: 6, s).supersedes(node(1, inc: 5, t)), "inc 6 \(s) vs inc 5 \(t)")
                #expect(!node(1, inc: 4, s).supersedes(node(1, inc: 5, t)))
            }
        }
    }

    @Test func reportsAboutOthersFollowIncarnationAndPrecedence() {
        var a = founder(1, knowing: [node(3, inc: 1)])
        func hear(_ r: MemberInfo, at t: Int64 = 5) -> MemberInfo? {
            _ = a.receive(.ping(seq: 1, gossip: [node(2), r]), fromPeer: node(2).peer, now: t)
            return a.member("node-3")
        }
        #expect(hear(node(3, inc: 0, .suspect))?.status == .up)          // older incarnation: ignored
        #expect(hear(node(3, inc: 1, .suspect))?.status == .suspect)
        #expect(hear(node(3, inc: 1, .up))?.status == .suspect)          // must refute with a higher one
        #expect(hear(node(3, inc: 2, .up)) == node(3, inc: 2, .up))
        #expect(hear(node(3, inc: 2, .leaving))?.status == .left)        // others record leaving as left
        #expect(hear(node(3, inc: 2, .down))?.status == .left)           // left is final for inc 2
        #expect(hear(node(3, inc: 2, .up))?.status == .left)
        #expect(hear(node(3, inc: 3, .joining)) == node(3, inc: 3, .up))  // a restart: back as up
        #expect(a.ringMembers == ["node-1", "node-2", "node-3"])
    }

    @Test func aMemberRefutesSuspicionAndDeathWithAHigherIncarnation() {
        var b = founder(2, knowing: [node(1)])
        let e0 = b.epoch
        let out = b.receive(.ping(seq: 7, gossip: [node(1), node(2, inc: 0, .suspect)]), fromPeer: node(1).peer, now: 10)
        #expect(b.me == node(2, inc: 1, .up))
        #expect(b.epoch > e0)
        // The ack carries the refutation first.
        guard case .ack(7, let gossip)? = sends(out).first?.1 else { Issue.record("no ack: \(out)"); return }
        #expect(gossip.first == node(2, inc: 1, .up))

        _ = b.receive(.ping(seq: 8, gossip: [node(1), node(2, inc: 5, .down)]), fromPeer: node(1).peer, now: 20)
        #expect(b.me == node(2, inc: 6, .up))
        _ = b.receive(.leave(node(2, inc: 6)), fromPeer: node(1).peer, now: 30)
        #expect(b.me == node(2, inc: 7, .up))
        // Old news changes nothing; nor does a report at the maximum incarnation trap.
        _ = b.receive(.ping(seq: 9, gossip: [node(2, inc: 3, .down)]), fromPeer: node(1).peer, now: 40)
        #expect(b.me.incarnation == 7)
        _ = b.receive(.ping(seq: 9, gossip: [node(2, inc: .max, .down)]), fromPeer: node(1).peer, now: 50)
        #expect(b.me.incarnation == .max)
        #expect(b.me.status == .up)
    }

    @Test func aStaleRecordOfOurselvesWithOtherAddressesIsOverwritten() {
        var b = founder(2, knowing: [node(1)])
        var old = node(2)
        old.peer = "10.9.9.9:7081"
        _ = b.receive(.ping(seq: 1, gossip: [node(1), old]), fromPeer: node(1).peer, now: 10)
        #expect(b.me == node(2, inc: 1, .up))
    }

    /// ping -> (250 ms) pingReq to the helpers -> (500 ms) suspect -> (+2000 ms) down.
    @Test func probeTimeline() {
        var s = MembershipSettings()
        s.indirectProbes = 2
        var a = founder(1, knowing: [node(2), node(3), node(4)], settings: s)
        var target: String?
        var sentAt: Int64 = 0
        for t in stride(from: Int64(0), through: 600, by: 10) {
            for (to, m) in sends(a.tick(now: t)) {
                if case .ping = m { target = to; sentAt = t }
            }
            if target != nil { break }
        }
        guard let victim = target else { Issue.record("no probe sent"); return }
        let victimID = a.members.first { $0.peer == victim }!.id
        var pingReqs: [(String, MembershipMessage)] = []
        var suspectedAt: Int64?
        var downAt: Int64?
        for t in stride(from: sentAt + 10, through: sentAt + 3_000, by: 10) {
            let out = a.tick(now: t)
            pingReqs += sends(out).filter { if case .pingReq = $0.1 { return true } else { return false } }
            // Helpers answer nothing either; the other members stay quiet (their probes just time out
            // later, which this test does not look at).
            let status = a.member(victimID)!.status
            if status == .suspect && suspectedAt == nil { suspectedAt = t }
            if status == .down && downAt == nil { downAt = t }
        }
        let firstPingReqs = pingReqs.prefix(2)
        #expect(firstPingReqs.count == 2)
        #expect(Set(firstPingReqs.map(\.0)).count == 2)
        #expect(!firstPingReqs.contains { $0.0 == victim })
        for (_, m) in firstPingReqs {
            guard case .pingReq(_, let t, _) = m else { continue }
            #expect(t.id == victimID)
        }
        #expect(suspectedAt == sentAt + 500)
        #expect(downAt == sentAt + 2_500)
        #expect(!a.ringMembers.contains(victimID))
        #expect(a.members.contains { $0.id == victimID && $0.status == .down })  // down stays listed
    }

    @Test func anAckInTimeKeepsTheTargetUp() {
        var a = founder(1, knowing: [node(2)])
        var ping: (String, MembershipMessage)?
        var t: Int64 = 0
        while ping == nil && t <= 600 {
            ping = sends(a.tick(now: t)).first
            t += 10
        }
        guard case .ping(let seq, let gossip)? = ping?.1 else { Issue.record("no ping"); return }
        #expect(gossip.first == a.me)
        _ = a.receive(.ack(seq: seq, gossip: [node(2)]), fromPeer: node(2).peer, now: t + 40)
        for u in stride(from: t, through: t + 400, by: 10) { _ = a.tick(now: u) }
        #expect(a.member("node-2")?.status == .up)
    }

    @Test func indirectProbeRelay() {
        var b = founder(2, knowing: [node(1), node(3)])
        let out = b.receive(.pingReq(seq: 77, target: node(3), gossip: [node(1)]), fromPeer: node(1).peer, now: 10)
        guard let (to, m) = sends(out).first, case .ping(let local, _) = m else { Issue.record("no relay ping: \(out)"); return }
        #expect(to == node(3).peer)
        let forwarded = b.receive(.ack(seq: local, gossip: [node(3)]), fromPeer: node(3).peer, now: 30)
        guard let (back, ack) = sends(forwarded).first, case .ack(77, _) = ack else { Issue.record("no forwarded ack: \(forwarded)"); return }
        #expect(back == node(1).peer)
        // A pingReq about ourselves is answered directly.
        let direct = b.receive(.pingReq(seq: 5, target: node(2), gossip: [node(1)]), fromPeer: node(1).peer, now: 40)
        guard let (_, d) = sends(direct).first, case .ack(5, _) = d else { Issue.record("no direct ack"); return }
    }

    @Test func gossipIsBoundedAndSpreadsChanges() {
        var s = MembershipSettings()
        s.gossipMax = 4
        let many = (2...20).map { node($0) }
        var a = founder(1, knowing: many, settings: s)
        let out = a.receive(.ping(seq: 1, gossip: [node(2)]), fromPeer: node(2).peer, now: 5)
        guard case .ack(_, let gossip)? = sends(out).first?.1 else { Issue.record("no ack"); return }
        #expect(gossip.count == 4)
        #expect(gossip.first == a.me)
        // A change is repeated a bounded number of times, then no longer sent.
        var seen = 0
        for i in 0..<200 {
            let o = a.receive(.ping(seq: UInt64(i), gossip: [node(2)]), fromPeer: node(2).peer, now: 10)
            if case .ack(_, let g)? = sends(o).first?.1, g.contains(where: { $0.id == "node-20" }) { seen += 1 }
        }
        #expect(seen > 0 && seen <= 3 * 5)  // 3 * ceil(log2(20 + 1))
    }

    @Test func memberCountIsBounded() {
        var a = founder(1)
        for chunk in 0..<11 {
            let list = (0..<100).map { MemberInfo(id: "m\(chunk)-\($0)", peer: "p\(chunk)-\($0):1", http: "", incarnation: 0, status: .down) }
            _ = a.receive(.joinAck(list), fromPeer: "x", now: Int64(chunk))
        }
        #expect(a.members.count == MembershipLimits.membersMax)
        // Full of down members: a live newcomer evicts the oldest of them.
        _ = a.receive(.join(node(9, .joining)), fromPeer: node(9).peer, now: 100)
        #expect(a.members.count == MembershipLimits.membersMax)
        #expect(a.member("node-9")?.status == .up)
    }

    @Test func invalidReportsAreIgnored() {
        var a = founder(1)
        let e = a.epoch
        let bad = MemberInfo(id: "", peer: "p", http: "h", incarnation: 1, status: .up)
        let spaced = MemberInfo(id: "has space", peer: "p", http: "h", incarnation: 1, status: .up)
        _ = a.receive(.ping(seq: 1, gossip: [bad, spaced]), fromPeer: "x", now: 1)
        _ = a.receive(.join(bad), fromPeer: "x", now: 1)
        #expect(a.members.count == 1)
        #expect(a.epoch == e)
    }

    @Test func leaveThenLeft() {
        var nodes: [String: Membership] = [node(1).peer: founder(1, knowing: [node(2), node(3)]),
                                           node(2).peer: founder(2, knowing: [node(1), node(3)]),
                                           node(3).peer: founder(3, knowing: [node(1), node(2)])]
        let out = nodes[node(3).peer]!.leave(now: 100)
        #expect(Set(sends(out).map(\.0)) == [node(1).peer, node(2).peer])
        #expect(nodes[node(3).peer]!.me.status == .leaving)
        #expect(nodes[node(3).peer]!.ringMembers == ["node-1", "node-2"])
        pump(&nodes, from: node(3).peer, out, now: 110)
        #expect(nodes[node(1).peer]!.member("node-3")?.status == .left)
        #expect(nodes[node(2).peer]!.ringMembers == ["node-1", "node-2"])
        // Still answers pings while leaving, then goes silent.
        #expect(!nodes[node(3).peer]!.receive(.ping(seq: 1, gossip: [node(1)]), fromPeer: node(1).peer, now: 200).isEmpty)
        #expect(changed(nodes[node(3).peer]!.tick(now: 600)))
        #expect(nodes[node(3).peer]!.me.status == .left)
        #expect(nodes[node(3).peer]!.receive(.ping(seq: 2, gossip: [node(1)]), fromPeer: node(1).peer, now: 700).isEmpty)
        #expect(nodes[node(3).peer]!.tick(now: 5_000).isEmpty)
    }

    /// An operator removes a down member: it becomes `left` here and at every live member; a
    /// live member, this node or an unknown id is refused; a restart still brings it back.
    @Test func removeADownMember() {
        var nodes: [String: Membership] = [node(1).peer: founder(1, knowing: [node(2), node(3, inc: 2, .down)]),
                                           node(2).peer: founder(2, knowing: [node(1), node(3, inc: 2, .down)])]
        #expect(nodes[node(1).peer]!.remove("node-2", now: 10) == .failure(.notDown(.up)))
        #expect(nodes[node(1).peer]!.remove("node-1", now: 10) == .failure(.isMe))
        #expect(nodes[node(1).peer]!.remove("node-9", now: 10) == .failure(.unknown))
        guard case .success(let out) = nodes[node(1).peer]!.remove("node-3", now: 10) else {
            Issue.record("removing a down member was refused"); return
        }
        #expect(sends(out).map(\.0) == [node(2).peer] && changed(out))
        #expect(nodes[node(1).peer]!.member("node-3")?.status == .left)
        pump(&nodes, from: node(1).peer, out, now: 11)
        #expect(nodes[node(2).peer]!.member("node-3") == node(3, inc: 2, .left))
        #expect(nodes[node(1).peer]!.remove("node-3", now: 12) == .failure(.notDown(.left)))
        // Its process restarted: a higher incarnation joins again.
        _ = nodes[node(2).peer]!.receive(.ping(seq: 1, gossip: [node(3, inc: 3, .joining)]), fromPeer: node(3).peer, now: 20)
        #expect(nodes[node(2).peer]!.member("node-3")?.status == .up)
    }

    @Test func aRestartedNodeIsUpAgainAsTheSameMember() {
        var a = founder(1, knowing: [node(2, inc: 3, .down)])
        var b = Membership(me: node(2, inc: 4), seed: 9)
        let hello = b.start(seeds: [node(1).peer], now: 0)
        let answer = a.receive(sends(hello)[0].1, fromPeer: node(2).peer, now: 5)
        #expect(a.member("node-2") == node(2, inc: 4, .up))
        #expect(changed(answer))
        _ = b.receive(sends(answer)[0].1, fromPeer: node(1).peer, now: 10)
        #expect(b.me == node(2, inc: 4, .up))

        // Restarted without its stored incarnation: it hears itself down and climbs above it.
        var c = founder(1, knowing: [node(3, inc: 8, .down)])
        var d = Membership(me: node(3, inc: 0), seed: 3)
        let hi = d.start(seeds: [node(1).peer], now: 0)
        let ack = c.receive(sends(hi)[0].1, fromPeer: node(3).peer, now: 5)
        #expect(c.member("node-3")?.status == .down)
        _ = d.receive(sends(ack)[0].1, fromPeer: node(1).peer, now: 10)
        #expect(d.me == node(3, inc: 9, .up))
    }

    @Test func sameSeedSameDirectives() {
        func run() -> [MembershipDirective] {
            var m = founder(1, knowing: (2...9).map { node($0) })
            var all: [MembershipDirective] = []
            for t in stride(from: Int64(0), through: 5_000, by: 10) { all += m.tick(now: t) }
            return all
        }
        let a = run()
        #expect(!a.isEmpty)
        #expect(a == run())
    }

    @Test func probesVisitEveryMemberEachRound() {
        var a = founder(1, knowing: (2...6).map { node($0) })
        var order: [String] = []
        for t in stride(from: Int64(0), through: 5_000, by: 10) {
            for (to, m) in sends(a.tick(now: t)) {
                if case .ping(let seq, _) = m {
                    order.append(to)
                    _ = a.receive(.ack(seq: seq, gossip: []), fromPeer: to, now: t)
                }
            }
        }
        #expect(order.count >= 10)
        for round in stride(from: 0, to: order.count - 5, by: 5) {
            #expect(Set(order[round..<(round + 5)]).count == 5, "round \(round / 5): \(order)")
        }
    }
}
