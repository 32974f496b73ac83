import Testing
@testable import StarlingCore

/// An index with the records it folded, so dedupe candidates can be confirmed against them
/// (what the engine does by reading the log).
struct FoldedLog {
    var index: NodeIndex
    var records: [UInt64: Record] = [:]
    init(_ index: NodeIndex = NodeIndex(ttl: TTLSettings())) { self.index = index }

    mutating func apply(_ r: Record, at location: RecordLocation, seq: UInt64) {
        index.apply(r, at: location, seq: seq)
        records[seq] = r
    }

    var stored: StoredRecords {
        let recs = records
        return StoredRecords(read: { recs[$0.seq] })
    }

    func has(_ id: String, in scope: SubjectKey, receivedAt: Int64? = nil) -> Bool {
        index.storedCopy(eventID: id, in: scope, receivedAt: receivedAt, stored: stored) != nil
    }
}

@Suite struct DedupeTests {
    func ref(_ seq: UInt64, at t: Int64) -> EventRef {
        EventRef(location: RecordLocation(segment: 1, blockOffset: 16, index: UInt32(seq)), ts: t, receivedAt: t, seq: seq)
    }

    /// Two refs under one key (a hash collision, or a repeat stored again) are both candidates,
    /// oldest first, and leave in arrival order.
    @Test func aWindowKeepsEveryRefOfAKeyAndForgetsInArrivalOrder() {
        var w = DedupeWindow(windowMs: 100)
        w.insert(7, ref(1, at: 0))
        w.insert(7, ref(2, at: 50))
        w.insert(9, ref(3, at: 60))
        #expect(w.candidates(7).map(\.seq) == [1, 2] && w.count == 3)
        w.insert(11, ref(4, at: 120))   // log time 120: arrivals before 20 are forgotten
        #expect(w.candidates(7).map(\.seq) == [2] && w.count == 3)
        w.insert(11, ref(5, at: 400))
        #expect(w.candidates(7).isEmpty && w.candidates(9).isEmpty && w.candidates(11).map(\.seq) == [5])
        #expect(w.count == 1)
        // A key that comes back after its entries left starts a new chain.
        w.insert(7, ref(6, at: 410))
        w.insert(7, ref(7, at: 420))
        #expect(w.candidates(7).map(\.seq) == [6, 7] && w.count == 3)
    }

    @Test func keysSeparateScopeFromId() {
        #expect(DedupeWindow.key("ab", in: .session("s")) != DedupeWindow.key("b", in: .session("sa")))
        #expect(DedupeWindow.key("x", in: .session("s")) != DedupeWindow.key("x", in: .user("s")))
        #expect(DedupeWindow.key("x", in: .session("s")) == DedupeWindow.key("x", in: .session("s")))
    }

