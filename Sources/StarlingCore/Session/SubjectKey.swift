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
        func hash(_ prefix: UInt8?, _ id: String) -> UInt64 {
            var id = id
            return id.withUTF8 { SubjectKey.ringKeyFNV(prefix: prefix, id: UnsafeRawBufferPointer($0)) }
        }
        switch self {
        case .session(let s): return hash(nil, s)
        case .user(let u): return hash(Self.userPrefix, u)
        case .terminal(let t): return hash(Self.terminalPrefix, t)
        }
    }

    /// The first byte of an identity's ring key: `u` (`u:<user_id>`), `t` (`t:<terminal_id>`).
    static let userPrefix = UInt8(ascii: "u"), terminalPrefix = UInt8(ascii: "t")

    /// FNV-1a 64 of a ring key from its parts: `prefix` and `:` before the id's bytes for an
    /// identity, the id alone for a session. The one spelling of the hash, for strings
    /// (`ringKeyFNV`) and for a record's field bytes (`Record.subjectFNV`).
    @inline(__always)
    static func ringKeyFNV(prefix: UInt8?, id: UnsafeRawBufferPointer) -> UInt64 {
        var h = StableHash.offsetBasis
        if let prefix {
            h = StableHash.fnv1a64(continuing: StableHash.fnv1a64(continuing: h, byte: prefix), byte: UInt8(ascii: ":"))
        }
        return StableHash.fnv1a64(continuing: h, bytes: id)
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
