/// Where a record lives in the log: segment number, byte offset of its block, index in the block.
public struct RecordLocation: Sendable, Hashable {
    public var segment: UInt32
    public var blockOffset: UInt64
    public var index: UInt32
    public init(segment: UInt32, blockOffset: UInt64, index: UInt32) {
        self.segment = segment
        self.blockOffset = blockOffset
        self.index = index
    }
}

/// An indexed event: enough to order and time-filter without reading the log.
public struct EventRef: Sendable, Equatable {
    public var location: RecordLocation
    public var ts: Int64
    public var receivedAt: Int64
    /// Log sequence number: the final tie-break, so equal times keep log order.
    public var seq: UInt64
    public init(location: RecordLocation, ts: Int64, receivedAt: Int64, seq: UInt64) {
        self.location = location
        self.ts = ts
        self.receivedAt = receivedAt
        self.seq = seq
    }

    public static func inOrder(_ a: EventRef, _ b: EventRef) -> Bool {
        if a.ts != b.ts { return a.ts < b.ts }
        if a.receivedAt != b.receivedAt { return a.receivedAt < b.receivedAt }
        return a.seq < b.seq
    }
}

/// Per-component counters for `/v1/stats/components`.
public struct ComponentStats: Sendable, Equatable {
    public var events: Int = 0
    public var errors: Int = 0
    public var lastSeen: Int64 = 0
}

/// Reads stored records back for dedupe: `NodeIndex.storedCopy` confirms a hash match against
/// the stored record itself. The engine reads the log; tests and simulations read an array.
public struct StoredRecords {
    /// The record at a ref, nil when it cannot be read (deleted by retention, unreadable).
    public var read: (EventRef) -> Record?
    /// Refs in sealed segments (on-disk indexes) of a subject's records received at exactly
    /// this time: where a replicated record older than the dedupe window is looked for.
    public var sealed: (SubjectKey, Int64) -> [EventRef]
    public init(read: @escaping (EventRef) -> Record?, sealed: @escaping (SubjectKey, Int64) -> [EventRef] = { _, _ in [] }) {
        self.read = read
        self.sealed = sealed
    }
}

/// Everything a node keeps in memory about the records it stores, rebuilt by folding the log
/// in order (`apply`). Pure: no I/O, no clock; time comes from the records.
///
/// - sessions: one entry per session, found by one lookup per event: state, identities, the
///   newest receive time and the session's open refs;
/// - users / terminals: links made by `/v1/identify`, and their open refs;
/// - open refs: where the records of each subject are, for the records not yet in a sealed
///   segment's on-disk index, kept in the subject's own entry (`takeOpenRefs` hands them over
///   when a segment is sealed; `openSubjects` lists the entries that hold some);
/// - dedupe: the ids of the last window of log time (`DedupeWindow`);
/// - components: counters.
public struct NodeIndex: Sendable {
    public struct SessionEntry: Sendable {
        public var state: SessionState?
        public var userID: String?
        public var terminalID: String?
        /// The latest `received_at` among its events: lets a scan for recent events skip
        /// a session without looking at its refs (they are not in time order after a catch-up).
        public var newestReceivedAt: Int64 = .min
        /// Refs of its records not yet in a sealed segment's index, in log order.
        public internal(set) var openRefs: [EventRef] = []

        /// Folds an event of the session, and lists its ref (nil: none kept); true when that ref
        /// is its first open one (the entry joins `openSubjects`).
        mutating func observe(_ r: Record, via: String?, userID uid: String?, terminalID tid: String?, ttl: TTLSettings,
                              listing ref: EventRef?) -> Bool {
            defer { if let ref { openRefs.append(ref) } }
            let at = r.receivedAt
            newestReceivedAt = max(newestReceivedAt, at)
            if let uid { userID = uid }
            if let tid { terminalID = tid }
            if state == nil {
                state = SessionState(firstEventAt: at, via: via, ttl: ttl)
            } else {
                state!.observe(at: at, via: via, ttl: ttl)
            }
            state!.userID = userID
            state!.terminalID = terminalID
            return ref != nil && openRefs.isEmpty
        }
    }

    public struct Link: Sendable, Equatable {
        public var sessionID: String
        public var linkedAt: Int64
        public init(sessionID: String, linkedAt: Int64) {
            self.sessionID = sessionID
            self.linkedAt = linkedAt
        }
    }

