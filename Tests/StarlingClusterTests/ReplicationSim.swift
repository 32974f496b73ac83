import StarlingCore
@testable import StarlingCluster

// A deterministic whole-cluster model of write routing and replication (rf >= 2), in the style of
// `SimCluster` (SimNetwork.swift) but carrying replication traffic next to the SWIM messages.
//
// Real parts: `Membership` (SWIM, one instance per node, driven by ticks and deliveries),
// `HashRing` rebuilt from `membership.ringMembers`, and every `Placement` rule (`SubjectKey.ringKey`,
// `owner`, `followers`, `accepts`, `acknowledged`). Modelled parts: the network (seeded queue with
// loss, delay, reordering, duplication, one-node cut-offs), the client, the node's log (a durable
// `[eventID: key]` that survives a crash) and catch-up.
//
// The model code only *does* things and records what it claimed (an ack, a replica stored with
// its fencing decision); the checker verifies the claims against the stores and against its own
// recomputation of the rules after every step.

/// The owner's ack rule. `.placement` is the real one; the others are deliberate bugs, used to show
/// that the invariants can fail.
enum ReplicationSimAckRule: Sendable {
    case placement
    /// Bug: acknowledge as soon as the owner has stored the write.
    case localStoreOnly
    /// Bug: acknowledge once any one follower has stored it.
    case anyFollower

    func acknowledged(storedLocally: Bool, followerAcks: [Bool]) -> Bool {
        switch self {
        case .placement:
            Placement.acknowledged(storedLocally: storedLocally, followerAcks: followerAcks)
        case .localStoreOnly:
            storedLocally
        case .anyFollower:
            storedLocally && (followerAcks.isEmpty || followerAcks.contains(true))
        }
    }
}

/// What an owner does with a write whose event id it already stores (a client's retry).
enum ReplicationSimRepeats: Sendable {
    /// The node's rule (`Engine.commit`): ship the stored copy to the followers again and
    /// acknowledge only when they hold it (the first attempt may have failed after the local append).
    case reship
    /// Bug (the node before this rule): acknowledge the repeat at once, as a duplicate.
    case acknowledgeStored
}

/// When a node pulls the keys it replicates from its ring peers.
enum ReplicationSimCatchUp: Sendable, Equatable {
    /// No catch-up.
    case off
    /// On every change of the node's own ring (the trigger ARCHITECTURE.md describes). Kinder than
    /// the node: it pulls every key it replicates (not only the newly gained ones), peers filter by
    /// the requester's ring (carried in the request), and each peer is asked again until it answers.
    case onRingChange
    /// As `onRingChange`, and again every `ms` (anti-entropy).
    case onRingChangeAndEvery(ms: Int64)
}

struct ReplicationSimConfig: Sendable {
    var rf: Int
    var ackRule = ReplicationSimAckRule.placement
    /// false: a deliberately wrong follower that consults `Placement.accepts` but stores the
    /// replica whatever it says.
    var followerHonoursFencing = true
    var repeats = ReplicationSimRepeats.reship
    var catchUp = ReplicationSimCatchUp.onRingChangeAndEvery(ms: 2_000)
    /// Owner: a write not acknowledged by every follower within this is refused.
    var replicationTimeoutMs: Int64 = 800
    /// Receiving node: a forwarded write with no answer from its owner within this is refused.
    var forwardTimeoutMs: Int64 = 1_200
    var catchUpRetryMs: Int64 = 500
    /// Fewer vnodes than production (2,048) keep ring builds cheap; placement rules are the same.
    var vnodes = 64
    /// Set to an event id to log its journey, every ring change and every finished catch-up into
    /// `traceLog` (for studying a replayed seed).
    var traceEventID: UInt64?

    init(rf: Int) {
        precondition(rf >= 2, "the model is for replication, rf >= 2, got \(rf)")
        self.rf = rf
    }
}

