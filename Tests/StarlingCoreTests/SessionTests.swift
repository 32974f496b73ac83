import Testing
@testable import StarlingCore

let minute: Int64 = 60_000
let ttl = TTLSettings(shortMs: 30 * minute, longMs: 30 * 24 * 60 * minute)

func eventRecord(_ sid: String, at t: Int64, id: String, via: String = "", user: String = "", terminal: String = "",
                 component: String = "", key: String = "k", ts: Int64? = nil, error: Bool = false) -> Record {
    Record(kind: .event, isError: error, ts: ts ?? t, receivedAt: t, sessionID: sid, eventID: id, key: key, component: component,
           via: via, userID: user, terminalID: terminal, json: Array("{\"event_id\":\"\(id)\"}".utf8))
}

func loc(_ i: Int) -> RecordLocation { RecordLocation(segment: 1, blockOffset: 16, index: UInt32(i)) }

@Suite struct SessionStateTests {
    @Test func bothTTLsSlideWithEveryEvent() {
        var s = SessionState(firstEventAt: 1_000, via: nil, ttl: ttl)
        #expect(s.shortExpiresAt == 1_000 + 30 * minute)
        #expect(s.longExpiresAt == 1_000 + ttl.longMs)
        s.observe(at: 1_000 + 10 * minute, via: nil, ttl: ttl)
        #expect(s.events == 2)
        #expect(s.lastSeen == 1_000 + 10 * minute)
        #expect(s.shortExpiresAt == 1_000 + 40 * minute)
        #expect(s.longExpiresAt == 1_000 + 10 * minute + ttl.longMs)
        #expect(s.firstSeen == 1_000)
    }

    @Test func shortExpiryMakesInactiveButKeepsState() {
        var s = SessionState(firstEventAt: 0, via: "ad", ttl: ttl)
        #expect(s.isActive(now: 30 * minute))
        #expect(!s.isActive(now: 30 * minute + 1))
        #expect(!s.isExpired(now: 31 * minute))
        s.observe(at: 45 * minute, via: nil, ttl: ttl)
        #expect(s.events == 2)
        #expect(s.viaFirst == "ad")
        #expect(s.isActive(now: 46 * minute))
    }

    @Test func longExpiryStartsAFreshState() {
        var s = SessionState(firstEventAt: 0, via: "ad", ttl: ttl)
        s.userID = "u"
        let later = ttl.longMs + 1
        #expect(s.isExpired(now: later))
        s.observe(at: later, via: "mail", ttl: ttl)
        #expect(s.events == 1)
        #expect(s.firstSeen == later)
        #expect(s.viaFirst == "mail")
        #expect(s.userID == "u")
    }

    @Test func viaFirstAndLast() {
        var s = SessionState(firstEventAt: 0, via: nil, ttl: ttl)
        #expect(s.viaFirst == nil)
        s.observe(at: 1, via: "search", ttl: ttl)
        s.observe(at: 2, via: nil, ttl: ttl)
        #expect(s.viaFirst == "search")
        #expect(s.viaLast == "search")
        s.observe(at: 3, via: "mail", ttl: ttl)
        #expect(s.viaFirst == "search")
        #expect(s.viaLast == "mail")
    }

    @Test func serverClockGoingBackDoesNotShrinkTTL() {
        var s = SessionState(firstEventAt: 10 * minute, via: nil, ttl: ttl)
        s.observe(at: 5 * minute, via: nil, ttl: ttl)
        #expect(s.lastSeen == 10 * minute)
        #expect(s.shortExpiresAt == 40 * minute)
    }
}

