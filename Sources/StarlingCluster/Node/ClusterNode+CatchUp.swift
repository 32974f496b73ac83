import StarlingCore

/// Catch-up: after a restart, a join or a ring change (and every anti-entropy interval) a node
/// pulls from its peers, page by page, the records of the keys it has become responsible for.
/// One catch-up streams at a time (`CatchUpPlanner`); peers are asked one after another, and a
/// peer that fails does not stop the others (the next pass retries it).
extension ClusterNode {
    mutating func runDueCatchUps(now: Int64) {
        guard !scheduled.isEmpty else { return }
        let due = scheduled.filter { $0.due <= now }
        scheduled.removeAll { $0.due <= now }
        for d in due {
            if d.peers == nil {
                startCatchUp(d.plan, now: now)
            } else if d.plan.mode == .handoff && d.plan.ring != ring.members {
                // A retry for a ring that is gone: the current ring's own plan pulls what it needs.
                continue
            } else if pull == nil && !planner.running {
                // A retry runs when nothing else streams; otherwise it waits a little more.
                guard !draining, planner.request(d.plan) else { continue }
                stream(d.plan, peers: d.peers, attempt: d.attempt, now: now)
            } else {
                var later = d
                later.due = TimeMath.add(now, settings.catchUpRetryMs)
                scheduled.append(later)
            }
        }
    }

    mutating func startCatchUp(_ plan: CatchUpPlanner.Plan, now: Int64) {
        guard !draining, planner.request(plan) else { return }
        stream(plan, now: now)
    }

    /// Streams `plan` from `peers` (nil: every live peer), one after another.
    mutating func stream(_ plan: CatchUpPlanner.Plan, peers: [String]? = nil, attempt: Int = 0, now: Int64) {
        let live = members.filter { $0.id != id && $0.status.isLive }.map(\.peer)
        let list = peers.map { wanted in live.filter { wanted.contains($0) } } ?? live
        pull = Pull(plan: plan, peers: list, cursor: nil, attempt: attempt, complete: list.count == (peers?.count ?? list.count))
        out.append(.log(.info, "catch-up (\(plan.mode), attempt \(attempt + 1)) for ring \(plan.ring) against \(plan.previousMembers) since \(plan.since) from \(list)"))
        requestPage(now: now)
    }

    /// Asks the current peer for the next page, or finishes the plan when no peer is left.
    mutating func requestPage(now: Int64) {
        guard let p = pull else { return }
        guard !draining, let peer = p.peers.first else {
            if p.stored > 0 { out.append(.log(.info, "catch-up stored \(p.stored) records since \(p.plan.since)")) }
            pull = nil
            if p.failed.isEmpty && p.complete { planner.completed(p.plan) }
            out.append(.log(.info, "catch-up (\(p.plan.mode)) for ring \(p.plan.ring) done: \(p.stored) records, failed \(p.failed)"))
            if !p.failed.isEmpty && !draining && p.attempt + 1 < settings.catchUpAttemptsMax {
                // Ask the peers that failed again, later: a lost page must not leave a gap until
                // the next ring change (anti-entropy only repairs stand-in copies).
                let backoff = settings.catchUpRetryMs << min(p.attempt, 6)
                scheduled.append(Scheduled(due: TimeMath.add(now, backoff), plan: p.plan, peers: p.failed, attempt: p.attempt + 1))
            } else if !p.failed.isEmpty {
                out.append(.log(.warning, "catch-up gave up on \(p.failed.joined(separator: ", ")) after \(p.attempt + 1) attempts"))
            }
            var next = planner.finished()
            while next != nil && draining { next = planner.finished() }   // stopping: queued plans are dropped
            if let next { stream(next, now: now) }
            return
        }
        // A handoff asks for the keys of the ring it was planned for (and records that ring as
        // caught up when it completes), even if the view moved on meanwhile: the next ring's own
        // plan asks against it.
        var req = CatchUpRequest(requester: id, since: p.plan.since, afterKey: p.cursor?.key, previousMembers: p.plan.previousMembers,
                                 members: p.plan.ring.isEmpty ? ring.members : p.plan.ring, skip: UInt32(clamping: p.cursor?.skip ?? 0))
        req.mode = p.plan.mode
        request(.catchUp, body: req.encode(), to: peer, what: .catchUpPage, timeoutMs: settings.catchUpTimeoutMs, now: now)
    }