    /// The defect this replaces: a hash match used to count as "already stored", so an event
    /// whose (scope, id) hash equalled a stored one's was acknowledged and never stored. A
    /// candidate now counts only when the stored record has the same id and scope.
    @Test func aHashMatchWithADifferentStoredIdIsStored() {
        var log = FoldedLog()
        log.apply(eventRecord("s", at: 1, id: "a"), at: loc(0), seq: 1)
        // Make the candidate's stored record say another id: what a colliding hash looks like.
        var other = log.records[1]!
        other.eventID = "not-a"
        let colliding = StoredRecords(read: { _ in other })
        #expect(log.index.storedCopy(eventID: "a", in: .session("s"), stored: colliding) == nil)
        var ids = SplitMix64(seed: 1)
        let incoming = IncomingEvent(prefix: Array(#"{"key":"k","#.utf8), sessionID: "s", key: "k", eventID: "a")
        var rng = SplitMix64(seed: 2)
        let rec = StoredEvent.records(of: [incoming], receivedAt: 5, node: "n", ip: "", using: &rng)[0]
        let plan = GroupCommit.plan([.events([GroupCommit.Prepared(event: incoming, record: rec, clientID: true)], ip: "")],
                                    index: log.index, now: 5, node: "n", ids: &ids, stored: colliding)
        #expect(plan.records.map(\.eventID) == ["a"] && plan.repeats.isEmpty)
        // With the true stored record it is a repeat, shipped again.
        let again = GroupCommit.plan([.events([GroupCommit.Prepared(event: incoming, record: rec, clientID: true)], ip: "")],
                                     index: log.index, now: 5, node: "n", ids: &ids, stored: log.stored)
        #expect(again.records.isEmpty && again.repeats.map(\.seq) == [1])
    }

    /// An unreadable candidate cannot be confirmed: the event is stored (a duplicate at worst,
    /// which answers drop), never acknowledged without a copy.
    @Test func anUnreadableCandidateIsNotADuplicate() {
        var log = FoldedLog()
        log.apply(eventRecord("s", at: 1, id: "a"), at: loc(0), seq: 1)
        #expect(log.index.storedCopy(eventID: "a", in: .session("s"), stored: StoredRecords(read: { _ in nil })) == nil)
        #expect(log.has("a", in: .session("s")))
    }

    /// Beyond the window a client's repeat is not found (documented); a replicated record, whose
    /// original receive time is known, is still found among the refs of that time.
    @Test func beyondTheWindowReplicasAreStillFoundByTheirReceiveTime() {
        var log = FoldedLog(NodeIndex(ttl: TTLSettings(), dedupeWindowMs: 1_000))
        log.apply(eventRecord("s", at: 10, id: "old"), at: loc(0), seq: 1)
        log.apply(eventRecord("s", at: 5_000, id: "new"), at: loc(1), seq: 2)
        #expect(log.index.dedupe.count == 1)
        #expect(!log.has("old", in: .session("s")))
        #expect(log.has("old", in: .session("s"), receivedAt: 10))
        #expect(!log.has("old", in: .session("s"), receivedAt: 11))
        #expect(log.has("new", in: .session("s")))
        // The sealed-index lookup is asked when the open refs do not hold it.
        let taken = log.index.takeOpenRefs()
        #expect(taken[.session("s")]?.count == 2 && log.index.openRefCount == 0 && log.index.openRefs(of: .session("s")).isEmpty)
        #expect(!log.has("old", in: .session("s"), receivedAt: 10))
        let sealed = StoredRecords(read: log.stored.read, sealed: { scope, t in (taken[scope] ?? []).filter { $0.receivedAt == t } })
        #expect(log.index.storedCopy(eventID: "old", in: .session("s"), receivedAt: 10, stored: sealed)?.seq == 1)
    }

    /// The window stays bounded however long the log grows.
    @Test func theWindowIsBoundedByLogTime() {
        var log = FoldedLog(NodeIndex(ttl: TTLSettings(), dedupeWindowMs: 100))
        for i in 0..<10_000 {
            log.index.apply(eventRecord("s\(i % 7)", at: Int64(i), id: "e\(i)"), at: loc(i), seq: UInt64(i + 1))
        }
        #expect(log.index.dedupe.count <= 101 && log.index.dedupe.count >= 100)
        #expect(log.index.eventCount == 10_000)
        // After the ring was compacted many times, recent ids are still found, old ones not.
        let recent = DedupeWindow.key("e9990", in: .session("s\(9990 % 7)"))
        #expect(log.index.dedupe.candidates(recent).map(\.seq) == [9991])
        #expect(log.index.dedupe.candidates(DedupeWindow.key("e5", in: .session("s5"))).isEmpty)
        #expect(log.index.dedupe.entries.count < 10_000)
    }
}

/// The checkpoint's body: the index without its open refs, read back exactly.
@Suite struct SnapshotTests {
    func records() -> [Record] {
        var rng = SplitMix64(seed: 11)
        var out: [Record] = []
        for i in 0..<400 {
            let n = Int(rng.next() % 30)
            var r = eventRecord("s\(n)", at: Int64(i) * 60_000, id: "e\(i)", via: rng.next() % 4 == 0 ? "v\(n)" : "",
                                user: n % 3 == 0 ? "u\(n % 5)" : "", terminal: n % 7 == 0 ? "t\(n)" : "", component: "c\(n % 4)",
                                error: i % 9 == 0)
            if i % 50 == 0 { r = Record(kind: .link, ts: r.ts, receivedAt: r.receivedAt, sessionID: "s\(n)", userID: "u\(i)", terminalID: "t\(i)") }
            out.append(r)
        }
        return out
    }

    func same(_ a: NodeIndex, _ b: NodeIndex) -> Bool {
        a.sessions.count == b.sessions.count && a.sessions.allSatisfy { k, e in
            let o = b.sessions[k]
            return o?.state == e.state && o?.userID == e.userID && o?.terminalID == e.terminalID && o?.newestReceivedAt == e.newestReceivedAt
        }
            && a.users.mapValues(\.links) == b.users.mapValues(\.links) && a.terminals.mapValues(\.links) == b.terminals.mapValues(\.links)
            && a.users.mapValues(\.newestReceivedAt) == b.users.mapValues(\.newestReceivedAt)
            && a.components == b.components && a.eventCount == b.eventCount && a.lastSeq == b.lastSeq
            && a.dedupe.count == b.dedupe.count && a.dedupe.start == b.dedupe.start
            && a.dedupe.entries.map(\.key) == b.dedupe.entries.map(\.key)
            && a.dedupe.entries.map(\.seq) == b.dedupe.entries.map(\.seq)
    }

    /// Restoring a snapshot taken halfway and folding the rest gives the index a whole fold gives.
    @Test func aRestoredSnapshotContinuesLikeTheWholeFold() throws {
        let all = records()
        let window: Int64 = 3 * 3_600_000
        var whole = NodeIndex(ttl: TTLSettings(), dedupeWindowMs: window)
        for (i, r) in all.enumerated() { whole.apply(r, at: loc(i), seq: UInt64(i + 1)) }
        var half = NodeIndex(ttl: TTLSettings(), dedupeWindowMs: window)
        for (i, r) in all.prefix(200).enumerated() { half.apply(r, at: loc(i), seq: UInt64(i + 1)) }
        _ = half.takeOpenRefs()
        var restored = try NodeIndex(snapshot: half.snapshot(), ttl: TTLSettings(), dedupeWindowMs: window)
        #expect(same(half, restored))
        for (i, r) in all.enumerated().dropFirst(200) { restored.apply(r, at: loc(i), seq: UInt64(i + 1)) }
        #expect(same(whole, restored))
        #expect(!whole.users.isEmpty && !whole.terminals.isEmpty && whole.components.count == 4)
    }

    @Test func aCutSnapshotNeverLoads() {
        var idx = NodeIndex(ttl: TTLSettings())
        for (i, r) in records().prefix(60).enumerated() { idx.apply(r, at: loc(i), seq: UInt64(i + 1)) }
        let bytes = idx.snapshot()
        for cut in 0..<bytes.count {
            #expect(throws: (any Error).self, "cut at \(cut)") { try NodeIndex(snapshot: Array(bytes[0..<cut]), ttl: TTLSettings(), dedupeWindowMs: 1) }
        }
        #expect(throws: (any Error).self) { try NodeIndex(snapshot: bytes + [0], ttl: TTLSettings(), dedupeWindowMs: 1) }
    }
}
