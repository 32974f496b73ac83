import Logging
import NIOCore
import StarlingCluster
import StarlingCore
import Synchronization

/// Ingest routing (group by owner, stamp, hand records to the node) and the requests that wait on
/// the node's answers (query fan-out, identify, resolve, links).
extension ClusterShell {
    /// Why the cluster cannot take writes now, if it cannot (fewer live members than rf).
    func unavailableReason() -> IngestError? {
        node.withLock { $0.unavailableReason() }
    }

    /// Routes validated events to their owners and completes once every owner stored its share.
    func ingest(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        if let reason = unavailableReason() ?? engine.unavailableReason() { return loop.makeSucceededFuture(.failure(reason)) }
        // The common case (every event names its session) routes at once, without a future hop.
        if !events.contains(where: { $0.sessionID == nil }) {
            return route(events, ip: ip, transport: transport, bytes: bytes, on: loop)
        }
        return resolveIdentities(events, on: loop).flatMap { [self] resolved in
            route(resolved, ip: ip, transport: transport, bytes: bytes, on: loop)
        }
    }

    func route(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        var byOwner: [String: [IncomingEvent]] = [:]
        let ring = self.ring
        for e in events {
            let key = SubjectKey(sessionID: e.sessionID, userID: e.userID, terminalID: e.terminalID).ringKey
            byOwner[Placement.owner(of: key, ring: ring, me: config.id), default: []].append(e)
        }
        func send(_ list: [IncomingEvent], to owner: String) -> EventLoopFuture<Result<Int, IngestError>> {
            if owner == config.id {
                let p = loop.makePromise(of: Result<Int, IngestError>.self)
                engine.submit(list, ip: ip, transport: transport, bytes: bytes, on: loop) { p.succeed($0) }
                return p.futureResult
            }
            return forward(list, to: owner, ip: ip, transport: transport, on: loop)
        }
        if byOwner.count == 1, let (owner, list) = byOwner.first {
            return send(list, to: owner)
        }
        return Self.total(of: byOwner.map { send($0.value, to: $0.key) }, on: loop)
    }

    /// The events stored by several parts of one request: their sum, or the first failure.
    static func total(of futures: [EventLoopFuture<Result<Int, IngestError>>], on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        if futures.count == 1 { return futures[0] }
        return EventLoopFuture.whenAllSucceed(futures, on: loop).map { results in
            var total = 0
            for r in results {
                switch r {
                case .success(let n): total += n
                case .failure(let e): return .failure(e)
                }
            }
            return .success(total)
        }
    }

    /// Identity-only events take the session their user (else terminal) was linked to, asked
    /// of the identity's owner; the session id is written into the event before routing.
    func resolveIdentities(_ events: [IncomingEvent], on loop: EventLoop) -> EventLoopFuture<[IncomingEvent]> {
        let needs = events.contains { $0.sessionID == nil }
        guard needs else { return loop.makeSucceededFuture(events) }
        var keys = Set<SubjectKey>()
        for e in events where e.sessionID == nil {
            if let u = e.userID { keys.insert(.user(u)) }
            if let t = e.terminalID { keys.insert(.terminal(t)) }
        }
        let lookups = keys.map { key in resolve(key, on: loop).map { (key, $0) } }
        return EventLoopFuture.whenAllSucceed(lookups, on: loop).map { pairs in
            let found = Dictionary(pairs, uniquingKeysWith: { a, _ in a })
            return events.map { e in
                guard e.sessionID == nil else { return e }
                let sid = e.userID.flatMap { found[.user($0)] ?? nil } ?? e.terminalID.flatMap { found[.terminal($0)] ?? nil }
                guard let sid else { return e }
                var copy = e
                copy.resolve(sessionID: sid)
                return copy
            }
        }
    }

    func resolve(_ key: SubjectKey, on loop: EventLoop) -> EventLoopFuture<String?> {
        let p = loop.makePromise(of: String?.self)
        let t = ticket { $0.resolves[$1] = p }
        input { n, now in n.resolve(key, ticket: t, now: now) }
        return p.futureResult
    }

    /// A new ticket for a waiter the node will answer, registered by `register`.
    func ticket(_ register: (inout Waiters, UInt64) -> Void) -> UInt64 {
        waiters.withLock { w in
            let t = w.nextTicket
            w.nextTicket += 1
            register(&w, t)
            return t
        }
    }

