import Testing
import StarlingCore
@testable import StarlingCluster

/// The node's ingest bookkeeping: parts by owner, one answer per request once every part is in.
@Suite struct IngestTests {
    func event(_ session: String, _ id: String) -> IncomingEvent {
        let json = Array(#"{"session_id":"\#(session)","key":"k","value":1,"event_id":"\#(id)"}"#.utf8)
        guard case .success(let e) = json.withUnsafeBytes({ EventValidator.event(fromJSON: $0, limits: Limits()) }) else {
            fatalError("test event \(id) is invalid")
        }
        return e
    }

    func soloNode() -> ClusterNode {
        let me = MemberInfo(id: "a", peer: "10.0.0.1:7081", http: "10.0.0.1:8081", incarnation: 0)
        var n = ClusterNode(settings: ClusterNodeSettings(id: "a", rf: 1), me: me, seed: 7)
        _ = n.start(seeds: [], now: 0)
        return n
    }

    @Test func routeGroupsByOwnerInFirstSeenOrder() {
        let ring = HashRing(members: ["a", "b", "c"])
        let keys: [SubjectKey] = (0..<60).map { .session("s\($0 % 20)") }
        let route = IngestRoute(keys: keys, ring: ring, me: "a")
        #expect(Set(route.owners) == Set(["a", "b", "c"]))
        #expect(route.indices.flatMap { $0 }.sorted() == Array(0..<60))
        for (owner, indices) in zip(route.owners, route.indices) {
            #expect(indices == indices.sorted(), "request order kept within an owner")
            for i in indices { #expect(Placement.owner(of: keys[i].ringKey, ring: ring, me: "a") == owner) }
        }
        #expect(route.owners.first == Placement.owner(of: keys[0].ringKey, ring: ring, me: "a"))
        let alone = IngestRoute(keys: keys, ring: HashRing(members: ["a"]), me: "a")
        #expect(alone.owners == ["a"] && alone.indices == [Array(0..<60)])
    }

    /// The shell routes events by hashes read from the events themselves; they must place each
    /// event where its subject key's ring key places it (session, else user, else terminal), and
    /// one owner's records built by index must be the records of that owner's events.
    @Test func routingAnEventByItsFieldsMatchesItsSubjectKey() {
        func parsed(_ json: String) -> IncomingEvent {
            guard case .success(let e) = Array(json.utf8).withUnsafeBytes({ EventValidator.event(fromJSON: $0, limits: Limits()) }) else {
                fatalError("test event is invalid: \(json)")
            }
            return e
        }
        let events = (0..<40).map { i -> IncomingEvent in
            switch i % 4 {
            case 0: return parsed(#"{"session_id":"sé-\#(i)","user_id":"u\#(i)","key":"k","value":1}"#)
            case 1: return parsed(#"{"user_id":"u-\#(i)","terminal_id":"t\#(i)","key":"k","value":1}"#)
            case 2: return parsed(#"{"terminal_id":"t-\#(i)","key":"k","value":1}"#)
            default: return parsed(#"{"session_id":"a-much-longer-session-id-than-fifteen-bytes-\#(i)","key":"k","value":1,"event_id":"e\#(i)"}"#)
            }
        }
        let keys = events.map { SubjectKey(sessionID: $0.sessionID, userID: $0.userID, terminalID: $0.terminalID) }
        for (e, k) in zip(events, keys) {
            #expect(RingHash.hash(subjectOf: e) == RingHash.hash(k.ringKey), "\(k.ringKey)")
        }
        let ring = HashRing(members: ["a", "b", "c", "d"])
        let byFields = IngestRoute(count: events.count, ring: ring, me: "a") { RingHash.hash(subjectOf: events[$0]) }
        #expect(byFields == IngestRoute(keys: keys, ring: ring, me: "a"))
        #expect(byFields.owners.count > 1)
        for indices in byFields.indices {
            var r1 = SplitMix64(seed: 9), r2 = SplitMix64(seed: 9)
            let byIndex = StoredEvent.records(of: events, at: indices, receivedAt: 5, node: "b", ip: "1.2.3.4", using: &r1)
            let copied = StoredEvent.records(of: indices.map { events[$0] }, receivedAt: 5, node: "b", ip: "1.2.3.4", using: &r2)
            #expect(byIndex == copied)
        }
    }

    @Test func ownPartIsAnsweredOnceStored() {
        var n = soloNode()
        let d = n.ingest([.own([event("s1", "e1"), event("s1", "e2")], bytes: 100)], ip: "1.2.3.4", transport: 0, ticket: 42, now: 10)
        guard case .appendIncoming(let events, let ip, _, let bytes, let part, _)? = d.first, d.count == 1 else {
            Issue.record("expected one .appendIncoming, got \(d)")
            return
        }
        #expect(events.count == 2 && ip == "1.2.3.4" && bytes == 100)
        let answer = n.appended(ticket: part, result: .success(2))
        guard case .ingested(42, .success(2))? = answer.first else {
            Issue.record("expected the request answered with 2 stored, got \(answer)")
            return
        }
        #expect(n.appended(ticket: part, result: .success(2)).isEmpty, "a part is answered once")
    }

    @Test func theFirstFailureAnswersOnlyOnceEveryPartIsIn() {
        var n = soloNode()
        let item = RecordBatch.Item(transport: 0, clientID: true, record: [1, 2, 3])
        let d = n.ingest([.own([event("s1", "e1")], bytes: 50), .records(owner: "b", [item])], ip: "", transport: 0, ticket: 9, now: 10)
        // "b" is no member: its part fails at once, but the request waits for the own part.
        #expect(!d.contains { if case .ingested = $0 { true } else { false } })
        guard let part = d.compactMap({ if case .appendIncoming(_, _, _, _, let t, _) = $0 { t } else { nil } }).first else {
            Issue.record("no own part in \(d)")
            return
        }
        let answer = n.appended(ticket: part, result: .success(1))
        guard case .ingested(9, .failure(let e))? = answer.first else {
            Issue.record("expected a failure answer, got \(answer)")
            return
        }
        #expect(e.status == 503 && e.code == "owner_unavailable")
    }

    @Test func aDrainingNodeRefusesAtOnce() {
        var n = soloNode()
        n.beginDrain()
        let d = n.ingest([.own([event("s1", "e1")], bytes: 50)], ip: "", transport: 0, ticket: 3, now: 10)
        guard case .ingested(3, .failure(let e))? = d.first, d.count == 1 else {
            Issue.record("expected an immediate refusal, got \(d)")
            return
        }
        #expect(e.code == "shutting_down")
    }
}
