import Testing
@testable import StarlingCore

/// The session table: a string map found by a hash the caller may already hold.
@Suite struct HashedStringTableTests {
    @Test func behavesAsADictionaryUnderRandomChanges() {
        var table = HashedStringTable<Int>()
        var model: [String: Int] = [:]
        var rng = SplitMix64(seed: 7)
        for step in 0..<20_000 {
            let key = "s-\(rng.next() % 500)"
            switch rng.next() % 4 {
            case 0:
                table[key] = nil
                model[key] = nil
            case 1:
                table[key] = step
                model[key] = step
            default:
                table.modify(key, hash: HashedStringTable<Int>.hash(key), default: 0) { $0 += 1 }
                model[key, default: 0] += 1
            }
        }
        #expect(table.count == model.count)
        #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model)
        for (k, v) in model { #expect(table[k] == v) }
        #expect(table["absent"] == nil)
    }

    @Test func keysSharingAHashAreKeptApart() {
        // Every key is given the same hash: one chain, relinked on every removal.
        var table = HashedStringTable<Int>()
        let keys = (0..<40).map { "k\($0)" }
        for (i, k) in keys.enumerated() { table.modify(k, hash: 42, default: i) { _ in } }
        for (i, k) in keys.enumerated() { #expect(table.value(of: k, hash: 42) == i) }
        // Remove from the middle, the head and the tail of the chain, and the dense array's ends.
        for k in ["k20", "k39", "k0", "k1", "k38", "k10"] { table.remove(k, hash: 42) }
        let left = keys.filter { !["k20", "k39", "k0", "k1", "k38", "k10"].contains($0) }
        #expect(table.count == left.count)
        for k in left { #expect(table.value(of: k, hash: 42) == Int(k.dropFirst())) }
        #expect(table.value(of: "k20", hash: 42) == nil)
        table.modify("k20", hash: 42, default: 99) { $0 += 1 }
        #expect(table.value(of: "k20", hash: 42) == 100)
    }

    @Test func aRecordsSubjectHashFindsItsSession() {
        var table = HashedStringTable<Int>()
        table["a-session-id-longer-than-fifteen-bytes"] = 5
        let r = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "a-session-id-longer-than-fifteen-bytes", eventID: "e",
                       key: "k", json: [1])
        #expect(table.value(of: r.sessionID, hash: r.subjectFNV) == 5)
    }
}