@Suite struct NodeIndexTests {
    @Test func eventsAreIndexedPerSessionAndIdentity() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s1", at: 1, id: "a", user: "u1"), at: loc(0), seq: 1)
        idx.apply(eventRecord("s1", at: 2, id: "b", via: "ad"), at: loc(1), seq: 2)
        idx.apply(eventRecord("s2", at: 3, id: "c", terminal: "t1"), at: loc(2), seq: 3)
        #expect(idx.openRefs(of: .session("s1")).count == 2)
        #expect(idx.openRefs(of: .user("u1")).count == 1)
        #expect(idx.openRefs(of: .terminal("t1")).count == 1)
        #expect(idx.openRefCount == 5)
        #expect(idx.state(ofSession: "s1", now: 3)?.events == 2)
        #expect(idx.state(ofSession: "s1", now: 3)?.userID == "u1")
        #expect(idx.state(ofSession: "s1", now: 3)?.viaLast == "ad")
        #expect(idx.state(ofSession: "nope", now: 3) == nil)
        #expect(idx.eventCount == 3)
        #expect(idx.lastSeq == 3)
    }

    /// Component names come from clients: past `componentsMax` distinct names, new ones are
    /// counted together, while names already known keep counting on their own.
    @Test func componentCountersAreBounded() {
        var idx = NodeIndex(ttl: ttl)
        let n = NodeIndex.componentsMax
        for i in 0..<(n + 50) { idx.apply(eventRecord("s", at: Int64(i), id: "e\(i)", component: "c\(i)"), at: loc(i), seq: UInt64(i + 1)) }
        idx.apply(eventRecord("s", at: 1, id: "again", component: "c7", error: true), at: loc(0), seq: UInt64(n + 51))
        #expect(idx.components.count == n + 1)
        #expect(idx.components[NodeIndex.otherComponents]?.events == 50)
        #expect(idx.components["c7"]?.events == 2 && idx.components["c7"]?.errors == 1)
        #expect(idx.components["c\(n + 1)"] == nil)
    }

    /// Catch-up scans skip entries by their newest time; refs are not in time order after a
    /// catch-up appended older records, so the newest is a maximum, not the last one.
    @Test func newestReceivedAtIsTheMaximumInAnyApplyOrder() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s1", at: 50, id: "a", user: "u1"), at: loc(0), seq: 1)
        idx.apply(eventRecord("s1", at: 10, id: "b", terminal: "t1"), at: loc(1), seq: 2)
        idx.apply(Record(kind: .link, ts: 70, receivedAt: 70, sessionID: "s1", userID: "u1"), at: loc(2), seq: 3)
        #expect(idx.sessions["s1"]?.newestReceivedAt == 50)
        #expect(idx.users["u1"]?.newestReceivedAt == 70)
        #expect(idx.terminals["t1"]?.newestReceivedAt == 10)
    }

    @Test func dedupeIsPerScope() {
        var idx = FoldedLog(NodeIndex(ttl: ttl))
        idx.apply(eventRecord("s1", at: 1, id: "dup"), at: loc(0), seq: 1)
        #expect(idx.has("dup", in: .session("s1")))
        #expect(!idx.has("dup", in: .session("s2")))
        #expect(!idx.has("other", in: .session("s1")))
        idx.apply(eventRecord("", at: 1, id: "x", user: "u"), at: loc(1), seq: 2)
        #expect(idx.has("x", in: .user("u")))
        #expect(!idx.has("x", in: .session("")))
        #expect(SubjectKey(sessionID: nil, userID: "u", terminalID: "t") == .user("u"))
        #expect(SubjectKey(sessionID: nil, userID: nil, terminalID: "t") == .terminal("t"))
        #expect(SubjectKey(sessionID: "s", userID: "u", terminalID: nil) == .session("s"))
        #expect(SubjectKey(sessionID: "", userID: "", terminalID: "t").ringKey == "t:t")
        #expect(SubjectKey.user("u").ringKey == "u:u" && SubjectKey.session("u:x").ringKey == "u:x")
        let link = Record(kind: .link, ts: 1, receivedAt: 1, sessionID: "s", userID: "u", terminalID: "t")
        #expect(SubjectKey.all(of: link) == [.session("s"), .user("u"), .terminal("t")])
    }

    @Test func linksResolveLatestSession() {
        var idx = NodeIndex(ttl: ttl)
        #expect(idx.resolveSession(userID: "u", terminalID: nil) == nil)
        idx.apply(Record(kind: .link, ts: 10, receivedAt: 10, sessionID: "s1", userID: "u"), at: loc(0), seq: 1)
        idx.apply(Record(kind: .link, ts: 20, receivedAt: 20, sessionID: "s2", userID: "u", terminalID: "t"), at: loc(1), seq: 2)
        idx.apply(Record(kind: .link, ts: 30, receivedAt: 30, sessionID: "s1", userID: "u"), at: loc(2), seq: 3)  // repeat: not listed twice
        #expect(idx.users["u"]?.links.map(\.sessionID) == ["s1", "s2"])
        #expect(idx.users["u"]?.links.first?.linkedAt == 10)
        #expect(idx.resolveSession(userID: "u", terminalID: nil) == "s2")
        #expect(idx.resolveSession(userID: nil, terminalID: "t") == "s2")
        #expect(idx.resolveSession(userID: "other", terminalID: "t") == "s2")
    }

    @Test func componentStatsCountErrors() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s", at: 5, id: "1", component: "api"), at: loc(0), seq: 1)
        idx.apply(eventRecord("s", at: 9, id: "2", component: "api", error: true), at: loc(1), seq: 2)
        idx.apply(eventRecord("s", at: 7, id: "3", component: "web"), at: loc(2), seq: 3)
        #expect(idx.components["api"] == ComponentStats(events: 2, errors: 1, lastSeen: 9))
        #expect(idx.components["web"]?.events == 1)
    }

    @Test func forgetDropsRefsOfDeletedSegments() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s", at: 1, id: "1", user: "u"), at: RecordLocation(segment: 1, blockOffset: 16, index: 0), seq: 1)
        idx.apply(eventRecord("s", at: 2, id: "2", user: "u"), at: RecordLocation(segment: 2, blockOffset: 16, index: 0), seq: 2)
        idx.forget(segments: [1])
        #expect(idx.openRefs(of: .session("s")).map(\.seq) == [2])
        #expect(idx.openRefs(of: .user("u")).map(\.seq) == [2])
        #expect(idx.openRefCount == 2)
        #expect(idx.state(ofSession: "s", now: 2)?.events == 2)
    }

    @Test func replayIsDeterministic() {
        var rng = SplitMix64(seed: 7)
        var records: [Record] = []
        for i in 0..<500 {
            let sid = "s\(rng.next() % 20)"
            let via = rng.next() % 3 == 0 ? "v\(rng.next() % 4)" : ""
            records.append(eventRecord(sid, at: Int64(i) * minute, id: "e\(i)", via: via))
        }
        func fold() -> NodeIndex {
            var idx = NodeIndex(ttl: ttl)
            for (i, r) in records.enumerated() { idx.apply(r, at: loc(i), seq: UInt64(i + 1)) }
            return idx
        }
        let a = fold(), b = fold()
        for k in a.sessions.keys {
            #expect(a.sessions[k]?.state == b.sessions[k]?.state)
        }
        #expect(a.openRefCount == 500)
        #expect(a.dedupe.count == b.dedupe.count && a.dedupe.start == b.dedupe.start)
    }
}

