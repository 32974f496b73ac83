import Testing
import StarlingCore
@testable import StarlingCluster

/// Seeded runs of `ClusterSim` (production `ClusterNode`s over encoded frames). A failure message
/// starts with `seed N (rf R, K nodes)`: `ClusterSimScenario.run(seed: N, rf: R)` replays it.
enum ClusterSimScenario {
    static let faultMs: Int64 = 5_000
    static let quietMs: Int64 = 7_000

    /// 3-5 nodes (from the seed) boot; for `faultMs` clients write to random live nodes while the
    /// network loses (0-10%), delays (1-50 ms, hence reorders) and duplicates (0-3%) frames and
    /// nodes are cut off, crashed and restarted. Then the network heals, crashed nodes restart
    /// until at most rf - 1 stay down, clients stop, and after `quietMs` invariant 4 is checked.
    static func run(seed: UInt64, rf: Int, faultMs: Int64 = faultMs, quietMs: Int64 = quietMs,
                    requireAllCurrentReplicas: Bool = true, readBack: Bool = false,
                    configure: (inout ClusterSimConfig) -> Void = { _ in }) -> ClusterSim {
        var config = ClusterSimConfig(rf: rf)
        configure(&config)
        var pick = SplitMix64(seed: seed)
        let sim = ClusterSim(seed: seed, nodes: 3 + Int(pick.next() % 3), config: config)
        sim.tickMs = sim.random(10...50)
        sim.lossPerMille = Int(sim.random(0...100))
        sim.duplicatePerMille = Int(sim.random(0...30))
        sim.delayMs = 1...50

        sim.start(0, seeds: [])
        for i in 1..<sim.nodes.count {
            sim.run(forMs: sim.random(0...75))
            sim.start(i, seeds: seeds(of: i, in: sim))
        }
        let faultEnd = sim.now + faultMs
        while sim.now < faultEnd {
            for _ in 0..<sim.random(3) { clientWrite(sim) }
            if sim.random(8) == 0 { fault(sim) }
            sim.run(forMs: sim.random(20...80))
        }
        sim.healAll()
        var dead = sim.deadNodes
        while !dead.isEmpty {
            // In a random order; only the last rf - 1 decided may stay down, each by a coin toss.
            let i = dead.remove(at: sim.random(dead.count))
            if dead.count >= rf - 1 || sim.random(2) == 0 { sim.start(i, seeds: seeds(of: i, in: sim)) }
        }
        sim.assertEveryAckHasItsCopies()
        sim.run(forMs: quietMs)
        sim.assertConverged(allReplicas: requireAllCurrentReplicas)
        if readBack { sim.assertEveryAckReadable() }
        return sim
    }

    static func seeds(of i: Int, in sim: ClusterSim) -> [Int] { sim.nodes.indices.filter { $0 != i } }

    /// A new write, now and then the retry of a refused one or the repeat of an acknowledged one
    /// (same event id: the stores must take it idempotently).
    static func clientWrite(_ sim: ClusterSim) {
        let alive = sim.aliveNodes
        guard !alive.isEmpty else { return }
        let to = alive[sim.random(alive.count)]
        switch sim.random(20) {
        case 0..<4 where !sim.refusedWrites.isEmpty:
            sim.submit(eventID: sim.refusedWrites[sim.random(sim.refusedWrites.count)], to: to)
        case 4 where !sim.ackedOrder.isEmpty:
            sim.submit(eventID: sim.ackedOrder[sim.random(sim.ackedOrder.count)], to: to)
        default:
            sim.submit(eventID: sim.newEventID(session: "s\(sim.random(24))"), to: to)
        }
    }

    /// Cut a node off (both ways) for 0.3-2.5 s, crash one, or restart one.
    static func fault(_ sim: ClusterSim) {
        let alive = sim.aliveNodes
        guard !alive.isEmpty else { return }
        let dead = sim.deadNodes
        switch sim.random(100) {
        case 0..<35:
            sim.cutOff(alive[sim.random(alive.count)], forMs: sim.random(300...2_500))
        case 35..<60:
            // Keep one `up` node: a lone joining node never founds a cluster (by design).
            let victim = alive[sim.random(alive.count)]
            if alive.contains(where: { $0 != victim && sim.node($0)!.membership.me.status == .up }) { sim.crash(victim) }
        case 60..<100 where !dead.isEmpty:
            let i = dead[sim.random(dead.count)]
            sim.start(i, seeds: seeds(of: i, in: sim))
        default:
            break
        }
    }
}

@Suite struct ClusterSimTests {
    static let seedsPerChunk: UInt64 = 25

