/// Segment's tracking API, which RudderStack speaks too: `POST /v1/batch` with
/// `{"batch":[message…],"sentAt","writeKey"?}`, or one message at `/v1/track`, `/v1/page`,
/// `/v1/screen`, `/v1/identify`, `/v1/group`, `/v1/alias`.
///
/// A message becomes one event (README, "Send from your existing tracker"):
///
/// | Starling | from the message |
/// |---|---|
/// | `session_id` | `context.sessionId` (RudderStack): a string as is; a number (epoch ms of the session start, unique only per device) prefixed with the anonymous (else user) id: `ANON-1700000000000` |
/// | `user_id` | `userId` |
/// | `terminal_id` | `anonymousId` |
/// | `key` | `event` for track; else the type (`page`, `screen`, `identify`, `group`, `alias`) |
/// | `value` | `properties` (track, page, screen), `traits` (identify, group), `{"previous_id"}` (alias); `{}` when absent |
/// | `ts` | `timestamp`, else `originalTimestamp` |
/// | `event_id` | `messageId` (the idempotency key) |
/// | `attrs` | `sdk` (`segment`), `type`, `name`, `category`, `group_id`, `context`, `integrations`, `channel`, `sent_at`, and the shell's `write_key`/`source` |
///
/// An `identify` with a session also links the session to its user and anonymous id.
public enum SegmentFormat {
    public static let types: Set<String> = ["track", "identify", "page", "screen", "group", "alias"]

    /// The write key: HTTP Basic's user (Segment and RudderStack send `base64("KEY:")`), else
    /// `writeKey` in the body.
    public static func writeKey(authorization: String?, body: JSONValue) -> String? {
        if let auth = authorization, auth.lowercased().hasPrefix("basic "),
           let raw = SDKMapping.base64Decode(String(auth.dropFirst(6)).trimmingSpaces) {
            let user = String(decoding: raw, as: UTF8.self).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            if let user, !user.isEmpty { return user }
        }
        if case .object(let o) = body { return SDKMapping.text(o["writeKey"]) }
        return nil
    }

    /// Maps a request. `single`: the type of a single-message path (`/v1/track` → "track"),
    /// nil for `/v1/batch`. `extra` goes into every event's `attrs`.
    public static func map(_ body: JSONValue, single: String?, extra: JSONObject, limits: Limits) -> Result<SDKBatch, IngestError> {
        guard case .object(let top) = body else {
            return .failure(.init(code: "invalid_event", message: "the body must be a JSON object"))
        }
        let messages: [JSONValue]
        if let single {
            var m = top
            if m["type"] == nil { m.set("type", .string(single)) }
            messages = [.object(m)]
        } else {
            guard case .array(let list)? = top["batch"] else {
                return .failure(.missingField("batch"))
            }
            messages = list
        }
        let sentAt = SDKMapping.text(top["sentAt"])
        var out = SDKBatch()
        for (i, v) in messages.enumerated() {
            guard case .object(let m) = v else {
                return .failure(IngestError(code: "invalid_event", message: "a message must be a JSON object").at(index: i))
            }
            switch message(m, sentAt: sentAt, extra: extra, limits: limits, index: i) {
            case .failure(let e): return .failure(e)
            case .success(let (event, link)):
                out.events.append(event)
                if let link { out.links.append(link) }
            }
        }
        return .success(out)
    }

    static func message(_ m: JSONObject, sentAt: String?, extra: JSONObject, limits: Limits, index i: Int)
        -> Result<(IncomingEvent, SDKLink?), IngestError> {
        guard let type = SDKMapping.text(m["type"]), types.contains(type) else {
            return .failure(IngestError.invalidField("type", "must be one of \(types.sorted().joined(separator: ", "))").at(index: i))
        }
        let userID = SDKMapping.text(m["userId"])
        let anonymousID = SDKMapping.text(m["anonymousId"])
        guard userID != nil || anonymousID != nil else {
            return .failure(IngestError(code: "missing_field", message: "a message needs 'userId' or 'anonymousId'").at(index: i))
        }
        var context: JSONObject? = nil
        if case .object(let c)? = m["context"] { context = c }
        var sessionID: String? = nil
        switch context?["sessionId"] {
        case .string(let s)? where !s.isEmpty: sessionID = s
        case .number(let n)?: sessionID = "\(anonymousID ?? userID ?? "")-\(n)"
        default: break
        }
        let key: String
        let value: JSONValue
        switch type {
        case "track":
            guard let name = SDKMapping.text(m["event"]) else {
                return .failure(IngestError.missingField("event").at(index: i))
            }
            key = name
            value = m["properties"] ?? .object(JSONObject())
        case "page", "screen":
            key = type
            value = m["properties"] ?? .object(JSONObject())
        case "identify", "group":
            key = type
            value = m["traits"] ?? .object(JSONObject())
        default:  // alias
            key = type
            value = .object(JSONObject(SDKMapping.text(m["previousId"]).map { [("previous_id", .string($0))] } ?? []))
        }
        var ts: Int64? = nil
        for field in ["timestamp", "originalTimestamp"] where ts == nil {
            switch SDKMapping.millis(m[field], field: field) {
            case .failure(let e): return .failure(e.at(index: i))
            case .success(let t): ts = t
            }
        }
        var attrs = JSONObject([("sdk", .string("segment")), ("type", .string(type))])
        if let name = SDKMapping.text(m["name"]) { attrs.fields.append(("name", .string(name))) }
        if let category = SDKMapping.text(m["category"]) { attrs.fields.append(("category", .string(category))) }
        if let group = SDKMapping.text(m["groupId"]) { attrs.fields.append(("group_id", .string(group))) }
        if let context { attrs.fields.append(("context", .object(context))) }
        if let integrations = m["integrations"] { attrs.fields.append(("integrations", integrations)) }
        if let channel = SDKMapping.text(m["channel"]) { attrs.fields.append(("channel", .string(channel))) }
        if let sentAt { attrs.fields.append(("sent_at", .string(sentAt))) }
        SDKMapping.merge(&attrs, extra)
        let object = SDKMapping.event(sessionID: sessionID, userID: userID, terminalID: anonymousID, key: key, value: value,
                                      ts: ts, eventID: SDKMapping.text(m["messageId"]), attrs: attrs)
        return SDKMapping.validate(object, index: i, limits: limits).map { event in
            let link = type == "identify" ? sessionID.map { SDKLink(sessionID: $0, userID: userID, terminalID: anonymousID) } : nil
            return (event, link)
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    public var trimmingSpaces: String {
        let u = Array(utf8)
        var a = 0, b = u.count
        while a < b && (u[a] == 0x20 || u[a] == 0x09) { a += 1 }
        while b > a && (u[b - 1] == 0x20 || u[b - 1] == 0x09) { b -= 1 }
        return String(decoding: u[a..<b], as: UTF8.self)
    }
}