    /// Sends events to their owner. Events whose session is known travel as finished records
    /// (validated, stamped with the owner's id, encoded here), so the owner only appends them;
    /// identity-only events travel as JSON, for the owner to resolve their session.
    func forward(_ events: [IncomingEvent], to owner: String, ip: String, transport: Transport, on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        guard let peer = peerAddress(of: owner) else {
            return loop.makeSucceededFuture(.failure(IngestError(status: 503, code: "owner_unavailable", message: "owner \(owner) has no known address")))
        }
        let now = now()
        var rng = engine.random.generator()
        let stamped = StoredEvent.records(of: events, receivedAt: now, node: owner, ip: ip, using: &rng)
        var records: [RecordBatch.Item] = []
        var loose: [ForwardedEvent] = []
        for (e, r) in zip(events, stamped) {
            if let r {
                records.append(RecordBatch.Item(transport: transport.wireCode, clientID: e.eventID != nil, record: r.encoded))
            } else {
                loose.append(ForwardedEvent(transport: transport.wireCode, ip: ip, receivedAt: now, json: e.clientJSON()))
            }
        }
        // A request's share can exceed one frame (1 MiB of tiny events makes several MiB of
        // records): it goes in pieces that each fit, and the queue packs whole pieces into frames.
        var futures: [EventLoopFuture<Result<Int, IngestError>>] = []
        let budget = config.limits.frameItemBytesMax
        let recordSizes = records.map(ForwardQueue.size)
        for run in FrameBudget.runs(sizes: recordSizes, maxBytes: budget, maxCount: config.limits.forwardBatchEventsMax) {
            // Stamped records: the node queues them per owner, batches and sends them.
            let p = loop.makePromise(of: Result<Int, IngestError>.self)
            let count = run.count
            let t = ticket { $0.forwards[$1] = { error in p.succeed(error.map { .failure($0) } ?? .success(count)) } }
            let piece = Array(records[run]), bytes = recordSizes[run].reduce(0, +)
            input { n, now in n.forward(piece, bytes: bytes, to: owner, ticket: t, now: now) }
            futures.append(p.futureResult)
        }
        let looseSizes = loose.map(ForwardQueue.size)
        for run in FrameBudget.runs(sizes: looseSizes, maxBytes: budget, maxCount: config.limits.forwardBatchEventsMax) {
            futures.append(enqueueForward(Array(loose[run]), bytes: looseSizes[run].reduce(0, +), to: owner, peer: peer, on: loop))
        }
        engine.metrics.forwardedEvents.increment(by: Int64(events.count))
        return Self.total(of: futures, on: loop)
    }

    func enqueueForward(_ events: [ForwardedEvent], bytes: Int, to owner: String, peer: String, on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        let queue = forwarders.withLock { f in
            if let q = f[owner] { return q }
            let q = ForwardQueue(owner: owner, runtime: self)
            f[owner] = q
            return q
        }
        let p = loop.makePromise(of: Result<Int, IngestError>.self)
        queue.enqueue(events, bytes: bytes, peer: peer, promise: p)
        return p.futureResult
    }

    // MARK: Identify and links

    func identify(sessionID: String, userID: String?, terminalID: String?, on loop: EventLoop) -> EventLoopFuture<Result<Int, IngestError>> {
        if let reason = unavailableReason() ?? engine.unavailableReason() { return loop.makeSucceededFuture(.failure(reason)) }
        let p = loop.makePromise(of: Result<Int, IngestError>.self)
        let t = ticket { $0.identifies[$1] = p }
        input { n, now in n.identify(sessionID: sessionID, userID: userID, terminalID: terminalID, ticket: t, now: now) }
        return p.futureResult
    }

    /// Sessions linked to a user/terminal: asked of the identity's owner.
    func links(user: Bool, id: String, on loop: EventLoop) -> EventLoopFuture<[NodeIndex.Link]> {
        let p = loop.makePromise(of: [NodeIndex.Link].self)
        let t = ticket { $0.links[$1] = p }
        input { n, now in n.links(user ? .user(id) : .terminal(id), ticket: t, now: now) }
        return p.futureResult
    }

    // MARK: Query fan-out

    public struct Merged: Sendable {
        public var records: [Record]
        public var truncated: Bool
        public var partial: Bool
        public var stateJSON: [UInt8]?
    }

    /// Asks every member (in parallel, with a deadline, page by page) and merges the answers:
    /// the node's fan-out (`ClusterNode.query`). `partial` when a member did not answer.
    func query(scope: UInt8, id: String, query: EventQuery, on loop: EventLoop) -> EventLoopFuture<Merged> {
        let request = QueryRequest(scope: scope, id: id, from: query.from, to: query.to, key: query.key, component: query.component,
                                   limit: UInt32(query.limit), wantState: scope == 0)
        let p = loop.makePromise(of: Merged.self)
        let t = ticket { $0.queries[$1] = p }
        input { n, now in n.query(request, ticket: t, now: now) }
        return p.futureResult
    }

    // MARK: /v1/cluster

