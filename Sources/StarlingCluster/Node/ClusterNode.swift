import StarlingCore

/// Deliberate rule breaks, for the simulation's bug-injection tests only: each invariant must be
/// shown to fail when its rule is broken in the real instance. Production uses `.init()`.
public struct ClusterRules: Sendable, Equatable {
    public enum AckRule: Sendable, Equatable {
        /// `Placement.acknowledged`: stored locally and by every follower.
        case everyCopy
        /// Bug: acknowledge once stored locally.
        case localStoreOnly
        /// Bug: acknowledge once any one follower stored it.
        case anyFollower
    }
    public var ack = AckRule.everyCopy
    /// false (bug): a replicate from a sender outside the key's replica set is stored anyway.
    public var fencing = true
    /// false (bug): any previous ring is a handoff base, whether this node caught up in it or not.
    public var catchUpBaseCaughtUpOnly = true
    public init() {}

    func acknowledged(followerAcks: [Bool]) -> Bool {
        switch ack {
        case .everyCopy: Placement.acknowledged(storedLocally: true, followerAcks: followerAcks)
        case .localStoreOnly: true
        case .anyFollower: followerAcks.isEmpty || followerAcks.contains(true)
        }
    }
}

public struct ClusterNodeSettings: Sendable {
    public var id: String
    public var rf: Int
    public var limits: Limits
    public var vnodes = HashRing.defaultVnodes
    /// The shell calls `tick(now:)` this often.
    public var tickMs: Int64 = 100
    /// Anti-entropy: every interval, pull what this node replicates that arrived within
    /// `CatchUpPlanner.antiEntropyWindowMs` (Int64.max: never).
    public var antiEntropyIntervalMs: Int64 = 30_000
    /// After a ring change, wait this long (gossip reaches the others) before pulling.
    public var catchUpSettleMs: Int64 = 500
    public var replicateTimeoutMs: Int64 = 5_000
    public var forwardTimeoutMs: Int64 = 5_000
    public var catchUpTimeoutMs: Int64 = 30_000
    /// Each page of a member's query answer must come within this.
    public var queryTimeoutMs: Int64 = 2_000
    /// A peer whose catch-up failed is asked again after this (doubling per attempt), at most
    /// `catchUpAttemptsMax` times in all.
    public var catchUpRetryMs: Int64 = 1_000
    public var catchUpAttemptsMax = 6
    public var membership = MembershipSettings()
    public var rules = ClusterRules()

    public init(id: String, rf: Int, limits: Limits = Limits()) {
        self.id = id
        self.rf = rf
        self.limits = limits
    }
}

/// One cluster member's protocol as a value: membership (SWIM), the ring, forwarding to owners,
/// replication with the ack rule and fencing, catch-up and anti-entropy. Inputs are frames,
/// results of the storage and ticks of an injected clock; outputs are `ClusterDirective`s that
/// the shell (`ClusterShell` in StarlingNode, the simulator in tests) carries out. No sockets,
/// files or clocks; its only randomness is the membership seed.
///
/// Requests this node sends carry ids with the top bit set (`requestIDBase`), so a shell can tell
/// their answers from those of its own requests on the same connection.
public struct ClusterNode: Sendable {
    public static let requestIDBase: UInt64 = 1 << 63

    public let settings: ClusterNodeSettings
    public var id: String { settings.id }
    public private(set) var membership: Membership
    public private(set) var ring: HashRing
    public private(set) var epoch: UInt64 = 0
    /// Stamped on every frame this node builds (the shell sets it from `cluster.meta` and when a
    /// joining node adopts the cluster's id; the shell also stamps its current id on each frame it
    /// writes, so a frame built before the adoption still carries the right one).
    public var clusterID: UInt64 = 0
    public private(set) var draining = false
    var seeds: [String] = []

