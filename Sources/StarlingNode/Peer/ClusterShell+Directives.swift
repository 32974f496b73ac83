import Logging
import NIOCore
import NIOPosix
import StarlingCluster
import StarlingCore
import Synchronization

/// The interpreter: every `ClusterDirective` the node returns is carried out here, and every
/// asynchronous result goes back to the node as an input (`input`).
extension ClusterShell {
    func execute(_ directives: [ClusterDirective]) {
        for d in directives { execute(d) }
    }

    func execute(_ d: ClusterDirective) {
        switch d {
        case .send(let peer, var frame):
            frame.clusterID = clusterID
            client(for: peer).send(frame: frame)
        case .respond(let inbound, var frame):
            frame.clusterID = clusterID
            waiters.withLock { $0.inbound.removeValue(forKey: inbound) }?.succeed(frame)
        case .groupReplicated(let group, let error, let startedAt):
            engine.metrics.replicationSeconds.record(.milliseconds(max(0, now() - startedAt)))
            waiters.withLock { $0.groups.removeValue(forKey: group) }?(error)
        case .storeReplica(let records, let ticket, _):
            engine.submitReplica(records) { [weak self] result in
                self?.input { n, now in n.replicaStored(ticket: ticket, result: result, now: now) }
            }
        case .appendOwned(let items, let transport, let bytes, let ticket, let traces):
            engine.submit(forwarded: items, transport: Transport(wireCode: transport), bytes: bytes, replicator: replicator, traces: traces) { [weak self] result in
                self?.input { n, _ in n.appended(ticket: ticket, result: result) }
            }
        case .readCatchUp(let read, let ticket):
            readCatchUp(read, ticket: ticket)
        case .appendIncoming(let events, let ip, let transport, let bytes, let ticket, let traces):
            engine.submit(events, ip: ip, transport: Transport(wireCode: transport), bytes: bytes,
                          on: MultiThreadedEventLoopGroup.currentEventLoop, replicator: replicator, traces: traces) { [weak self] result in
                self?.input { n, _ in n.appended(ticket: ticket, result: result) }
            }
        case .ingested(let ticket, let result):
            waiters.withLock { $0.ingests.removeValue(forKey: ticket) }?.succeed(result)
        case .readQuery(let request, let ticket, let budget):
            localQuery(request, byteBudget: budget, on: group.next()).whenComplete { [weak self] result in
                let answer = (try? result.get()) ?? QueryResult(hits: [], state: nil, error: "the node is stopping")
                self?.input { n, now in n.queryRead(ticket: ticket, result: answer, now: now) }
            }
        case .queryAnswered(let ticket, let m):
            waiters.withLock { $0.queries.removeValue(forKey: ticket) }?
                .succeed(Merged(records: m.hits.map(Record.fromHit), truncated: m.truncated, partial: m.partial, stateJSON: m.state))
        case .appendLink(let sid, let uid, let tid, let ticket):
            engine.identify(sessionID: sid, userID: uid, terminalID: tid) { [weak self] result in
                self?.input { n, _ in n.linkStored(ticket: ticket, result: result) }
            }
        case .readIdentity(let read, let ticket):
            readIdentity(read, ticket: ticket)
        case .identified(let ticket, let error):
            waiters.withLock { $0.identifies.removeValue(forKey: ticket) }?.succeed(error.map { .failure($0) } ?? .success(1))
        case .resolved(let ticket, let sid):
            waiters.withLock { $0.resolves.removeValue(forKey: ticket) }?.succeed(sid)
        case .linksAnswered(let ticket, let links):
            waiters.withLock { $0.links.removeValue(forKey: ticket) }?.succeed(links)
        case .ringChanged(let view):
            ringChanged(view)
        case .resetConnection(let peer):
            clients.withLock { $0[peer] }?.resetConnection()
        case .count(let c):
            count(c)
        case .log(let level, let message):
            switch level {
            case .info: logger.info("\(message)")
            case .warning: logger.warning("\(message)")
            case .error: logger.error("\(message)")
            }
        }
    }

