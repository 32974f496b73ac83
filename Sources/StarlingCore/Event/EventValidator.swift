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
        let scanned: (isArray: Bool, elements: [JSONSpan])
        do {
            scanned = try JSONParser.scanTopLevelElements(body, maxDepth: limits.jsonDepthMax)
        } catch {
            return .failure(.invalidJSON("body is not valid JSON: \(error.message)"))
        }
        if scanned.isArray && scanned.elements.isEmpty {
            return .failure(.init(code: "empty_batch", message: "batch array holds no events"))
        }
        if scanned.elements.count > limits.requestEventsMax {
            return .failure(.init(code: "too_many_events", message: "batch holds \(scanned.elements.count) events, the limit is \(limits.requestEventsMax)"))
        }
        var out: [IncomingEvent] = []
        out.reserveCapacity(scanned.elements.count)
        for (i, element) in scanned.elements.enumerated() {
            switch event(from: element, in: body, limits: limits) {
            case .success(let e): out.append(e)
            case .failure(let err): return .failure(scanned.isArray ? err.at(index: i) : err)
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
            switch event(fromJSON: line, limits: limits, what: "line") {
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
        return event(fromJSON: bytes, limits: limits, what: "datagram")
    }

    /// Validates the text of one event (a datagram, an NDJSON line, a forwarded event);
    /// `what` names it in the error message.
    public static func event(fromJSON bytes: UnsafeRawBufferPointer, limits: Limits, what: String = "event") -> Result<IncomingEvent, IngestError> {
        let span: JSONSpan
        do {
            span = try JSONParser.scan(bytes, maxDepth: limits.jsonDepthMax)
        } catch {
            return .failure(.invalidJSON("\(what) is not valid JSON: \(error.message)"))
        }
        return event(from: span, in: bytes, limits: limits)
    }

    /// Member index of each known field (-1: absent), by its slot in `knownFields`.
    struct KnownFieldIndex {
        var s0 = -1, s1 = -1, s2 = -1, s3 = -1, s4 = -1, s5 = -1, s6 = -1, s7 = -1, s8 = -1, s9 = -1, s10 = -1
        subscript(slot: Int) -> Int {
            get {
                switch slot {
                case 0: return s0
                case 1: return s1
                case 2: return s2
                case 3: return s3
                case 4: return s4
                case 5: return s5
                case 6: return s6
                case 7: return s7
                case 8: return s8
                case 9: return s9
                default: return s10
                }
            }
            set {
                switch slot {
                case 0: s0 = newValue
                case 1: s1 = newValue
                case 2: s2 = newValue
                case 3: s3 = newValue
                case 4: s4 = newValue
                case 5: s5 = newValue
                case 6: s6 = newValue
                case 7: s7 = newValue
                case 8: s8 = newValue
                case 9: s9 = newValue
                default: s10 = newValue
                }
            }
        }
    }

    /// The names of the fields Starling reads, in the order their faults are reported.
    static let knownFields = ["session_id", "key", "value", "ts", "event_id", "user_id", "terminal_id",
                              "account_id", "component", "via", "attrs"]

    /// The slot of a member name in `knownFields`, -1 for other names. Dispatches on the length
    /// first (O(1) for a native string), so a name is compared with at most two candidates
    /// instead of each known name in turn (this runs for every member of every event).
    @inline(__always)
    static func knownSlot(_ key: String) -> Int {
        switch key.utf8.count {
        case 2: return key == "ts" ? 3 : -1
        case 3: return key == "key" ? 1 : key == "via" ? 9 : -1
        case 5: return key == "value" ? 2 : key == "attrs" ? 10 : -1
        case 7: return key == "user_id" ? 5 : -1
        case 8: return key == "event_id" ? 4 : -1
        case 9: return key == "component" ? 8 : -1
        case 10: return key == "session_id" ? 0 : key == "account_id" ? 7 : -1
        case 11: return key == "terminal_id" ? 6 : -1
        default: return -1
        }
    }

    /// Validates one scanned (syntactically valid) value as an event. Only the fields Starling
    /// reads are decoded; the stored prefix is the client's members copied as sent, minus the
    /// server-stamped ones.
    ///
    /// Long on purpose: it is the per-event hot path of every ingest, one pass over the members
    /// with each field's rule inline in one switch, so the rules for all ten fields read side by
    /// side, in the order the SPEC lists them, and no per-field call or intermediate value is made.
    public static func event(from span: JSONSpan, in bytes: UnsafeRawBufferPointer, limits: Limits) -> Result<IncomingEvent, IngestError> {
        let range = span.range
        if range.count > limits.eventBytesMax { return .failure(.eventTooLarge(range.count, limits.eventBytesMax)) }
        guard case .object(_, let members) = span else {
            return .failure(.init(code: "invalid_event", message: "an event must be a JSON object"))
        }
        // Where each known field is (its member index), and how often it appears.
        var at = KnownFieldIndex()
        var seen: UInt32 = 0, repeated: UInt32 = 0
        var prefix: [UInt8] = []
        prefix.reserveCapacity(range.count + 16)
        prefix.append(UInt8(ascii: "{"))
        for (m, member) in members.enumerated() {
            let slot = knownSlot(member.key)
            if slot >= 0 {
                let bit: UInt32 = 1 << UInt32(slot)
                if seen & bit != 0 { repeated |= bit } else { seen |= bit }
                at[slot] = m
            }
            // `ts` and `event_id` are known slots; the other stamped names are not.
            if slot == 3 || slot == 4 || (slot < 0 && StoredEvent.isStamped(member.key)) { continue }
            prefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[member.start..<member.end]))
            prefix.append(UInt8(ascii: ","))
        }
        if repeated != 0 {
            let slot = repeated.trailingZeroBitCount
            return .failure(.invalidField(knownFields[slot], "appears more than once"))
        }
        let found = at
        func member(_ slot: Int) -> JSONMemberSpan? {
            let m = found[slot]
            return m < 0 ? nil : members[m]
        }
        func string(_ slot: Int, min: Int, max: Int) throws(IngestError) -> String? {
            guard let m = member(slot) else { return nil }
            let name = knownFields[slot]
            guard bytes[m.valueStart] == UInt8(ascii: "\""), let s = JSONParser.decodeString(bytes, at: m.valueStart) else {
                throw IngestError.invalidField(name, "must be a string")
            }
            let n = s.utf8.count
            if n < min { throw IngestError.invalidField(name, "must not be empty") }
            if n > max { throw IngestError.invalidField(name, "is \(n) bytes, the limit is \(max)") }
            return s
        }
        do throws(IngestError) {
            let sessionID = try string(0, min: 1, max: limits.sessionIDBytesMax)
            let userID = try string(5, min: 0, max: limits.identityBytesMax).nonEmpty
            let terminalID = try string(6, min: 0, max: limits.identityBytesMax).nonEmpty
            let accountID = try string(7, min: 0, max: limits.identityBytesMax).nonEmpty
            let component = try string(8, min: 0, max: limits.identityBytesMax).nonEmpty
            let via = try string(9, min: 0, max: limits.identityBytesMax).nonEmpty
            guard let key = try string(1, min: 1, max: limits.keyBytesMax) else {
                throw IngestError.missingField("key")
            }
            guard member(2) != nil else { throw IngestError.missingField("value") }
            if sessionID == nil && userID == nil && terminalID == nil {
                throw IngestError(code: "missing_field", message: "an event needs one of 'session_id', 'user_id' or 'terminal_id'")
            }
            let eventID = try string(4, min: 1, max: limits.eventIDBytesMax)
            var ts: Int64?
            if let m = member(3) {
                let text = UnsafeRawBufferPointer(rebasing: bytes[m.valueStart..<m.end])
                guard let v = try? JSONParser.parse(text) else { throw IngestError.invalidField("ts", "is not valid JSON") }
                ts = try timestamp(v)
            }
            var attrsLevel: String?
            if let m = member(10) {
                let text = UnsafeRawBufferPointer(rebasing: bytes[m.valueStart..<m.end])
                guard case .object(_, let attrs)? = try? JSONParser.scan(text) else {
                    throw IngestError.invalidField("attrs", "must be an object")
                }
                if let level = attrs.first(where: { $0.key == "level" }), text[level.valueStart] == UInt8(ascii: "\"") {
                    attrsLevel = JSONParser.decodeString(text, at: level.valueStart)
                }
            }
            return .success(IncomingEvent(
                prefix: prefix, sessionID: sessionID, key: key, ts: ts, eventID: eventID,
                userID: userID, terminalID: terminalID, accountID: accountID, component: component, via: via,
                isError: looksLikeError(key: key, level: attrsLevel)))
        } catch {
            return .failure(error)
        }
    }

    /// Validates one event given as a parsed value (events built in code, such as the pixel's).
    public static func event(from value: JSONValue, byteCount: Int, limits: Limits) -> Result<IncomingEvent, IngestError> {
        var text: [UInt8] = []
        JSONWriter.write(value, into: &text)
        return text.withUnsafeBytes { buf in
            guard let span = try? JSONParser.scan(buf, maxDepth: JSONParser.depthCeiling) else {
                return .failure(.init(code: "invalid_event", message: "an event must be a JSON object"))
            }
            // The size limit applies to what the client sent, not to this re-serialisation.
            if byteCount > limits.eventBytesMax { return .failure(.eventTooLarge(byteCount, limits.eventBytesMax)) }
            var relaxed = limits
            relaxed.eventBytesMax = Int.max
            return event(from: span, in: buf, limits: relaxed)
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

    static func timestamp(_ v: JSONValue) throws(IngestError) -> Int64 {
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
