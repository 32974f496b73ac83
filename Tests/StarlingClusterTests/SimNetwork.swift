import StarlingCore
@testable import StarlingCluster

/// A packet in flight between simulated nodes.
struct SimPacket {
    var deliverAt: Int64
    var order: UInt64      // ties on deliverAt go in send order, so runs replay exactly
    var to: Int
    var from: Int
    var bytes: [UInt8]
}

/// Something scheduled for a simulated time; ties go in send order, so runs replay exactly.
protocol SimTimed {
    var deliverAt: Int64 { get }
    var order: UInt64 { get }
}

extension SimPacket: SimTimed {}

/// A binary min-heap by (deliverAt, order), shared by the simulations.
struct SimTimedQueue<P: SimTimed> {
    private var heap: [P] = []
    var count: Int { heap.count }
    var first: P? { heap.first }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].deliverAt != heap[b].deliverAt ? heap[a].deliverAt < heap[b].deliverAt : heap[a].order < heap[b].order
    }

    mutating func push(_ p: P) {
        heap.append(p)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> P? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }

    mutating func removeAll(where drop: (P) -> Bool) {
        let kept = heap.filter { !drop($0) }
        heap = []
        for p in kept { push(p) }
    }
}

typealias SimPacketQueue = SimTimedQueue<SimPacket>

/// N `Membership` instances on a simulated clock and a seeded, faulty network (TigerBeetle's
/// VOPR in miniature). Every message goes through `encode` -> bytes -> `decode`. Faults: loss,
/// delay (hence reordering), duplication, a node cut off both ways, crash (state and inbound queue
/// dropped) and restart (a new `Membership` with the same id and incarnation + 1).
/// Invariants run after every step; violations are collected with the seed and the time.
final class SimCluster {
    struct Node {
        let id: String
        let peer: String
        let http: String
        var alive = false
        var generation = 0
        var lastEpoch: UInt64 = 0
        /// Incarnation the shell would have stored for the next restart.
        var storedIncarnation: UInt64 = 0
        var cutOffUntil: Int64 = .min
        var crashedAt: Int64?
        var restartedAt: Int64?
        var restartIncarnation: UInt64 = 0
    }

    let seed: UInt64
    let settings: MembershipSettings
    private(set) var now: Int64 = 0
    private(set) var nodes: [Node] = []
    /// Kept apart from `nodes` and mutated in place: copying a `Membership` out and back would copy
    /// its storage on every step.
    private(set) var memberships: [Membership?] = []
    private var rng: SplitMix64
    private var queue = SimPacketQueue()
    private var order: UInt64 = 0
    private var nextTickAt: Int64 = 0
    private let peerIndex: [String: Int]

    // Faults, changeable between steps.
    var lossPerMille = 0
    var duplicatePerMille = 0
    var delayMs: ClosedRange<Int64> = 1...50
    /// How often each node's `tick` runs (a shell would use a timer of a few tens of ms).
    var tickMs: Int64 = 20

    /// When set: every live member must have seen a crashed node `down` within this many ms of
    /// the crash (or of its own start, if later). Only meaningful without loss or cut-offs.
    var crashDetectionBoundMs: Int64?
    /// When set: every live member must have seen a restarted node `up` at its new incarnation
    /// within this many ms of the restart.
    var restartUpBoundMs: Int64?

    private(set) var failures: [String] = []
    private(set) var delivered = 0
    private(set) var dropped = 0
    /// FNV-1a over every delivered packet (time, endpoints, bytes): equal runs give equal prints.
    private(set) var fingerprint = StableHash.offsetBasis

    /// observer node -> crashed/restarted node -> it has been seen down / up since the event.
    private var seenDown: [[Bool]]
    private var seenUp: [[Bool]]
    /// The node a delivery reached (only it can have changed).
    private var touched: Int?

    init(seed: UInt64, nodes count: Int, settings: MembershipSettings = .init()) {
        self.seed = seed
        self.settings = settings
        self.rng = SplitMix64(seed: seed)
        var index: [String: Int] = [:]
        for i in 0..<count {
            let node = Node(id: "node-\(i + 1)", peer: "10.0.0.\(i + 1):7081", http: "10.0.0.\(i + 1):8081")
            index[node.peer] = i
            nodes.append(node)
            memberships.append(nil)
        }
        peerIndex = index
        seenDown = Array(repeating: Array(repeating: false, count: count), count: count)
        seenUp = Array(repeating: Array(repeating: false, count: count), count: count)
    }

    // MARK: - Random choices (all from the one seed)

    func random(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(rng.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    func chance(perMille: Int) -> Bool { perMille > 0 && random(1000) < perMille }

    // MARK: - Node lifecycle

    func isAlive(_ i: Int) -> Bool { nodes[i].alive }
    var aliveNodes: [Int] { nodes.indices.filter(isAlive) }
    func isCutOff(_ i: Int) -> Bool { now < nodes[i].cutOffUntil }

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
        queue.removeAll { $0.to == i }
    }

    func cutOff(_ i: Int, forMs ms: Int64) { nodes[i].cutOffUntil = now + ms }

    func healAll() {
        for i in nodes.indices { nodes[i].cutOffUntil = .min }
        lossPerMille = 0
        duplicatePerMille = 0
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
        while true {
            touched = nil
            if let p = queue.first, p.deliverAt <= nextTickAt {
                guard p.deliverAt <= end else { break }
                now = p.deliverAt
                deliver(queue.pop()!)
                if let i = touched { checkNode(i) }
            } else {
                guard nextTickAt <= end else { break }
                now = nextTickAt
                nextTickAt += tickMs
                tickAll()
                for i in nodes.indices { checkNode(i) }
            }
            checkBounds()
        }
        now = max(now, end)
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
        guard isAlive(p.to), !isCutOff(p.to), !isCutOff(p.from) else {
            dropped += 1
            return
        }
        guard let message = MembershipMessage.decode(p.bytes) else {
            fail("undecodable packet from node \(p.from) to node \(p.to)")
            return
        }
        delivered += 1
        mix(p)
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
                send(bytes, from: i, to: to)
                if chance(perMille: duplicatePerMille) { send(bytes, from: i, to: to) }
            }
        }
        if let incarnation = memberships[i]?.me.incarnation {
            // Remember what the shell would persist: the incarnation to beat on restart.
            nodes[i].storedIncarnation = max(nodes[i].storedIncarnation, incarnation)
        }
    }

    private func send(_ bytes: [UInt8], from: Int, to: Int) {
        if isCutOff(from) || isCutOff(to) || chance(perMille: lossPerMille) {
            dropped += 1
            return
        }
        order += 1
        queue.push(SimPacket(deliverAt: now + random(delayMs), order: order, to: to, from: from, bytes: bytes))
    }

    private func mix(_ p: SimPacket) {
        var h = fingerprint
        var header: [UInt8] = []
        header.appendLE(UInt64(bitPattern: p.deliverAt))
        header.appendLE(UInt32(p.from))
        header.appendLE(UInt32(p.to))
        for b in header + p.bytes { h = (h ^ UInt64(b)) &* StableHash.prime }
        fingerprint = h
    }

    // MARK: - Invariants

    func fail(_ what: String) {
        if failures.count < 20 { failures.append("seed \(seed) t=\(now)ms: \(what)") }
    }

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
