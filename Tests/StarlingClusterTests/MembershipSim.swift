import StarlingCore
import StarlingSimSupport
@testable import StarlingCluster

/// N `Membership` instances on a simulated clock and a seeded, faulty network (TigerBeetle's
/// VOPR in miniature). Every message goes through `encode` -> bytes -> `decode`. Faults: loss,
/// delay (hence reordering), duplication, a node cut off both ways, crash (state and inbound queue
/// dropped) and restart (a new `Membership` with the same id and incarnation + 1).
/// Invariants run after every step; violations are collected with the seed and the time.
final class SimCluster: SimHarness {
    struct Node {
        let id: String
        let peer: String
        let http: String
        var alive = false
        var generation = 0
        var lastEpoch: UInt64 = 0
        /// Incarnation the shell would have stored for the next restart.
        var storedIncarnation: UInt64 = 0
        var crashedAt: Int64?
        var restartedAt: Int64?
        var restartIncarnation: UInt64 = 0
    }

    let settings: MembershipSettings
    private(set) var nodes: [Node] = []
    /// Kept apart from `nodes` and mutated in place: copying a `Membership` out and back would copy
    /// its storage on every step.
    private(set) var memberships: [Membership?] = []
    private var nextTickAt: Int64 = 0
    private let peerIndex: [String: Int]

    /// When set: every live member must have seen a crashed node `down` within this many ms of
    /// the crash (or of its own start, if later). Only meaningful without loss or cut-offs.
    var crashDetectionBoundMs: Int64?
    /// When set: every live member must have seen a restarted node `up` at its new incarnation
    /// within this many ms of the restart.
    var restartUpBoundMs: Int64?

    /// observer node -> crashed/restarted node -> it has been seen down / up since the event.
    private var seenDown: [[Bool]]
    private var seenUp: [[Bool]]
    /// The node a delivery reached (only it can have changed).
    private var touched: Int?

    init(seed: UInt64, nodes count: Int, settings: MembershipSettings = .init()) {
        self.settings = settings
        var nodes: [Node] = []
        var index: [String: Int] = [:]
        for i in 0..<count {
            let node = Node(id: "node-\(i + 1)", peer: "10.0.0.\(i + 1):7081", http: "10.0.0.\(i + 1):8081")
            index[node.peer] = i
            nodes.append(node)
        }
        self.nodes = nodes
        memberships = Array(repeating: nil, count: count)
        peerIndex = index
        seenDown = Array(repeating: Array(repeating: false, count: count), count: count)
        seenUp = Array(repeating: Array(repeating: false, count: count), count: count)
        super.init(seed: seed, rngSeed: seed, label: "seed \(seed)", nodes: count)
        tickMs = 20
    }

    // MARK: - Node lifecycle

    func isAlive(_ i: Int) -> Bool { nodes[i].alive }
    var aliveNodes: [Int] { nodes.indices.filter(isAlive) }

    /// Starts (or restarts) node `i`: incarnation = stored + 1 on a restart.
    func start(_ i: Int, seeds: [Int]) {
        precondition(!isAlive(i), "node \(i) already running")
        var n = nodes[i]
        let restart = n.generation > 0
        n.generation += 1
        let incarnation = restart ? n.storedIncarnation + 1 : 0
        let me = MemberInfo(id: n.id, peer: n.peer, http: n.http, incarnation: incarnation)
        var m = Membership(me: me, settings: settings, seed: seed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(n.generation))
        n.lastEpoch = m.epoch
        n.storedIncarnation = incarnation
        if restart {
            n.restartedAt = now
            n.restartIncarnation = incarnation
            n.crashedAt = nil
            for o in nodes.indices { seenUp[o][i] = false }
        }
        let directives = m.start(seeds: seeds.map { nodes[$0].peer }, now: now)
        n.alive = true
        nodes[i] = n
        memberships[i] = m
        handle(directives, from: i)
        check()
    }

    func crash(_ i: Int) {
        guard isAlive(i) else { return }
        memberships[i] = nil
        nodes[i].alive = false
        nodes[i].crashedAt = now
        nodes[i].restartedAt = nil
        for o in nodes.indices { seenDown[o][i] = false }
        dropPackets(to: i)
    }

    func leave(_ i: Int) {
        guard isAlive(i) else { return }
        let directives = memberships[i]!.leave(now: now)
        handle(directives, from: i)
        check()
    }

    // MARK: - Running

    /// Runs every tick and delivery up to and including `end`, checking invariants after each step.
    func run(until end: Int64) {
        while let step = next(until: end, tickAt: nextTickAt) {
            touched = nil
            switch step {
            case .deliver(let p):
                deliver(p)
                if let i = touched { checkNode(i) }
            case .tick:
                nextTickAt += tickMs
                tickAll()
                for i in nodes.indices { checkNode(i) }
            }
            checkBounds()
        }
        settle(at: end)
    }

    func run(forMs ms: Int64) { run(until: now + ms) }

