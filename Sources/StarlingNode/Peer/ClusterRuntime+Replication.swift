import Logging
import NIOCore
import StarlingCluster
import StarlingCore
import Synchronization

/// Replication: the owner ships every write group to the other `rf - 1` members of each
/// record's replica set and answers 202 only when they stored it; followers fold replicated
/// records into their own index (so they hold the session state when they take over).
/// Catch-up: after a restart, a join or a ring change, a node pulls from its peers the
/// records of the keys it has become responsible for.
extension ClusterRuntime {
    static let replicateTimeout: TimeAmount = .seconds(5)

    func installReplication() {
        guard config.rf > 1 else { return }
        engine.setReplicate { [weak self] records, done in
            guard let self else { return done(IngestError(status: 503, code: "shutting_down", message: "node is shutting down")) }
            self.replicate(records, done: done)
        }
    }

    func replicate(_ records: [Record], done: @escaping @Sendable (IngestError?) -> Void) {
        let plan: ReplicationPlan
        switch ReplicationPlan.plan(records, ring: ring, rf: config.rf, me: config.id, frameBytes: config.limits.frameItemBytesMax) {
        case .success(let p): plan = p
        case .failure(.notEnoughReplicas(let key)):
            engine.metrics.replicationFailures.increment()
            return done(IngestError(status: 503, code: "not_enough_replicas", message: "fewer than rf=\(config.rf) live members for '\(key)'"))
        }
        guard !plan.shipments.isEmpty else { return done(nil) }
        let loop = group.next()
        let futures = plan.shipments.map { replicate($0.records, to: $0.follower, on: loop) }
        let metrics = engine.metrics
        let started = ContinuousClock.now
        EventLoopFuture.whenAllSucceed(futures, on: loop).whenSuccess { results in
            // The ack rule: every frame of every follower stored.
            let acked = Placement.acknowledged(storedLocally: true, followerAcks: results.map { $0 == nil })
            if !acked { metrics.replicationFailures.increment() }
            metrics.replicationSeconds.record(ContinuousClock.now - started)
            done(acked ? nil : results.compactMap { $0 }.first)
        }
    }

    /// Ships one frame of records to one follower: nil once it stored them, else why not.
    func replicate(_ recs: [[UInt8]], to follower: String, on loop: EventLoop) -> EventLoopFuture<IngestError?> {
        guard let peer = peerAddress(of: follower) else {
            return loop.makeSucceededFuture(IngestError(status: 503, code: "replica_unavailable", message: "follower \(follower) has no address"))
        }
        return client(for: peer).request(.replicate, body: ReplicateBatch(records: recs).encode(), timeout: Self.replicateTimeout)
            .map { frame -> IngestError? in
                guard let r = try? ReplicateResult.decode(frame.body) else {
                    return IngestError(status: 503, code: "replica_unavailable", message: "follower \(follower) sent a malformed answer")
                }
                return r.status == 200 ? nil : IngestError(status: 503, code: "replica_unavailable", message: "follower \(follower): \(r.message)")
            }
            .recover { error in IngestError(status: 503, code: "replica_unavailable", message: "follower \(follower) is unreachable: \(error)") }
            .hop(to: loop)
    }

    /// A follower stores a replicated batch. Fencing: a sender that is not in the key's replica
    /// set in our view of the ring (a stale owner that was declared down and replaced) is refused.
    func storeReplicated(_ batch: ReplicateBatch, from sender: String, on loop: EventLoop) -> EventLoopFuture<ReplicateResult> {
        var records: [Record] = []
        records.reserveCapacity(batch.records.count)
        for (i, bytes) in batch.records.enumerated() {
            switch Record.checked(encoded: bytes, limits: config.limits) {
            case .success(let r):
                records.append(r)
            case .failure(let refusal):
                engine.metrics.peerRecordsRefused.increment()
                logger.warning("refused replicated record \(i) from \(sender): \(refusal.reason)")
                return loop.makeSucceededFuture(ReplicateResult(status: 400, message: "replicated record \(i): \(refusal.reason)"))
            }
        }
        let ring = self.ring
        for r in records where r.kind == .event {
            let key = Placement.keys(of: r)[0]
            if !Placement.accepts(replicaOf: key, from: sender, ring: ring, rf: config.rf, me: config.id) {
                return loop.makeSucceededFuture(ReplicateResult(status: 409, message: "\(sender) is not a replica of '\(key)' at epoch \(epoch) (stale owner)"))
            }
        }
        let p = loop.makePromise(of: ReplicateResult.self)
        engine.submitReplica(records) { result in
            switch result {
            case .success: p.succeed(ReplicateResult(status: 200, message: ""))
            case .failure(let e): p.succeed(ReplicateResult(status: UInt16(e.status), message: "\(e.code): \(e.message)"))
            }
        }
        return p.futureResult
    }

    // MARK: Catch-up

