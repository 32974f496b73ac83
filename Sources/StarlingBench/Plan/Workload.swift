import StarlingCluster

/// Request bytes built once, with the session numbers left as fixed-width digit slots that are
/// patched in place for every request: no JSON or string work per request, and the length
/// (so `Content-Length`) never changes.
public struct RequestTemplate: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Offsets of the session-number slots, one per event, in event order.
    public var slots: [Int]
    /// Digits in every slot.
    public var width: Int

    public init(bytes: [UInt8], slots: [Int], width: Int) {
        self.bytes = bytes
        self.slots = slots
        self.width = width
    }

    public var events: Int { slots.count }

    /// Writes the session numbers of events `firstEvent, firstEvent + 1, ...` (each mod
    /// `sessions`) into the slots of `buffer`, which holds a copy of `bytes`.
    @inlinable
    public func patch(_ buffer: UnsafeMutableRawBufferPointer, firstEvent: Int, sessions: Int, map: [Int]? = nil) {
        Self.patch(buffer, slots: slots, width: width, firstEvent: firstEvent, sessions: sessions, map: map)
    }

    /// The same, for callers that patch `bytes` in place (so must not hold a second reference to it).
    /// With `map` (a ring-routing connection), event k writes session number `map[k % map.count]`:
    /// only the sessions its node owns.
    @inlinable
    public static func patch(_ buffer: UnsafeMutableRawBufferPointer, slots: [Int], width: Int, firstEvent: Int, sessions: Int,
                             map: [Int]? = nil) {
        let count = map?.count ?? sessions
        var n = firstEvent % count
        if n < 0 { n += count }
        for offset in slots {
            Workload.writeDigits(map?[n] ?? n, width: width, into: buffer, at: offset)
            n += 1
            if n == count { n = 0 }
        }
    }

    /// A patched copy (tests and one-off uses; the load loop patches its own buffers).
    public func rendered(firstEvent: Int, sessions: Int) -> [UInt8] {
        var out = bytes
        out.withUnsafeMutableBytes { patch($0, firstEvent: firstEvent, sessions: sessions) }
        return out
    }
}

/// Builds the requests of every mode (SPEC "Events", "HTTP API", "UDP"; ARCHITECTURE "Peer protocol").
///
/// Every event is `{"session_id":"<prefix><n>","key":"bench","component":"bench","value":"xxx…"}`
/// with the value padded so that the event is about `eventBytes` long. No `event_id`: the
/// server assigns one, so repeated bodies are stored as distinct events.
public enum Workload {
    public static let key = "bench"
    public static let component = "bench"

    /// Digits needed for session numbers 0..<sessions.
    public static func width(sessions: Int) -> Int {
        var w = 1, limit = 10
        while sessions > limit && w < 18 {
            w += 1
            limit *= 10
        }
        return w
    }

    /// The session id of session number `n`, as the bench writes it.
    public static func sessionID(prefix: String, n: Int, sessions: Int) -> String {
        let w = width(sessions: sessions)
        let digits = String(n)
        return prefix + String(repeating: "0", count: max(0, w - digits.count)) + digits
    }

    @inlinable
    public static func writeDigits(_ value: Int, width: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        var v = value
        var i = offset + width - 1
        while i >= offset {
            buffer[i] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
            v /= 10
            i -= 1
        }
    }

    /// Length of the padded value so that the JSON event is about `eventBytes` long (at least 1).
    static func padLength(prefix: String, width: Int, eventBytes: Int) -> Int {
        let fixed = "{\"session_id\":\"\",\"key\":\"\(key)\",\"component\":\"\(component)\",\"value\":\"\"}".utf8.count
        return max(1, eventBytes - fixed - prefix.utf8.count - width)
    }