    private func tickAll() {
        // A seeded rotation, so no node always goes first.
        let first = random(nodes.count)
        for k in 0..<nodes.count {
            let i = (first + k) % nodes.count
            guard isAlive(i) else { continue }
            // Mutate in place: copying the value out and back would copy its storage every step.
            let directives = memberships[i]!.tick(now: now)
            handle(directives, from: i)
        }
    }

    private func deliver(_ p: SimPacket) {
        guard arrives(p, receiverAlive: isAlive(p.to)) else { return }
        guard let message = MembershipMessage.decode(p.bytes) else {
            fail("undecodable packet from node \(p.from) to node \(p.to)")
            return
        }
        var header: [UInt8] = []
        header.appendLE(UInt64(bitPattern: p.deliverAt))
        header.appendLE(UInt32(p.from))
        header.appendLE(UInt32(p.to))
        mix(bytes: header + p.bytes)
        let directives = memberships[p.to]!.receive(message, fromPeer: nodes[p.from].peer, now: now)
        handle(directives, from: p.to)
        touched = p.to
    }

    private func handle(_ directives: [MembershipDirective], from i: Int) {
        for d in directives {
            switch d {
            case .changed(let epoch):
                if epoch != memberships[i]?.epoch { fail("node \(i) announced epoch \(epoch), has \(String(describing: memberships[i]?.epoch))") }
            case .send(let peer, let message):
                let bytes = message.encode()
                if MembershipMessage.decode(bytes) != message { fail("codec round trip failed for \(message)") }
                guard let to = peerIndex[peer] else {
                    fail("node \(i) sent to unknown peer \(peer)")
                    continue
                }
                if to == i { fail("node \(i) sent to itself") }
                transmit(bytes, from: i, to: to)
            }
        }
        if let incarnation = memberships[i]?.me.incarnation {
            // Remember what the shell would persist: the incarnation to beat on restart.
            nodes[i].storedIncarnation = max(nodes[i].storedIncarnation, incarnation)
        }
    }

    // MARK: - Invariants

    private func check() {
        for i in nodes.indices { checkNode(i) }
        checkBounds()
    }

    /// Node `i`'s own invariants, and what it has seen of the others.
    private func checkNode(_ i: Int) {
        guard let m = memberships[i] else { return }
        let status = m.me.status
        if status == .down || status == .suspect { fail("node \(i) sees itself \(status)") }
        if m.epoch < nodes[i].lastEpoch { fail("node \(i) epoch went back from \(nodes[i].lastEpoch) to \(m.epoch)") }
        nodes[i].lastEpoch = m.epoch
        for j in nodes.indices where j != i {
            guard let seen = m.member(nodes[j].id) else { continue }
            if seen.status == .down || seen.status == .left { seenDown[i][j] = true }
            if seen.status == .up && seen.incarnation >= nodes[j].restartIncarnation { seenUp[i][j] = true }
        }
    }

    /// The time bounds: crashed nodes seen down, restarted nodes seen up.
    private func checkBounds() {
        for j in nodes.indices {
            if let bound = crashDetectionBoundMs, let crashed = nodes[j].crashedAt {
                for i in aliveNodes where !seenDown[i][j] {
                    let since = max(crashed, nodes[i].restartedAt ?? crashed)
                    if now > since + bound { fail("node \(i) still sees crashed node \(j) as \(memberships[i]!.member(nodes[j].id)?.status.rawValue ?? "unknown") \(now - crashed)ms after the crash") ; seenDown[i][j] = true }
                }
            }
            if let bound = restartUpBoundMs, let restarted = nodes[j].restartedAt, isAlive(j) {
                for i in aliveNodes where i != j && !seenUp[i][j] {
                    if now > restarted + bound { fail("node \(i) has not seen restarted node \(j) up \(now - restarted)ms after the restart"); seenUp[i][j] = true }
                }
            }
        }
    }

    /// Every live node: the same ring members (exactly the live nodes), each live node `up`,
    /// each crashed node `down`. Returns the disagreements.
    func convergenceProblems() -> [String] {
        var problems: [String] = []
        let live = aliveNodes
        let expectedRing = live.map { nodes[$0].id }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for i in live {
            let m = memberships[i]!
            if m.ringMembers != expectedRing { problems.append("node \(i) ring \(m.ringMembers), expected \(expectedRing)") }
            for j in nodes.indices where j != i {
                let status = m.member(nodes[j].id)?.status
                if isAlive(j) && status != .up { problems.append("node \(i) sees live node \(j) as \(status?.rawValue ?? "unknown")") }
                if !isAlive(j) && nodes[j].generation > 0 && status != nil && status != .down && status != .left {
                    problems.append("node \(i) sees crashed node \(j) as \(status!.rawValue)")
                }
            }
        }
        return problems.map { "seed \(seed) t=\(now)ms: \($0)" }
    }

    var summary: String { "seed \(seed): delivered \(delivered), dropped \(dropped)" }
}