    // Requests in flight, by request id.
    enum Outstanding: Sendable {
        case replicate(group: UInt64, slot: Int)
        case catchUpPage
        case forward(parts: [UInt64], key: ForwardKey)
        case queryPage(fanout: UInt64, slot: Int, request: QueryRequest)
        case identify(ticket: UInt64)
        case resolve(ticket: UInt64)
        case links(ticket: UInt64)
    }
    struct Request: Sendable {
        var what: Outstanding
        var peer: String
        var deadline: Int64
    }
    var requests: [UInt64: Request] = [:]
    var nextRequest: UInt64 = 1

    // Storage calls in flight, by ticket.
    enum Waiting: Sendable {
        case replicaReply(Inbound)
        case ownedReply(Inbound, count: Int)
        /// A part of ingest request `request` (the shell's ticket), stored here or forwarded.
        case ingestPart(request: UInt64, count: Int)
        case catchUpAnswer(Inbound)
        case catchUpStored(nextKey: String?, nextSkip: UInt32, count: Int)
        case queryReply(Inbound)
        case querySlot(fanout: UInt64, slot: Int)
        case identifyReply(Inbound)
        case identifyPart(UInt64)
        case resolveReply(Inbound)
        case resolvePart(UInt64)
        case linksReply(Inbound)
        case linksPart(UInt64)
    }
    var tickets: [UInt64: Waiting] = [:]
    var nextTicket: UInt64 = 1

    /// A write group being replicated: one slot per shipment (follower frame).
    struct Group: Sendable {
        var acks: [Bool?]
        var firstError: IngestError?
        var startedAt: Int64
    }
    var groups: [UInt64: Group] = [:]
    /// Per owner and kind: pieces waiting to be forwarded, and the batches in flight.
    var forwardQueues: [ForwardKey: ForwardBatcher<ForwardPiece>] = [:]
    /// Ingest requests with parts still out, by the shell's ticket.
    var ingests: [UInt64: PendingIngest] = [:]
    /// Query fan-outs in progress, by the shell's ticket.
    var fanouts: [UInt64: Fanout] = [:]
    /// The ring before the last change (a handoff may still be moving its copies).
    var previousRing: HashRing?
    var everyoneRingCache: HashRing?
    /// Identify calls in progress, by the shell's ticket.
    var identifies: [UInt64: Identify] = [:]

    // Catch-up.
    var planner: CatchUpPlanner
    /// A plan waiting for its time: after a ring change (the view settles first), or the retry
    /// of the peers that failed (`peers`; nil = every live peer).
    struct Scheduled: Sendable {
        var due: Int64
        var plan: CatchUpPlanner.Plan
        var peers: [String]? = nil
        var attempt = 0
    }
    var scheduled: [Scheduled] = []
    struct Pull: Sendable {
        var plan: CatchUpPlanner.Plan
        var peers: [String]
        var cursor: CatchUpCursor?
        var stored = 0
        /// Peers whose pull failed (a lost page, a timeout, a store that failed): asked again.
        var failed: [String] = []
        var attempt = 0
        /// False when a peer that should have been asked is gone (a retry whose peer left the
        /// view): the plan then never counts as caught up in full.
        var complete = true
    }
    var pull: Pull?
    var nextAntiEntropyAt: Int64 = .max

    var out: [ClusterDirective] = []

    public init(settings: ClusterNodeSettings, me: MemberInfo, seed: UInt64) {
        precondition(me.id == settings.id, "the member info names \(me.id), the settings \(settings.id)")
        precondition(settings.rf >= 1 && settings.tickMs > 0, "rf and the tick must be positive: rf \(settings.rf), tick \(settings.tickMs) ms")
        self.settings = settings
        membership = Membership(me: me, settings: settings.membership, seed: seed)
        ring = HashRing(members: [settings.id], vnodes: settings.vnodes)
        planner = CatchUpPlanner(queuedMax: settings.limits.catchUpPlansQueuedMax)
        planner.requireCaughtUpBase = settings.rules.catchUpBaseCaughtUpOnly
    }

