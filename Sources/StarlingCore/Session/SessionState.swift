/// Session time-to-live settings: both windows slide with every event, on the server clock.
public struct TTLSettings: Sendable, Equatable {
    public var shortMs: Int64
    public var longMs: Int64
    public init(shortMs: Int64 = 30 * 60 * 1000, longMs: Int64 = 30 * 24 * 3600 * 1000) {
        self.shortMs = shortMs
        self.longMs = longMs
    }
}

/// Owner-side state of one session. Pure: every change takes the server time of the event.
///
/// Decisions: the state expires (404) once the long TTL has passed; an event after that
/// starts a fresh state (new `first_seen`, count from 1, attribution cleared). The short TTL
/// marks the visit as inactive but keeps the state. Server time never moves `last_seen` back.
public struct SessionState: Sendable, Equatable {
    public var firstSeen: Int64
    public var lastSeen: Int64
    public var events: Int
    public var shortExpiresAt: Int64
    public var longExpiresAt: Int64
    public var viaFirst: String?
    public var viaLast: String?
    public var userID: String?
    public var terminalID: String?

    public init(firstEventAt t: Int64, via: String?, ttl: TTLSettings) {
        firstSeen = t
        lastSeen = t
        events = 1
        shortExpiresAt = TimeMath.add(t, ttl.shortMs)
        longExpiresAt = TimeMath.add(t, ttl.longMs)
        viaFirst = via
        viaLast = via
    }

    /// Folds one more event, received at server time `t`, into the state.
    public mutating func observe(at t: Int64, via: String?, ttl: TTLSettings) {
        if t > longExpiresAt {
            let user = userID, terminal = terminalID
            self = SessionState(firstEventAt: t, via: via, ttl: ttl)
            userID = user
            terminalID = terminal
            return
        }
        events += 1
        lastSeen = max(lastSeen, t)
        shortExpiresAt = TimeMath.add(lastSeen, ttl.shortMs)
        longExpiresAt = TimeMath.add(lastSeen, ttl.longMs)
        if let via {
            if viaFirst == nil { viaFirst = via }
            viaLast = via
        }
    }

    public func isExpired(now: Int64) -> Bool { now > longExpiresAt }
    public func isActive(now: Int64) -> Bool { now <= shortExpiresAt }

    /// Reads back the object `json(now:)` writes (a state that crossed the peer protocol).
    public init?(json: JSONValue) {
        guard case .object(let o) = json else { return nil }
        func int(_ k: String) -> Int64? { if case .number(let n)? = o[k] { return Int64(n) }; return nil }
        func str(_ k: String) -> String? { if case .string(let s)? = o[k] { return s }; return nil }
        guard let f = int("first_seen"), let l = int("last_seen"), let n = int("events"),
              let se = int("short_expires_at"), let le = int("long_expires_at") else { return nil }
        firstSeen = f
        lastSeen = l
        events = Int(n)
        shortExpiresAt = se
        longExpiresAt = le
        viaFirst = str("via_first")
        viaLast = str("via_last")
        userID = str("user_id")
        terminalID = str("terminal_id")
    }

    /// The SPEC's state object.
    public func json(now: Int64) -> JSONValue {
        func opt(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        return .object(JSONObject([
            ("first_seen", .number(String(firstSeen))),
            ("last_seen", .number(String(lastSeen))),
            ("events", .number(String(events))),
            ("short_expires_at", .number(String(shortExpiresAt))),
            ("long_expires_at", .number(String(longExpiresAt))),
            ("via_first", opt(viaFirst)),
            ("via_last", opt(viaLast)),
            ("user_id", opt(userID)),
            ("terminal_id", opt(terminalID)),
            ("active", .bool(isActive(now: now))),
        ]))
    }
}
