import Testing
@testable import StarlingCore

/// The group-commit plan, on a plain index: dedupe, repeats, identity resolution, order.
@Suite struct GroupCommitTests {
    func event(_ sid: String?, id: String?, user: String? = nil) -> IncomingEvent {
        IncomingEvent(prefix: Array(#"{"key":"k","#.utf8), sessionID: sid, key: "k", eventID: id, userID: user)
    }

    /// Records built the way the I/O threads build them (known sessions).
    func prepared(_ events: [IncomingEvent], now: Int64 = 10) -> [GroupCommit.Prepared] {
        var rng = SplitMix64(seed: 1)
        return zip(events, StoredEvent.records(of: events, receivedAt: now, node: "n1", ip: "1.2.3.4", using: &rng)).map {
            GroupCommit.Prepared(event: $0, record: $1, clientID: $0.eventID != nil)
        }
    }

    func fold(_ plan: GroupCommit.Plan, into idx: inout FoldedLog, firstSeq: UInt64) {
        for (i, r) in plan.records.enumerated() {
            idx.apply(r, at: RecordLocation(segment: 1, blockOffset: firstSeq * 100, index: UInt32(i)), seq: firstSeq + UInt64(i))
        }
    }

    @Test func aRepeatOfAStoredIdIsListedForReshipping() {
        var idx = FoldedLog()
        var ids = SplitMix64(seed: 2)
        let first = GroupCommit.plan([.events(prepared([event("s", id: "a"), event("s", id: "b")]), ip: "")], index: idx.index,
                                     now: 10, node: "n1", ids: &ids, stored: idx.stored)
        #expect(first.records.count == 2 && first.repeats.isEmpty && first.ownCount == 2)
        fold(first, into: &idx, firstSeq: 1)
        // The client retries "a" (its first attempt failed at a follower) with a new "c".
        let retry = GroupCommit.plan([.events(prepared([event("s", id: "a"), event("s", id: "c")]), ip: "")], index: idx.index,
                                     now: 11, node: "n1", ids: &ids, stored: idx.stored)
        #expect(retry.records.map(\.eventID) == ["c"])
        #expect(retry.perInput.map(\.duplicates) == [1])
        #expect(retry.repeats.map(\.seq) == [1], "the stored copy of a must be shipped again")
    }

    @Test func duplicatesInsideAGroupAndReplicaRepeatsAreNotReshipped() {
        var idx = FoldedLog()
        var ids = SplitMix64(seed: 3)
        let seed = GroupCommit.plan([.events(prepared([event("s", id: "x")]), ip: "")], index: idx.index, now: 10, node: "n1", ids: &ids, stored: idx.stored)
        fold(seed, into: &idx, firstSeq: 1)
        let stored = seed.records[0]
        let plan = GroupCommit.plan([
            .events(prepared([event("s", id: "y")]), ip: ""),
            .events(prepared([event("s", id: "y")]), ip: ""),   // same id, same group: travels once
            .replica([stored]),                                   // a peer sends what we hold
        ], index: idx.index, now: 12, node: "n1", ids: &ids, stored: idx.stored)
        #expect(plan.records.map(\.eventID) == ["y"])
        #expect(plan.perInput.map(\.stored) == [1, 0, 0] && plan.perInput.map(\.duplicates) == [0, 1, 1])
        #expect(plan.repeats.isEmpty)
    }

    @Test func identityOnlyEventsTakeALinkMadeEarlierInTheGroupAndOwnRecordsComeFirst() {
        let idx = FoldedLog()
        var ids = SplitMix64(seed: 4)
        let replica = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "r", eventID: "rep", key: "k", json: [0x7B, 0x7D])
        let plan = GroupCommit.plan([
            .replica([replica]),
            .link(sessionID: "L", userID: "u1", terminalID: nil),
            .events([GroupCommit.Prepared(event: event(nil, id: nil, user: "u1"), record: nil, clientID: false)], ip: "9.9.9.9"),
        ], index: idx.index, now: 20, node: "n1", ids: &ids, stored: idx.stored)
        #expect(plan.ownCount == 2)
        #expect(plan.records.map(\.kind) == [.link, .event, .event])
        #expect(plan.records[1].sessionID == "L" && plan.records[1].userID == "u1" && !plan.records[1].eventID.isEmpty)
        #expect(plan.records[2].eventID == "rep")
    }
}
