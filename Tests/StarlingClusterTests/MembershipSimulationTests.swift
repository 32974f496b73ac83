import Testing
import StarlingCore
@testable import StarlingCluster

/// Seeded whole-cluster runs. A failure message starts with `seed N`: rerun that seed alone with
/// `SimScenarios.chaos(seed: N)` (or `.crashAndRestart`) to replay it exactly.
enum SimScenarios {
    static let nodeCount = 5

    /// Node 0 founds the cluster; the others start within 300 ms, each knowing every peer (as a
    /// restarted node remembers them), and join through whichever answers.
    static func boot(_ sim: SimCluster) {
        sim.start(0, seeds: [])
        for i in 1..<sim.nodes.count {
            sim.run(forMs: sim.random(0...75))
            sim.start(i, seeds: others(of: i, in: sim))
        }
    }

    static func others(of i: Int, in sim: SimCluster) -> [Int] { sim.nodes.indices.filter { $0 != i } }

    /// Loss 0-10%, duplication 0-3%, delay 1-50 ms, cut-offs, crashes and restarts for
    /// `faultMs`; then the network heals, some crashed nodes come back, and after `quietMs`
    /// every live node must agree on the ring.
    static func chaos(seed: UInt64, faultMs: Int64 = 4_000, quietMs: Int64 = 8_000) -> SimCluster {
        let sim = faultsThenHeal(seed: seed, faultMs: faultMs)
        sim.run(forMs: quietMs)
        return sim
    }

    /// The fault phase of `chaos`, up to the moment the network heals.
    static func faultsThenHeal(seed: UInt64, faultMs: Int64) -> SimCluster {
        let sim = SimCluster(seed: seed, nodes: nodeCount)
        sim.tickMs = sim.random(10...50)
        sim.lossPerMille = Int(sim.random(0...100))
        sim.duplicatePerMille = Int(sim.random(0...30))
        boot(sim)
        let faultEnd = sim.now + faultMs
        while sim.now < faultEnd {
            let alive = sim.aliveNodes
            let dead = sim.nodes.indices.filter { !sim.isAlive($0) }
            switch sim.random(100) {
            case 0..<20:
                sim.cutOff(alive[sim.random(alive.count)], forMs: sim.random(300...2_500))
            case 20..<35 where alive.count > 2:
                sim.crash(alive[sim.random(alive.count)])
            case 35..<55 where !dead.isEmpty:
                let i = dead[sim.random(dead.count)]
                sim.start(i, seeds: others(of: i, in: sim))
            default:
                break
            }
            sim.run(forMs: sim.random(100...400))
        }
        sim.healAll()
        for i in sim.nodes.indices where !sim.isAlive(i) && sim.random(2) == 0 {
            sim.start(i, seeds: others(of: i, in: sim))
        }
        return sim
    }

    /// No loss: a crashed node is `down` everywhere within 5 s, and once restarted it is `up`
    /// everywhere within 3 s. Sometimes two nodes crash together.
    static func crashAndRestart(seed: UInt64) -> SimCluster {
        let sim = SimCluster(seed: seed, nodes: nodeCount)
        sim.tickMs = sim.random(10...50)
        sim.duplicatePerMille = Int(sim.random(0...30))
        sim.crashDetectionBoundMs = 5_000
        sim.restartUpBoundMs = 3_000
        boot(sim)
        sim.run(until: 3_000)
        let settled = sim.convergenceProblems()
        if !settled.isEmpty { sim.fail("not settled before the crash: \(settled[0])") }
        sim.run(forMs: sim.random(0...500))
        let first = sim.random(nodeCount)
        sim.crash(first)
        var second: Int?
        if sim.random(4) == 0 {
            sim.run(forMs: sim.random(0...300))
            second = (first + 1 + sim.random(nodeCount - 1)) % nodeCount
            sim.crash(second!)
        }
        sim.run(forMs: 5_500)
        let down = sim.convergenceProblems()
        if !down.isEmpty { sim.fail("crash not seen everywhere: \(down[0])") }
        sim.start(first, seeds: others(of: first, in: sim))
        if let s = second {
            sim.run(forMs: sim.random(0...300))
            sim.start(s, seeds: others(of: s, in: sim))
        }
        sim.run(forMs: 4_000)
        return sim
    }
}

@Suite struct MembershipSimulationTests {
    static let chaosSeedsPerChunk: UInt64 = 50
    static let crashSeedsPerChunk: UInt64 = 25

    /// 200 seeds in 4 chunks (the chunks run in parallel).
    @Test(arguments: 0..<4)
    func chaosConverges(chunk: Int) {
        let first = UInt64(chunk) * Self.chaosSeedsPerChunk + 1
        for seed in first..<(first + Self.chaosSeedsPerChunk) {
            let sim = SimScenarios.chaos(seed: seed)
            #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
            let problems = sim.convergenceProblems()
            #expect(problems.isEmpty, "\(sim.summary)\n\(problems.prefix(5).joined(separator: "\n"))")
        }
    }

