import Testing
import StarlingCore
@testable import StarlingCluster

@Suite struct ReplicationPlanTests {
    let ring = HashRing(members: ["a", "b", "c"])
    func event(_ sid: String, pad: Int = 10) -> Record {
        Record(kind: .event, ts: 1, receivedAt: 1, sessionID: sid, eventID: "e-\(sid)-\(pad)", key: "k",
               json: Array(repeating: 0x41, count: pad))
    }

    @Test func eachRecordGoesToTheRestOfItsReplicaSet() throws {
        let records = (0..<40).map { event("s\($0)") } + [Record(kind: .link, ts: 1, receivedAt: 1, sessionID: "s1", userID: "u9")]
        for me in ["a", "b", "c"] {
            let plan = try ReplicationPlan.plan(records, ring: ring, rf: 2, me: me, frameBytes: 1 << 20).get()
            for r in records {
                var expected = Set<String>()
                for key in Placement.keys(of: r) { expected.formUnion(Placement.followers(of: key, ring: ring, rf: 2, me: me)!) }
                let got = Set(plan.shipments.filter { $0.records.contains(r.encoded) }.map(\.follower))
                #expect(got == expected, "\(r.sessionID) from \(me)")
                #expect(!got.contains(me))
            }
        }
        #expect(try ReplicationPlan.plan(records, ring: ring, rf: 1, me: "a", frameBytes: 1 << 20).get().shipments.isEmpty)
    }

    @Test func tooFewMembersRefusesAndLargeGroupsSplit() throws {
        let lonely = HashRing(members: ["a"])
        #expect(ReplicationPlan.plan([event("s")], ring: lonely, rf: 2, me: "a", frameBytes: 1 << 20) == .failure(.notEnoughReplicas(key: "s")))
        // 2 members, rf 2: every record goes to the other one, cut into frames of the budget.
        let pair = HashRing(members: ["a", "b"])
        let records = (0..<50).map { event("s\($0)", pad: 1_000) }
        let plan = try ReplicationPlan.plan(records, ring: pair, rf: 2, me: "a", frameBytes: 10_000).get()
        #expect(plan.shipments.allSatisfy { $0.follower == "b" })
        #expect(plan.shipments.count > 1)
        #expect(plan.shipments.flatMap(\.records) == records.map(\.encoded), "all records, in order, once")
        for s in plan.shipments { #expect(s.records.reduce(0) { $0 + $1.count + FrameBudget.itemOverhead } <= 10_000) }
    }
}
