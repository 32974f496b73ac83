/// Snowplow's tracker protocol: `POST /com.snowplowanalytics.snowplow/tp2` with a
/// `payload_data` self-describing JSON (`{"schema","data":[{field: value}…]}`), and `GET /i` with
/// one event's fields as query parameters.
///
/// | Starling | from the fields |
/// |---|---|
/// | `session_id` | `sid`, else the `client_session` context's `sessionId` |
/// | `user_id` | `uid` |
/// | `terminal_id` | `duid` (domain user id), else the network user id (`nuid`, or the collector's cookie), else the `client_session` context's `userId` |
/// | `key` | by `e`: `pv` page_view, `pp` page_ping, `se` the action (`se_ac`), `ue` the event schema's name (`link_click`), `tr` transaction, `ti` transaction_item |
/// | `value` | `pv`: `{url, title, referrer}`; `se`: `{category, action, label, property, value}`; `ue`: the event's data; else the event's own fields |
/// | `ts` | `ttm` (true time), else `dtm` (device time); strings or integers |
/// | `event_id` | `eid` (the idempotency key) |
/// | `attrs` | `sdk` (`snowplow`), `schema` (ue), `contexts` (the decoded `co`/`cx` entities), `fields` (every other field as sent), and the shell's stamps |
public enum SnowplowFormat {
    /// Fields consumed by the mapping (not repeated under `attrs.fields`).
    static let consumed: Set<String> = ["e", "eid", "sid", "uid", "duid", "nuid", "ttm", "dtm", "ue_pr", "ue_px", "co", "cx",
                                        "se_ca", "se_ac", "se_la", "se_pr", "se_va", "url", "page", "refr"]

    /// The app id (`aid`) of a POST body's first event: Snowplow trackers send no key, so with
    /// write keys configured the app id is checked as one.
    public static func appID(_ body: JSONValue) -> String? {
        var items: [JSONValue] = []
        if case .object(let o) = body, case .array(let list)? = o["data"] { items = list }
        if case .array(let list) = body { items = list }
        if case .object(let first)? = items.first { return SDKMapping.text(first["aid"]) }
        return nil
    }

    /// A POST body: the `payload_data` wrapper, or (lenient) a bare array of events.
    public static func map(_ body: JSONValue, extra: JSONObject, limits: Limits) -> Result<SDKBatch, IngestError> {
        let items: [JSONValue]
        switch body {
        case .object(let o):
            guard case .array(let list)? = o["data"] else { return .failure(.missingField("data")) }
            items = list
        case .array(let list):
            items = list
        default:
            return .failure(.init(code: "invalid_event", message: "the body must be a payload_data JSON object"))
        }
        var out = SDKBatch()
        for (i, v) in items.enumerated() {
            guard case .object(let o) = v else {
                return .failure(IngestError(code: "invalid_event", message: "an event must be a JSON object").at(index: i))
            }
            switch event(o, extra: extra, limits: limits, index: i) {
            case .failure(let e): return .failure(e)
            case .success(let e): out.events.append(e)
            }
        }
        return .success(out)
    }

