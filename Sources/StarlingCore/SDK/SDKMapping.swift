/// What a tracker SDK's request becomes: Starling events (validated by the same rules as
/// `POST /v1/events`) and the identity links it asks for (Segment `identify`, PostHog
/// `$identify` with a session). Pure: the formats map parsed JSON, the shell does the I/O.
public struct SDKBatch: Sendable, Equatable {
    public var events: [IncomingEvent] = []
    public var links: [SDKLink] = []
    public init() {}
}

/// A session linked to a user and/or terminal id, as `POST /v1/identify` does.
public struct SDKLink: Sendable, Equatable {
    public var sessionID: String
    public var userID: String?
    public var terminalID: String?
    public init(sessionID: String, userID: String?, terminalID: String?) {
        self.sessionID = sessionID
        self.userID = userID
        self.terminalID = terminalID
    }
}

/// Shared pieces of the SDK formats (`SegmentFormat`, `PostHogFormat`, `SnowplowFormat`).
public enum SDKMapping {
    /// The request body as JSON, with the body limits of `/v1/events` (depth, size).
    public static func parse(_ body: UnsafeRawBufferPointer, limits: Limits) -> Result<JSONValue, IngestError> {
        guard body.count <= limits.bodyBytesMax else { return .failure(.bodyTooLarge(limits.bodyBytesMax)) }
        do {
            return .success(try JSONParser.parse(body, maxDepth: limits.jsonDepthMax))
        } catch {
            return .failure(.invalidJSON("body is not valid JSON: \(error.message)"))
        }
    }

    /// A string field, or a number's text (SDKs send ids and times either way); nil for
    /// absent, null, empty or any other type.
    public static func text(_ v: JSONValue?) -> String? {
        switch v {
        case .string(let s)?: return s.isEmpty ? nil : s
        case .number(let n)?: return n
        default: return nil
        }
    }

    /// A time as epoch milliseconds: an RFC 3339 / ISO 8601 string (any fraction digits) or a
    /// number of epoch milliseconds (as a string or a number). `.failure` names the field when
    /// present but unreadable; nil when absent.
    public static func millis(_ v: JSONValue?, field: String) -> Result<Int64?, IngestError> {
        guard let t = text(v) else { return .success(nil) }
        if let ms = EventValidator.epochMillis(t) { return .success(ms) }
        if let ms = Timestamps.parseRFC3339(t) { return .success(ms) }
        return .failure(.invalidField(field, "is not a date-time or epoch milliseconds: \"\(t.prefix(64))\""))
    }

    /// Validates one mapped event as `POST /v1/events` would, the error carrying `index`.
    public static func validate(_ event: JSONObject, index: Int, limits: Limits) -> Result<IncomingEvent, IngestError> {
        let value = JSONValue.object(event)
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        switch EventValidator.event(from: value, byteCount: bytes.count, limits: limits) {
        case .success(let e): return .success(e)
        case .failure(let e): return .failure(e.at(index: index))
        }
    }

    /// Builds an event object in the SPEC's field order, leaving out absent fields.
    static func event(sessionID: String?, userID: String?, terminalID: String?, key: String, value: JSONValue,
                      ts: Int64?, eventID: String?, attrs: JSONObject) -> JSONObject {
        var o = JSONObject()
        if let sessionID { o.fields.append(("session_id", .string(sessionID))) }
        if let userID { o.fields.append(("user_id", .string(userID))) }
        if let terminalID { o.fields.append(("terminal_id", .string(terminalID))) }
        o.fields.append(("key", .string(key)))
        o.fields.append(("value", value))
        if let ts { o.fields.append(("ts", .number(String(ts)))) }
        if let eventID { o.fields.append(("event_id", .string(eventID))) }
        if !attrs.fields.isEmpty { o.fields.append(("attrs", .object(attrs))) }
        return o
    }

    /// Object fields from `extra` (the shell's stamps: `write_key` or `source`) appended to `attrs`.
    static func merge(_ attrs: inout JSONObject, _ extra: JSONObject) {
        for (k, v) in extra.fields { attrs.set(k, v) }
    }

    /// Base64, standard or URL-safe alphabet, padded or not (Snowplow's `ue_px`, `cx`).
    public static func base64Decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count * 3 / 4)
        var acc: UInt32 = 0, bits = 0
        var padding = false
        for c in s.utf8 {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): v = 63
            case UInt8(ascii: "="): padding = true; continue
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            default: return nil
            }
            if padding { return nil }   // data after padding
            acc = (acc << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xFF))
            }
        }
        return bits >= 6 ? nil : out
    }
}