/// What one simulated node sends to another.
enum ReplicationSimMessage {
    case membership(MembershipMessage)
    /// Receiving node -> owner.
    case forward(request: UInt64, eventID: UInt64, key: String)
    /// Owner -> receiving node: acknowledged (every copy stored) or refused.
    case forwardResult(request: UInt64, eventID: UInt64, acknowledged: Bool)
    /// Owner -> follower.
    case replicate(write: UInt64, eventID: UInt64, key: String)
    /// Follower -> owner: stored (or already held), or refused by fencing.
    case replicateResult(write: UInt64, eventID: UInt64, stored: Bool)
    /// "Send me what you hold of the keys I replicate in this ring" (a ring id in the sim's table;
    /// a real frame would carry the member list).
    case catchUp(ring: Int)
    case catchUpData(ring: Int, records: [ReplicationSimRecord])

    /// For the run fingerprint.
    var tag: UInt64 {
        switch self {
        case .membership: 1
        case .forward: 2
        case .forwardResult: 3
        case .replicate: 4
        case .replicateResult: 5
        case .catchUp: 6
        case .catchUpData: 7
        }
    }
}

struct ReplicationSimRecord: Equatable {
    var eventID: UInt64
    var key: String
}

struct ReplicationSimPacket {
    var deliverAt: Int64
    var order: UInt64
    var from: Int
    var to: Int
    var message: ReplicationSimMessage
}

extension ReplicationSimPacket: SimTimed {}

/// Packets by (deliverAt, send order), the heap shared with the membership simulation.
typealias ReplicationSimQueue = SimTimedQueue<ReplicationSimPacket>

/// N nodes running membership, routing and replication on a simulated clock.
final class ReplicationSimCluster {
    /// Where the owner's answer goes.
    enum Reply {
        /// The owner received the write from the client itself.
        case client
        /// The write was forwarded by this node under this request id.
        case coordinator(node: Int, request: UInt64)
    }

    /// A write the owner has stored and is replicating.
    struct OwnerWrite {
        var id: UInt64
        var eventID: UInt64
        var key: String
        var reply: Reply
        var followers: [Int]
        /// nil: no answer yet.
        var answers: [Bool?]
        var deadline: Int64
    }

    /// A write this node forwarded to its owner on behalf of a client.
    struct Forward {
        var request: UInt64
        var eventID: UInt64
        var key: String
        var owner: Int
        var deadline: Int64
    }

    struct Node {
        let id: String
        let peer: String
        // Durable: survives a crash (the node's log).
        var store: [UInt64: String] = [:]
        /// Event ids in the order they were stored (iteration order for catch-up answers;
        /// dictionary order is seeded per process).
        var storeOrder: [UInt64] = []
        var storedIncarnation: UInt64 = 0
        var generation = 0
        // Volatile: lost on a crash.
        var alive = false
        var cutOffUntil: Int64 = .min
        var ring = 0
        var ownerWrites: [OwnerWrite] = []
        var forwards: [Forward] = []
        var catchUpRing: Int?
        var catchUpPending: [Int] = []
        var catchUpRetryAt: Int64 = .max
        var nextAntiEntropyAt: Int64 = .max

        init(id: String, peer: String) {
            self.id = id
            self.peer = peer
        }

        mutating func resetVolatile() {
            alive = false
            ring = 0
            ownerWrites = []
            forwards = []
            catchUpRing = nil
            catchUpPending = []
            catchUpRetryAt = .max
            nextAntiEntropyAt = .max
        }
    }

    /// What the model said it did during a step; the checker verifies each after the step.
    enum Claim {
        case ownerAcknowledged(node: Int, eventID: UInt64)
        case followerStored(node: Int, eventID: UInt64)
        /// A replica stored through `replicate`: the model's fencing decision (nil: not consulted)
        /// and the follower's view at that moment (ring id from `membership.ringMembers`).
        case replicaStored(node: Int, eventID: UInt64, key: String, sender: Int, decision: Bool?, view: Int)
        case clientAcknowledged(eventID: UInt64)
    }

    struct ReplicaSetKey: Hashable {
        var ring: Int
        var key: String
    }

    let seed: UInt64
    let config: ReplicationSimConfig
    private(set) var now: Int64 = 0
    private(set) var nodes: [Node] = []
    /// Apart from `nodes` and mutated in place (copying a `Membership` out and back copies its storage).
    private(set) var memberships: [Membership?] = []
    private var rng: SplitMix64
    private var queue = ReplicationSimQueue()
    private var order: UInt64 = 0
    private var nextTickAt: Int64 = 0
    private var nextID: UInt64 = 0
    private let peerIndex: [String: Int]
    private let idIndex: [String: Int]

