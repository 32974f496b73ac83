import Testing
import StarlingCore
@testable import StarlingCluster

extension ClusterSim {
    /// `count` nodes booted together, run until their views settle.
    static func booted(seed: UInt64, nodes count: Int, rf: Int, configure: (inout ClusterSimConfig) -> Void = { _ in }) -> ClusterSim {
        var config = ClusterSimConfig(rf: rf)
        configure(&config)
        let sim = ClusterSim(seed: seed, nodes: count, config: config)
        sim.delayMs = 1...10
        for i in 0..<count { sim.start(i, seeds: Array(0..<i)) }
        sim.run(seconds: 3)
        return sim
    }

    /// `count` new events of `sessions` sessions, each to `node` or to a random live node.
    @discardableResult
    func write(_ count: Int, sessions: Int = 12, to node: Int? = nil) -> [String] {
        (0..<count).map { _ in
            let id = newEventID(session: "s\(random(sessions))")
            let alive = aliveNodes
            if let to = node ?? (alive.isEmpty ? nil : alive[random(alive.count)]) { submit(eventID: id, to: to) }
            return id
        }
    }
}

/// Scenarios as scripts over the production `ClusterNode`s.
@Suite struct ClusterSimScriptTests {
    /// A node cut off from the other two acknowledges nothing; after healing every
    /// acknowledged event is on all of its current replicas.
    @Test func aMinorityPartitionAcknowledgesNothingAndTheClusterHeals() {
        let sim = ClusterSim.booted(seed: 11, nodes: 3, rf: 2)
        #expect(sim.agreedRing()?.count == 3, "\(sim.summary)")
        sim.write(20)
        sim.run(seconds: 1)
        let before = sim.acknowledgements
        #expect(before > 0, "\(sim.summary)")
        sim.partition([0], [1, 2])
        var isolated: [String] = []
        for _ in 0..<10 {
            isolated += sim.write(3, to: 0)
            sim.write(3, to: 1 + sim.random(2))
            sim.run(forMs: 500)
        }
        #expect(isolated.allSatisfy { sim.acked[$0] == nil }, "the isolated node acknowledged a write")
        #expect(sim.acknowledgements > before, "the majority side kept writing: \(sim.summary)")
        sim.heal()
        sim.run(seconds: 10)
        sim.assertConverged(allReplicas: true)
        sim.assertEveryAckReadable()
        #expect(sim.failures.isEmpty, "\(sim.failures.prefix(5).joined(separator: "\n"))\n\(sim.summary)")
    }

    /// A member leaves gracefully; the members that inherit its ranges catch up from the
    /// remaining replicas.
    @Test func aLeavingMemberHandsItsRangesOver() {
        let sim = ClusterSim.booted(seed: 12, nodes: 4, rf: 2)
        sim.write(40)
        sim.run(seconds: 2)
        sim.leave(3)
        sim.write(20)
        sim.run(seconds: 10)
        #expect(sim.agreedRing()?.count == 3, "\(sim.summary)")
        sim.assertConverged(allReplicas: true)
        sim.assertEveryAckReadable()
        #expect(sim.failures.isEmpty, "\(sim.failures.prefix(5).joined(separator: "\n"))\n\(sim.summary)")
        #expect(sim.catchUpStores > 0, "nothing was handed over: \(sim.summary)")
    }

    /// A power cut loses a node's unsynced tail (the `--fsync interval` window). Its peers keep
    /// the copies; after the restart, catch-up (from before its newest surviving record) brings
    /// every acknowledged event back to all of its current replicas.
    @Test func aPowerCutTailComesBackFromThePeers() {
        let sim = ClusterSim.booted(seed: 13, nodes: 3, rf: 2)
        sim.write(60)
        sim.run(forMs: 500)
        let held = sim.nodes[1].store.log.count
        sim.powerCut(1, unsyncedMs: 1_500)
        #expect(sim.nodes[1].store.log.count < held, "the cut lost nothing: \(held) records before")
        sim.run(seconds: 1)
        sim.start(1, seeds: [0, 2])
        sim.run(seconds: 10)
        sim.assertConverged(allReplicas: true)
        sim.assertEveryAckReadable()
        #expect(sim.failures.isEmpty, "\(sim.failures.prefix(5).joined(separator: "\n"))\n\(sim.summary)")
    }
}