    /// One event from `GET /i`'s query parameters.
    public static func event(query: [String: String], extra: JSONObject, limits: Limits) -> Result<IncomingEvent, IngestError> {
        let fields = JSONObject(query.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) })
        return event(fields, extra: extra, limits: limits, index: 0)
    }

    static func event(_ f: JSONObject, extra: JSONObject, limits: Limits, index i: Int) -> Result<IncomingEvent, IngestError> {
        func fail(_ e: IngestError) -> Result<IncomingEvent, IngestError> { .failure(e.at(index: i)) }
        guard let e = SDKMapping.text(f["e"]) else { return fail(.missingField("e")) }
        // Contexts: `co` is JSON, `cx` the same in base64.
        var contexts: [JSONValue] = []
        switch selfDescribing(f, plain: "co", encoded: "cx", limits: limits) {
        case .failure(let err): return fail(err)
        case .success(let v?):
            guard case .object(let w) = v, case .array(let list)? = w["data"] else {
                return fail(.invalidField("co", "must be a contexts self-describing JSON ({\"schema\",\"data\":[…]})"))
            }
            contexts = list
        case .success(nil): break
        }
        var session: (id: String?, user: String?) = (nil, nil)
        for c in contexts {
            if case .object(let o) = c, let schema = SDKMapping.text(o["schema"]), schema.contains("/client_session/"),
               case .object(let d)? = o["data"] {
                session = (SDKMapping.text(d["sessionId"]), SDKMapping.text(d["userId"]))
            }
        }
        var attrs = JSONObject([("sdk", .string("snowplow"))])
        let key: String
        var value: JSONValue
        switch e {
        case "pv":
            key = "page_view"
            value = .object(JSONObject([("url", f["url"] ?? .null), ("title", f["page"] ?? .null), ("referrer", f["refr"] ?? .null)]))
        case "pp":
            key = "page_ping"
            value = .object(JSONObject(f.fields.filter { $0.key.hasPrefix("pp_") } + [("url", f["url"] ?? .null)]))
        case "se":
            guard let action = SDKMapping.text(f["se_ac"]) else { return fail(.missingField("se_ac")) }
            key = action
            var v = JSONObject([("category", f["se_ca"] ?? .null), ("action", .string(action)),
                                ("label", f["se_la"] ?? .null), ("property", f["se_pr"] ?? .null)])
            if let n = SDKMapping.text(f["se_va"]) {
                v.fields.append(("value", Double(n).map { _ in JSONValue.number(n) } ?? .string(n)))
            }
            value = .object(v)
        case "ue":
            let wrapped: JSONValue
            switch selfDescribing(f, plain: "ue_pr", encoded: "ue_px", limits: limits) {
            case .failure(let err): return fail(err)
            case .success(nil): return fail(.missingField("ue_pr"))
            case .success(let v?): wrapped = v
            }
            guard case .object(let w) = wrapped, case .object(let inner)? = w["data"],
                  let schema = SDKMapping.text(inner["schema"]) else {
                return fail(.invalidField("ue_pr", "must be an unstruct_event self-describing JSON with a data.schema"))
            }
            key = schemaName(schema)
            value = inner["data"] ?? .object(JSONObject())
            attrs.fields.append(("schema", .string(schema)))
        case "tr":
            key = "transaction"
            value = .object(JSONObject(f.fields.filter { $0.key.hasPrefix("tr_") }))
        case "ti":
            key = "transaction_item"
            value = .object(JSONObject(f.fields.filter { $0.key.hasPrefix("ti_") }))
        default:
            key = e
            value = .object(JSONObject())
        }
        var ts: Int64? = nil
        for field in ["ttm", "dtm"] where ts == nil {
            switch SDKMapping.millis(f[field], field: field) {
            case .failure(let err): return fail(err)
            case .success(let t): ts = t
            }
        }
        if !contexts.isEmpty { attrs.fields.append(("contexts", .array(contexts))) }
        let rest = f.fields.filter { !consumed.contains($0.key) && !($0.key.hasPrefix("pp_") || $0.key.hasPrefix("tr_") || $0.key.hasPrefix("ti_")) }
        if !rest.isEmpty { attrs.fields.append(("fields", .object(JSONObject(rest)))) }
        SDKMapping.merge(&attrs, extra)
        let terminal = SDKMapping.text(f["duid"]) ?? SDKMapping.text(f["nuid"]) ?? session.user
        let object = SDKMapping.event(sessionID: SDKMapping.text(f["sid"]) ?? session.id, userID: SDKMapping.text(f["uid"]),
                                      terminalID: terminal, key: key, value: value, ts: ts,
                                      eventID: SDKMapping.text(f["eid"]), attrs: attrs)
        return SDKMapping.validate(object, index: i, limits: limits)
    }

    /// `iglu:com.acme/link_click/jsonschema/1-0-0` → `link_click`.
    static func schemaName(_ schema: String) -> String {
        let parts = schema.split(separator: "/")
        return parts.count >= 2 ? String(parts[1]) : schema
    }

    /// A self-describing JSON field given plain (`plain`, JSON text) or base64 (`encoded`).
    static func selfDescribing(_ f: JSONObject, plain: String, encoded: String, limits: Limits) -> Result<JSONValue?, IngestError> {
        var text: [UInt8]
        if let p = SDKMapping.text(f[plain]) {
            text = Array(p.utf8)
        } else if let x = SDKMapping.text(f[encoded]) {
            guard let raw = SDKMapping.base64Decode(x) else { return .failure(.invalidField(encoded, "is not base64")) }
            text = raw
        } else {
            return .success(nil)
        }
        guard let v = try? JSONParser.parse(text, maxDepth: limits.jsonDepthMax) else {
            return .failure(.invalidField(f[plain] != nil ? plain : encoded, "is not valid JSON"))
        }
        return .success(v)
    }
}