@Suite struct RecordTests {
    @Test func roundTrip() throws {
        let r = Record(kind: .event, isError: true, ts: -5, receivedAt: 1_700_000_000_000, sessionID: "sé", eventID: "e",
                       key: "k", component: "c", via: "v", userID: "u", terminalID: "t", json: Array("{}".utf8))
        let bytes = r.encoded
        var reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        let decoded = try bytes.withUnsafeBytes { buf in
            reader = ByteReader(buf)
            return try Record.decode(&reader)
        }
        #expect(decoded == r)
    }

    @Test func everyFlippedByteIsDetected() {
        let r = eventRecord("s", at: 1, id: "x", via: "v")
        let good = r.encoded
        for i in 0..<good.count {
            var bad = good
            bad[i] ^= 0x40
            let ok = bad.withUnsafeBytes { buf -> Bool in
                var reader = ByteReader(buf)
                guard let d = try? Record.decode(&reader) else { return false }
                return d == r
            }
            #expect(!ok, "flip at \(i) went unnoticed")
        }
    }

    @Test func truncationIsDetectedNotTrapped() {
        let good = eventRecord("s", at: 1, id: "x").encoded
        for n in 0..<good.count {
            let part = Array(good[0..<n])
            let failed = part.withUnsafeBytes { buf -> Bool in
                var reader = ByteReader(buf)
                return (try? Record.decode(&reader)) == nil
            }
            #expect(failed)
        }
    }
}