    public struct IdentityEntry: Sendable {
        public var links: [Link] = []
        /// The latest `received_at` / `linked_at` among its events and links (see `SessionEntry`).
        public var newestReceivedAt: Int64 = .min
        /// Refs of events naming it not yet in a sealed segment's index, in log order.
        public internal(set) var openRefs: [EventRef] = []

        mutating func saw(_ at: Int64) { newestReceivedAt = max(newestReceivedAt, at) }

        /// Notes an event naming it, and lists its ref (nil: none kept); true when that ref is
        /// its first open one.
        mutating func saw(_ at: Int64, listing ref: EventRef?) -> Bool {
            saw(at)
            guard let ref else { return false }
            defer { openRefs.append(ref) }
            return openRefs.isEmpty
        }
    }

    /// Found by the session id's FNV-1a 64: `apply` hashes it from the record's bytes.
    public internal(set) var sessions = HashedStringTable<SessionEntry>()
    public internal(set) var users: [String: IdentityEntry] = [:]
    public internal(set) var terminals: [String: IdentityEntry] = [:]
    /// The subjects whose entry holds open refs, each once (an entry is listed when its first
    /// open ref comes). An event is listed under its session and under each identity it names.
    public internal(set) var openSubjects: [SubjectKey] = []
    public internal(set) var openRefCount = 0
    /// Where a catch-up scan of the open segment may start (`ScanMarks`).
    public internal(set) var scanMarks = ScanMarks()
    public internal(set) var dedupe: DedupeWindow
    public internal(set) var components: [String: ComponentStats] = [:]
    /// Distinct component names counted one by one (any client may name one: the table must
    /// not grow without bound); later names are counted under `otherComponents`.
    public static let componentsMax = 10_000
    public static let otherComponents = "(other)"
    public internal(set) var eventCount = 0
    public internal(set) var lastSeq: UInt64 = 0
    public let ttl: TTLSettings

    /// `dedupeWindowMs`: how much log time of event ids is kept for dedupe (ARCHITECTURE, "dedupe").
    public init(ttl: TTLSettings, dedupeWindowMs: Int64 = 3_600_000) {
        self.ttl = ttl
        dedupe = DedupeWindow(windowMs: dedupeWindowMs)
    }

    /// The session an identity-only event is attached to: the latest link of its user, else of its terminal.
    public func resolveSession(userID: String?, terminalID: String?) -> String? {
        if let u = userID, let l = users[u]?.links.last { return l.sessionID }
        if let t = terminalID, let l = terminals[t]?.links.last { return l.sessionID }
        return nil
    }

    /// Where the stored copy of `eventID` in `scope` is, if this node holds one it can read.
    ///
    /// Exact: a candidate from the dedupe window counts only once its record is read and its id
    /// and scope are the same. A record received before the window (`receivedAt`, known for
    /// replicated records) is also looked for among the subject's refs received at that very
    /// time, open and sealed. A client's repeat (its original receive time unknown) is found
    /// within the window only; beyond it the repeat is stored again, and answers drop it (they
    /// dedupe by event id).
    public func storedCopy(eventID: String, in scope: SubjectKey, receivedAt: Int64? = nil, stored: StoredRecords) -> EventRef? {
        func confirmed(_ ref: EventRef) -> Bool {
            guard let r = stored.read(ref) else { return false }
            return r.kind == .event && r.eventID == eventID && SubjectKey(of: r) == scope
        }
        if let hit = dedupe.candidates(DedupeWindow.key(eventID, in: scope)).first(where: confirmed) { return hit }
        guard let t = receivedAt, t < dedupe.start else { return nil }
        let open = openRefs(of: scope).filter { $0.receivedAt == t }
        return (open + stored.sealed(scope, t)).first(where: confirmed)
    }

    /// The open refs of a subject (not yet in a sealed segment's index), in log order.
    public func openRefs(of subject: SubjectKey) -> [EventRef] {
        switch subject {
        case .session(let id): return sessions[id]?.openRefs ?? []
        case .user(let id): return users[id]?.openRefs ?? []
        case .terminal(let id): return terminals[id]?.openRefs ?? []
        }
    }

    /// Takes the refs of every record folded so far (they are being written to a sealed
    /// segment's index) and starts an empty open set: one lookup per subject with refs.
    public mutating func takeOpenRefs() -> [SubjectKey: [EventRef]] {
        var out: [SubjectKey: [EventRef]] = [:]
        out.reserveCapacity(openSubjects.count)
        for subject in openSubjects {
            var list: [EventRef] = []
            withOpenRefs(of: subject) { swap(&list, &$0) }
            if !list.isEmpty { out[subject] = list }
        }
        openSubjects = []
        openRefCount = 0
        return out
    }