    /// rf 2 and rf 3, 250 seeds each (about 12 simulated seconds per seed), in chunks that run
    /// in parallel: every acknowledged write keeps rf copies, fencing holds, and after healing
    /// every acknowledged write is on all of its current replicas.
    @Test(arguments: [2, 3], 0..<10)
    func acknowledgedWritesKeepTheirCopies(rf: Int, chunk: Int) {
        let first = UInt64(chunk) * Self.seedsPerChunk + 1
        var acknowledged = 0, refused = 0, pulled = 0
        for seed in first..<(first + Self.seedsPerChunk) {
            // Every fifth seed also reads every acknowledged event back through each node's fan-out.
            let sim = ClusterSimScenario.run(seed: seed, rf: rf, readBack: seed % 5 == 0)
            #expect(sim.failures.isEmpty, "\(sim.failures.prefix(5).joined(separator: "\n"))\n\(sim.summary)")
            acknowledged += sim.acknowledgements
            refused += sim.refusals
            pulled += sim.catchUpStores
        }
        // The runs must take every path: acknowledgements, refusals and catch-up copies.
        #expect(acknowledged > 0 && refused > 0 && pulled > 0,
                "rf \(rf) seeds \(first)...: acknowledged \(acknowledged), refused \(refused), pulled \(pulled)")
    }

    /// Trace contexts ride the production protocol over encoded frames: a traced write's forward
    /// and replication frames carry its context, an untraced write's carry none, and a traced
    /// query asks every other member with it.
    @Test func traceContextsTravelWithWritesAndQueries() throws {
        let sim = ClusterSim(seed: 11, nodes: 3, config: ClusterSimConfig(rf: 2))
        sim.start(0, seeds: [])
        for i in 1..<3 { sim.start(i, seeds: ClusterSimScenario.seeds(of: i, in: sim)) }
        sim.run(seconds: 3)
        let t = TraceContext(traceHigh: 1, traceLow: 2, spanID: 3)
        for k in 0..<30 { sim.submit(eventID: "traced-\(k)", to: 0, trace: t) }
        sim.run(seconds: 2)
        #expect(sim.acknowledgements == 30)
        let kinds = Set(sim.tracedFrames.filter { $0.traces == [t] }.map(\.kind))
        #expect(kinds.contains(.forwardRecords), "node 0 forwarded traced events to their owners")
        #expect(kinds.contains(.replicate), "owners replicated them with the trace")
        #expect(sim.tracedFrames.allSatisfy { $0.traces == [t] })
        let traced = sim.tracedFrames.count
        for k in 0..<30 { sim.submit(eventID: "plain-\(k)", to: 1) }
        sim.run(seconds: 2)
        #expect(sim.acknowledgements == 60)
        #expect(sim.tracedFrames.count == traced, "untraced writes leave no context on the wire")
        let q = TraceContext(traceHigh: 4, traceLow: 5, spanID: 6)
        let answer = try #require(sim.query(session: "any", at: 2, trace: q))
        #expect(!answer.partial)
        let queries = sim.tracedFrames.filter { $0.traces == [q] }
        #expect(queries.count == 2 && queries.allSatisfy { $0.kind == .query } && Set(queries.map(\.to)) == [0, 1])
        #expect(sim.failures.isEmpty, "\(sim.failures.prefix(5).joined(separator: "\n"))")
    }

    @Test func aSeedReplaysExactly() {
        let a = ClusterSimScenario.run(seed: 42, rf: 2)
        let b = ClusterSimScenario.run(seed: 42, rf: 2)
        #expect(a.outcome == b.outcome, "seed 42 (rf 2) did not replay: \(a.summary) vs \(b.summary)")
        #expect(a.delivered > 0 && !a.ackedOrder.isEmpty && a.malformed == 0, "seed 42 (rf 2): \(a.summary)")
        let c = ClusterSimScenario.run(seed: 43, rf: 2)
        #expect(a.fingerprint != c.fingerprint, "seeds 42 and 43 ran the same")
    }

    /// Bug injection in the real instance: acknowledging once the owner has stored the write
    /// breaks invariant 1.
    @Test func ackingAfterTheLocalStoreIsCaught() {
        let failures = (UInt64(1)...3).flatMap { seed in
            ClusterSimScenario.run(seed: seed, rf: 2, faultMs: 2_000, quietMs: 1_000) { $0.rules.ack = .localStoreOnly }.failures
        }
        #expect(failures.contains { $0.hasPrefix("seed ") && $0.contains("invariant 1:") }, "no invariant 1 violation: \(failures.prefix(3))")
    }

    /// With rf 3, acknowledging after one of the two followers breaks invariant 1 too.
    @Test func ackingAfterOneFollowerIsCaught() {
        let failures = (UInt64(1)...3).flatMap { seed in
            ClusterSimScenario.run(seed: seed, rf: 3, faultMs: 2_000, quietMs: 1_000) { $0.rules.ack = .anyFollower }.failures
        }
        #expect(failures.contains { $0.hasPrefix("seed ") && $0.contains("invariant 1:") }, "no invariant 1 violation: \(failures.prefix(3))")
    }

    /// A follower that stores a replicate whatever fencing says breaks invariant 3.
    @Test func ignoringFencingIsCaught() {
        let failures = (UInt64(1)...6).flatMap { seed in
            ClusterSimScenario.run(seed: seed, rf: 3) { $0.rules.fencing = false }.failures
        }
        #expect(failures.contains { $0.hasPrefix("seed ") && $0.contains("invariant 3:") }, "no invariant 3 violation: \(failures.prefix(3))")
    }

    /// Over the seeded chaos runs (clients retry refused writes), acknowledging a stored repeat
    /// without shipping it again breaks invariant 1.
    @Test func acknowledgingStoredRepeatsIsCaught() {
        let failures = (UInt64(1)...6).flatMap { seed in
            ClusterSimScenario.run(seed: seed, rf: 2, faultMs: 3_000, quietMs: 1_000) { $0.dropRepeats = true }.failures
        }
        #expect(failures.contains { $0.hasPrefix("seed ") && $0.contains("invariant 1:") }, "no invariant 1 violation: \(failures.prefix(3))")
    }

    /// A broken catch-up rule in the real instance leaves acknowledged events off their current
    /// replicas after healing (invariant 4): a handoff against any previous ring, caught up or
    /// not (the node's rule before the simulation ran it). Which seeds show it depends on the
    /// traffic (14 of 1...250 at rf 3 when this was found; batching replicate frames changed the
    /// set), so the test searches the seeds in order until one trips. Disabling the retry of failed
    /// peers alone trips nothing in 1...250 at rf 2 or rf 3: a plan that failed is no base, so
    /// the next change pulls in full.
    @Test func aHandoffAgainstAnyPreviousRingIsCaught() {
        var tripped: [String] = []
        for seed in UInt64(1)...250 {
            let failures = ClusterSimScenario.run(seed: seed, rf: 3) { $0.rules.catchUpBaseCaughtUpOnly = false }.failures
            tripped = failures.filter { $0.hasPrefix("seed ") && $0.contains("invariant 4:") }
            if !tripped.isEmpty { break }
        }
        #expect(!tripped.isEmpty, "no seed in 1...250 at rf 3 showed an invariant 4 violation with the broken rule")
    }

    /// A script: the retry of a write whose replica failed after the owner's append must reach
    /// the follower before it is acknowledged.
    @Test(arguments: [false, true])
    func retryAfterAFailedReplica(dropRepeats: Bool) {
        var config = ClusterSimConfig(rf: 2)
        config.dropRepeats = dropRepeats
        config.antiEntropyMs = .max
        let sim = ClusterSim(seed: 7, nodes: 3, config: config)
        sim.delayMs = 1...5
        sim.start(0, seeds: [])
        sim.start(1, seeds: [0])
        sim.start(2, seeds: [0, 1])
        sim.run(seconds: 3)
        guard let members = sim.agreedRing() else {
            Issue.record("the ring did not settle: \(sim.summary)")
            return
        }
        let set = HashRing(members: members, vnodes: config.vnodes).replicas(of: "retry-session", count: 2)
        let owner = sim.nodes.firstIndex { $0.id == set[0] }!
        let follower = sim.nodes.firstIndex { $0.id == set[1] }!
        let event = sim.newEventID(session: "retry-session")
        // 1. The follower is unreachable (shorter than failure detection): the owner appends,
        //    its replicate is lost, and the client is refused.
        sim.cutOff(follower, forMs: 300)
        sim.submit(eventID: event, to: owner)
        sim.run(seconds: 1)
        #expect(sim.refusedWrites.contains(event) && sim.acked[event] == nil, "\(sim.summary)")
        #expect(sim.holders(of: event) == [owner])
        #expect(sim.agreedRing() == members, "the short cut must not change the ring")
        // 2. The client retries the same event id.
        sim.submit(eventID: event, to: owner)
        sim.run(seconds: 1)
        sim.assertEveryAckHasItsCopies()
        #expect(sim.acked[event] != nil, "the retry was not acknowledged: \(sim.summary)")
        if dropRepeats {
            #expect(sim.failures.contains { $0.contains("invariant 1:") }, "the one-copy ack went unseen: \(sim.failures)")
        } else {
            #expect(sim.failures.isEmpty, "\(sim.failures.joined(separator: "\n"))")
            #expect(sim.holders(of: event).sorted() == [owner, follower].sorted())
        }
    }
}
