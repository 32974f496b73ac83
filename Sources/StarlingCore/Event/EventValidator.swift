/// Turns client input (JSON bodies, NDJSON, pixel query strings, datagrams) into
/// `IncomingEvent`s, or a precise `IngestError`. A request is validated whole
/// before anything is stored: the first faulty event rejects the request.
public enum EventValidator {
    public enum BodyFormat: Sendable { case json, ndjson }

    /// Latest valid `ts`: 9999-12-31T23:59:59.999Z.
    public static let tsMax: Int64 = 253_402_300_799_999

    public static func format(contentType: String?) -> BodyFormat {
        guard let ct = contentType else { return .json }
        return ASCIISearch.contains(ct, "ndjson") || ASCIISearch.contains(ct, "jsonlines") ? .ndjson : .json
    }

    /// Parses and validates a whole request body.
    public static func events(fromBody body: UnsafeRawBufferPointer, format: BodyFormat,
                              limits: Limits) -> Result<[IncomingEvent], IngestError> {
        if body.count > limits.bodyBytesMax { return .failure(.bodyTooLarge(limits.bodyBytesMax)) }
        switch format {
        case .json: return jsonBody(body, limits: limits)
        case .ndjson: return ndjsonBody(body, limits: limits)
        }
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    static func jsonBody(_ body: UnsafeRawBufferPointer, limits: Limits) -> Result<[IncomingEvent], IngestError> {
        if body.allSatisfy(isSpace) { return .failure(.init(code: "empty_body", message: "request body is empty")) }
        let parsed: (isArray: Bool, elements: [(value: JSONValue, byteCount: Int)])
        do {
            parsed = try JSONParser.parseTopLevelElements(body, maxDepth: limits.jsonDepthMax)
        } catch {
            return .failure(.invalidJSON("body is not valid JSON: \(error.message)"))
        }
        if parsed.isArray && parsed.elements.isEmpty {
            return .failure(.init(code: "empty_batch", message: "batch array holds no events"))
        }
        if parsed.elements.count > limits.requestEventsMax {
            return .failure(.init(code: "too_many_events", message: "batch holds \(parsed.elements.count) events, the limit is \(limits.requestEventsMax)"))
        }
        var out: [IncomingEvent] = []
        out.reserveCapacity(parsed.elements.count)
        for (i, element) in parsed.elements.enumerated() {
            let r = event(from: element.value, byteCount: element.byteCount, limits: limits)
            switch r {
            case .success(let e): out.append(e)
            case .failure(let err): return .failure(parsed.isArray ? err.at(index: i) : err)
            }
        }
        return .success(out)
    }

    static func ndjsonBody(_ body: UnsafeRawBufferPointer, limits: Limits) -> Result<[IncomingEvent], IngestError> {
        var out: [IncomingEvent] = []
        var start = 0
        var index = 0
        let n = body.count
        while start < n {
            var end = start
            while end < n && body[end] != 0x0A { end += 1 }
            let line = UnsafeRawBufferPointer(rebasing: body[start..<end])
            start = end + 1
            if line.allSatisfy(isSpace) { continue }
            if out.count >= limits.requestEventsMax {
                return .failure(.init(code: "too_many_events", message: "body holds more than \(limits.requestEventsMax) events"))
            }
            let value: JSONValue
            do {
                value = try JSONParser.parse(line, maxDepth: limits.jsonDepthMax)
            } catch {
                return .failure(IngestError.invalidJSON("line is not valid JSON: \(error.message)").at(index: index))
            }
            switch event(from: value, byteCount: line.count, limits: limits) {
            case .success(let e): out.append(e)
            case .failure(let err): return .failure(err.at(index: index))
            }
            index += 1
        }
        if out.isEmpty { return .failure(.init(code: "empty_body", message: "request body holds no events")) }
        return .success(out)
    }

    /// Validates one datagram (one JSON object).
    public static func event(fromDatagram bytes: UnsafeRawBufferPointer, limits: Limits) -> Result<IncomingEvent, IngestError> {
        if bytes.count > limits.datagramBytesMax {
            return .failure(.init(status: 413, code: "datagram_too_large", message: "datagram is \(bytes.count) bytes, the limit is \(limits.datagramBytesMax)"))
        }
        do {
            let value = try JSONParser.parse(bytes, maxDepth: limits.jsonDepthMax)
            return event(from: value, byteCount: bytes.count, limits: limits)
        } catch {
            return .failure(.invalidJSON("datagram is not valid JSON: \(error.message)"))
        }
    }

    /// Validates one event object whose text spanned `byteCount` bytes.
    public static func event(from value: JSONValue, byteCount: Int, limits: Limits) -> Result<IncomingEvent, IngestError> {
        if byteCount > limits.eventBytesMax { return .failure(.eventTooLarge(byteCount, limits.eventBytesMax)) }
        guard case .object(let obj) = value else {
            return .failure(.init(code: "invalid_event", message: "an event must be a JSON object"))
        }
        for name in ["session_id", "key", "value", "ts", "event_id", "user_id", "terminal_id",
                     "account_id", "component", "via", "attrs"] where obj.count(of: name) > 1 {
            return .failure(.invalidField(name, "appears more than once"))
        }
        do {
            let sessionID = try string(obj, "session_id", min: 1, max: limits.sessionIDBytesMax)
            let userID = try string(obj, "user_id", min: 0, max: limits.identityBytesMax).nonEmpty
            let terminalID = try string(obj, "terminal_id", min: 0, max: limits.identityBytesMax).nonEmpty
            let accountID = try string(obj, "account_id", min: 0, max: limits.identityBytesMax).nonEmpty
            let component = try string(obj, "component", min: 0, max: limits.identityBytesMax).nonEmpty
            let via = try string(obj, "via", min: 0, max: limits.identityBytesMax).nonEmpty
            guard let key = try string(obj, "key", min: 1, max: limits.keyBytesMax) else {
                throw IngestError.missingField("key")
            }
            guard obj["value"] != nil else { throw IngestError.missingField("value") }
            if sessionID == nil && userID == nil && terminalID == nil {
                throw IngestError(code: "missing_field", message: "an event needs one of 'session_id', 'user_id' or 'terminal_id'")
            }
            let eventID = try string(obj, "event_id", min: 1, max: limits.eventIDBytesMax)
            var ts: Int64?
            if let t = obj["ts"] {
                ts = try timestamp(t)
            }
            var attrsLevel: String?
            if let a = obj["attrs"] {
                guard case .object(let attrs) = a else { throw IngestError.invalidField("attrs", "must be an object") }
                if case .string(let level)? = attrs["level"] { attrsLevel = level }
            }
            return .success(IncomingEvent(
                fields: obj, sessionID: sessionID, key: key, ts: ts, eventID: eventID,
                userID: userID, terminalID: terminalID, accountID: accountID, component: component, via: via,
                isError: looksLikeError(key: key, level: attrsLevel)))
        } catch let e as IngestError {
            return .failure(e)
        } catch {
            return .failure(.init(code: "invalid_event", message: "\(error)"))
        }
    }

    /// An event counts as an error for `/v1/stats/components` when its key names an
    /// error or exception, or its `attrs.level` is error/fatal/critical.
    public static func looksLikeError(key: String, level: String?) -> Bool {
        if ASCIISearch.contains(key, "error") || ASCIISearch.contains(key, "exception") || ASCIISearch.contains(key, "fatal") {
            return true
        }
        guard let l = level else { return false }
        return ASCIISearch.equals(l, "error") || ASCIISearch.equals(l, "fatal") || ASCIISearch.equals(l, "critical")
    }

    /// A string field within length bounds; nil when absent.
    public static func string(_ obj: JSONObject, _ name: String, min: Int, max: Int) throws -> String? {
        guard let v = obj[name] else { return nil }
        guard case .string(let s) = v else { throw IngestError.invalidField(name, "must be a string") }
        let n = s.utf8.count
        if n < min { throw IngestError.invalidField(name, "must not be empty") }
        if n > max { throw IngestError.invalidField(name, "is \(n) bytes, the limit is \(max)") }
        return s
    }

    static func timestamp(_ v: JSONValue) throws -> Int64 {
        switch v {
        case .string(let s):
            guard let ms = Timestamps.parseRFC3339(s) else {
                throw IngestError.invalidField("ts", "is not an RFC 3339 date-time: \"\(s.prefix(64))\"")
            }
            guard ms >= 0 else { throw IngestError.invalidField("ts", "is before 1970") }
            return ms
        case .number(let raw):
            guard let ms = epochMillis(raw) else {
                throw IngestError.invalidField("ts", "must be whole epoch milliseconds between 0 and \(tsMax)")
            }
            return ms
        default:
            throw IngestError.invalidField("ts", "must be an RFC 3339 string or epoch milliseconds")
        }
    }

    /// Whole, non-negative epoch milliseconds within range, from raw number text.
    public static func epochMillis(_ raw: Substring) -> Int64? {
        guard !raw.isEmpty, raw.utf8.count <= 16, raw.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let v = Int64(raw), v <= tsMax else { return nil }
        return v
    }
    public static func epochMillis(_ raw: String) -> Int64? { epochMillis(Substring(raw)) }

    /// The browser pixel: `sid, k, v, uid, tid, c, via, ts, eid` (values are strings).
    public static func event(fromPixel q: [String: String], limits: Limits) -> Result<IncomingEvent, IngestError> {
        var obj = JSONObject()
        let map: [(String, String)] = [("sid", "session_id"), ("k", "key"), ("v", "value"), ("uid", "user_id"),
                                       ("tid", "terminal_id"), ("c", "component"), ("via", "via"), ("eid", "event_id")]
        var size = 0
        for (param, field) in map {
            if let v = q[param] {
                obj.fields.append((field, .string(v)))
                size += v.utf8.count + field.utf8.count + 6
            }
        }
        if let t = q["ts"] {
            guard let ms = epochMillis(t) else {
                return .failure(.invalidField("ts", "must be whole epoch milliseconds"))
            }
            obj.fields.append(("ts", .number(String(ms))))
        }
        guard q["k"] != nil else { return .failure(.missingField("k")) }
        guard q["v"] != nil else { return .failure(.missingField("v")) }
        return event(from: .object(obj), byteCount: size, limits: limits)
    }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? {
        switch self {
        case .some(let s) where !s.isEmpty: return s
        default: return nil
        }
    }
}
