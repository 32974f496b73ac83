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
        let m = QueryMerge.merge([a, b], limit: 10)
        #expect(m.hits.map(\.eventID) == ["z", "y", "w", "x"])
        #expect(!m.truncated && !m.partial)
        #expect(m.state == state(events: 3, last: 4), "the most complete state wins")
        let cut = QueryMerge.merge([a, b], limit: 2)
        #expect(cut.hits.map(\.eventID) == ["z", "y"] && cut.truncated)
    }

    @Test func aMissingOrDamagedAnswerMakesItPartial() {
        let a = QueryResult(hits: [hit("x", ts: 1)])
        #expect(QueryMerge.merge([a, nil], limit: 5).partial)
        #expect(QueryMerge.merge([a, QueryResult(hits: [], error: "some blocks unreadable")], limit: 5).partial)
        #expect(QueryMerge.merge([QueryResult(hits: [], truncated: true)], limit: 5).truncated)
        // Equal events: the later state wins; a state that is not one is ignored.
        let s1 = QueryResult(hits: [], state: state(events: 2, last: 7))
        let s2 = QueryResult(hits: [], state: state(events: 2, last: 9))
        let junk = QueryResult(hits: [], state: Array("[1]".utf8))
        #expect(QueryMerge.merge([s1, junk, s2], limit: 1).state == state(events: 2, last: 9))
    }
}