    // MARK: Views

    public var members: [MemberInfo] { membership.members }
    public var catchingUp: Bool { planner.running }
    /// The ring this node last caught up in full (every peer answered every page): when it is
    /// the current ring, its handoff is done.
    public var caughtUpRing: [String]? { planner.caughtUpRing }
    public var liveMembers: Int { ring.members.count }
    public func owner(of key: String) -> String { Placement.owner(of: key, ring: ring, me: id) }
    public func peerAddress(of member: String) -> String? { membership.member(member)?.peer }
    public func isRingMember(_ node: String) -> Bool { ring.members.contains(node) }
    /// Pieces waiting in the forward queues (not yet sent).
    public var forwardPiecesWaiting: Int { forwardQueues.values.reduce(0) { $0 + $1.waiting.count } }
    /// Requests sent and not yet answered or timed out (for bounds checks in tests).
    public var requestsInFlight: Int { requests.count }

    // MARK: Lifecycle

    public mutating func start(seeds: [String], now: Int64) -> [ClusterDirective] {
        self.seeds = seeds
        if settings.antiEntropyIntervalMs < .max / 2 { nextAntiEntropyAt = now + settings.antiEntropyIntervalMs }
        apply(membership.start(seeds: seeds, now: now), now: now)
        recomputeRing(now: now, force: true)
        return take()
    }

    /// Stopping, step 1: no catch-up starts or continues (queued plans are dropped).
    public mutating func beginDrain() { draining = true }

    /// Stopping: announce leaving.
    public mutating func leave(now: Int64) -> [ClusterDirective] {
        apply(membership.leave(now: now), now: now)
        return take()
    }

    /// An operator removes a member that is down for good (`starling cluster remove`): it
    /// becomes `left` everywhere, so queries stop asking it and the cluster is no longer degraded.
    public mutating func remove(member: String, now: Int64) -> (Result<Void, Membership.RemoveRefusal>, [ClusterDirective]) {
        switch membership.remove(member, now: now) {
        case .success(let directives):
            apply(directives, now: now)
            out.append(.log(.warning, "member \(member) removed by an operator"))
            return (.success(()), take())
        case .failure(let refusal):
            return (.failure(refusal), take())
        }
    }

    /// Members that are down and not removed: the cluster is degraded (fewer copies of their
    /// keys' old data until catch-up restores them; queries still ask for them) until they come
    /// back or an operator removes them.
    public var downMembers: [String] { members.filter { $0.status == .down }.map(\.id) }

    /// The clock moved: membership probes, request deadlines, due catch-ups, anti-entropy.
    public mutating func tick(now: Int64) -> [ClusterDirective] {
        apply(membership.tick(now: now), now: now)
        expireRequests(now: now)
        runDueCatchUps(now: now)
        if now >= nextAntiEntropyAt {
            nextAntiEntropyAt = now + settings.antiEntropyIntervalMs
            if let plan = planner.antiEntropy(now: now, ring: ring.members, me: id, rf: settings.rf) { startCatchUp(plan, now: now) }
        }
        return take()
    }

    /// A frame from a peer: a request (answered through `.respond` on `connection`), an answer to
    /// one of this node's requests, or a one-way membership message.
    public mutating func on(frame: Frame, connection: UInt64, fromPeer: String, now: Int64) -> [ClusterDirective] {
        if frame.isResponse {
            onResponse(frame, now: now)
            return take()
        }
        let inbound = Inbound(connection: connection, requestID: frame.requestID, sender: frame.sender)
        switch frame.kind {
        case .membership:
            if let m = MembershipMessage.decode(frame.body) {
                apply(membership.receive(m, fromPeer: fromPeer, now: now), now: now)
            } else {
                out.append(.count(.peerProtocolError))
            }
        case .replicate: onReplicate(frame, inbound: inbound)
        case .catchUp: onCatchUp(frame, inbound: inbound)
        case .forwardRecords: onForwardRecords(frame, inbound: inbound)
        case .query: onQuery(frame, inbound: inbound)
        case .identify: onIdentify(frame, inbound: inbound)
        case .resolveIdentity: onResolve(frame, inbound: inbound)
        case .links: onLinks(frame, inbound: inbound)
        default:
            respond(inbound, .error, ErrorBody(code: "unsupported", message: "no handler for \(frame.kind)").encode())
        }
        return take()
    }

