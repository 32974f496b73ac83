import Testing
import StarlingCore
@testable import StarlingCluster

/// Keys drawn from a seeded generator, so every run checks the same 100,000 keys.
private func sampleKeys(_ count: Int = 100_000, seed: UInt64 = 0x5EED) -> [String] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in "session-\(rng.next())" }
}

private func nodeIDs(_ n: Int) -> [String] { (1...n).map { "node-\($0)" } }

@Suite struct HashRingTests {
    /// Pinned: these values are shared between processes and machines, so they must never change.
    @Test func ringHashGoldenValues() {
        #expect(RingHash.hash("") == 0xF52A_15E9_A9B5_E89B)
        #expect(RingHash.hash("a") == 0x02C0_BDBF_4814_20F8)
        #expect(RingHash.hash("session-42") == 0x666A_2654_7240_5471)
        // It is FNV-1a 64 ("a" -> 0xaf63dc4c8601ec8c, the published test vector) then the SplitMix64 finalizer.
        #expect(StableHash.fnv1a64("a") == 0xAF63_DC4C_8601_EC8C)
        var z: UInt64 = 0xAF63_DC4C_8601_EC8C
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        #expect(RingHash.hash("a") == z ^ (z >> 31))
    }

    @Test(arguments: [3, 4, 8])
    func keysSpreadEvenly(members n: Int) {
        let ring = HashRing(members: nodeIDs(n))
        #expect(ring.vnodes == HashRing.defaultVnodes)
        var counts: [String: Int] = [:]
        let keys = sampleKeys()
        for key in keys { counts[ring.owner(of: key)!, default: 0] += 1 }
        let mean = Double(keys.count) / Double(n)
        for id in ring.members {
            let c = Double(counts[id] ?? 0)
            #expect(abs(c - mean) <= 0.10 * mean, "\(id) owns \(Int(c)) of \(keys.count) keys, mean \(mean)")
        }
        let share = ring.ownedShare()
        #expect(abs(share.values.reduce(0, +) - 1) < 1e-9)
        for id in ring.members {
            #expect(abs(share[id]! * Double(n) - 1) <= 0.10, "\(id) owns \(share[id]!) of the hash space")
        }
    }

    @Test(arguments: [3, 5, 7])
    func addingAMemberMovesKeysOnlyToIt(members n: Int) {
        let before = HashRing(members: nodeIDs(n))
        let newcomer = "node-\(n + 1)"
        let after = HashRing(members: nodeIDs(n) + [newcomer])
        let keys = sampleKeys()
        var moved = 0
        for key in keys {
            let a = before.owner(of: key)!
            let b = after.owner(of: key)!
            if a != b {
                moved += 1
                #expect(b == newcomer, "\(key) moved from \(a) to \(b), not to the newcomer")
            }
        }
        let expected = 1.0 / Double(n + 1)
        let fraction = Double(moved) / Double(keys.count)
        #expect(abs(fraction - expected) <= 0.25 * expected, "moved \(fraction), expected about \(expected)")
    }

    @Test func removingAMemberMovesOnlyItsKeys() {
        let before = HashRing(members: nodeIDs(5))
        let after = HashRing(members: nodeIDs(5).filter { $0 != "node-3" })
        var movedFromOthers = 0
        var leftBehind = 0
        for key in sampleKeys(20_000) {
            let a = before.owner(of: key)!
            let b = after.owner(of: key)!
            if a != b && a != "node-3" { movedFromOthers += 1 }
            if b == "node-3" { leftBehind += 1 }
        }
        #expect(movedFromOthers == 0)
        #expect(leftBehind == 0)
    }

    @Test func replicasAreDistinctAndStartWithTheOwner() {
        let ring = HashRing(members: nodeIDs(5))
        for key in sampleKeys(2_000) {
            let owner = ring.owner(of: key)!
            for count in 1...7 {
                let r = ring.replicas(of: key, count: count)
                #expect(r.count == min(count, 5))
                #expect(r.first == owner)
                #expect(Set(r).count == r.count)
            }
            // Fewer replicas are a prefix of more: rf changes never reorder followers.
            #expect(Array(ring.replicas(of: key, count: 5).prefix(2)) == ring.replicas(of: key, count: 2))
        }
        #expect(ring.replicas(of: "k", count: 0).isEmpty)
        #expect(ring.replicas(of: "k", count: -3).isEmpty)
    }

    @Test func emptyRing() {
        let ring = HashRing(members: [])
        #expect(ring.isEmpty)
        #expect(ring.members.isEmpty)
        #expect(ring.owner(of: "anything") == nil)
        #expect(ring.replicas(of: "anything", count: 3).isEmpty)
        #expect(ring.ownedShare().isEmpty)
    }

    @Test func singleMemberOwnsEverything() {
        let ring = HashRing(members: ["solo"], vnodes: 1)
        #expect(ring.owner(of: "x") == "solo")
        #expect(ring.replicas(of: "x", count: 3) == ["solo"])
        #expect(ring.ownedShare() == ["solo": 1.0])
    }

    @Test func orderAndDuplicatesDoNotMatter() {
        let ids = nodeIDs(6)
        var rng = SplitMix64(seed: 9)
        let shuffled = ids.shuffled(using: &rng)
        let a = HashRing(members: ids)
        let b = HashRing(members: shuffled + [ids[2], ids[4]])
        #expect(a == b)
        #expect(b.members == ids.sorted())
        for key in sampleKeys(5_000) {
            #expect(a.replicas(of: key, count: 3) == b.replicas(of: key, count: 3))
        }
    }

    @Test func vnodeCountIsClamped() {
        #expect(HashRing(members: ["a"], vnodes: 0).vnodes == 1)
        #expect(HashRing(members: ["a"], vnodes: -5).vnodes == 1)
        #expect(HashRing(members: ["a"], vnodes: 1_000_000).vnodes == HashRing.vnodesMax)
    }
}