    /// 100 seeds in 4 chunks.
    @Test(arguments: 0..<4)
    func crashIsDetectedAndRestartRejoins(chunk: Int) {
        let first = 1_000 + UInt64(chunk) * Self.crashSeedsPerChunk
        for seed in first..<(first + Self.crashSeedsPerChunk) {
            let sim = SimScenarios.crashAndRestart(seed: seed)
            #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
            let problems = sim.convergenceProblems()
            #expect(problems.isEmpty, "\(sim.summary)\n\(problems.prefix(5).joined(separator: "\n"))")
        }
    }

    @Test func aSeedReplaysExactly() {
        let a = SimScenarios.chaos(seed: 77, faultMs: 2_000, quietMs: 2_000)
        let b = SimScenarios.chaos(seed: 77, faultMs: 2_000, quietMs: 2_000)
        #expect(a.fingerprint == b.fingerprint, "seed 77")
        #expect(a.delivered == b.delivered && a.delivered > 0, "seed 77")
        let c = SimScenarios.chaos(seed: 78, faultMs: 2_000, quietMs: 2_000)
        #expect(a.fingerprint != c.fingerprint)
    }

    /// The founding node restarts with no seeds at all (it forgot its peers): the others' reconnect
    /// pings to `down` members find it, and the cluster is whole again.
    @Test(arguments: [UInt64(501), 502, 503, 504, 505])
    func founderRestartedWithoutSeedsIsFound(seed: UInt64) {
        let sim = SimCluster(seed: seed, nodes: 4)
        SimScenarios.boot(sim)
        sim.run(until: 2_000)
        sim.crash(0)
        sim.run(forMs: 5_000)
        sim.start(0, seeds: [])
        sim.run(forMs: 5_000)
        #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
        let problems = sim.convergenceProblems()
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
    }

    /// Every node killed, then all restarted knowing each other's addresses (as after a power
    /// cut): nobody is up to answer a join, so the smallest id founds and the rest join it.
    @Test(arguments: [UInt64(701), 702, 703, 704, 705])
    func wholeClusterRestart(seed: UInt64) {
        let sim = SimCluster(seed: seed, nodes: SimScenarios.nodeCount)
        sim.lossPerMille = 20
        SimScenarios.boot(sim)
        sim.run(until: 2_000)
        for i in sim.nodes.indices { sim.crash(i) }
        sim.run(forMs: sim.random(0...3_000))
        for i in sim.nodes.indices {
            sim.start(i, seeds: SimScenarios.others(of: i, in: sim))
            sim.run(forMs: sim.random(0...400))
        }
        sim.run(forMs: 4_000)
        sim.lossPerMille = 0
        sim.run(forMs: 4_000)
        #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
        let problems = sim.convergenceProblems()
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
    }

    /// One node cut off for 8 s: both sides declare the other down; after the heal, refutation and
    /// the reconnect pings bring the views together again.
    @Test(arguments: [UInt64(801), 802, 803, 804, 805])
    func longPartitionHeals(seed: UInt64) {
        let sim = SimCluster(seed: seed, nodes: SimScenarios.nodeCount)
        SimScenarios.boot(sim)
        sim.run(until: 2_000)
        let island = sim.random(SimScenarios.nodeCount)
        sim.cutOff(island, forMs: 8_000)
        sim.run(forMs: 7_900)
        for i in sim.aliveNodes where i != island {
            #expect(sim.memberships[i]!.member(sim.nodes[island].id)?.status == .down, "seed \(seed)")
            #expect(sim.memberships[island]!.member(sim.nodes[i].id)?.status == .down, "seed \(seed)")
        }
        sim.run(forMs: 100 + 6_000)
        #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
        let problems = sim.convergenceProblems()
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
    }

    /// A graceful leave: the others record `left` (not `down`), and the ring drops it at once.
    @Test(arguments: [UInt64(601), 602, 603])
    func leaveIsSeenAsLeft(seed: UInt64) {
        let sim = SimCluster(seed: seed, nodes: 4)
        SimScenarios.boot(sim)
        sim.run(until: 2_000)
        sim.leave(2)
        sim.run(forMs: 100)
        for i in [0, 1, 3] {
            let m = sim.memberships[i]!
            #expect(m.member("node-3")?.status == .left, "seed \(seed): node \(i) sees \(String(describing: m.member("node-3")))")
            #expect(!m.ringMembers.contains("node-3"), "seed \(seed)")
        }
        sim.run(forMs: 1_000)
        #expect(sim.memberships[2]!.me.status == .left, "seed \(seed)")
        // Silent once left; the others never mark it down instead.
        sim.run(forMs: 5_000)
        for i in [0, 1, 3] {
            #expect(sim.memberships[i]!.member("node-3")?.status == .left, "seed \(seed)")
        }
        #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
    }
}
