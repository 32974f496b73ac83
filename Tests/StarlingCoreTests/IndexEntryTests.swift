import Testing
@testable import StarlingCore

/// The index keeps each subject's open refs in its own entry (one lookup per event), and the
/// dedupe window's key table is a hashed-key table instead of a `Dictionary`.
@Suite struct IndexEntryTests {
    /// Random inserts, overwrites, removals and lookups agree with a `Dictionary`, also when
    /// many keys share a home slot (keys that differ only above the bits the slot is taken from
    /// would not: so keys here are small integers, which the multiply spreads, and multiples of
    /// 2^40, which collide often in a small table).
    @Test func hashedKeyTableAgreesWithADictionary() {
        var rng = SplitMix64(seed: 42)
        var table = HashedKeyTable()
        var model: [UInt64: Int64] = [:]
        for step in 0..<60_000 {
            let key: UInt64 = rng.next() % 2 == 0 ? rng.next() % 3_000 : (rng.next() % 500) << 40
            switch rng.next() % 5 {
            case 0:
                let v = Int64(step)
                table[key] = v
                model[key] = v
            case 1:
                let v = Int64(step)
                #expect(table.exchange(key, v) == model.updateValue(v, forKey: key))
            case 2, 3:
                table[key] = nil
                model[key] = nil
            default:
                #expect(table[key] == model[key])
            }
            if step % 5_000 == 0 { #expect(table.count == model.count) }
        }
        #expect(table.count == model.count)
        for (k, v) in model { #expect(table[k] == v) }
        var emptied = table
        for k in model.keys { emptied[k] = nil }
        #expect(emptied.count == 0 && emptied[model.keys.first ?? 0] == nil)
        #expect(table.count == model.count)   // the copy was not shared
        table.reserveCapacity(100_000)
        for (k, v) in model { #expect(table[k] == v) }
    }

    /// The queue behaves as an array with removals at the front, across chunk boundaries, and a
    /// copy is independent of the original.
    @Test func chunkedQueueIsAFIFO() {
        var rng = SplitMix64(seed: 5)
        var q = ChunkedQueue<Int>()
        var model: [Int] = []
        var next = 0
        let n = ChunkedQueue<Int>.chunkSize
        for _ in 0..<(4 * n) {
            if rng.next() % 3 != 0 || model.isEmpty {
                q.append(next); model.append(next); next += 1
            } else {
                q.removeFirst(); model.removeFirst()
            }
        }
        #expect(q.count == model.count && Array(q) == model)
        #expect(q.first == model.first && q[q.count - 1] == model.last)
        let copy = q
        q.append(-1)
        q.removeFirst()
        #expect(Array(copy) == model)
        while !q.isEmpty { q.removeFirst() }
        #expect(q.count == 0 && q.first == nil && Array(q).isEmpty)
        q.append(7)
        #expect(Array(q) == [7])
    }

    @Test func hashedKeyTableCopiesAreIndependent() {
        var a = HashedKeyTable()
        for k in 0..<5_000 { a[UInt64(k) &* 0x1234_5678_9ABC_DEF1] = Int64(k) }
        var b = a
        for k in 0..<2_500 { b[UInt64(k) &* 0x1234_5678_9ABC_DEF1] = nil }
        b[42] = 7
        #expect(a.count == 5_000 && b.count == 2_501)
        #expect(a[UInt64(10) &* 0x1234_5678_9ABC_DEF1] == 10 && b[UInt64(10) &* 0x1234_5678_9ABC_DEF1] == nil)
        #expect(a[42] == nil && b[42] == 7)
    }

    /// Checkpoints store dedupe keys: the key must stay the FNV-1a of the subject's ring key,
    /// a 0xFF byte and the id, whatever builds it.
    @Test func dedupeKeyIsTheFNVOfRingKeyAndID() {
        for scope in [SubjectKey.session("s-1"), .user("ü"), .terminal("t9"), .session("")] {
            let expected = StableHash.fnv1a64(Array(scope.ringKey.utf8) + [0xFF] + Array("evt-é".utf8))
            #expect(DedupeWindow.key("evt-é", in: scope) == expected)
        }
    }

    @Test func takeOpenRefsEmptiesEveryEntryAndListsEachSubjectOnce() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s1", at: 1, id: "a", user: "u"), at: loc(0), seq: 1)
        idx.apply(eventRecord("s1", at: 2, id: "b", user: "u", terminal: "t"), at: loc(1), seq: 2)
        idx.apply(eventRecord("s2", at: 3, id: "c"), at: loc(2), seq: 3)
        #expect(idx.openSubjects.count == 4 && idx.openRefCount == 6)
        let taken = idx.takeOpenRefs()
        #expect(taken[.session("s1")]?.map(\.seq) == [1, 2])
        #expect(taken[.user("u")]?.map(\.seq) == [1, 2])
        #expect(taken[.terminal("t")]?.map(\.seq) == [2])
        #expect(taken[.session("s2")]?.map(\.seq) == [3])
        #expect(taken.count == 4)
        #expect(idx.openSubjects.isEmpty && idx.openRefCount == 0)
        #expect(idx.openRefs(of: .session("s1")).isEmpty && idx.openRefs(of: .user("u")).isEmpty)
        // State stays; new refs start a new open set.
        #expect(idx.state(ofSession: "s1", now: 3)?.events == 2)
        idx.apply(eventRecord("s1", at: 4, id: "d"), at: loc(3), seq: 4)
        #expect(idx.openSubjects == [.session("s1")] && idx.openRefs(of: .session("s1")).map(\.seq) == [4])
        #expect(idx.takeOpenRefs() == [.session("s1"): [EventRef(location: loc(3), ts: 4, receivedAt: 4, seq: 4)]])
    }

    /// Recovery folds records of segments that already have an index file without refs.
    @Test func foldingWithoutRefsListsNothing() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("s", at: 1, id: "a", terminal: "t"), at: loc(0), seq: 1, keepRef: false)
        #expect(idx.openSubjects.isEmpty && idx.openRefCount == 0 && idx.takeOpenRefs().isEmpty)
        #expect(idx.terminals["t"]?.newestReceivedAt == 1 && idx.sessions["s"]?.state?.events == 1)
    }

    /// Retention: a subject whose every open ref was in deleted segments leaves the list, so a
    /// later take does not hand over an empty list, and expiry may forget the session.
    @Test func forgetKeepsTheListOfSubjectsTrue() {
        var idx = NodeIndex(ttl: ttl)
        idx.apply(eventRecord("old", at: 1, id: "1"), at: RecordLocation(segment: 1, blockOffset: 16, index: 0), seq: 1)
        idx.apply(eventRecord("new", at: 2, id: "2"), at: RecordLocation(segment: 2, blockOffset: 16, index: 0), seq: 2)
        idx.forget(segments: [1])
        #expect(idx.openSubjects == [.session("new")] && idx.openRefCount == 1)
        let later = 10 * ttl.longMs
        #expect(idx.expiredSessions(now: later, horizon: later, limit: 10).map(\.id) == ["old"])
        #expect(Array(idx.takeOpenRefs().keys) == [.session("new")])
    }
}