    /// The current peer is done (or failed: `failed`): on to the next one.
    mutating func nextPeer(failed: Bool = false, now: Int64) {
        guard var p = pull else { return }
        if !p.peers.isEmpty {
            let peer = p.peers.removeFirst()
            if failed { p.failed.append(peer) }
        }
        p.cursor = nil
        pull = p
        requestPage(now: now)
    }

    mutating func onCatchUpPage(_ frame: Frame, from peer: String, now: Int64) {
        guard let page = try? CatchUpResult.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return nextPeer(failed: true, now: now)
        }
        var records: [Record] = []
        records.reserveCapacity(page.records.count)
        for bytes in page.records {
            switch Record.checked(encoded: bytes, limits: settings.limits) {
            case .success(let r): records.append(r)
            case .failure(let refusal):
                // Not stored; another replica or the next catch-up supplies a good copy.
                out.append(.count(.peerRecordRefused))
                out.append(.log(.warning, "catch-up from \(peer): refused a record: \(refusal.reason)"))
            }
        }
        if records.isEmpty {
            return catchUpPageStored(nextKey: page.nextKey, nextSkip: page.nextSkip, count: 0, result: .success(0), now: now)
        }
        out.append(.count(.catchUpRecords(records.count)))
        let ticket = newTicket(.catchUpStored(nextKey: page.nextKey, nextSkip: page.nextSkip, count: records.count))
        out.append(.storeReplica(records, ticket: ticket, source: .catchUp(peer: peer)))
    }

    mutating func catchUpPageStored(nextKey: String?, nextSkip: UInt32, count: Int, result: Result<Int, IngestError>, now: Int64) {
        guard var p = pull else { return }
        switch result {
        case .success(let n):
            p.stored += n
            if let nextKey {
                p.cursor = CatchUpCursor(key: nextKey, skip: Int(nextSkip))
                pull = p
                return requestPage(now: now)
            }
            pull = p
        case .failure(let e):
            out.append(.log(.warning, "catch-up: storing \(count) records failed: \(e.message)"))
            return nextPeer(failed: true, now: now)
        }
        nextPeer(now: now)
    }

    // MARK: Responder

    /// A peer asks for a page of what it should hold. Its own view of the ring (in the request)
    /// decides what it replicates (ours may differ for a moment).
    mutating func onCatchUp(_ frame: Frame, inbound: Inbound) {
        guard let req = try? CatchUpRequest.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return respond(inbound, .catchUpResult, CatchUpResult(records: [], nextKey: nil).encode())
        }
        let cap = settings.limits.membersMax
        guard req.members.count <= cap, req.previousMembers.count <= cap else {
            out.append(.count(.peerProtocolError))
            out.append(.log(.warning, "refused a catch-up request from \(req.requester): \(req.members.count) and \(req.previousMembers.count) members, the limit is \(cap)"))
            return respond(inbound, .catchUpResult, CatchUpResult(records: [], nextKey: nil).encode())
        }
        let selector = CatchUpSelector(mode: req.mode, responder: id, requester: req.requester, rf: settings.rf,
                                       members: req.members.isEmpty ? ring.members : req.members.sorted(),
                                       previousMembers: req.previousMembers.sorted())
        let read = CatchUpRead(selector: selector, since: req.since, cursor: req.afterKey.map { CatchUpCursor(key: $0, skip: Int(req.skip)) },
                               maxRecords: settings.limits.catchUpPageRecordsMax, maxBytes: settings.limits.frameItemBytesMax)
        let ticket = newTicket(.catchUpAnswer(inbound))
        out.append(.readCatchUp(read, ticket: ticket))
    }

    /// The storage read a catch-up page for `.readCatchUp`.
    public mutating func catchUpRead(ticket: UInt64, records: [[UInt8]], next: CatchUpCursor?) -> [ClusterDirective] {
        guard case .catchUpAnswer(let inbound)? = tickets.removeValue(forKey: ticket) else { return take() }
        respond(inbound, .catchUpResult, CatchUpResult(records: records, nextKey: next?.key, nextSkip: UInt32(clamping: next?.skip ?? 0)).encode())
        return take()
    }
}