@Suite struct SmallCoreTests {
    @Test func eventIDsAreULIDShapedAndSortByTime() {
        var rng = SplitMix64(seed: 1)
        let a = EventID.make(nowMs: 1_700_000_000_000, using: &rng)
        let b = EventID.make(nowMs: 1_700_000_000_001, using: &rng)
        #expect(a.count == 26)
        #expect(a < b)
        var rng2 = SplitMix64(seed: 1)
        #expect(EventID.make(nowMs: 1_700_000_000_000, using: &rng2) == a)
    }

    @Test func durations() {
        #expect(Durations.parse("30m") == 30 * minute)
        #expect(Durations.parse("500ms") == 500)
        #expect(Durations.parse("2h") == 120 * minute)
        #expect(Durations.parse("30d") == 30 * 24 * 60 * minute)
        #expect(Durations.parse("90") == 90_000)
        #expect(Durations.parse("-5m") == nil)
        #expect(Durations.parse("abc") == nil)
        #expect(Durations.parse("") == nil)
    }

    @Test func urlQuery() {
        let q = URLQuery.parse("sid=a%20b&k=x+y&v=&k=second&bad=%zz")
        #expect(q["sid"] == "a b")
        #expect(q["k"] == "x y")
        #expect(q["v"] == "")
        #expect(q["bad"] == "")
        let t = URLQuery.splitTarget("/v1/sessions/s%2F1?limit=5")
        #expect(t?.segments == ["v1", "sessions", "s/1"])
        #expect(t?.query == "limit=5")
        #expect(URLQuery.splitTarget("/v1/%ff") == nil)
    }

    @Test func queryParametersAndOrdering() throws {
        let q = try EventQuery.parse(["from": "10", "to": "20", "key": "k", "limit": "2"], limits: Limits()).get()
        #expect(q.from == 10 && q.to == 20 && q.key == "k" && q.limit == 2)
        #expect(errorCode(EventQuery.parse(["limit": "0"], limits: Limits())) == "invalid_parameter")
        #expect(errorCode(EventQuery.parse(["limit": "100001"], limits: Limits())) == "invalid_parameter")
        #expect(errorCode(EventQuery.parse(["from": "x"], limits: Limits())) == "invalid_parameter")
        #expect(try EventQuery.parse([:], limits: Limits()).get().limit == 10_000)
        let refs = [
            EventRef(location: loc(0), ts: 15, receivedAt: 3, seq: 3),
            EventRef(location: loc(1), ts: 5, receivedAt: 1, seq: 1),
            EventRef(location: loc(2), ts: 15, receivedAt: 2, seq: 2),
            EventRef(location: loc(3), ts: 25, receivedAt: 4, seq: 4),
            EventRef(location: loc(4), ts: 20, receivedAt: 4, seq: 5),
        ]
        #expect(q.candidates(refs).map(\.seq) == [2, 3, 5])
        let sel = q.select([eventRecord("s", at: 1, id: "a", key: "k"), eventRecord("s", at: 1, id: "a", key: "k"),
                            eventRecord("s", at: 1, id: "b", key: "other"), eventRecord("s", at: 1, id: "c", key: "k"),
                            eventRecord("s", at: 1, id: "d", key: "k")])
        #expect(sel.records.map(\.eventID) == ["a", "c"])
        #expect(sel.truncated)
    }

    @Test func htmlEscapes() {
        #expect(QueryRender.escapeHTML("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;")
        let page = String(decoding: QueryRender.html(title: "Session <s>", records: [eventRecord("s", at: 0, id: "<x>", key: "<k>")],
                                                     state: nil, now: 0, partial: false, truncated: false), as: UTF8.self)
        #expect(page.contains("Session &lt;s&gt;"))
        #expect(page.contains("&lt;k&gt;"))
        #expect(!page.contains("<k>"))
    }
}
