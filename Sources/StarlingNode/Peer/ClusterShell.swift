import CCrypto
import Logging
import NIOCore
import NIOPosix
import StarlingCluster
import StarlingCore
import Synchronization

/// The cluster shell: carries out what the pure `ClusterNode` decides (`execute`, a switch over
/// `ClusterDirective`: peer connections, the tick timer, the engine) and feeds it frames, storage
/// results and ticks of the node's one clock (`engine.now`). What is still written here, HTTP
/// ingest routing and the JSON `forwardEvents` path (`ClusterShell+Requests`), reads the node's ring.
public final class ClusterShell: GroupReplicator, @unchecked Sendable {
    public let engine: Engine
    let config: NodeConfig
    let logger: Logger
    let group: EventLoopGroup
    let threadPool: NIOThreadPool
    let meta: MetaStore
    /// The protocol instance; every input goes through `input`, which runs its directives.
    let node: Mutex<ClusterNode>
    let clients = Mutex<[String: PeerClient]>([:])
    let selfHello: Hello
    /// Hello proofs of the cluster secret, when one is configured (nil: every hello is trusted
    /// by the id it names, as before the secret existed).
    let helloAuth: Mutex<HelloAuth?>
    /// Our side of mTLS between nodes (`--peer-tls-*`), reloaded on SIGHUP.
    let peerClientTLS: TLSContext?
    var tickTask: RepeatedTask?
    let seeds: [String]
    /// Rings built from member lists in peers' catch-up requests.
    let rings = RingCache()
    /// Who waits for what the node will answer: write groups being replicated (by group id),
    /// inbound requests (by connection and request id), forwards (by ticket).
    let waiters = Mutex(Waiters())
    /// Spans of traced requests (`--tracing`); peer frames carry their contexts.
    public let tracer: Tracer
    struct Waiters {
        var groups: [UInt64: @Sendable (IngestError?) -> Void] = [:]
        var inbound: [Inbound: EventLoopPromise<Frame?>] = [:]
        var ingests: [UInt64: EventLoopPromise<Result<Int, IngestError>>] = [:]
        var queries: [UInt64: EventLoopPromise<Merged>] = [:]
        var identifies: [UInt64: EventLoopPromise<Result<Int, IngestError>>] = [:]
        var resolves: [UInt64: EventLoopPromise<String?>] = [:]
        var links: [UInt64: EventLoopPromise<[NodeIndex.Link]>] = [:]
        var nextGroup: UInt64 = 1
        var nextTicket: UInt64 = 1
    }
    static let connectionIDs = Atomic<UInt64>(1)

    public var selfID: String { config.id }
    /// `peerAddress`/`httpAddress` are the bound addresses (ports resolved).
    init(engine: Engine, group: EventLoopGroup, threadPool: NIOThreadPool, logger: Logger,
         peerAddress: String, httpAddress: String) throws {
        self.engine = engine
        config = engine.config
        self.logger = logger
        self.group = group
        self.threadPool = threadPool
        tracer = Tracer(config: engine.config, random: engine.random, metrics: engine.metrics, logger: logger)
        var m = ClusterMeta.load(config.dataDir) ?? ClusterMeta()
        let fresh = m.clusterID == 0
        if fresh && config.join.isEmpty {
            // A node with no --join and no cluster of its own starts a new cluster.
            m.clusterID = engine.random.nonZero()
        }
        m.incarnation += 1
        let log = logger
        meta = try MetaStore(dir: config.dataDir, meta: m, onError: { log.error("\($0)") })
        selfHello = Hello(nodeID: config.id, peer: peerAddress, http: httpAddress, incarnation: m.incarnation)
        let peerClients = engine.config.peerClients
        peerClientTLS = try engine.config.peerTLS.map { try TLSContext($0, role: .peerClient) }
        helloAuth = Mutex(engine.config.clusterSecret.map { HelloAuth(secret: $0, clientsAllowed: peerClients) })
        let me = MemberInfo(id: config.id, peer: peerAddress, http: httpAddress, incarnation: m.incarnation, status: .joining)
        var settings = ClusterNodeSettings(id: config.id, rf: config.rf, limits: config.limits)
        settings.forwardTimeoutMs = config.forwardTimeoutMs
        var instance = ClusterNode(settings: settings, me: me, seed: engine.random.next())
        instance.clusterID = m.clusterID
        node = Mutex(instance)
        // Seeds: --join, else the peers remembered from the last run (restart without --join).
        seeds = (config.join.isEmpty ? m.peers : config.join.map(\.description)).filter { $0 != peerAddress }
    }

