/// What one group commit writes, decided from the index before anything is appended. Pure:
/// the writer runs it under the index lock, tests and simulations run it on a plain `NodeIndex`.
///
/// Rules (ARCHITECTURE "Replication" and "Durability"):
/// - a client-given event id already stored in its subject is not stored again; its stored copy
///   is listed in `repeats`, because the first attempt may have been appended here and then
///   failed at a follower, so the repeat must reach every follower before it is acknowledged;
/// - an id admitted earlier in the same group is a plain duplicate (it travels with the group);
/// - a replicated or pulled record whose id is already stored is skipped, nothing to re-ship;
/// - identity-only events take the session of a link made earlier in the group, else the
///   index's latest link; events keep log order.
public enum GroupCommit {
    /// An event as the writer gets it. When its session is known, its record (id, stamps,
    /// stored JSON) was already built on an I/O thread; identity-only events (`record == nil`)
    /// are finished here, in log order.
    public struct Prepared: Sendable {
        public var event: IncomingEvent?
        public var record: Record?
        /// The client gave the event id (only those are deduped: server ids are unique).
        public var clientID: Bool
        public init(event: IncomingEvent?, record: Record?, clientID: Bool) {
            self.event = event
            self.record = record
            self.clientID = clientID
        }
    }

    /// One request's share of a group.
    public enum Input: Sendable {
        case events([Prepared], ip: String)
        case link(sessionID: String, userID: String?, terminalID: String?)
        /// Records another node wrote (replication or catch-up).
        case replica([Record])
    }

    public struct Plan: Sendable {
        /// What to append: this node's own records (replicated by it) first, then replica records.
        public var records: [Record] = []
        public var ownCount = 0
        /// Per input, in order: records it adds and duplicates it had.
        public var perInput: [(stored: Int, duplicates: Int)] = []
        /// Stored copies of repeated client ids, to ship to the followers again.
        public var repeats: [EventRef] = []
    }

    /// Plans a group. `now` stamps links and identity-only events; `ids` makes the ids of events
    /// that came without one; `node` is this node's id (the `node` stamp of finished events);
    /// `stored` reads stored records back, to confirm a dedupe candidate (`NodeIndex.storedCopy`).
    public static func plan(_ inputs: [Input], index idx: NodeIndex, now: Int64, node: String,
                            ids: inout SplitMix64, stored: StoredRecords) -> Plan {
        var plan = Plan()
        var replicas: [Record] = []
        var newLinks: [SubjectKey: String] = [:]       // identity -> session, links made in this group
        // Ids admitted earlier in this group, by dedupe key. The first id of a key is kept as
        // it came (a record's id is read from its bytes only if another id has the same key);
        // further distinct ids of a key, a 64-bit collision, go to `seenMore`.
        var seen: [UInt64: Claim] = [:]
        var seenMore = Set<ScopedID>()
        /// False when the id is already stored in its scope or was admitted earlier in this group.
        /// `receivedAt`: the original receive time, for a record another node wrote.
        func admit(_ claim: Claim, key: UInt64, reship: Bool, receivedAt: Int64? = nil) -> Bool {
            if let prior = seen[key] {
                let id = claim.scoped
                if prior.scoped == id || seenMore.contains(id) { return false }
                guard notStored(id) else { return false }
                seenMore.insert(id)
                return true
            }
            // Nothing in the window has this key and the record is not older than the window:
            // nothing stored to confirm against (`NodeIndex.storedCopy` would find nothing).
            if idx.dedupe.mayHold(key) || (receivedAt.map { $0 < idx.dedupe.start } ?? false) {
                guard notStored(claim.scoped) else { return false }
            }
            seen[key] = claim
            return true
            func notStored(_ id: ScopedID) -> Bool {
                guard let ref = idx.storedCopy(eventID: id.id, in: id.scope, receivedAt: receivedAt, stored: stored) else { return true }
                if reship { plan.repeats.append(ref) }
                return false
            }
        }
        for input in inputs {
            var stored = 0, dups = 0
            switch input {
            case .replica(let list):
                for r in list {
                    guard r.kind != .event || admit(.record(r), key: r.dedupeKey, reship: false, receivedAt: r.receivedAt) else {
                        dups += 1
                        continue
                    }
                    replicas.append(r)
                    stored += 1
                }
            case .link(let sid, let uid, let tid):
                plan.records.append(Record(kind: .link, ts: now, receivedAt: now, sessionID: sid, userID: uid ?? "", terminalID: tid ?? ""))
                if let uid { newLinks[.user(uid)] = sid }
                if let tid { newLinks[.terminal(tid)] = sid }
                stored = 1
            case .events(let events, let ip):
                for p in events {
                    if let r = p.record {
                        guard !p.clientID || admit(.record(r), key: r.dedupeKey, reship: true) else {
                            dups += 1
                            continue
                        }
                        plan.records.append(r)
                        stored += 1
                        continue
                    }
                    guard let e = p.event else { continue }
                    let sid = e.sessionID
                        ?? e.userID.flatMap { newLinks[.user($0)] } ?? e.terminalID.flatMap { newLinks[.terminal($0)] }
                        ?? idx.resolveSession(userID: e.userID, terminalID: e.terminalID)
                    let eid = e.eventID ?? EventID.make(nowMs: now, using: &ids)
                    let scope = SubjectKey(sessionID: sid, userID: e.userID, terminalID: e.terminalID)
                    guard admit(.id(ScopedID(scope: scope, id: eid)), key: DedupeWindow.key(eid, in: scope),
                                reship: e.eventID != nil) else {
                        dups += 1
                        continue
                    }
                    plan.records.append(StoredEvent.record(of: e, sessionID: sid, eventID: eid, ts: e.ts ?? now,
                                                           receivedAt: now, node: node, ip: ip))
                    stored += 1
                }
            }
            plan.perInput.append((stored, dups))
        }
        plan.ownCount = plan.records.count
        plan.records.append(contentsOf: replicas)
        return plan
    }
}

/// An event id within its dedupe scope (one set for a whole group: no set per scope).
struct ScopedID: Hashable {
    var scope: SubjectKey
    var id: String
}

/// An id admitted in a group: a record (its id and scope read from its bytes when compared) or
/// an id already in hand.
enum Claim {
    case record(Record), id(ScopedID)

    var scoped: ScopedID {
        switch self {
        case .record(let r): return ScopedID(scope: SubjectKey(of: r), id: r.eventID)
        case .id(let s): return s
        }
    }
}
