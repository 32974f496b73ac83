/// An event as accepted from a client, validated, before the node stamps it.
///
/// `prefix` is the start of the stored JSON (see `StoredEvent`): the client's members as
/// sent (order, unknown fields and spelling included), minus the server-stamped ones; the
/// typed properties are the fields Starling itself reads.
public struct IncomingEvent: Sendable, Equatable {
    public var prefix: [UInt8]
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

    public init(prefix: [UInt8], sessionID: String?, key: String, ts: Int64? = nil, eventID: String? = nil,
                userID: String? = nil, terminalID: String? = nil, accountID: String? = nil,
                component: String? = nil, via: String? = nil, isError: Bool = false) {
        self.prefix = prefix
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

extension IncomingEvent {
    /// The event as a client would send it again: the prefix plus the client's own `ts`
    /// (normalised to epoch ms) and `event_id`. What a node forwards to the session's owner.
    public func clientJSON() -> [UInt8] {
        var out = prefix
        if let ts {
            out.append(contentsOf: #""ts":"#.utf8)
            out.append(contentsOf: String(ts).utf8)
            out.append(UInt8(ascii: ","))
        }
        if let eventID {
            out.append(contentsOf: #""event_id":"#.utf8)
            JSONWriter.writeString(eventID, into: &out)
            out.append(UInt8(ascii: ","))
        }
        if out.last == UInt8(ascii: ",") { out[out.count - 1] = UInt8(ascii: "}") } else { out.append(UInt8(ascii: "}")) }
        return out
    }

    /// The client's fields as a parsed object (tests and diagnostics; the stamped ones excluded).
    public var fields: JSONObject {
        var text = prefix
        if text.last == UInt8(ascii: ",") { text[text.count - 1] = UInt8(ascii: "}") } else { text.append(UInt8(ascii: "}")) }
        if case .object(let o)? = try? JSONParser.parse(text, maxDepth: JSONParser.depthCeiling) { return o }
        return JSONObject()
    }

    /// Sets the session id the server resolved for an identity-only event.
    public mutating func resolve(sessionID: String) {
        self.sessionID = sessionID
        prefix.append(contentsOf: #""session_id":"#.utf8)
        JSONWriter.writeString(sessionID, into: &prefix)
        prefix.append(UInt8(ascii: ","))
    }
}

/// How an event reached the node; the `transport` label of ingest metrics.
public enum Transport: String, Sendable, CaseIterable {
    case http, pixel, udp, peer
    /// The SDK formats (`SegmentFormat` also for RudderStack, `PostHogFormat`, `SnowplowFormat`).
    case segment, posthog, snowplow
}

/// Builds the JSON that is stored and returned for an event: every field as sent,
/// then `ts` (normalised to epoch ms), `event_id`, `received_at`, `node`, `ip` (and
/// `session_id` when the server resolved it). Server-stamped fields replace client-sent
/// fields of the same name.
///
/// Built in two steps so the expensive part runs on the I/O threads in parallel: `prefix`
/// (the client's fields, serialised once, without the stamped ones and without the closing
/// brace) when the event arrives, and `finish` (a short suffix) in the log writer.
public enum StoredEvent {
    /// The fields the server stamps; a client's fields of these names are not stored.
    @inline(__always)
    public static func isStamped(_ key: String) -> Bool {
        switch key {
        case "ts", "event_id", "received_at", "node", "ip": return true
        default: return false
        }
    }

    public static func prefix(of event: IncomingEvent) -> [UInt8] { event.prefix }

    public static func finish(prefix: [UInt8], resolvedSessionID: String?, eventID: String, ts: Int64,
                              receivedAt: Int64, node: String, ip: String) -> [UInt8] {
        var out = prefix
        out.reserveCapacity(prefix.count + 128)
        appendStamps(to: &out, resolvedSessionID: resolvedSessionID, eventID: eventID, ts: ts,
                     shared: SharedStamps(receivedAt: receivedAt, node: node, ip: ip))
        return out
    }

    /// The stamps every event of one request shares, rendered once per request rather than once
    /// per event: `,"received_at":<ms>,"node":"<id>","ip":"<ip>"}` (the end of the stored JSON).
    public struct SharedStamps: Sendable {
        public let receivedAt: Int64
        let bytes: [UInt8]

        public init(receivedAt: Int64, node: String, ip: String) {
            self.receivedAt = receivedAt
            var out: [UInt8] = []
            out.reserveCapacity(48 + node.utf8.count + ip.utf8.count)
            out.append(contentsOf: #","received_at":"#.utf8)
            out.appendDecimal(receivedAt)
            out.append(contentsOf: #","node":"#.utf8)
            JSONWriter.writeString(node, into: &out)
            out.append(contentsOf: #","ip":"#.utf8)
            JSONWriter.writeString(ip, into: &out)
            out.append(UInt8(ascii: "}"))
            bytes = out
        }
    }

    /// What `finish` adds to the prefix: the stamps and the closing brace.
    @inline(__always)
    static func appendStamps(to out: inout [UInt8], resolvedSessionID: String?, eventID: String, ts: Int64,
                             shared: SharedStamps) {
        if let sid = resolvedSessionID {
            out.append(contentsOf: #""session_id":"#.utf8)
            JSONWriter.writeString(sid, into: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: #""ts":"#.utf8)
        out.appendDecimal(ts)
        out.append(contentsOf: #","event_id":"#.utf8)
        JSONWriter.writeString(eventID, into: &out)
        out.append(contentsOf: shared.bytes)
    }

    /// The log record of an event whose session is known: stored JSON finished, stamps set,
    /// encoded straight into the record's one buffer.
    /// (`sessionID` nil: an identity-only event no link resolved; stored without a session.)
    public static func record(of e: IncomingEvent, sessionID: String?, eventID: String, ts: Int64, receivedAt: Int64,
                              node: String, ip: String) -> Record {
        record(of: e, sessionID: sessionID, eventID: eventID, ts: ts, shared: SharedStamps(receivedAt: receivedAt, node: node, ip: ip))
    }

    public static func record(of e: IncomingEvent, sessionID: String?, eventID: String, ts: Int64, shared: SharedStamps) -> Record {
        let resolved = e.sessionID == nil ? sessionID : nil
        let stamps = 40 + eventID.utf8.count + shared.bytes.count + (resolved?.utf8.count ?? 0)
        return Record(kind: .event, isError: e.isError, ts: ts, receivedAt: shared.receivedAt, sessionID: sessionID ?? "",
                      eventID: eventID, key: e.key, component: e.component ?? "", via: e.via ?? "",
                      userID: e.userID ?? "", terminalID: e.terminalID ?? "", jsonCapacity: e.prefix.count + stamps) { out in
            out.append(contentsOf: e.prefix)
            appendStamps(to: &out, resolvedSessionID: resolved, eventID: eventID, ts: ts, shared: shared)
        }
    }

    /// Records for events whose session is known, stamped now by `node` (the owner); ids are
    /// drawn for events without one. Events without a session id get nil (the writer resolves them).
    public static func records(of events: [IncomingEvent], receivedAt now: Int64, node: String, ip: String,
                               using rng: inout some RandomNumberGenerator) -> [Record?] {
        records(of: events, at: events.indices, receivedAt: now, node: node, ip: ip, using: &rng)
    }

    /// The records of `events[i]` for each `i` in `indices`, in that order (one owner's share of
    /// a request, built without copying its events out first).
    public static func records(of events: [IncomingEvent], at indices: some Collection<Int>, receivedAt now: Int64, node: String,
                               ip: String, using rng: inout some RandomNumberGenerator) -> [Record?] {
        let shared = SharedStamps(receivedAt: now, node: node, ip: ip)
        var out: [Record?] = []
        out.reserveCapacity(indices.count)
        for i in indices {
            guard let sid = events[i].sessionID else {
                out.append(nil)
                continue
            }
            out.append(record(of: events[i], sessionID: sid, eventID: events[i].eventID ?? EventID.make(nowMs: now, using: &rng),
                              ts: events[i].ts ?? now, shared: shared))
        }
        return out
    }

    /// Both steps at once (tests, and callers off the hot path).
    public static func json(of event: IncomingEvent, sessionID: String?, eventID: String, ts: Int64,
                            receivedAt: Int64, node: String, ip: String) -> [UInt8] {
        finish(prefix: prefix(of: event), resolvedSessionID: event.sessionID == nil ? sessionID : nil, eventID: eventID,
               ts: ts, receivedAt: receivedAt, node: node, ip: ip)
    }
}
