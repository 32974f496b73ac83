import Logging
import NIOCore
import StarlingCluster
import StarlingCore
import Synchronization

/// Ingest (group by owner, stamp, hand the parts to the node) and the requests that wait on
/// the node's answers (query fan-out, identify, resolve, links).
extension ClusterShell {
    /// Why the cluster cannot take writes now, if it cannot (fewer live members than rf).
    func unavailableReason() -> IngestError? {
        node.withLock { $0.unavailableReason() }
    }

    /// Routes validated events to their owners and completes once every owner stored its share.
    func ingest(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop,
                trace: TraceContext? = nil) -> EventLoopFuture<Result<Int, IngestError>> {
        if let reason = unavailableReason() ?? engine.unavailableReason() { return loop.makeSucceededFuture(.failure(reason)) }
        // The common case (every event names its session) routes at once, without a future hop.
        if !events.contains(where: { $0.sessionID == nil }) {
            return route(events, ip: ip, transport: transport, bytes: bytes, on: loop, trace: trace)
        }
        return resolveIdentities(events, on: loop).flatMap { [self] resolved in
            route(resolved, ip: ip, transport: transport, bytes: bytes, on: loop, trace: trace)
        }
    }

    /// Groups the events by owner (`IngestRoute`, on a snapshot of the ring), stamps and encodes the
    /// events of other owners here on the I/O thread, and hands the parts to the node, which stores
    /// its own, forwards the rest in batches and answers once every part is on `rf` nodes.
    func route(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop,
               trace: TraceContext? = nil) -> EventLoopFuture<Result<Int, IngestError>> {
        let ring = self.ring
        let route = IngestRoute(count: events.count, ring: ring, me: config.id) { RingHash.hash(subjectOf: events[$0]) }
        let now = now()
        var parts: [IngestPart] = []
        parts.reserveCapacity(route.owners.count)
        for (owner, indices) in zip(route.owners, route.indices) {
            if owner == config.id {
                parts.append(.own(route.owners.count == 1 ? events : indices.map { events[$0] }, bytes: bytes))
                continue
            }
            // Events whose session is known travel as finished records (validated, stamped with the
            // owner's id), so the owner only appends them; identity-only events travel as JSON,
            // for the owner of their identity to resolve their session.
            var rng = engine.random.generator()
            let stamped = StoredEvent.records(of: events, at: indices, receivedAt: now, node: owner, ip: ip, using: &rng)
            var records: [RecordBatch.Item] = []
            records.reserveCapacity(indices.count)
            var loose: [ForwardedEvent] = []
            for (i, r) in zip(indices, stamped) {
                if let r {
                    records.append(RecordBatch.Item(transport: transport.wireCode, clientID: events[i].eventID != nil, record: r.encoded))
                } else {
                    loose.append(ForwardedEvent(transport: transport.wireCode, ip: ip, receivedAt: now, json: events[i].clientJSON()))
                }
            }
            if !records.isEmpty { parts.append(.records(owner: owner, records)) }
            if !loose.isEmpty { parts.append(.events(owner: owner, loose)) }
        }
        let p = loop.makePromise(of: Result<Int, IngestError>.self)
        let t = ticket { $0.ingests[$1] = p }
        let part = parts
        input { n, now in n.ingest(part, ip: ip, transport: transport.wireCode, ticket: t, now: now, trace: trace) }
        return p.futureResult
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
    func query(scope: UInt8, id: String, query: EventQuery, on loop: EventLoop, trace: TraceContext? = nil) -> EventLoopFuture<Merged> {
        let request = QueryRequest(scope: scope, id: id, from: query.from, to: query.to, key: query.key, component: query.component,
                                   limit: UInt32(query.limit), wantState: scope == 0)
        let p = loop.makePromise(of: Merged.self)
        let t = ticket { $0.queries[$1] = p }
        input { n, now in n.query(request, ticket: t, now: now, trace: trace) }
        return p.futureResult
    }

    // MARK: /v1/cluster

    func clusterJSON() -> JSONValue {
        let share = ring.ownedShare()
        let down = downMembers
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
            // The ring this node last caught up in full: equal to `ring`, its handoff is done.
            ("caught_up_ring", caughtUpRing.map { .array($0.map { .string($0) }) } ?? .null),
            // Down members not removed by an operator (`starling cluster remove`): the cluster
            // is degraded until they come back or are removed.
            ("degraded", .bool(!down.isEmpty)),
            ("down", .array(down.map { .string($0) })),
            // What a client needs to compute the ring and send each session straight to its owner:
            // the ring's members and virtual nodes per member; a key's point is RingHash (FNV-1a 64
            // of its UTF-8, then the SplitMix64 finaliser) of the session id (identity-only events:
            // "u:" + user id, else "t:" + terminal id), its owner the first member point clockwise.
            ("ring", .array(ring.members.map { .string($0) })),
            ("vnodes", .number(String(ring.vnodes))),
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
