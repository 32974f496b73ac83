import Testing
import StarlingCore
@testable import StarlingCluster

@Suite struct QueryMergeTests {
    func hit(_ id: String, ts: Int64, rcv: Int64 = 0) -> QueryHit {
        QueryHit(eventID: id, ts: ts, receivedAt: rcv, json: Array("{\"id\":\"\(id)\"}".utf8))
    }
    func state(events: Int, last: Int) -> [UInt8] { Array("{\"events\":\(events),\"last_seen\":\(last)}".utf8) }

    @Test func copiesAreDedupedOrderedAndCut() {
        let a = QueryResult(hits: [hit("x", ts: 5), hit("y", ts: 1, rcv: 9)], state: state(events: 2, last: 10))
        let b = QueryResult(hits: [hit("y", ts: 1, rcv: 9), hit("z", ts: 1, rcv: 3), hit("w", ts: 5)], state: state(events: 3, last: 4))
        let m = QueryMerge.merge([a, b], limit: 10, mayMiss: false)
        #expect(m.hits.map(\.eventID) == ["z", "y", "w", "x"])
        #expect(!m.truncated && !m.partial)
        #expect(m.state == state(events: 3, last: 4), "the most complete state wins")
        let cut = QueryMerge.merge([a, b], limit: 2, mayMiss: false)
        #expect(cut.hits.map(\.eventID) == ["z", "y"] && cut.truncated)
    }

    @Test func missingCopiesOrADamagedAnswerMakeItPartial() {
        let a = QueryResult(hits: [hit("x", ts: 1)])
        #expect(QueryMerge.merge([a, nil], limit: 5, mayMiss: true).partial)
        #expect(!QueryMerge.merge([a, nil], limit: 5, mayMiss: false).partial, "another replica answered for the missing member")
        #expect(QueryMerge.merge([a, QueryResult(hits: [], error: "some blocks unreadable")], limit: 5, mayMiss: false).partial)
        #expect(QueryMerge.merge([QueryResult(hits: [], truncated: true)], limit: 5, mayMiss: false).truncated)
        // Equal events: the later state wins; a state that is not one is ignored.
        let s1 = QueryResult(hits: [], state: state(events: 2, last: 7))
        let s2 = QueryResult(hits: [], state: state(events: 2, last: 9))
        let junk = QueryResult(hits: [], state: Array("[1]".utf8))
        #expect(QueryMerge.merge([s1, junk, s2], limit: 1, mayMiss: false).state == state(events: 2, last: 9))
    }

    /// `partial` means some data may be missing: a key's whole replica set did not answer, in the
    /// current ring, the previous one or the ring of every member not removed.
    @Test func mayMissOnlyWhenAWholeReplicaSetIsSilent() {
        let everyone = HashRing(members: ["a", "b", "c"])
        let live = HashRing(members: ["a", "b"])   // c is down
        for i in 0..<200 {
            let key = "s\(i)"
            // One member down, rf 2: every key still has an answering copy.
            #expect(!Placement.mayMiss(key: key, unanswered: ["c"], rings: [live, everyone], rf: 2))
            // rf 1: the keys c held are missing while it is down.
            #expect(Placement.mayMiss(key: key, unanswered: ["c"], rings: [live, everyone], rf: 1) == (everyone.owner(of: key) == "c"))
            // Two silent members, rf 2: exactly the keys whose whole set is among them.
            let set = Set(everyone.replicas(of: key, count: 2))
            #expect(Placement.mayMiss(key: key, unanswered: ["b", "c"], rings: [everyone], rf: 2) == set.isSubset(of: ["b", "c"]))
        }
        #expect(!Placement.mayMiss(key: "s1", unanswered: [], rings: [everyone], rf: 2))
        // Many keys (an identity's sessions): rf silent members may hold every copy of one.
        #expect(!Placement.mayMiss(key: nil, unanswered: ["c"], rings: [everyone], rf: 2))
        #expect(Placement.mayMiss(key: nil, unanswered: ["b", "c"], rings: [everyone], rf: 2))
        #expect(Placement.mayMiss(key: nil, unanswered: ["c"], rings: [everyone], rf: 1))
    }
}