    /// Runs `body` on the open refs in a subject's entry, in place (nothing when it has none).
    mutating func withOpenRefs(of subject: SubjectKey, _ body: (inout [EventRef]) -> Void) {
        switch subject {
        case .session(let id):
            let h = HashedStringTable<SessionEntry>.hash(id)
            if sessions.value(of: id, hash: h) != nil { sessions.modify(id, hash: h, default: SessionEntry()) { body(&$0.openRefs) } }
        case .user(let id): if users[id] != nil { body(&users[id]!.openRefs) }
        case .terminal(let id): if terminals[id] != nil { body(&terminals[id]!.openRefs) }
        }
    }

    /// Counts a ref just listed in a subject's entry (`first`: the entry had none open before).
    mutating func listed(in subject: @autoclosure () -> SubjectKey, first: Bool) {
        if first { openSubjects.append(subject()) }
        openRefCount += 1
    }

    /// The subjects an event is listed under (its refs): its session and each identity it names.
    public static func subjects(listing r: Record) -> [SubjectKey] {
        guard r.kind == .event else { return [] }
        var out: [SubjectKey] = []
        if !r.sessionID.isEmpty { out.append(.session(r.sessionID)) }
        if !r.userID.isEmpty { out.append(.user(r.userID)) }
        if !r.terminalID.isEmpty { out.append(.terminal(r.terminalID)) }
        return out
    }

    /// Folds one record, stored at `location` with sequence number `seq`, into the index.
    /// `keepRef: false` folds a record whose segment already has a sealed index on disk
    /// (recovery): its state and dedupe entry, not its refs.
    public mutating func apply(_ r: Record, at location: RecordLocation, seq: UInt64, keepRef: Bool = true) {
        lastSeq = max(lastSeq, seq)
        if keepRef { scanMarks.observe(location, receivedAt: r.receivedAt) }
        switch r.kind {
        case .link:
            applyLink(r)
        case .event:
            eventCount += 1
            let receivedAt = r.receivedAt
            let ref = EventRef(location: location, ts: r.ts, receivedAt: receivedAt, seq: seq)
            let subject = r.subjectFNV        // hashed once: for the dedupe key and the session table
            dedupe.insert(r.dedupeKey(subjectFNV: subject), ref)
            // Each field read once, and only when present (a record's fields are its bytes).
            let via: String? = r.isEmpty(.via) ? nil : r.via
            let uid: String? = r.isEmpty(.userID) ? nil : r.userID
            let tid: String? = r.isEmpty(.terminalID) ? nil : r.terminalID
            // One hash lookup per subject: its entry holds its state and its open refs.
            let kept = keepRef ? ref : nil
            if !r.isEmpty(.sessionID) {
                let sid = r.sessionID
                let first = sessions.modify(sid, hash: subject, default: SessionEntry()) {
                    $0.observe(r, via: via, userID: uid, terminalID: tid, ttl: ttl, listing: kept)
                }
                if keepRef { listed(in: .session(sid), first: first) }
            }
            if let uid {
                let first = users[uid, default: IdentityEntry()].saw(receivedAt, listing: kept)
                if keepRef { listed(in: .user(uid), first: first) }
            }
            if let tid {
                let first = terminals[tid, default: IdentityEntry()].saw(receivedAt, listing: kept)
                if keepRef { listed(in: .terminal(tid), first: first) }
            }
            if !r.isEmpty(.component) { countComponent(r.component, isError: r.isError, at: receivedAt) }
        }
    }

    /// Counts an event for its component: one lookup while the table has room. Distinct names
    /// are capped: past `componentsMax`, new names count as one.
    mutating func countComponent(_ name: String, isError: Bool, at receivedAt: Int64) {
        func count(_ c: inout ComponentStats) {
            c.events += 1
            if isError { c.errors += 1 }
            c.lastSeen = max(c.lastSeen, receivedAt)
        }
        if components.count < Self.componentsMax || components[name] != nil {
            count(&components[name, default: ComponentStats()])
        } else {
            count(&components[Self.otherComponents, default: ComponentStats()])
        }
    }