    /// Reads the identity index for the node (cheap: one lookup under the index lock).
    func readIdentity(_ read: IdentityRead, ticket: UInt64) {
        var sid: String?
        var links: [NodeIndex.Link] = []
        switch read {
        case .resolve(.user(let u)): sid = engine.resolveSession(userID: u, terminalID: nil)
        case .resolve(.terminal(let t)): sid = engine.resolveSession(userID: nil, terminalID: t)
        case .links(.user(let u)): links = engine.sessions(ofUser: u)
        case .links(.terminal(let t)): links = engine.sessions(ofTerminal: t)
        case .resolve(.session), .links(.session): break
        }
        input { [sid, links] n, _ in n.identityRead(ticket: ticket, sessionID: sid, links: links) }
    }

    func count(_ c: ClusterCount) {
        let m = engine.metrics
        switch c {
        case .peerProtocolError: m.peerProtocolErrors.increment()
        case .peerRecordRefused: m.peerRecordsRefused.increment()
        case .replicationFailure: m.replicationFailures.increment()
        case .catchUpRecords(let n): m.catchUpRecords.increment(by: Int64(n))
        case .notAMember(let n): m.rejected(.peer, reason: "not_a_member", count: n)
        case .forwardQueueFull(let n): m.rejected(.peer, reason: "forward_queue_full", count: n)
        case .forwardedEvents(let n): m.forwardedEvents.increment(by: Int64(n))
        case .forwardBatch: m.forwardBatches.increment()
        case .replicaBatch(let n):
            m.replicaBatches.increment()
            m.replicaRecordsShipped.increment(by: Int64(n))
        }
    }

    func ringChanged(_ view: RingView) {
        let m = engine.metrics
        m.membershipEpoch.set(Double(view.epoch))
        m.liveMembers.set(Double(view.members.count))
        m.ringShare.set(view.share)
        m.catchUpRunning.set(Double(catchingUp ? 1 : 0))
        evictClients(keeping: view.all)
        // Connections to members that left the ring may be stalled (a partition leaves TCP in
        // retransmission backoff): drop them, so pings and requests after healing start afresh.
        for gone in view.dropped { clients.withLock { $0[gone.peer] }?.resetConnection() }
        let peers = view.all.filter { $0.id != config.id && $0.status != .left }.map(\.peer)
        meta.update { meta in
            if Set(meta.peers) != Set(peers) { meta.peers = peers }
        }
        logger.info("membership changed", metadata: ["epoch": "\(view.epoch)", "ring": "\(view.members.joined(separator: ","))"])
    }

    /// One catch-up page for a peer, read off the event loop (rings built from the requester's
    /// member lists are cached for its next pages).
    func readCatchUp(_ read: CatchUpRead, ticket: UInt64) {
        let engine = self.engine
        let rings = self.rings
        let loop = group.next()
        threadPool.runIfActive(eventLoop: loop) { () -> ([[UInt8]], CatchUpCursor?) in
            let s = read.selector
            let ring = rings.ring(of: s.members)
            let previous = s.previousMembers.isEmpty ? nil : rings.ring(of: s.previousMembers)
            let (records, next) = engine.catchUp(wants: { s.wants($0, ring: ring, previous: previous) }, since: read.since,
                                                 from: read.cursor, maxRecords: read.maxRecords, maxBytes: read.maxBytes)
            return (records.map(\.encoded), next)
        }.whenComplete { [weak self] result in
            let (records, next) = (try? result.get()) ?? ([], nil)
            self?.input { n, _ in n.catchUpRead(ticket: ticket, records: records, next: next) }
        }
    }
}

/// The last few rings built from member lists that peers sent (a catch-up asks page after page
/// with the same lists; building a ring sorts 2,048 points per member).
final class RingCache: Sendable {
    let entries = Mutex<[(members: [String], ring: HashRing)]>([])
    static let capacity = 4

    func ring(of members: [String]) -> HashRing {
        let key = members.sorted()
        if let hit = entries.withLock({ $0.first { $0.members == key }?.ring }) { return hit }
        let ring = HashRing(members: key)
        entries.withLock { e in
            e.append((key, ring))
            if e.count > Self.capacity { e.removeFirst() }
        }
        return ring
    }
}
