import StarlingCore

/// The owner's side of forwarding, and replication: the owner appends records a ring member
/// forwarded (`ClusterNode+Ingest` is the sending side) and ships every write group to the other `rf - 1` members of each record's
/// replica set; it answers only when the ack rule holds. Followers fence senders outside the
/// key's replica set in their own view.
extension ClusterNode {
    /// The owner side: records a ring member validated and stamped for this node.
    mutating func onForwardRecords(_ frame: Frame, inbound: Inbound) {
        func refuse(_ status: UInt16, _ code: String, _ message: String, index: Int = -1) {
            respond(inbound, .forwardResult, ForwardResult(status: status, code: code, message: message, accepted: 0, index: Int32(index)).encode())
        }
        // Stamped records skip validation, so only ring members may send them.
        guard isRingMember(inbound.sender) else {
            out.append(.count(.notAMember(1)))
            return refuse(403, "not_a_member", "only cluster members may forward records")
        }
        guard let batch = try? RecordBatch.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return refuse(400, "bad_batch", "malformed record batch")
        }
        var items: [(record: Record, clientID: Bool)] = []
        items.reserveCapacity(batch.items.count)
        var bytes = 0
        var transport: UInt8?
        for (i, item) in batch.items.enumerated() {
            let checked = Record.checked(encoded: item.record, limits: settings.limits)
            guard case .success(let r) = checked, r.kind == .event, !r.sessionID.isEmpty else {
                let why: String
                if case .failure(let refusal) = checked { why = refusal.reason } else { why = "not an event with a session" }
                out.append(.count(.peerRecordRefused))
                out.append(.log(.warning, "refused forwarded record \(i) from \(inbound.sender): \(why)"))
                return refuse(400, "bad_record", "forwarded record \(i): \(why)", index: i)
            }
            // One transport per batch in practice (queues are per kind); the first one labels it.
            transport = transport ?? item.transport
            items.append((r, item.clientID))
            bytes += item.record.count
        }
        let ticket = newTicket(.ownedReply(inbound, count: items.count))
        out.append(.appendOwned(items, transport: transport ?? 3, bytes: bytes, ticket: ticket, traces: frame.traces))
    }

    /// The storage appended (and replicated) the records of `.appendOwned` or `.appendIncoming`.
    public mutating func appended(ticket: UInt64, result: Result<Int, IngestError>) -> [ClusterDirective] {
        switch tickets.removeValue(forKey: ticket) {
        case .ownedReply(let inbound, let count)?:
            respond(inbound, .forwardResult, ForwardResult(result.map { _ in count }).encode())
        case .ingestPart(let request, let count)?:
            partDone(request: request, count: count, error: result.failureValue)
        default:
            break
        }
        return take()
    }

    // MARK: Replication (owner -> followers)

    /// Why this node cannot take writes now, if it cannot (stopping, or fewer live members than rf).
    public func unavailableReason() -> IngestError? {
        if draining { return IngestError(status: 503, code: "shutting_down", message: "node is shutting down") }
        let live = liveMembers
        if settings.rf > live {
            return IngestError(status: 503, code: "not_enough_replicas",
                               message: "the cluster has \(live) live member(s) but rf=\(settings.rf) copies are required; start more nodes or use --rf \(live)")
        }
        return nil
    }

    /// The storage appended write group `group`; `records` are this node's own records of it and
    /// the stored copies of repeated client ids. Ships them (`ReplicationPlan`); the decision
    /// comes as `.groupReplicated` once every follower answered or timed out.
    /// `traces`: the traces of the group's requests; its replication frames carry them.
    public mutating func committed(group: UInt64, records: [Record], traces: [TraceContext] = [], now: Int64) -> [ClusterDirective] {
        let plan: ReplicationPlan
        switch ReplicationPlan.plan(records, ring: ring, rf: settings.rf, me: id, frameBytes: settings.limits.frameItemBytesMax) {
        case .success(let p): plan = p
        case .failure(.notEnoughReplicas(let key)):
            out.append(.count(.replicationFailure))
            out.append(.groupReplicated(group: group, error: IngestError(status: 503, code: "not_enough_replicas",
                                                                          message: "fewer than rf=\(settings.rf) live members for '\(key)'"),
                                        startedAt: now))
            return take()
        }
        guard !plan.shipments.isEmpty else {
            out.append(.groupReplicated(group: group, error: nil, startedAt: now))
            return take()
        }
        groups[group] = Group(acks: Array(repeating: nil, count: plan.shipments.count), startedAt: now)
        for (slot, s) in plan.shipments.enumerated() {
            guard let peer = peerAddress(of: s.follower) else {
                settle(group: group, slot: slot, error: IngestError(status: 503, code: "replica_unavailable", message: "follower \(s.follower) has no address"))
                continue
            }
            out.append(.count(.replicaBatch(records: s.records.count)))
            request(.replicate, body: ReplicateBatch(records: s.records).encode(), to: peer, what: .replicate(group: group, slot: slot),
                    timeoutMs: settings.replicateTimeoutMs, now: now, traces: traces)
        }
        return take()
    }

    /// One follower frame answered (nil: stored). Decides once every slot has answered.
    mutating func settle(group: UInt64, slot: Int, error: IngestError?) {
        guard var g = groups[group], g.acks[slot] == nil else { return }
        g.acks[slot] = error == nil
        if g.firstError == nil { g.firstError = error }
        groups[group] = g
        let answered = g.acks.compactMap { $0 }
        // The rule may decide before every answer is in (a broken rule, in tests); the correct rule
        // needs every ack, so it decides when the last one comes.
        let acked = settings.rules.acknowledged(followerAcks: g.acks.map { $0 ?? false })
        if acked || answered.count == g.acks.count {
            groups[group] = nil
            if !acked { out.append(.count(.replicationFailure)) }
            out.append(.groupReplicated(group: group, error: acked ? nil : g.firstError, startedAt: g.startedAt))
        }
    }

    // MARK: Follower

    /// A follower stores a replicated batch. Fencing: a sender that is not in a key's replica set
    /// in this node's view of the ring (a stale owner that was declared down and replaced) is refused.
    mutating func onReplicate(_ frame: Frame, inbound: Inbound) {
        guard let batch = try? ReplicateBatch.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return respond(inbound, .replicateResult, ReplicateResult(status: 400, message: "malformed batch").encode())
        }
        var records: [Record] = []
        records.reserveCapacity(batch.records.count)
        for (i, bytes) in batch.records.enumerated() {
            switch Record.checked(encoded: bytes, limits: settings.limits) {
            case .success(let r): records.append(r)
            case .failure(let refusal):
                out.append(.count(.peerRecordRefused))
                out.append(.log(.warning, "refused replicated record \(i) from \(inbound.sender): \(refusal.reason)"))
                return respond(inbound, .replicateResult, ReplicateResult(status: 400, message: "replicated record \(i): \(refusal.reason)").encode())
            }
        }
        if settings.rules.fencing {
            let fence = ReplicaFence(sender: inbound.sender, ring: ring, rf: settings.rf, me: id)
            for r in records where r.kind == .event {
                if !fence.accepts(hash: RingHash.hash(subjectOf: r)) {
                    let key = SubjectKey(of: r)
                    return respond(inbound, .replicateResult,
                                   ReplicateResult(status: 409, message: "\(inbound.sender) is not a replica of '\(key.ringKey)' at epoch \(epoch) (stale owner)").encode())
                }
            }
        }
        let ticket = newTicket(.replicaReply(inbound))
        out.append(.storeReplica(records, ticket: ticket, source: .replicate(sender: inbound.sender)))
    }

    /// The storage stored the records of `.storeReplica` (or failed to).
    public mutating func replicaStored(ticket: UInt64, result: Result<Int, IngestError>, now: Int64) -> [ClusterDirective] {
        switch tickets.removeValue(forKey: ticket) {
        case .replicaReply(let inbound)?:
            let body: ReplicateResult = switch result {
            case .success: ReplicateResult(status: 200, message: "")
            case .failure(let e): ReplicateResult(status: UInt16(e.status), message: "\(e.code): \(e.message)")
            }
            respond(inbound, .replicateResult, body.encode())
        case .catchUpStored(let nextKey, let nextSkip, let count)?:
            catchUpPageStored(nextKey: nextKey, nextSkip: nextSkip, count: count, result: result, now: now)
        default:
            break
        }
        return take()
    }
}