    /// One event as JSON with its session slot (offset within the returned bytes).
    static func event(prefix: String, width: Int, eventBytes: Int) -> (json: [UInt8], slot: Int) {
        let head = Array("{\"session_id\":\"\(prefix)".utf8)
        let middle = Array("\",\"key\":\"\(key)\",\"component\":\"\(component)\",\"value\":\"".utf8)
        let tail = Array("\"}".utf8)
        let pad = padLength(prefix: prefix, width: width, eventBytes: eventBytes)
        var out = head
        let slot = out.count
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width))
        out.append(contentsOf: middle)
        out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: pad))
        out.append(contentsOf: tail)
        return (out, slot)
    }

    /// The body and slots for `events` events: one object, or an array of them when `array`.
    static func body(prefix: String, width: Int, eventBytes: Int, events: Int, array: Bool) -> ([UInt8], [Int]) {
        let (one, slot) = event(prefix: prefix, width: width, eventBytes: eventBytes)
        guard array else { return (one, [slot]) }
        var out: [UInt8] = [UInt8(ascii: "[")]
        out.reserveCapacity(2 + events * (one.count + 1))
        var slots: [Int] = []
        slots.reserveCapacity(events)
        for i in 0..<events {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            slots.append(out.count + slot)
            out.append(contentsOf: one)
        }
        out.append(UInt8(ascii: "]"))
        return (out, slots)
    }

    static func hostHeader(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// A complete `POST /v1/events` request (one object, or an array when `batch`).
    public static func httpPost(host: String, port: Int, prefix: String, sessions: Int, eventBytes: Int, events: Int, batch: Bool) -> RequestTemplate {
        let w = width(sessions: sessions)
        let (body, bodySlots) = self.body(prefix: prefix, width: w, eventBytes: eventBytes, events: events, array: batch)
        let head = Array(("POST /v1/events HTTP/1.1\r\nHost: \(hostHeader(host: host, port: port))\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n").utf8)
        return RequestTemplate(bytes: head + body, slots: bodySlots.map { $0 + head.count }, width: w)
    }

    /// A complete `GET /t.gif?sid=..&k=..&c=..&v=..` request (the prefix and value need no percent-encoding).
    public static func pixel(host: String, port: Int, prefix: String, sessions: Int, eventBytes: Int) -> RequestTemplate {
        let w = width(sessions: sessions)
        let start = Array("GET /t.gif?sid=\(prefix)".utf8)
        let afterSlot = Array("&k=\(key)&c=\(component)&v=".utf8)
        let pad = padLength(prefix: prefix, width: w, eventBytes: eventBytes)
        let end = Array(" HTTP/1.1\r\nHost: \(hostHeader(host: host, port: port))\r\n\r\n".utf8)
        var out = start
        let slot = out.count
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: w))
        out.append(contentsOf: afterSlot)
        out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: pad))
        out.append(contentsOf: end)
        return RequestTemplate(bytes: out, slots: [slot], width: w)
    }

    /// One datagram: a single JSON event.
    public static func datagram(prefix: String, sessions: Int, eventBytes: Int) -> RequestTemplate {
        let w = width(sessions: sessions)
        let (one, slot) = event(prefix: prefix, width: w, eventBytes: eventBytes)
        return RequestTemplate(bytes: one, slots: [slot], width: w)
    }

    /// The body of a `forwardEvents` frame (`EventBatch`, encoded by the cluster codec) with a
    /// slot per event. Transport 3 (peer), no client address or receive time: the node fills in
    /// the connection's address and stamps its own time.
    public static func peerBatch(prefix: String, sessions: Int, eventBytes: Int, events: Int) -> RequestTemplate {
        let w = width(sessions: sessions)
        let (one, slot) = event(prefix: prefix, width: w, eventBytes: eventBytes)
        let batch = EventBatch(events: Array(repeating: ForwardedEvent(transport: 3, ip: "", receivedAt: 0, json: one), count: events))
        let body = batch.encode()
        // Find each copy of the event in the encoded body, in order.
        var slots: [Int] = []
        slots.reserveCapacity(events)
        var from = 0
        body.withUnsafeBytes { raw in
            one.withUnsafeBytes { needle in
                while slots.count < events, let at = find(needle, in: raw, from: from) {
                    slots.append(at + slot)
                    from = at + needle.count
                }
            }
        }
        precondition(slots.count == events, "EventBatch encoding must contain every event's JSON verbatim (found \(slots.count) of \(events))")
        return RequestTemplate(bytes: body, slots: slots, width: w)
    }

    static func find(_ needle: UnsafeRawBufferPointer, in hay: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard needle.count > 0, hay.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && memcmpEqual(hay, i, needle) { return i }
            i += 1
        }
        return nil
    }

    private static func memcmpEqual(_ hay: UnsafeRawBufferPointer, _ at: Int, _ needle: UnsafeRawBufferPointer) -> Bool {
        for j in 0..<needle.count where hay[at + j] != needle[j] { return false }
        return true
    }

    /// The request template for a mode (for peer: the frame body).
    public static func template(for c: BenchConfig) -> RequestTemplate {
        switch c.mode {
        case .http:
            return httpPost(host: c.host, port: c.port, prefix: c.sessionPrefix, sessions: c.sessions, eventBytes: c.eventBytes, events: 1, batch: false)
        case .batch:
            return httpPost(host: c.host, port: c.port, prefix: c.sessionPrefix, sessions: c.sessions, eventBytes: c.eventBytes, events: c.batch, batch: true)
        case .pixel:
            return pixel(host: c.host, port: c.port, prefix: c.sessionPrefix, sessions: c.sessions, eventBytes: c.eventBytes)
        case .udp:
            return datagram(prefix: c.sessionPrefix, sessions: c.sessions, eventBytes: c.eventBytes)
        case .peer:
            return peerBatch(prefix: c.sessionPrefix, sessions: c.sessions, eventBytes: c.eventBytes, events: c.batch)
        }
    }

    /// The first event of a connection's request: requests are numbered globally
    /// (`seq * connections + connection`), so every session gets its share in turn.
    @inlinable
    public static func firstEvent(connection: Int, connections: Int, seq: Int, eventsPerRequest: Int) -> Int {
        (seq &* connections &+ connection) &* eventsPerRequest
    }
}
