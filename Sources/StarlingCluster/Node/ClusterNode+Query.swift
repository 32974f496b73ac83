import StarlingCore

/// Query fan-out: a session (or identity) query asks every member that has not left, in
/// parallel and page by page (each page fits a frame), with a deadline per page, and merges
/// the answers (`QueryMerge`): `partial` only when the members that did not answer may hold
/// every copy of some of the data (`Placement.mayMiss`).
extension ClusterNode {
    /// One member's part of a fan-out.
    enum QuerySlot: Sendable {
        case waiting(QueryResult?)
        case failed
        case answered(QueryResult)

        var done: Bool {
            if case .waiting = self { false } else { true }
        }
        var result: QueryResult? {
            if case .answered(let r) = self { r } else { nil }
        }
    }
    struct Fanout: Sendable {
        var slots: [QuerySlot]
        var limit: Int
        /// The member asked in each slot.
        var targets: [String]
        /// The session asked for (nil: an identity's sessions, spread over many keys).
        var key: String?
        /// The query's trace: every page request carries it.
        var trace: TraceContext? = nil
    }

    /// Starts a fan-out of `request` (offset 0); `.queryAnswered(ticket:)` brings the merged answer.
    public mutating func query(_ request: QueryRequest, ticket: UInt64, now: Int64, trace: TraceContext? = nil) -> [ClusterDirective] {
        let targets = members.filter { $0.status != .left }
        precondition(fanouts[ticket] == nil, "query ticket \(ticket) is already pending (\(fanouts.count) fan-outs in progress)")
        fanouts[ticket] = Fanout(slots: Array(repeating: .waiting(nil), count: targets.count), limit: Int(request.limit),
                                 targets: targets.map(\.id), key: request.scope == 0 ? request.id : nil, trace: trace)
        for (slot, m) in targets.enumerated() {
            if m.id == id {
                let t = newTicket(.querySlot(fanout: ticket, slot: slot))
                out.append(.readQuery(request, ticket: t, byteBudget: .max))
            } else if m.status == .down {
                settle(fanout: ticket, slot: slot, page: nil, request: request, peer: m.peer, now: now)
            } else {
                self.request(.query, body: request.encode(), to: m.peer, what: .queryPage(fanout: ticket, slot: slot, request: request),
                        timeoutMs: settings.queryTimeoutMs, now: now, traces: trace.map { [$0] } ?? [])
            }
        }
        finishIfDone(ticket)
        return take()
    }

    /// A member's page (nil: it failed). Asks for the next page while the member has more and
    /// the limit is not reached.
    mutating func settle(fanout ticket: UInt64, slot: Int, page: QueryResult?, request: QueryRequest, peer: String, now: Int64) {
        guard var f = fanouts[ticket], case .waiting(let sofar) = f.slots[slot] else { return }
        guard let page else {
            f.slots[slot] = .failed
            fanouts[ticket] = f
            return finishIfDone(ticket)
        }
        var all = sofar ?? QueryResult(hits: [], state: page.state)
        all.hits.append(contentsOf: page.hits)
        all.truncated = all.truncated || page.truncated
        all.error = all.error ?? page.error
        let remaining = Int(request.limit) - page.hits.count
        if let next = page.nextOffset, next > request.offset, remaining > 0 {
            f.slots[slot] = .waiting(all)
            fanouts[ticket] = f
            var more = request
            more.offset = next
            more.limit = UInt32(remaining)
            more.wantState = false
            self.request(.query, body: more.encode(), to: peer, what: .queryPage(fanout: ticket, slot: slot, request: more),
                    timeoutMs: settings.queryTimeoutMs, now: now, traces: f.trace.map { [$0] } ?? [])
            return
        }
        f.slots[slot] = .answered(all)
        fanouts[ticket] = f
        finishIfDone(ticket)
    }

    mutating func finishIfDone(_ ticket: UInt64) {
        guard let f = fanouts[ticket], f.slots.allSatisfy(\.done) else { return }
        fanouts[ticket] = nil
        var unanswered = Set<String>()
        for (member, slot) in zip(f.targets, f.slots) {
            if case .failed = slot { unanswered.insert(member) }
        }
        let mayMiss = !unanswered.isEmpty
            && Placement.mayMiss(key: f.key, unanswered: unanswered, rings: [ring, previousRing, everyoneRing()].compactMap { $0 }, rf: settings.rf)
        out.append(.queryAnswered(ticket: ticket, QueryMerge.merge(f.slots.map(\.result), limit: f.limit, mayMiss: mayMiss)))
    }

    /// A member asks for one page of its local answer.
    mutating func onQuery(_ frame: Frame, inbound: Inbound) {
        guard let q = try? QueryRequest.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return respond(inbound, .queryResult, QueryResult(hits: [], truncated: false, state: nil, error: "malformed query").encode())
        }
        // A remote asker gets pages that fit a frame.
        let t = newTicket(.queryReply(inbound))
        out.append(.readQuery(q, ticket: t, byteBudget: settings.limits.frameItemBytesMax))
    }

    /// The storage answered a `.readQuery`.
    public mutating func queryRead(ticket: UInt64, result: QueryResult, now: Int64) -> [ClusterDirective] {
        switch tickets.removeValue(forKey: ticket) {
        case .queryReply(let inbound)?:
            respond(inbound, .queryResult, result.encode())
        case .querySlot(let fanout, let slot)?:
            // The local answer is read whole (no byte budget), so it has no further pages.
            guard var f = fanouts[fanout], case .waiting = f.slots[slot] else { break }
            f.slots[slot] = .answered(result)
            fanouts[fanout] = f
            finishIfDone(fanout)
        default:
            break
        }
        return take()
    }
}

extension ClusterNode {
    /// The ring of every member not removed (`left`), down ones included: where the copies of a
    /// member that died were. Built when the member list changes (cached).
    mutating func everyoneRing() -> HashRing {
        let ids = members.filter { $0.status != .left }.map(\.id).sorted()
        if let cached = everyoneRingCache, cached.members == ids { return cached }
        let r = HashRing(members: ids, vnodes: settings.vnodes)
        everyoneRingCache = r
        return r
    }
}