    func clusterJSON() -> JSONValue {
        let share = ring.ownedShare()
        let list = members.map { m -> JSONValue in
            let s = share[m.id] ?? 0
            return .object(JSONObject([("id", .string(m.id)), ("peer", .string(m.peer)), ("http", .string(m.http)),
                                       ("status", .string(m.status.rawValue)), ("incarnation", .number(String(m.incarnation))),
                                       ("share", .number(String(Double(Int(s * 10_000)) / 10_000)))]))
        }
        return .object(JSONObject([
            ("self", .string(config.id)), ("epoch", .number(String(epoch))), ("rf", .number(String(config.rf))),
            ("cluster_id", .string(String(clusterID, radix: 16))),
            // Replication is synchronous (a write is acknowledged once every replica has it), so
            // there is no replication lag; catch-up (restart, join, ring change) is the handoff.
            ("replication", .string(config.rf > 1 ? "synchronous" : "none")),
            ("catching_up", .bool(catchingUp)),
            ("members", .array(list)),
        ]))
    }
}

extension Record {
    /// A query hit as a record; key, component and via are read back from its JSON (for HTML).
    static func fromHit(_ h: QueryHit) -> Record {
        var r = Record(kind: .event, ts: h.ts, receivedAt: h.receivedAt, sessionID: "", eventID: h.eventID, json: h.json)
        if let v = try? JSONParser.parse(h.json), case .object(let o) = v {
            if case .string(let k)? = o["key"] { r.key = k }
            if case .string(let c)? = o["component"] { r.component = c }
            if case .string(let v)? = o["via"] { r.via = v }
            if case .string(let s)? = o["session_id"] { r.sessionID = s }
            if case .object(let a)? = o["attrs"], case .string(let level)? = a["level"] {
                r.isError = EventValidator.looksLikeError(key: r.key, level: level)
            } else {
                r.isError = EventValidator.looksLikeError(key: r.key, level: nil)
            }
        }
        return r
    }
}

/// The forward queue of one owner for identity-only events (JSON `forwardEvents`, whose session
/// the owner resolves), with adaptive batching: while a batch is in flight (at most
/// `Limits.forwardBatchesInFlightMax`), new events queue and go out together in the next batch.
/// Bounded: past `Limits.forwardQueueEventsMax` events or `forwardQueueBytesMax` bytes the
/// caller gets 503 at once. (Stamped records are queued by `ClusterNode.forward` instead.)
final class ForwardQueue: @unchecked Sendable {
    let owner: String
    unowned let runtime: ClusterShell
    /// An item's bytes in a frame body (what `Limits.frameItemBytesMax` bounds).
    static func size(_ e: ForwardedEvent) -> Int { e.json.count + e.ip.utf8.count + FrameBudget.itemOverhead }
    static func size(_ r: RecordBatch.Item) -> Int { r.record.count + FrameBudget.itemOverhead }
    struct Waiting {
        var events: [ForwardedEvent]
        var promise: EventLoopPromise<Result<Int, IngestError>>
    }
    struct State {
        var batcher: ForwardBatcher<Waiting>
        var peer = ""
    }
    let state: Mutex<State>

    init(owner: String, runtime: ClusterShell) {
        self.owner = owner
        self.runtime = runtime
        state = Mutex(State(batcher: ForwardBatcher(limits: runtime.config.limits)))
    }

    /// Queues a piece of `bytes` (the sum of its items' `size`, computed once by `forward`).
    func enqueue(_ events: [ForwardedEvent], bytes: Int, peer: String, promise: EventLoopPromise<Result<Int, IngestError>>) {
        let count = events.count
        let ok = state.withLock { s -> Bool in
            guard s.batcher.enqueue(Waiting(events: events, promise: promise), count: count, bytes: bytes) else { return false }
            s.peer = peer
            return true
        }
        guard ok else {
            runtime.engine.metrics.rejected(.peer, reason: "forward_queue_full", count: count)
            promise.succeed(.failure(IngestError(status: 503, code: "overloaded", message: "forward queue to \(owner) is full; retry later")))
            return
        }
        pump()
    }

    func pump() {
        while true {
            // Whole pieces (each fits a frame, see `forward`) until the count or the bytes are full.
            let next: ([Waiting], String)? = state.withLock { s in s.batcher.nextBatch().map { ($0, s.peer) } }
            guard let (group, peer) = next else { return }
            send(group, peer: peer)
        }
    }

    func send(_ group: [Waiting], peer: String) {
        let events = group.flatMap(\.events)
        let future = runtime.client(for: peer).request(.forwardEvents, body: EventBatch(events: events).encode(), timeout: runtime.forwardTimeout)
        future.whenComplete { [self] result in
            let outcome: IngestError?
            switch result {
            case .success(let frame):
                if let r = try? ForwardResult.decode(frame.body) {
                    outcome = r.status < 300 ? nil : IngestError(status: Int(r.status), code: r.code, message: "owner \(owner): \(r.message)")
                } else {
                    outcome = IngestError(status: 503, code: "owner_unavailable", message: "owner \(owner) sent a malformed answer")
                }
            case .failure(let error):
                outcome = IngestError(status: 503, code: "owner_unavailable", message: "owner \(owner) is unreachable: \(error)")
            }
            for w in group { w.promise.succeed(outcome.map { .failure($0) } ?? .success(w.events.count)) }
            state.withLock { $0.batcher.finished() }
            pump()
        }
    }
}
