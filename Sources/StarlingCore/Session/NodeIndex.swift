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

/// Everything a node knows about the records it stores, rebuilt by folding the log
/// in order (`apply`). Pure: no I/O, no clock; time comes from the records.
///
/// - sessions: state, event refs and the event-id set used for dedupe;
/// - users / terminals: links made by `/v1/identify`, and every event naming the identity;
/// - components: counters.
public struct NodeIndex: Sendable {
    public struct SessionEntry: Sendable {
        public var state: SessionState?
        /// In log order (ascending `seq`): records are folded in sequence order.
        public var events: [EventRef] = []
        /// Dedupe: event-id hash -> sequence number of the stored copy (so a repeat can find the
        /// stored record, which must reach every replica before the repeat is acknowledged).
        var ids: [UInt64: UInt64] = [:]
        public var userID: String?
        public var terminalID: String?
        /// The latest `received_at` among its events: lets a scan for recent events skip
        /// a session without looking at its refs (they are not in time order after a catch-up).
        public var newestReceivedAt: Int64 = .min

        mutating func observe(_ r: Record, ref: EventRef, idHash: UInt64, via: String?, ttl: TTLSettings) {
            events.append(ref)
            newestReceivedAt = max(newestReceivedAt, r.receivedAt)
            if ids[idHash] == nil { ids[idHash] = ref.seq }   // the first copy wins
            if !r.userID.isEmpty { userID = r.userID }
            if !r.terminalID.isEmpty { terminalID = r.terminalID }
            if state == nil {
                state = SessionState(firstEventAt: r.receivedAt, via: via, ttl: ttl)
            } else {
                state!.observe(at: r.receivedAt, via: via, ttl: ttl)
            }
            state!.userID = userID
            state!.terminalID = terminalID
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
        public var events: [EventRef] = []
        /// The latest `received_at` / `linked_at` among its events and links (see `SessionEntry`).
        public var newestReceivedAt: Int64 = .min

        mutating func saw(_ at: Int64) { newestReceivedAt = max(newestReceivedAt, at) }
        /// Event ids of events that had no session (their dedupe scope is the identity), with
        /// the sequence number of the stored copy.
        var ids: [UInt64: UInt64] = [:]
    }

    public private(set) var sessions: [String: SessionEntry] = [:]
    public private(set) var users: [String: IdentityEntry] = [:]
    public private(set) var terminals: [String: IdentityEntry] = [:]
    public private(set) var components: [String: ComponentStats] = [:]
    public private(set) var eventCount = 0
    public private(set) var lastSeq: UInt64 = 0
    public let ttl: TTLSettings

    public init(ttl: TTLSettings) { self.ttl = ttl }

    /// The session an identity-only event is attached to: the latest link of its user, else of its terminal.
    public func resolveSession(userID: String?, terminalID: String?) -> String? {
        if let u = userID, let l = users[u]?.links.last { return l.sessionID }
        if let t = terminalID, let l = terminals[t]?.links.last { return l.sessionID }
        return nil
    }

    public static func idHash(_ eventID: String) -> UInt64 { StableHash.fnv1a64(eventID) }

    /// Whether an event with this id is already stored in this scope. Ids are compared
    /// by 64-bit FNV-1a hash (see ARCHITECTURE.md, "dedupe").
    public func contains(eventID: String, in scope: SubjectKey) -> Bool {
        storedSeq(eventID: eventID, in: scope) != nil
    }

    func storedSeq(eventID: String, in scope: SubjectKey) -> UInt64? {
        let h = Self.idHash(eventID)
        switch scope {
        case .session(let s): return sessions[s]?.ids[h]
        case .user(let u): return users[u]?.ids[h]
        case .terminal(let t): return terminals[t]?.ids[h]
        }
    }

    /// Where the stored copy of `eventID` in `scope` is, if it is stored and still in the log
    /// (nil too when retention removed its day: then there is nothing left to copy).
    public func storedRef(eventID: String, in scope: SubjectKey) -> EventRef? {
        guard let seq = storedSeq(eventID: eventID, in: scope) else { return nil }
        let refs: [EventRef]?
        switch scope {
        case .session(let s): refs = sessions[s]?.events
        case .user(let u): refs = users[u]?.events
        case .terminal(let t): refs = terminals[t]?.events
        }
        guard let refs else { return nil }
        // Refs are in ascending seq (folded in log order): binary search.
        var lo = 0, hi = refs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if refs[mid].seq < seq { lo = mid + 1 } else { hi = mid }
        }
        return lo < refs.count && refs[lo].seq == seq ? refs[lo] : nil
    }

    /// Folds one record, stored at `location` with sequence number `seq`, into the index.
    public mutating func apply(_ r: Record, at location: RecordLocation, seq: UInt64) {
        lastSeq = max(lastSeq, seq)
        switch r.kind {
        case .link:
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
        case .event:
            eventCount += 1
            let ref = EventRef(location: location, ts: r.ts, receivedAt: r.receivedAt, seq: seq)
            let h = Self.idHash(r.eventID)
            let via: String? = r.via.isEmpty ? nil : r.via
            if !r.sessionID.isEmpty {
                // One hash lookup, mutated in place.
                sessions[r.sessionID, default: SessionEntry()].observe(r, ref: ref, idHash: h, via: via, ttl: ttl)
            }
            if !r.userID.isEmpty {
                users[r.userID, default: IdentityEntry()].events.append(ref)
                users[r.userID]!.saw(r.receivedAt)
                if r.sessionID.isEmpty && users[r.userID]!.ids[h] == nil { users[r.userID]!.ids[h] = seq }
            }
            if !r.terminalID.isEmpty {
                terminals[r.terminalID, default: IdentityEntry()].events.append(ref)
                terminals[r.terminalID]!.saw(r.receivedAt)
                if r.sessionID.isEmpty && r.userID.isEmpty && terminals[r.terminalID]!.ids[h] == nil { terminals[r.terminalID]!.ids[h] = seq }
            }
            if !r.component.isEmpty {
                var c = components[r.component] ?? ComponentStats()
                c.events += 1
                if r.isError { c.errors += 1 }
                c.lastSeen = max(c.lastSeen, r.receivedAt)
                components[r.component] = c
            }
        }
    }

    /// Drops every reference into the given segments (after retention deleted them).
    /// Session state, links and counters stay: they describe the past, not the files.
    public mutating func forget(segments: Set<UInt32>) {
        guard !segments.isEmpty else { return }
        func keep(_ r: EventRef) -> Bool { !segments.contains(r.location.segment) }
        for k in Array(sessions.keys) {
            sessions[k]!.events.removeAll { !keep($0) }
        }
        for k in Array(users.keys) { users[k]!.events.removeAll { !keep($0) } }
        for k in Array(terminals.keys) { terminals[k]!.events.removeAll { !keep($0) } }
    }

    public func state(ofSession id: String, now: Int64) -> SessionState? {
        guard let s = sessions[id]?.state, !s.isExpired(now: now) else { return nil }
        return s
    }
}