    /// The connection to `peer` closed: its requests fail now instead of at their deadline.
    public mutating func connectionLost(peer: String, now: Int64) -> [ClusterDirective] {
        for rid in requests.keys.sorted() where requests[rid]?.peer == peer {
            fail(request: rid, reason: "connection to \(peer) lost", now: now)
        }
        return take()
    }

    /// One request could not be written (its frame is over the limit): it fails alone.
    public mutating func unsent(requestID rid: UInt64, now: Int64) -> [ClusterDirective] {
        fail(request: rid, reason: "the frame is over the size limit", now: now)
        return take()
    }

    // MARK: Plumbing

    mutating func take() -> [ClusterDirective] {
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    func frame(_ kind: MessageKind, requestID: UInt64, response: Bool = false, body: [UInt8]) -> Frame {
        Frame(kind: kind, isResponse: response, clusterID: clusterID, requestID: requestID, sender: id, body: body)
    }

    mutating func respond(_ to: Inbound, _ kind: MessageKind, _ body: [UInt8]) {
        out.append(.respond(to, frame(kind, requestID: to.requestID, response: true, body: body)))
    }

    /// Sends a request and remembers it until its answer, a lost connection or `timeoutMs`.
    mutating func request(_ kind: MessageKind, body: [UInt8], to peer: String, what: Outstanding, timeoutMs: Int64, now: Int64,
                          traces: [TraceContext] = []) {
        let rid = Self.requestIDBase | nextRequest
        nextRequest += 1
        requests[rid] = Request(what: what, peer: peer, deadline: TimeMath.add(now, timeoutMs))
        var f = frame(kind, requestID: rid, body: body)
        f.traces = traces
        out.append(.send(peer: peer, frame: f))
    }

    mutating func newTicket(_ w: Waiting) -> UInt64 {
        let t = nextTicket
        nextTicket += 1
        tickets[t] = w
        return t
    }

    mutating func expireRequests(now: Int64) {
        let late = requests.filter { $0.value.deadline <= now }.keys.sorted()
        for rid in late {
            guard let r = requests[rid] else { continue }
            // An unanswered request means the connection cannot be trusted (after a partition TCP
            // may sit in retransmission backoff for minutes): the next request connects afresh.
            out.append(.resetConnection(peer: r.peer))
            fail(request: rid, reason: "\(r.peer) did not answer in time", now: now)
        }
    }

    mutating func fail(request rid: UInt64, reason: String, now: Int64) {
        guard let r = requests.removeValue(forKey: rid) else { return }
        switch r.what {
        case .replicate(let group, let slot):
            settle(group: group, slot: slot, error: IngestError(status: 503, code: "replica_unavailable", message: "follower at \(r.peer): \(reason)"))
        case .catchUpPage:
            out.append(.log(.warning, "catch-up from \(r.peer) failed: \(reason)"))
            nextPeer(failed: true, now: now)
        case .forward(let parts, let key):
            forwarded(parts: parts, key: key, error: IngestError(status: 503, code: "owner_unavailable", message: "owner \(key.owner) is unreachable: \(reason)"), now: now)
        case .queryPage(let fanout, let slot, let request):
            settle(fanout: fanout, slot: slot, page: nil, request: request, peer: r.peer, now: now)
        case .identify(let ticket):
            identified(part: ticket, error: IngestError(status: 503, code: "owner_unavailable", message: "\(r.peer): \(reason)"))
        case .resolve(let ticket):
            out.append(.resolved(ticket: ticket, sessionID: nil))
        case .links(let ticket):
            out.append(.linksAnswered(ticket: ticket, []))
        }
    }

    mutating func onResponse(_ frame: Frame, now: Int64) {
        guard let r = requests.removeValue(forKey: frame.requestID) else { return }   // late or unknown
        switch r.what {
        case .replicate(let group, let slot):
            let result = try? ReplicateResult.decode(frame.body)
            let error: IngestError? = switch result {
            case nil: IngestError(status: 503, code: "replica_unavailable", message: "follower at \(r.peer) sent a malformed answer")
            case let x? where x.status == 200: nil
            case let x?: IngestError(status: 503, code: "replica_unavailable", message: "follower at \(r.peer): \(x.message)")
            }
            settle(group: group, slot: slot, error: error)
        case .catchUpPage:
            onCatchUpPage(frame, from: r.peer, now: now)
        case .forward(let parts, let key):
            let error: IngestError?
            if let x = try? ForwardResult.decode(frame.body) {
                error = x.status < 300 ? nil : IngestError(status: Int(x.status), code: x.code, message: "owner \(key.owner): \(x.message)")
            } else {
                error = IngestError(status: 503, code: "owner_unavailable", message: "owner \(key.owner) sent a malformed answer")
            }
            forwarded(parts: parts, key: key, error: error, now: now)
        case .queryPage(let fanout, let slot, let request):
            settle(fanout: fanout, slot: slot, page: try? QueryResult.decode(frame.body), request: request, peer: r.peer, now: now)
        case .identify(let ticket):
            let error: IngestError? = switch try? IdentifyResult.decode(frame.body) {
            case nil: IngestError(status: 503, code: "owner_unavailable", message: "bad answer from \(r.peer)")
            case let x? where x.status < 300: nil
            case let x?: IngestError(status: Int(x.status), code: x.code, message: x.message)
            }
            identified(part: ticket, error: error)
        case .resolve(let ticket):
            out.append(.resolved(ticket: ticket, sessionID: (try? ResolveResult.decode(frame.body))?.sessionID))
        case .links(let ticket):
            out.append(.linksAnswered(ticket: ticket, (try? LinksResult.decode(frame.body))?.links ?? []))
        }
    }

    // MARK: Membership and the ring

    mutating func apply(_ directives: [MembershipDirective], now: Int64) {
        var changed = false
        for d in directives {
            switch d {
            case .send(let peer, let message):
                out.append(.send(peer: peer, frame: frame(.membership, requestID: 0, body: message.encode())))
            case .changed:
                changed = true
            }
        }
        if changed { recomputeRing(now: now, force: false) }
    }

    mutating func recomputeRing(now: Int64, force: Bool) {
        let live = membership.ringMembers.sorted()
        let newEpoch = membership.epoch
        guard force || newEpoch != epoch || ring.members != live else { return }
        let before = Set(ring.members)
        let ringChanged = ring.members != live
        if ringChanged {
            previousRing = ring
            ring = HashRing(members: live, vnodes: settings.vnodes)
        }
        epoch = newEpoch
        let all = membership.members
        let nowIn = Set(live)
        let dropped = all.filter { $0.id != id && before.contains($0.id) && !nowIn.contains($0.id) }
        out.append(.ringChanged(RingView(members: live, epoch: newEpoch, all: all, share: ring.ownedShare()[id] ?? 0, dropped: dropped)))
        guard ringChanged || force else { return }
        if !draining, let plan = planner.ringChanged(to: live, me: id, newestReceivedAt: newestReceivedAt) {
            scheduled.append(Scheduled(due: TimeMath.add(now, settings.catchUpSettleMs), plan: plan))
        }
    }

    /// Receive time of the newest record this node holds (a restart's catch-up starts a little
    /// before it); the shell sets it once after recovery.
    public var newestReceivedAt: Int64 = 0
}