    /// Every distinct ring seen in this run; id 0 is the empty ring.
    private(set) var rings: [HashRing]
    private var ringIDs: [[String]: Int]
    private var replicaSets: [ReplicaSetKey: [String]] = [:]

    // Faults, changeable between steps.
    var lossPerMille = 0
    var duplicatePerMille = 0
    var delayMs: ClosedRange<Int64> = 1...50
    var tickMs: Int64 = 20

    // What the clients were told.
    /// Acknowledged event id -> its key; `ackedOrder` in order of first acknowledgement.
    private(set) var acked: [UInt64: String] = [:]
    private(set) var ackedOrder: [UInt64] = []
    private(set) var refusedWrites: [ReplicationSimRecord] = []
    private var claims: [Claim] = []

    // Counters (for the determinism check and for tests that want to see paths taken).
    private(set) var submitted = 0
    private(set) var acknowledgements = 0
    private(set) var refusals = 0
    private(set) var unanswered = 0
    private(set) var fencingRefusals = 0
    private(set) var replicaStores = 0
    private(set) var catchUpStores = 0
    private(set) var delivered = 0
    private(set) var dropped = 0
    /// FNV-1a over every delivery (time, endpoints, kind, ids).
    private(set) var fingerprint = StableHash.offsetBasis

    private(set) var failures: [String] = []
    private var traceEventID: UInt64? { config.traceEventID }
    private(set) var traceLog: [String] = []
    /// Put before every failure: how to replay it.
    let label: String

    init(seed: UInt64, nodes count: Int, config: ReplicationSimConfig) {
        self.seed = seed
        self.config = config
        self.rng = SplitMix64(seed: seed ^ (UInt64(config.rf) &* 0xD1B5_4A32_D192_ED03))
        self.label = "seed \(seed) (rf \(config.rf), \(count) nodes)"
        var peers: [String: Int] = [:]
        var ids: [String: Int] = [:]
        for i in 0..<count {
            let node = Node(id: "node-\(i + 1)", peer: "10.0.1.\(i + 1):7081")
            peers[node.peer] = i
            ids[node.id] = i
            nodes.append(node)
            memberships.append(nil)
        }
        peerIndex = peers
        idIndex = ids
        rings = [HashRing(members: [], vnodes: config.vnodes)]
        ringIDs = [[]: 0]
    }

    // MARK: - Random choices (all from the one seed)