    /// The node's one clock (the engine's, injected at start).
    func now() -> Int64 { engine.now }

    /// Gives the node one input and carries out what it decided (outside its lock).
    func input(_ step: (inout ClusterNode, Int64) -> [ClusterDirective]) {
        let now = now()
        execute(node.withLock { step(&$0, now) })
    }

    func start() {
        let newest = engine.newestReceivedAt
        let seeds = self.seeds
        input { n, now in
            n.newestReceivedAt = newest
            return n.start(seeds: seeds, now: now)
        }
        let tick = node.withLock { $0.settings.tickMs }
        tickTask = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(tick), delay: .milliseconds(tick)) { [weak self] _ in
            guard let self else { return }
            input { n, now in n.tick(now: now) }
            // The gauge follows the planner on every tick (a ring change alone left it stale
            // after a catch-up finished).
            engine.metrics.catchUpRunning.set(Double(catchingUp ? 1 : 0))
        }
    }

    /// Passed with every write this node stores as owner (nil with rf 1): the engine hands it the
    /// group's own records after the append.
    var replicator: (any GroupReplicator)? { config.rf > 1 ? self : nil }

    /// A write group this node appended as owner: the node ships it and decides (the ack rule).
    public func replicate(_ records: [Record], traces: [TraceContext], done: @escaping @Sendable (IngestError?) -> Void) {
        let id: UInt64 = waiters.withLock { w in
            let id = w.nextGroup
            w.nextGroup += 1
            w.groups[id] = done
            return id
        }
        input { n, now in n.committed(group: id, records: records, traces: traces, now: now) }
    }

    /// Shutdown, step 1: new writes are refused (`shutting_down`) while the ones in flight finish.
    /// Membership, peer connections and replication keep running, so an in-flight write can
    /// still reach its followers (and they do not fence it: this node is still in their ring).
    func beginDrain() {
        node.withLock { $0.beginDrain() }
    }

    /// Shutdown, step 2, after the drain: announces leaving (best effort) and stops the timer.
    func leave() {
        input { n, now in n.leave(now: now) }
        tickTask?.cancel()
        // Give the leave message a moment to go out; bounded.
        usleep(100_000)
    }

    /// Shutdown, last step, once the engine has written everything: closes peer connections,
    /// waits (bounded) for a catch-up that was streaming to wind down (its requests now fail at
    /// once, and no new page or plan starts), so nothing is left pending on the event loops when
    /// they shut down, and waits for the last save of `cluster.meta`.
    func closeConnections() {
        for c in clients.withLock({ Array($0.values) }) { c.close() }
        let deadline = ContinuousClock.now + .seconds(5)
        while catchingUp && ContinuousClock.now < deadline {
            input { n, now in n.tick(now: now) }
            usleep(5_000)
        }
        meta.flush()
    }

    public var catchingUp: Bool { node.withLock { $0.catchingUp } }
    public var caughtUpRing: [String]? { node.withLock { $0.caughtUpRing } }

    /// The connection to `peer`, made on first use. Bounded (`Limits.peerClientsMax`): clients of
    /// addresses no member has any more are dropped on every membership change; past the bound
    /// a new address gets a closed client, whose requests fail at once.
    func client(for peer: String) -> PeerClient {
        let cap = config.limits.peerClientsMax
        let (client, refused): (PeerClient, Bool) = clients.withLock { c in
            if let existing = c[peer] { return (existing, false) }
            let new = PeerClient(address: peer, group: group, logger: logger, compression: config.peerCompression, tls: peerClientTLS,
                                 identity: { [weak self] in
                                     guard let self else { return (0, Hello(nodeID: "x", peer: "", http: "", incarnation: 0)) }
                                     let cid = clusterID
                                     return (cid, ownHello(clusterID: cid))
                                 },
                                 onClusterID: { [weak self] id in self?.adopt(clusterID: id) ?? false },
                                 acceptsAck: { [weak self] sent, ack, names in
                                     self?.ackProves(sent: sent, ack: ack, certificateNames: names, peer: peer) ?? false
                                 },
                                 onNodeFrame: { [weak self] frame in
                                     self?.input { n, now in n.on(frame: frame, connection: 0, fromPeer: peer, now: now) }
                                 },
                                 onLost: { [weak self] in
                                     self?.input { n, now in n.connectionLost(peer: peer, now: now) }
                                 },
                                 onUnsent: { [weak self] rid in
                                     self?.input { n, now in n.unsent(requestID: rid, now: now) }
                                 })
            guard c.count < cap else { return (new, true) }
            c[peer] = new
            return (new, false)
        }
        if refused {
            logger.warning("not connecting to \(peer): \(cap) peer connections already")
            client.close()
        }
        return client
    }

    /// Drops the clients of addresses that no member (in any state) and no seed has.
    func evictClients(keeping members: [MemberInfo]) {
        let wanted = Set(members.map(\.peer)).union(seeds)
        let gone: [PeerClient] = clients.withLock { c in
            let stale = c.keys.filter { !wanted.contains($0) }
            return stale.compactMap { c.removeValue(forKey: $0) }
        }
        for g in gone { g.close() }
    }

    var clusterID: UInt64 { meta.current.clusterID }

    /// A joining node learns the cluster id from the first member that greets it.
    func adopt(clusterID id: UInt64) -> Bool {
        let ok: Bool = meta.update { m in
            if m.clusterID == id { return true }
            if m.clusterID == 0 && id != 0 {
                m.clusterID = id
                return true
            }
            return false
        }
        if ok { node.withLock { $0.clusterID = meta.current.clusterID } }
        if !ok { logger.error("refusing peer of another cluster \(String(id, radix: 16)); ours is \(String(clusterID, radix: 16))") }
        return ok
    }

    /// The answer to a connection's first frame, the hello it accepted, and whether that hello
    /// makes the connection a member's (with a cluster secret: it proved the secret; without
    /// one: always). A connection that is not a member's may only send events as a client.
    /// `certificate`: with mTLS between nodes, what the connection's handshake showed (nil
    /// without mTLS). A connection without a certificate is not a member's; one whose
    /// certificate (of the cluster CA, or the handshake would have failed) names another node
    /// is refused: a node's certificate speaks for that node only.
    func acceptHello(_ frame: Frame, certificate: PeerCertificate? = nil) -> (reply: Frame, hello: Hello?, member: Bool) {
        let mine = clusterID
        func refuse(_ reason: String, auth: Bool = false) -> (reply: Frame, hello: Hello?, member: Bool) {
            logger.warning("refused peer \(frame.sender): \(reason)")
            engine.metrics.peerRefused.increment()
            if auth { engine.metrics.peerAuthRefused.increment() }
            return (Frame(kind: .refuse, isResponse: true, clusterID: mine, requestID: frame.requestID, sender: config.id,
                          body: Refuse(reason: reason).encode()), nil, false)
        }
        guard frame.kind == .hello else { return refuse("the first frame must be hello, got \(frame.kind)") }
        guard let hello = try? Hello.decode(frame.body) else { return refuse("malformed hello") }
        if frame.clusterID != 0 && mine != 0 && frame.clusterID != mine {
            return refuse("cluster id mismatch: this node is in cluster \(String(mine, radix: 16)), the peer in \(String(frame.clusterID, radix: 16))")
        }
        var member = true
        var ack = selfHello
        let now = now()
        switch helloAuth.withLock({ $0?.verify(hello, clusterID: frame.clusterID, now: now) }) {
        case .refused(let why)?:
            return refuse("\(hello.nodeID): \(why)", auth: true)
        case .client?:
            member = false
        case .member?, nil:
            break
        }
        switch certificate {
        case .anonymous?:
            guard config.peerClients else { return refuse("\(hello.nodeID): no certificate of the cluster (clients are not allowed on the peer port)", auth: true) }
            member = false
        case .named(let names)?:
            guard names.contains(hello.nodeID) else {
                return refuse("\(hello.nodeID): its certificate is for \(names.isEmpty ? "no node" : names.joined(separator: ", ")), not for \(hello.nodeID)", auth: true)
            }
        case nil:
            break
        }
        // Only a member's hello may give this node its cluster id (then the ack carries it).
        if member && mine == 0 && frame.clusterID != 0 { _ = adopt(clusterID: frame.clusterID) }
        if member, let nonce = hello.proof?.nonce {
            let cid = clusterID
            ack.proof = helloAuth.withLock { $0?.prove(selfHello, clusterID: cid, now: now, nonce: Self.freshNonce(), answering: nonce) }
        }
        return (Frame(kind: .helloAck, isResponse: true, clusterID: clusterID, requestID: frame.requestID, sender: config.id,
                      body: ack.encode()), hello, member)
    }

    /// Our hello for a connection we open, with a proof of the cluster secret when one is set.
    func ownHello(clusterID: UInt64) -> Hello {
        var hello = selfHello
        let now = now()
        hello.proof = helloAuth.withLock { $0?.prove(selfHello, clusterID: clusterID, now: now, nonce: Self.freshNonce()) }
        return hello
    }

    /// Whether a peer's `helloAck` to `sent` proves the cluster secret (always, without one).
    func ackProves(sent: Hello, ack: Frame, certificateNames: [String]? = nil, peer: String) -> Bool {
        if let names = certificateNames {
            // mTLS: the server's certificate must speak for the node its ack names, as ours must
            // for the node our hello names (`acceptHello`).
            let named = (try? Hello.decode(ack.body))?.nodeID
            guard let named, names.contains(named) else {
                logger.error("peer \(peer) answered as '\(named ?? "?")' with a certificate for \(names): not using it")
                engine.metrics.peerAuthRefused.increment()
                return false
            }
        }
        guard let nonce = sent.proof?.nonce else { return true }
        if let hello = try? Hello.decode(ack.body), helloAuth.withLock({ $0?.verifyAck(hello, clusterID: ack.clusterID, answering: nonce) ?? true }) {
            return true
        }
        logger.error("peer \(peer) answered our hello without proving the cluster secret; not using it")
        engine.metrics.peerAuthRefused.increment()
        return false
    }

    /// 16 bytes from the system's cryptographic generator.
    static func freshNonce() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: HelloProof.nonceBytes)
        precondition(RAND_bytes(&bytes, Int32(bytes.count)) == 1, "RAND_bytes failed")
        return bytes
    }

    func peerProtocolError(_ error: Error, from: SocketAddress?) {
        logger.warning("peer protocol error from \(from.map { "\($0)" } ?? "?"): \(error)")
    }

    // MARK: Views

    public var ring: HashRing { node.withLock { $0.ring } }
    public var liveMembers: Int { node.withLock { $0.liveMembers } }
    public var epoch: UInt64 { node.withLock { $0.epoch } }
    public var members: [MemberInfo] { node.withLock { $0.members } }
    public var downMembers: [String] { node.withLock { $0.downMembers } }

    /// An operator removes a member that is down for good (`POST /v1/admin/remove/ID`).
    func remove(member: String) -> Result<Void, Membership.RemoveRefusal> {
        var result: Result<Void, Membership.RemoveRefusal> = .success(())
        input { n, now in
            let (r, directives) = n.remove(member: member, now: now)
            result = r
            return directives
        }
        return result
    }

    func owner(of key: String) -> String { node.withLock { $0.owner(of: key) } }

    func peerAddress(of member: String) -> String? { node.withLock { $0.peerAddress(of: member) } }

    /// A new number for an accepted peer connection (`Inbound.connection`).
    static func newConnectionID() -> UInt64 { connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue }

    /// Hands a request to the node; the future completes with the node's `.respond`.
    func toNode(_ frame: Frame, connection: UInt64, from hello: Hello, on loop: EventLoop) -> EventLoopFuture<Frame?> {
        let inbound = Inbound(connection: connection, requestID: frame.requestID, sender: frame.sender)
        let p = loop.makePromise(of: Frame?.self)
        let duplicate: Bool = waiters.withLock { w in
            guard w.inbound[inbound] == nil else { return true }
            w.inbound[inbound] = p
            return false
        }
        if duplicate {
            // The same request id twice on one connection: the first one keeps its slot.
            engine.metrics.peerProtocolErrors.increment()
            p.succeed(Frame(kind: .error, isResponse: true, clusterID: clusterID, requestID: frame.requestID, sender: config.id,
                            body: ErrorBody(code: "duplicate_request", message: "request id \(frame.requestID) is in flight").encode()))
            return p.futureResult
        }
        // The sender is who the connection's hello named, whatever a later frame header says.
        var frame = frame
        frame.sender = hello.nodeID
        input { [frame] n, now in n.on(frame: frame, connection: connection, fromPeer: hello.peer, now: now) }
        return p.futureResult
    }

    // MARK: Inbound requests

    /// Answers one request frame of an accepted connection. `remoteIP` is the connection's
    /// peer address (events sent by clients are stamped with it). Membership, replication,
    /// catch-up and forwarded records are the node's (`ClusterNode.on(frame:)`).
    /// `member`: the connection's hello made it a member's (see `acceptHello`); otherwise only
    /// `forwardEvents` is served, as a client's.
    func handle(_ frame: Frame, from hello: Hello, member: Bool = true, remoteIP: String? = nil, connection: UInt64 = 0,
                on loop: EventLoop) -> EventLoopFuture<Frame?> {
        guard !frame.traces.isEmpty, tracer.enabled else {
            return handleFrame(frame, from: hello, member: member, remoteIP: remoteIP, connection: connection, on: loop)
        }
        // A traced request: one span per trace it carries, which become the parents of what
        // this node sends on for it (replication, pages).
        let spans = tracer
        let started = frame.traces.map { spans.startChild(of: $0) }
        var traced = frame
        traced.traces = started.map(\.context)
        let (kind, count) = (frame.kind, frame.body.count)
        return handleFrame(traced, from: hello, member: member, remoteIP: remoteIP, connection: connection, on: loop).map { reply in
            for s in started {
                spans.finish(s, name: "peer \(kind)", kind: .server,
                              attributes: [("starling.peer.sender", .string(hello.nodeID)), ("starling.frame.bytes", .int(Int64(count)))],
                              error: reply?.kind == .error)
            }
            return reply
        }
    }

    func handleFrame(_ frame: Frame, from hello: Hello, member: Bool, remoteIP: String?, connection: UInt64,
                     on loop: EventLoop) -> EventLoopFuture<Frame?> {
        @Sendable func reply(_ kind: MessageKind, _ body: [UInt8]) -> Frame {
            Frame(kind: kind, isResponse: true, clusterID: clusterID, requestID: frame.requestID, sender: config.id, body: body)
        }
        if !member && frame.kind != .forwardEvents {
            engine.metrics.peerUnauthenticated.increment()
            logger.warning("refused \(frame.kind) from \(remoteIP ?? "?") (hello named \(hello.nodeID)): the connection did not prove the cluster secret")
            if frame.kind == .membership { return loop.makeSucceededFuture(nil) }   // one-way: nothing to answer
            return loop.makeSucceededFuture(reply(.error, ErrorBody(code: "unauthenticated", message: "this connection did not prove the cluster secret; only events are taken from clients").encode()))
        }
        switch frame.kind {
        case .membership:
            input { n, now in n.on(frame: frame, connection: connection, fromPeer: hello.peer, now: now) }
            return loop.makeSucceededFuture(nil)
        case .forwardRecords, .replicate, .catchUp, .query, .identify, .resolveIdentity, .links:
            return toNode(frame, connection: connection, from: hello, on: loop)
        case .forwardEvents:
            guard let batch = try? EventBatch.decode(frame.body) else {
                return loop.makeSucceededFuture(reply(.forwardResult, ForwardResult(status: 400, code: "bad_batch", message: "malformed event batch", accepted: 0).encode()))
            }
            // A ring member forwards events it routed to us; anyone else (a client on the peer
            // port) gets HTTP-ingest semantics: validated whole, routed to owners and replicas.
            if member && ring.members.contains(hello.nodeID) {
                return storeForwarded(batch, on: loop, traces: frame.traces).map { reply(.forwardResult, $0.encode()) }
            }
            return ingestFromClient(batch, ip: remoteIP ?? "", on: loop, trace: frame.traces.first).map { reply(.forwardResult, $0.encode()) }
        default:
            return loop.makeSucceededFuture(reply(.error, ErrorBody(code: "unsupported", message: "no handler for \(frame.kind)").encode()))
        }
    }

    /// One answer for a forwarded batch stored in parts: 202 with the total, or the first failure.
    static func forwardResult(of futures: [EventLoopFuture<Result<Int, IngestError>>], on loop: EventLoop) -> EventLoopFuture<ForwardResult> {
        EventLoopFuture.whenAllSucceed(futures, on: loop).map { results in
            var total = 0
            for r in results {
                switch r {
                case .success(let n): total += n
                case .failure: return ForwardResult(r)
                }
            }
            return ForwardResult(.success(total))
        }
    }

    /// Stores events another node forwarded to us as JSON (we own their sessions).
    func storeForwarded(_ batch: EventBatch, on loop: EventLoop, traces: [TraceContext] = []) -> EventLoopFuture<ForwardResult> {
        var groups: [String: [IncomingEvent]] = [:]     // "transport|ip" -> events
        var bytes = 0
        for (i, f) in batch.events.enumerated() {
            let parsed = f.json.withUnsafeBytes { EventValidator.event(fromJSON: $0, limits: config.limits, what: "forwarded event") }
            switch parsed {
            case .success(let e):
                groups["\(f.transport)|\(f.ip)", default: []].append(e)
                bytes += f.json.count
            case .failure(let e):
                return loop.makeSucceededFuture(ForwardResult(status: UInt16(e.status), code: e.code, message: e.message, accepted: 0, index: Int32(i)))
            }
        }
        var futures: [EventLoopFuture<Result<Int, IngestError>>] = []
        for (key, events) in groups {
            let parts = key.split(separator: "|", maxSplits: 1)
            let transport = Transport(wireCode: parts.first.flatMap { UInt8($0) } ?? 3)
            let ip = parts.count > 1 ? String(parts[1]) : ""
            let p = loop.makePromise(of: Result<Int, IngestError>.self)
            engine.submit(events, ip: ip, transport: transport, bytes: bytes, on: loop, replicator: replicator, traces: traces) { p.succeed($0) }
            futures.append(p.futureResult)
        }
        return Self.forwardResult(of: futures, on: loop)
    }

    /// `forwardEvents` from a client that is not a ring member (SPEC: the peer port is also for
    /// fast clients): the same path as `POST /v1/events` with a batch. Every event is validated
    /// before anything is stored (400 with the index of the first bad one), then the batch goes
    /// through `ingest` — grouped by owner, forwarded, replicated to `rf` nodes — and the answer
    /// is the same `forwardResult` a member gets. The client address is the connection's, the
    /// transport `peer`; the `transport`, `ip` and `received_at` fields the client sent are ignored.
    func ingestFromClient(_ batch: EventBatch, ip: String, on loop: EventLoop, trace: TraceContext? = nil) -> EventLoopFuture<ForwardResult> {
        let metrics = engine.metrics
        guard !batch.events.isEmpty else {
            metrics.rejected(.peer, reason: "empty_batch")
            return loop.makeSucceededFuture(ForwardResult(status: 400, code: "empty_batch", message: "batch holds no events", accepted: 0))
        }
        guard batch.events.count <= config.limits.requestEventsMax else {
            metrics.rejected(.peer, reason: "too_many_events", count: batch.events.count)
            return loop.makeSucceededFuture(ForwardResult(status: 400, code: "too_many_events",
                                                          message: "batch holds \(batch.events.count) events, the limit is \(config.limits.requestEventsMax)",
                                                          accepted: 0))
        }
        var events: [IncomingEvent] = []
        events.reserveCapacity(batch.events.count)
        var bytes = 0
        for (i, f) in batch.events.enumerated() {
            let parsed = f.json.withUnsafeBytes { buf -> Result<IncomingEvent, IngestError> in
                guard let v = try? JSONParser.parse(buf, maxDepth: config.limits.jsonDepthMax) else {
                    return .failure(.invalidJSON("event is not valid JSON"))
                }
                return EventValidator.event(from: v, byteCount: buf.count, limits: config.limits)
            }
            switch parsed {
            case .success(let e):
                events.append(e)
                bytes += f.json.count
            case .failure(let e):
                let err = e.at(index: i)
                metrics.rejected(.peer, reason: err.reason)
                return loop.makeSucceededFuture(ForwardResult(.failure(err)))
            }
        }
        let count = events.count
        return ingest(events, ip: ip, transport: .peer, bytes: bytes, on: loop, trace: trace).map { result in
            if let e = result.failureValue { metrics.rejected(.peer, reason: e.reason, count: count) }
            return ForwardResult(result.map { _ in count })
        }
    }

    func localQuery(_ q: QueryRequest, byteBudget: Int = .max, on loop: EventLoop) -> EventLoopFuture<QueryResult> {
        let engine = self.engine
        let query = EventQuery(from: q.from, to: q.to, key: q.key, component: q.component, limit: Int(q.limit))
        return threadPool.runIfActive(eventLoop: loop) { () -> QueryResult in
            let answer: Engine.Answer
            var state: [UInt8]?
            switch q.scope {
            case 0:
                let (a, s) = engine.session(q.id, query: query, offset: Int(q.offset), byteBudget: byteBudget)
                answer = a
                if q.wantState, let s {
                    var out: [UInt8] = []
                    JSONWriter.write(s.json(now: engine.now), into: &out)
                    state = out
                }
            case 1: answer = engine.events(ofUser: q.id, query: query, offset: Int(q.offset), byteBudget: byteBudget)
            default: answer = engine.events(ofTerminal: q.id, query: query, offset: Int(q.offset), byteBudget: byteBudget)
            }
            return QueryResult(hits: answer.records.map { QueryHit(eventID: $0.eventID, ts: $0.ts, receivedAt: $0.receivedAt, json: $0.json) },
                               truncated: answer.truncated, state: state, error: answer.partial ? "some blocks unreadable" : nil,
                               nextOffset: answer.nextOffset.map { UInt32(clamping: $0) })
        }
    }
}

extension Transport {
    /// A stable one-byte code for the wire.
    var wireCode: UInt8 {
        switch self {
        case .http: return 0
        case .pixel: return 1
        case .udp: return 2
        case .peer: return 3
        case .segment: return 4
        case .posthog: return 5
        case .snowplow: return 6
        }
    }
    /// Unknown codes (a newer node's) count as `peer`.
    init(wireCode: UInt8) {
        switch wireCode {
        case 0: self = .http
        case 1: self = .pixel
        case 2: self = .udp
        case 4: self = .segment
        case 5: self = .posthog
        case 6: self = .snowplow
        default: self = .peer
        }
    }
}

/// What a peer connection's mTLS handshake showed (`ClusterShell.acceptHello`).
enum PeerCertificate: Sendable, Equatable {
    /// No client certificate: the connection may only be a client's.
    case anonymous
    /// A certificate of the cluster CA with these subject common names (`starling cert` writes
    /// the node id as the CN).
    case named([String])
}
