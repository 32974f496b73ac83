/// What an event or link is about: a session, else a user, else a terminal. One concept with
/// two uses: the dedupe scope of an event id (`NodeIndex`) and, through `ringKey`, the string
/// that is hashed onto the ring (ARCHITECTURE invariant 8). Nothing else spells the `u:` and
/// `t:` prefixes.
public enum SubjectKey: Sendable, Hashable {
    case session(String), user(String), terminal(String)

    /// An event's subject: its session, else its user, else its terminal (empty strings are absent).
    public init(sessionID: String?, userID: String?, terminalID: String?) {
        if let s = sessionID, !s.isEmpty {
            self = .session(s)
        } else if let u = userID, !u.isEmpty {
            self = .user(u)
        } else {
            self = .terminal(terminalID ?? "")
        }
    }

    /// A stored event's subject (a record stores absent strings empty).
    public init(of r: Record) {
        self.init(sessionID: r.sessionID, userID: r.userID, terminalID: r.terminalID)
    }

    /// The subjects a record belongs to: an event its one subject; a link its session and each
    /// identity it links (each identity's owner keeps the link for lookups).
    public static func all(of r: Record) -> [SubjectKey] {
        switch r.kind {
        case .event:
            return [SubjectKey(of: r)]
        case .link:
            var k: [SubjectKey] = [.session(r.sessionID)]
            if !r.userID.isEmpty { k.append(.user(r.userID)) }
            if !r.terminalID.isEmpty { k.append(.terminal(r.terminalID)) }
            return k
        }
    }

    /// FNV-1a 64 of `ringKey`'s UTF-8 bytes, computed without building the string (the ring
    /// hash and the dedupe key start from it).
    public var ringKeyFNV: UInt64 {
        func prefixed(_ kind: UInt8, _ id: String) -> UInt64 {
            let h = StableHash.fnv1a64(continuing: StableHash.fnv1a64(continuing: StableHash.offsetBasis, byte: kind), byte: 0x3A)
            return StableHash.fnv1a64(continuing: h, id)
        }
        switch self {
        case .session(let s): return StableHash.fnv1a64(s)
        case .user(let u): return prefixed(0x75, u)        // "u:"
        case .terminal(let t): return prefixed(0x74, t)    // "t:"
        }
    }

    /// The key hashed onto the ring: the session id itself, `u:<user_id>` or `t:<terminal_id>`.
    public var ringKey: String {
        switch self {
        case .session(let s): return s
        case .user(let u): return "u:" + u
        case .terminal(let t): return "t:" + t
        }
    }

    /// The id without its kind.
    public var id: String {
        switch self {
        case .session(let s), .user(let s), .terminal(let s): return s
        }
    }

    /// Whether a record is listed under this subject (`NodeIndex.subjects(listing:)`): what a
    /// reader checks after a lookup by key hash, which different subjects may share.
    public func lists(_ r: Record) -> Bool {
        switch self {
        case .session(let s): return r.sessionID == s
        case .user(let u): return r.userID == u
        case .terminal(let t): return r.terminalID == t
        }
    }

    public var isIdentity: Bool {
        if case .session = self { return false }
        return true
    }
}
