/// PostHog's capture API: `POST /batch/` with `{"api_key","batch":[event…],"sent_at"}`, and one
/// event (or the same batch object) at `/i/v0/e/` and `/capture/`.
///
/// | Starling | from the event |
/// |---|---|
/// | `session_id` | `properties.$session_id` |
/// | `user_id` | `distinct_id` (PostHog's person id, anonymous or identified) |
/// | `terminal_id` | `properties.$device_id`, else `$anon_distinct_id` |
/// | `key` | `event` (`$pageview`, `$identify`, or the app's name) |
/// | `value` | `properties` |
/// | `ts` | `timestamp` |
/// | `event_id` | `uuid` (the idempotency key) |
/// | `attrs` | `sdk` (`posthog`), `sent_at`, and the shell's `write_key`/`source` |
///
/// `$identify` with a session links the session to the person and the anonymous id.
public enum PostHogFormat {
    /// The project key: `api_key` (or `token`) of the body, else of the first event or its
    /// properties.
    public static func apiKey(_ body: JSONValue) -> String? {
        func key(_ o: JSONObject) -> String? {
            if let k = SDKMapping.text(o["api_key"]) ?? SDKMapping.text(o["token"]) { return k }
            if case .object(let p)? = o["properties"] { return SDKMapping.text(p["token"]) }
            return nil
        }
        switch body {
        case .object(let o):
            if let k = key(o) { return k }
            if case .array(let list)? = o["batch"], case .object(let first)? = list.first { return key(first) }
            return nil
        case .array(let list):
            if case .object(let first)? = list.first { return key(first) }
            return nil
        default:
            return nil
        }
    }

    public static func map(_ body: JSONValue, extra: JSONObject, limits: Limits) -> Result<SDKBatch, IngestError> {
        let events: [JSONValue]
        var sentAt: String? = nil
        switch body {
        case .object(let o):
            sentAt = SDKMapping.text(o["sent_at"])
            if case .array(let list)? = o["batch"] { events = list } else { events = [body] }
        case .array(let list):
            events = list
        default:
            return .failure(.init(code: "invalid_event", message: "the body must be a JSON object or array"))
        }
        var out = SDKBatch()
        for (i, v) in events.enumerated() {
            guard case .object(let e) = v else {
                return .failure(IngestError(code: "invalid_event", message: "an event must be a JSON object").at(index: i))
            }
            guard let name = SDKMapping.text(e["event"]) else { return .failure(IngestError.missingField("event").at(index: i)) }
            var properties = JSONObject()
            if case .object(let p)? = e["properties"] { properties = p }
            guard let distinct = SDKMapping.text(e["distinct_id"]) ?? SDKMapping.text(properties["distinct_id"]) else {
                return .failure(IngestError.missingField("distinct_id").at(index: i))
            }
            let session = SDKMapping.text(properties["$session_id"])
            let terminal = SDKMapping.text(properties["$device_id"]) ?? SDKMapping.text(properties["$anon_distinct_id"])
            let ts: Int64?
            switch SDKMapping.millis(e["timestamp"], field: "timestamp") {
            case .failure(let err): return .failure(err.at(index: i))
            case .success(let t): ts = t
            }
            var attrs = JSONObject([("sdk", .string("posthog"))])
            if let sentAt { attrs.fields.append(("sent_at", .string(sentAt))) }
            SDKMapping.merge(&attrs, extra)
            let object = SDKMapping.event(sessionID: session, userID: distinct, terminalID: terminal, key: name,
                                          value: .object(properties), ts: ts, eventID: SDKMapping.text(e["uuid"]), attrs: attrs)
            switch SDKMapping.validate(object, index: i, limits: limits) {
            case .failure(let err): return .failure(err)
            case .success(let event):
                out.events.append(event)
                if name == "$identify", let session {
                    out.links.append(SDKLink(sessionID: session, userID: distinct, terminalID: terminal))
                }
            }
        }
        return .success(out)
    }
}
