/// An event as accepted from a client, validated, before the node stamps it.
///
/// `fields` keeps the object exactly as sent (order and unknown fields included);
/// the typed properties are the fields Starling itself reads.
public struct IncomingEvent: Sendable, Equatable {
    public var fields: JSONObject
    public var sessionID: String?
    public var key: String
    /// Client time in epoch milliseconds, if sent (RFC 3339 strings are converted).
    public var ts: Int64?
    public var eventID: String?
    public var userID: String?
    public var terminalID: String?
    public var accountID: String?
    public var component: String?
    public var via: String?
    /// Counted as an error in `/v1/stats/components` (see `EventValidator.looksLikeError`).
    public var isError: Bool

    public init(fields: JSONObject, sessionID: String?, key: String, ts: Int64? = nil, eventID: String? = nil,
                userID: String? = nil, terminalID: String? = nil, accountID: String? = nil,
                component: String? = nil, via: String? = nil, isError: Bool = false) {
        self.fields = fields
        self.sessionID = sessionID
        self.key = key
        self.ts = ts
        self.eventID = eventID
        self.userID = userID
        self.terminalID = terminalID
        self.accountID = accountID
        self.component = component
        self.via = via
        self.isError = isError
    }
}

/// How an event reached the node; the `transport` label of ingest metrics.
public enum Transport: String, Sendable, CaseIterable {
    case http, pixel, udp, peer
}

/// Builds the JSON that is stored and returned for an event: every field as sent,
/// `ts` normalised to epoch ms, plus `event_id`, `received_at`, `node`, `ip`
/// (server-stamped fields replace client-sent fields of the same name).
public enum StoredEvent {
    public static func json(of event: IncomingEvent, sessionID: String?, eventID: String, ts: Int64,
                            receivedAt: Int64, node: String, ip: String) -> [UInt8] {
        var obj = event.fields
        if let sessionID, event.sessionID == nil { obj.set("session_id", .string(sessionID)) }
        obj.set("ts", .number(String(ts)))
        obj.set("event_id", .string(eventID))
        obj.set("received_at", .number(String(receivedAt)))
        obj.set("node", .string(node))
        obj.set("ip", .string(ip))
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONWriter.write(.object(obj), into: &out)
        return out
    }
}