    func random(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(rng.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    func chance(perMille: Int) -> Bool { perMille > 0 && random(1000) < perMille }

    // MARK: - Rings

    func ringID(_ members: [String]) -> Int {
        if let id = ringIDs[members] { return id }
        rings.append(HashRing(members: members, vnodes: config.vnodes))
        ringIDs[members] = rings.count - 1
        return rings.count - 1
    }

    /// The first `rf` members clockwise from the key in ring `ring` (memoised).
    func replicaSet(ring: Int, key: String) -> [String] {
        let k = ReplicaSetKey(ring: ring, key: key)
        if let r = replicaSets[k] { return r }
        let r = rings[ring].replicas(of: key, count: config.rf)
        replicaSets[k] = r
        return r
    }

    // MARK: - Node lifecycle

    func isAlive(_ i: Int) -> Bool { nodes[i].alive }
    var aliveNodes: [Int] { nodes.indices.filter(isAlive) }
    var deadNodes: [Int] { nodes.indices.filter { !isAlive($0) } }
    func isCutOff(_ i: Int) -> Bool { now < nodes[i].cutOffUntil }
    func cutOff(_ i: Int, forMs ms: Int64) { nodes[i].cutOffUntil = now + ms }

    /// Starts node `i`; a restart keeps the store and comes back at its stored incarnation + 1.
    func start(_ i: Int, seeds: [Int]) {
        precondition(!isAlive(i), "\(label): node \(i) already running")
        let restart = nodes[i].generation > 0
        nodes[i].generation += 1
        let incarnation = restart ? nodes[i].storedIncarnation + 1 : 0
        nodes[i].storedIncarnation = incarnation
        let me = MemberInfo(id: nodes[i].id, peer: nodes[i].peer, http: "10.0.1.\(i + 1):8081", incarnation: incarnation)
        let memberSeed = seed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(nodes[i].generation)
        memberships[i] = Membership(me: me, seed: memberSeed)
        nodes[i].resetVolatile()
        nodes[i].alive = true
        if case .onRingChangeAndEvery(let ms) = config.catchUp { nodes[i].nextAntiEntropyAt = now + ms }
        let directives = memberships[i]!.start(seeds: seeds.map { nodes[$0].peer }, now: now)
        handleMembership(directives, at: i)
        checkStep()
    }

    /// Loses the node's volatile state and every packet on its way to it; its store stays.
    func crash(_ i: Int) {
        guard isAlive(i) else { return }
        // Clients waiting on this node get a broken connection: no answer, never an ack.
        unanswered += nodes[i].forwards.count
        unanswered += nodes[i].ownerWrites.filter { if case .client = $0.reply { true } else { false } }.count
        memberships[i] = nil
        nodes[i].resetVolatile()
        queue.removeAll { $0.to == i }
    }

    func healAll() {
        for i in nodes.indices { nodes[i].cutOffUntil = .min }
        lossPerMille = 0
        duplicatePerMille = 0
    }

    // MARK: - Clients

    func newEventID() -> UInt64 {
        nextID += 1
        return nextID
    }

    /// A client sends write `(eventID, key)` to node `c`. Its answer is recorded when it comes.
    func submit(eventID: UInt64, key: String, to c: Int) {
        guard isAlive(c) else { return }
        submitted += 1
        let ownerID = Placement.owner(of: key, ring: rings[nodes[c].ring], me: nodes[c].id)
        guard let owner = idIndex[ownerID] else {
            fail("node \(c) routed \(key) to unknown owner \(ownerID)")
            return
        }
        if owner == c {
            beginOwnerWrite(at: c, eventID: eventID, key: key, reply: .client)
        } else {
            let request = newRequestID()
            nodes[c].forwards.append(Forward(request: request, eventID: eventID, key: key, owner: owner,
                                             deadline: now + config.forwardTimeoutMs))
            send(.forward(request: request, eventID: eventID, key: key), from: c, to: owner)
        }
        checkStep()
    }

    private func newRequestID() -> UInt64 {
        nextID += 1
        return nextID
    }

    private func clientAnswered(eventID: UInt64, key: String, acknowledged: Bool) {
        if eventID == traceEventID { trace("client told \(acknowledged ? "acknowledged" : "refused") for event \(eventID)") }
        if acknowledged {
            acknowledgements += 1
            if acked[eventID] == nil {
                acked[eventID] = key
                ackedOrder.append(eventID)
            }
            claims.append(.clientAcknowledged(eventID: eventID))
        } else {
            refusals += 1
            refusedWrites.append(ReplicationSimRecord(eventID: eventID, key: key))
        }
    }

    // MARK: - Owner and follower

    /// Stores idempotently in the node's log. Returns true when the record was new.
    @discardableResult
    private func store(_ eventID: UInt64, _ key: String, at i: Int, via: String) -> Bool {
        if eventID == traceEventID { trace("node \(i) stores event \(eventID) (\(key)) via \(via), had it: \(nodes[i].store[eventID] != nil)") }
        if let held = nodes[i].store[eventID] {
            if held != key { fail("node \(i) holds event \(eventID) under \(held), now offered under \(key)") }
            return false
        }
        nodes[i].store[eventID] = key
        nodes[i].storeOrder.append(eventID)
        return true
    }

    private func beginOwnerWrite(at o: Int, eventID: UInt64, key: String, reply: Reply) {
        if eventID == traceEventID { trace("node \(o) owns event \(eventID) in ring \(rings[nodes[o].ring].members), followers \(Placement.followers(of: key, ring: rings[nodes[o].ring], rf: config.rf, me: nodes[o].id) ?? [])") }
        let new = store(eventID, key, at: o, via: "owner")
        if !new && config.repeats == .acknowledgeStored {
            answer(reply, from: o, eventID: eventID, key: key, acknowledged: true)
            return
        }
        let me = nodes[o].id
        guard let followerIDs = Placement.followers(of: key, ring: rings[nodes[o].ring], rf: config.rf, me: me) else {
            answer(reply, from: o, eventID: eventID, key: key, acknowledged: false)
            return
        }
        var followers: [Int] = []
        for id in followerIDs {
            guard let f = idIndex[id] else {
                fail("node \(o) picked unknown follower \(id)")
                return
            }
            followers.append(f)
        }
        let write = OwnerWrite(id: newRequestID(), eventID: eventID, key: key, reply: reply, followers: followers,
                               answers: Array(repeating: nil, count: followers.count),
                               deadline: now + config.replicationTimeoutMs)
        nodes[o].ownerWrites.append(write)
        for f in followers { send(.replicate(write: write.id, eventID: eventID, key: key), from: o, to: f) }
        evaluate(at: o, write: nodes[o].ownerWrites.count - 1)
    }

    /// Acknowledges when the ack rule says so; refuses once every follower answered and it does not.
    private func evaluate(at o: Int, write w: Int) {
        let write = nodes[o].ownerWrites[w]
        let storedLocally = nodes[o].store[write.eventID] != nil
        let followerAcks = write.answers.map { $0 == true }
        if config.ackRule.acknowledged(storedLocally: storedLocally, followerAcks: followerAcks) {
            nodes[o].ownerWrites.remove(at: w)
            answer(write.reply, from: o, eventID: write.eventID, key: write.key, acknowledged: true)
        } else if !write.answers.contains(where: { $0 == nil }) {
            nodes[o].ownerWrites.remove(at: w)
            answer(write.reply, from: o, eventID: write.eventID, key: write.key, acknowledged: false)
        }
    }

    private func answer(_ reply: Reply, from o: Int, eventID: UInt64, key: String, acknowledged: Bool) {
        if acknowledged { claims.append(.ownerAcknowledged(node: o, eventID: eventID)) }
        switch reply {
        case .client:
            clientAnswered(eventID: eventID, key: key, acknowledged: acknowledged)
        case .coordinator(let c, let request):
            send(.forwardResult(request: request, eventID: eventID, acknowledged: acknowledged), from: o, to: c)
        }
    }

    private func onReplicate(at f: Int, from o: Int, write: UInt64, eventID: UInt64, key: String) {
        let decision = Placement.accepts(replicaOf: key, from: nodes[o].id, ring: rings[nodes[f].ring],
                                         rf: config.rf, me: nodes[f].id)
        if !decision && config.followerHonoursFencing {
            fencingRefusals += 1
            send(.replicateResult(write: write, eventID: eventID, stored: false), from: f, to: o)
            return
        }
        store(eventID, key, at: f, via: "replicate from node \(o)")
        replicaStores += 1
        claims.append(.replicaStored(node: f, eventID: eventID, key: key, sender: o, decision: decision,
                                     view: ringID(memberships[f]!.ringMembers)))
        claims.append(.followerStored(node: f, eventID: eventID))
        send(.replicateResult(write: write, eventID: eventID, stored: true), from: f, to: o)
    }

    private func onReplicateResult(at o: Int, from f: Int, write: UInt64, stored: Bool) {
        guard let w = nodes[o].ownerWrites.firstIndex(where: { $0.id == write }),
              let k = nodes[o].ownerWrites[w].followers.firstIndex(of: f),
              nodes[o].ownerWrites[w].answers[k] == nil else { return }  // late, duplicate or unknown
        nodes[o].ownerWrites[w].answers[k] = stored
        evaluate(at: o, write: w)
    }

    private func onForwardResult(at c: Int, from o: Int, request: UInt64, acknowledged: Bool) {
        guard let k = nodes[c].forwards.firstIndex(where: { $0.request == request }) else { return }
        let forward = nodes[c].forwards.remove(at: k)
        if forward.owner != o { fail("node \(c) got the answer to request \(request) from node \(o), sent it to node \(forward.owner)") }
        clientAnswered(eventID: forward.eventID, key: forward.key, acknowledged: acknowledged)
    }

    // MARK: - Catch-up

    /// Asks every other member of the node's current ring for the keys it replicates there.
    private func startCatchUp(at i: Int) {
        let ring = nodes[i].ring
        let me = nodes[i].id
        let members = rings[ring].members
        guard members.count > 1, members.contains(me) else {
            nodes[i].catchUpRing = nil
            nodes[i].catchUpPending = []
            nodes[i].catchUpRetryAt = .max
            return
        }
        nodes[i].catchUpRing = ring
        nodes[i].catchUpPending = members.filter { $0 != me }.map { idIndex[$0]! }
        sendCatchUps(from: i)
    }

    private func sendCatchUps(from i: Int) {
        guard let ring = nodes[i].catchUpRing else { return }
        for p in nodes[i].catchUpPending { send(.catchUp(ring: ring), from: i, to: p) }
        nodes[i].catchUpRetryAt = now + config.catchUpRetryMs
    }

    private func onCatchUp(at i: Int, from r: Int, ring: Int) {
        let requester = nodes[r].id
        var records: [ReplicationSimRecord] = []
        for eventID in nodes[i].storeOrder {
            let key = nodes[i].store[eventID]!
            if replicaSet(ring: ring, key: key).contains(requester) {
                records.append(ReplicationSimRecord(eventID: eventID, key: key))
            }
        }
        send(.catchUpData(ring: ring, records: records), from: i, to: r)
    }

    private func onCatchUpData(at i: Int, from p: Int, ring: Int, records: [ReplicationSimRecord]) {
        // Pulled records take the idempotent store path; an answer for an older ring is still a
        // valid copy, it just does not complete the current catch-up.
        for r in records where store(r.eventID, r.key, at: i, via: "catch-up from node \(p)") { catchUpStores += 1 }
        if ring == nodes[i].catchUpRing { trace("node \(i) caught up from node \(p) for ring \(rings[ring].members)") }
        if ring == nodes[i].catchUpRing { nodes[i].catchUpPending.removeAll { $0 == p } }
        if nodes[i].catchUpPending.isEmpty { nodes[i].catchUpRetryAt = .max }
    }

    // MARK: - Running

    /// Runs every tick and delivery up to and including `end`, checking the invariants after each.
    func run(until end: Int64) {
        while true {
            if let p = queue.first, p.deliverAt <= nextTickAt {
                guard p.deliverAt <= end else { break }
                now = p.deliverAt
                deliver(queue.pop()!)
            } else {
                guard nextTickAt <= end else { break }
                now = nextTickAt
                nextTickAt += tickMs
                tickAll()
            }
            checkStep()
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
            let directives = memberships[i]!.tick(now: now)
            handleMembership(directives, at: i)
            expireTimeouts(at: i)
            if now >= nodes[i].catchUpRetryAt && !nodes[i].catchUpPending.isEmpty {
                // Only peers still in the ring: a ring change restarts the catch-up anyway.
                sendCatchUps(from: i)
            }
            if case .onRingChangeAndEvery(let ms) = config.catchUp, now >= nodes[i].nextAntiEntropyAt {
                nodes[i].nextAntiEntropyAt = now + ms
                if nodes[i].catchUpPending.isEmpty { startCatchUp(at: i) }
            }
        }
    }

    /// Timeouts become refusals, never acknowledgements.
    private func expireTimeouts(at i: Int) {
        var w = 0
        while w < nodes[i].ownerWrites.count {
            let write = nodes[i].ownerWrites[w]
            if now >= write.deadline {
                nodes[i].ownerWrites.remove(at: w)
                answer(write.reply, from: i, eventID: write.eventID, key: write.key, acknowledged: false)
            } else {
                w += 1
            }
        }
        var f = 0
        while f < nodes[i].forwards.count {
            let forward = nodes[i].forwards[f]
            if now >= forward.deadline {
                nodes[i].forwards.remove(at: f)
                clientAnswered(eventID: forward.eventID, key: forward.key, acknowledged: false)
            } else {
                f += 1
            }
        }
    }

    private func handleMembership(_ directives: [MembershipDirective], at i: Int) {
        var changed = false
        for d in directives {
            switch d {
            case .changed:
                changed = true
            case .send(let peer, let message):
                guard let to = peerIndex[peer] else {
                    fail("node \(i) sent to unknown peer \(peer)")
                    continue
                }
                send(.membership(message), from: i, to: to)
            }
        }
        guard let m = memberships[i] else { return }
        // What the shell would persist: the incarnation to beat on restart.
        nodes[i].storedIncarnation = max(nodes[i].storedIncarnation, m.me.incarnation)
        guard changed else { return }
        let ring = ringID(m.ringMembers)
        guard ring != nodes[i].ring else { return }
        nodes[i].ring = ring
        trace("node \(i) ring \(rings[ring].members)")
        if config.catchUp != .off { startCatchUp(at: i) }
    }

    private func deliver(_ p: ReplicationSimPacket) {
        guard isAlive(p.to), !isCutOff(p.to), !isCutOff(p.from) else {
            dropped += 1
            return
        }
        delivered += 1
        switch p.message {
        case .membership(let m):
            mix(p, 0)
            let directives = memberships[p.to]!.receive(m, fromPeer: nodes[p.from].peer, now: now)
            handleMembership(directives, at: p.to)
        case .forward(let request, let eventID, let key):
            mix(p, eventID)
            beginOwnerWrite(at: p.to, eventID: eventID, key: key, reply: .coordinator(node: p.from, request: request))
        case .forwardResult(let request, let eventID, let ok):
            mix(p, eventID &* 2 &+ (ok ? 1 : 0))
            onForwardResult(at: p.to, from: p.from, request: request, acknowledged: ok)
        case .replicate(let write, let eventID, let key):
            mix(p, eventID)
            onReplicate(at: p.to, from: p.from, write: write, eventID: eventID, key: key)
        case .replicateResult(let write, let eventID, let stored):
            mix(p, eventID &* 2 &+ (stored ? 1 : 0))
            onReplicateResult(at: p.to, from: p.from, write: write, stored: stored)
        case .catchUp(let ring):
            mix(p, UInt64(ring))
            onCatchUp(at: p.to, from: p.from, ring: ring)
        case .catchUpData(let ring, let records):
            mix(p, UInt64(records.count))
            onCatchUpData(at: p.to, from: p.from, ring: ring, records: records)
        }
    }

    private func send(_ message: ReplicationSimMessage, from: Int, to: Int) {
        if from == to { fail("node \(from) sent \(message.tag) to itself") }
        enqueue(message, from: from, to: to)
        if chance(perMille: duplicatePerMille) { enqueue(message, from: from, to: to) }
    }

    private func enqueue(_ message: ReplicationSimMessage, from: Int, to: Int) {
        if isCutOff(from) || isCutOff(to) || chance(perMille: lossPerMille) {
            dropped += 1
            return
        }
        order += 1
        queue.push(ReplicationSimPacket(deliverAt: now + random(delayMs), order: order, from: from, to: to, message: message))
    }

    private func mix(_ p: ReplicationSimPacket, _ detail: UInt64) {
        var h = fingerprint
        for v in [UInt64(bitPattern: p.deliverAt), UInt64(p.from), UInt64(p.to), p.message.tag, detail] {
            h = (h ^ v) &* StableHash.prime
        }
        fingerprint = h
    }

    // MARK: - Invariants

    private func trace(_ what: @autoclosure () -> String) {
        guard traceEventID != nil else { return }
        traceLog.append("t=\(now)ms \(what())")
    }

    func fail(_ what: String) {
        if failures.count < 20 { failures.append("\(label) t=\(now)ms: \(what)") }
    }

    private func holders(of eventID: UInt64) -> [Int] {
        nodes.indices.filter { nodes[$0].store[eventID] != nil }
    }

    /// Invariants 1-3 on what happened in the last step. Stores only ever grow (a crash keeps
    /// them), so a write that had `rf` copies when it was acknowledged keeps them: checking each
    /// acknowledgement in the step it happens covers invariant 1 at every step; `checkAllAcknowledged`
    /// sweeps all of them again at the checkpoints.
    private func checkStep() {
        guard !claims.isEmpty else { return }
        for claim in claims {
            switch claim {
            case .clientAcknowledged(let eventID):
                let h = holders(of: eventID)
                if h.count < config.rf {
                    fail("invariant 1: event \(eventID) (\(acked[eventID] ?? "?")) acknowledged with copies on \(h.count) node(s) \(h), rf \(config.rf)")
                }
            case .ownerAcknowledged(let node, let eventID):
                if nodes[node].store[eventID] == nil { fail("invariant 2: node \(node) acknowledged event \(eventID) it does not store") }
            case .followerStored(let node, let eventID):
                if nodes[node].store[eventID] == nil { fail("invariant 2: node \(node) answered stored for event \(eventID) it does not store") }
            case .replicaStored(let node, let eventID, let key, let sender, let decision, let view):
                // The checker's own verdict, from the follower's membership view at that moment.
                let verdict = Placement.accepts(replicaOf: key, from: nodes[sender].id, ring: rings[view],
                                                rf: config.rf, me: nodes[node].id)
                if decision == nil {
                    fail("invariant 3: node \(node) stored event \(eventID) (\(key)) from node \(sender) without consulting fencing")
                } else if decision != verdict {
                    fail("invariant 3: node \(node) stored event \(eventID) (\(key)) from node \(sender) on decision \(String(describing: decision)); its view \(rings[view].members) says \(verdict)")
                } else if !verdict {
                    fail("invariant 3: node \(node) stored event \(eventID) (\(key)) from node \(sender), refused by fencing in its view \(rings[view].members)")
                }
            }
        }
        claims.removeAll(keepingCapacity: true)
    }

    /// Invariant 1 over every acknowledged write, straight from the stores.
    func checkAllAcknowledged() {
        for eventID in ackedOrder {
            let h = holders(of: eventID)
            if h.count < config.rf {
                fail("invariant 1: acknowledged event \(eventID) (\(acked[eventID]!)) has copies on \(h.count) node(s) \(h), rf \(config.rf)")
            }
        }
    }

    /// The live nodes' ring views when they all agree and equal the live set; nil otherwise.
    func agreedRing() -> [String]? {
        let expected = aliveNodes.map { nodes[$0].id }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for i in aliveNodes where memberships[i]!.ringMembers != expected { return nil }
        return expected
    }

    /// Invariant 4, after healing and a quiet period: every live node has the same ring (the live
    /// nodes), and every acknowledged write is held by all of its current replicas
    /// (`allReplicas`, what catch-up must achieve) or by at least one of them.
    func checkConverged(allReplicas: Bool) {
        guard let members = agreedRing() else {
            let views = aliveNodes.map { "node \($0): \(memberships[$0]!.ringMembers)" }
            fail("invariant 4: live nodes \(aliveNodes) do not agree on the ring: \(views.joined(separator: "; "))")
            return
        }
        let ring = ringID(members)
        for eventID in ackedOrder {
            let key = acked[eventID]!
            let replicas = replicaSet(ring: ring, key: key).map { idIndex[$0]! }
            let holding = replicas.filter { nodes[$0].store[eventID] != nil }
            if !allReplicas {
                if holding.isEmpty {
                    fail("invariant 4: acknowledged event \(eventID) (\(key)) is on no live current replica \(replicas); copies on \(holders(of: eventID))")
                }
            } else if holding.count != replicas.count {
                fail("invariant 4: acknowledged event \(eventID) (\(key)) is on \(holding) of its current replicas \(replicas); copies on \(holders(of: eventID))")
            }
        }
        checkAllAcknowledged()
    }

    /// Everything a replay must reproduce.
    struct Outcome: Equatable {
        var fingerprint: UInt64
        var delivered: Int
        var dropped: Int
        var ackedOrder: [UInt64]
        var refusals: Int
        var stores: [[UInt64]]
        var views: [[String]]
        var failures: [String]
    }

    var outcome: Outcome {
        Outcome(fingerprint: fingerprint, delivered: delivered, dropped: dropped, ackedOrder: ackedOrder,
                refusals: refusals, stores: nodes.map(\.storeOrder),
                views: memberships.map { $0?.ringMembers ?? [] }, failures: failures)
    }

    var summary: String {
        "\(label): submitted \(submitted), acknowledged \(acknowledgements), refused \(refusals), unanswered \(unanswered), fencing refusals \(fencingRefusals), catch-up copies \(catchUpStores), delivered \(delivered), dropped \(dropped)"
    }
}