    mutating func applyLink(_ r: Record) {
        let link = Link(sessionID: r.sessionID, linkedAt: r.receivedAt)
        if !r.userID.isEmpty {
            if !(users[r.userID]?.links.contains { $0.sessionID == r.sessionID } ?? false) {
                users[r.userID, default: IdentityEntry()].links.append(link)
            }
            users[r.userID, default: IdentityEntry()].saw(r.receivedAt)
            sessions[r.sessionID, default: SessionEntry()].userID = r.userID
            sessions[r.sessionID]?.state?.userID = r.userID
        }
        if !r.terminalID.isEmpty {
            if !(terminals[r.terminalID]?.links.contains { $0.sessionID == r.sessionID } ?? false) {
                terminals[r.terminalID, default: IdentityEntry()].links.append(link)
            }
            terminals[r.terminalID, default: IdentityEntry()].saw(r.receivedAt)
            sessions[r.sessionID, default: SessionEntry()].terminalID = r.terminalID
            sessions[r.sessionID]?.state?.terminalID = r.terminalID
        }
    }

    /// Drops every reference into the given segments (after retention deleted them).
    /// Session state, links and counters stay: they describe the past, not the files.
    public mutating func forget(segments: Set<UInt32>) {
        guard !segments.isEmpty else { return }
        dedupe.forget(segments: segments)
        var count = 0
        var still: [SubjectKey] = []
        func keep(_ list: inout [EventRef], _ subject: SubjectKey) {
            list.removeAll { segments.contains($0.location.segment) }
            count += list.count
            if !list.isEmpty { still.append(subject) }
        }
        for subject in openSubjects { withOpenRefs(of: subject) { keep(&$0, subject) } }
        openSubjects = still
        openRefCount = count
    }

    /// Sessions whose state expired (long TTL past `now`) and whose newest event was received
    /// before `horizon`, with that time: candidates to forget once the caller has checked that no
    /// sealed segment holds an event of theirs. At most `limit`. Link-only entries are kept.
    public func expiredSessions(now: Int64, horizon: Int64, limit: Int) -> [(id: String, newest: Int64)] {
        var out: [(id: String, newest: Int64)] = []
        for (sid, e) in sessions where out.count < limit {
            guard let st = e.state, st.isExpired(now: now), e.newestReceivedAt < horizon, e.openRefs.isEmpty else { continue }
            out.append((sid, e.newestReceivedAt))
        }
        return out
    }

    /// Forgets the given sessions if nothing came for them since `expiredSessions` listed them.
    public mutating func forgetSessions(_ list: [(id: String, newest: Int64)], now: Int64) -> Int {
        var n = 0
        for (sid, newest) in list {
            guard let e = sessions[sid], e.newestReceivedAt == newest, e.state?.isExpired(now: now) ?? false,
                  e.openRefs.isEmpty else { continue }
            sessions[sid] = nil
            n += 1
        }
        return n
    }

    /// Identities (users, terminals) with nothing left to point at: no link or event since
    /// `horizon`, no open ref, and every session they link to forgotten. The caller checks the
    /// sealed indexes (identity-only events) before `forgetIdentities`.
    public func expiredIdentities(horizon: Int64, limit: Int) -> [(subject: SubjectKey, newest: Int64)] {
        var out: [(subject: SubjectKey, newest: Int64)] = []
        for (make, map) in [(SubjectKey.user, users), (SubjectKey.terminal, terminals)] {
            for (id, e) in map where out.count < limit {
                guard isForgettable(e, horizon: horizon) else { continue }
                out.append((make(id), e.newestReceivedAt))
            }
        }
        return out
    }

    func isForgettable(_ e: IdentityEntry, horizon: Int64) -> Bool {
        e.newestReceivedAt < horizon && e.openRefs.isEmpty && e.links.allSatisfy { sessions[$0.sessionID] == nil }
    }

    /// Forgets the given identities if they are still as `expiredIdentities` listed them.
    public mutating func forgetIdentities(_ list: [(subject: SubjectKey, newest: Int64)], horizon: Int64) -> Int {
        var n = 0
        for (subject, newest) in list {
            switch subject {
            case .user(let u):
                guard let e = users[u], e.newestReceivedAt == newest, isForgettable(e, horizon: horizon) else { continue }
                users[u] = nil
            case .terminal(let t):
                guard let e = terminals[t], e.newestReceivedAt == newest, isForgettable(e, horizon: horizon) else { continue }
                terminals[t] = nil
            case .session:
                continue
            }
            n += 1
        }
        return n
    }

    public func state(ofSession id: String, now: Int64) -> SessionState? {
        guard let s = sessions[id]?.state, !s.isExpired(now: now) else { return nil }
        return s
    }
}