    func answerCatchUp(_ req: CatchUpRequest, on loop: EventLoop) -> EventLoopFuture<CatchUpResult> {
        let cap = config.limits.membersMax
        guard req.members.count <= cap, req.previousMembers.count <= cap else {
            engine.metrics.peerProtocolErrors.increment()
            logger.warning("refused a catch-up request from \(req.requester): \(req.members.count) and \(req.previousMembers.count) members, the limit is \(cap)")
            return loop.makeSucceededFuture(CatchUpResult(records: [], nextKey: nil))
        }
        let current = self.ring
        let rf = config.rf
        let rings = self.rings
        let requester = req.requester
        let me = config.id
        let mode = req.mode
        let engine = self.engine
        let budget = config.limits.frameItemBytesMax
        let pageRecords = config.limits.catchUpPageRecordsMax
        return threadPool.runIfActive(eventLoop: loop) { () -> CatchUpResult in
            // The requester's view decides what it replicates (ours may differ for a moment).
            // Rings are built here, off the event loop, and kept for the next pages.
            let ring = req.members.isEmpty ? current : rings.ring(of: req.members)
            let previous = req.previousMembers.isEmpty ? nil : rings.ring(of: req.previousMembers)
            let wants: (String) -> Bool = { key in
                switch mode {
                case .handoff:
                    return Placement.sendsHandoff(key: key, responder: me, requester: requester, current: ring, previous: previous, rf: rf)
                case .standIn:
                    return Placement.sendsStandIn(key: key, responder: me, requester: requester, current: ring, rf: rf)
                }
            }
            let from = req.afterKey.map { Engine.CatchUpCursor(key: $0, skip: Int(req.skip)) }
            let (records, next) = engine.catchUp(wants: wants, since: req.since, from: from, maxRecords: pageRecords,
                                                 maxBytes: budget)
            return CatchUpResult(records: records.map(\.encoded), nextKey: next?.key, nextSkip: UInt32(clamping: next?.skip ?? 0))
        }
    }

    /// Pulls, page by page from every live peer, the records this node should hold. One
    /// catch-up streams at a time; a plan that arrives meanwhile waits its turn.
    func runCatchUp(_ plan: CatchUpPlanner.Plan) {
        guard !draining.load(ordering: .relaxed), catchUpPlanner.withLock({ $0.request(plan) }) else { return }
        stream(plan)
    }

    /// Streams one plan from every live peer; then the next queued plan, if any.
    func stream(_ plan: CatchUpPlanner.Plan) {
        let (since, previousMembers, mode) = (plan.since, plan.previousMembers, plan.mode)
        engine.metrics.catchUpRunning.set(Double(1))
        let peers = members.filter { $0.id != config.id && $0.status.isLive }
        let loop = group.next()
        var chain = loop.makeSucceededFuture(0)
        for m in peers {
            // A peer that fails does not stop the others; the periodic pass retries it.
            chain = chain.flatMap { [self] total in
                // Stopping: no new pulls, so the chain ends before the event loops do.
                if draining.load(ordering: .relaxed) { return loop.makeSucceededFuture(total) }
                return pull(from: m.peer, since: since, previous: previousMembers, mode: mode, after: nil, on: loop)
                    .map { total + $0 }
                    .recover { [self] error in
                        logger.warning("catch-up from \(m.id) failed: \(error)")
                        return total
                    }
            }
        }
        chain.whenComplete { [self] result in
            switch result {
            case .success(let n):
                if n > 0 { logger.info("catch-up stored \(n) records", metadata: ["since": "\(since)"]) }
            case .failure(let e):
                logger.warning("catch-up incomplete: \(e)")
            }
            var next = catchUpPlanner.withLock { $0.finished() }
            // Stopping: the queued plans are dropped.
            while next != nil && draining.load(ordering: .relaxed) { next = catchUpPlanner.withLock { $0.finished() } }
            engine.metrics.catchUpRunning.set(Double(next == nil ? 0 : 1))
            if let next { stream(next) }
        }
    }

    func pull(from peer: String, since: Int64, previous: [String], mode: CatchUpRequest.Mode, after: Engine.CatchUpCursor?,
              on loop: EventLoop) -> EventLoopFuture<Int> {
        var req = CatchUpRequest(requester: config.id, since: since, afterKey: after?.key, previousMembers: previous,
                                 members: ring.members, skip: UInt32(clamping: after?.skip ?? 0))
        req.mode = mode
        return client(for: peer).request(.catchUp, body: req.encode(), timeout: .seconds(30)).flatMap { [self] frame -> EventLoopFuture<Int> in
            guard let page = try? CatchUpResult.decode(frame.body) else { return loop.makeSucceededFuture(0) }
            var records: [Record] = []
            records.reserveCapacity(page.records.count)
            for bytes in page.records {
                switch Record.checked(encoded: bytes, limits: config.limits) {
                case .success(let r): records.append(r)
                case .failure(let refusal):
                    // Not stored; another replica or the next catch-up supplies a good copy.
                    engine.metrics.peerRecordsRefused.increment()
                    logger.warning("catch-up from \(peer): refused a record: \(refusal.reason)")
                }
            }
            let p = loop.makePromise(of: Int.self)
            if records.isEmpty {
                p.succeed(0)
            } else {
                engine.metrics.catchUpRecords.increment(by: Int64(records.count))
                engine.submitReplica(records) { result in
                    switch result {
                    case .success(let n): p.succeed(n)
                    case .failure(let e): p.fail(PeerClient.PeerUnavailable(description: "storing catch-up records: \(e.message)"))
                    }
                }
            }
            return p.futureResult.flatMap { [self] n in
                guard let next = page.nextKey, !draining.load(ordering: .relaxed) else { return loop.makeSucceededFuture(n) }
                let cursor = Engine.CatchUpCursor(key: next, skip: Int(page.nextSkip))
                return pull(from: peer, since: since, previous: previous, mode: mode, after: cursor, on: loop).map { n + $0 }
            }
        }.hop(to: loop)
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
