/// The filters of a session / identity query (SPEC: `from`, `to` on `ts` inclusive,
/// `key`, `component`, `limit`), parsed from query parameters.
public struct EventQuery: Sendable, Equatable {
    public var from: Int64?
    public var to: Int64?
    public var key: String?
    public var component: String?
    public var limit: Int

    public init(from: Int64? = nil, to: Int64? = nil, key: String? = nil, component: String? = nil, limit: Int = 10_000) {
        self.from = from
        self.to = to
        self.key = key
        self.component = component
        self.limit = limit
    }

    public static func parse(_ q: [String: String], limits: Limits) -> Result<EventQuery, IngestError> {
        var out = EventQuery(limit: limits.queryEventsDefault)
        func millis(_ name: String) -> Result<Int64?, IngestError> {
            guard let v = q[name] else { return .success(nil) }
            guard let ms = EventValidator.epochMillis(v) ?? Timestamps.parseRFC3339(v) else {
                return .failure(.init(code: "invalid_parameter", message: "'\(name)' must be epoch milliseconds"))
            }
            return .success(ms)
        }
        switch millis("from") { case .success(let v): out.from = v; case .failure(let e): return .failure(e) }
        switch millis("to") { case .success(let v): out.to = v; case .failure(let e): return .failure(e) }
        out.key = q["key"]
        out.component = q["component"]
        if let l = q["limit"] {
            guard let n = Int(l), n >= 1, n <= limits.queryEventsMax else {
                return .failure(.init(code: "invalid_parameter", message: "'limit' must be an integer from 1 to \(limits.queryEventsMax)"))
            }
            out.limit = n
        }
        return .success(out)
    }

    /// Refs that pass the time filter, in answer order (`ts`, then `received_at`, then log order).
    public func candidates(_ refs: [EventRef]) -> [EventRef] {
        var c = refs.filter { r in
            if let f = from, r.ts < f { return false }
            if let t = to, r.ts > t { return false }
            return true
        }
        c.sort(by: EventRef.inOrder)
        return c
    }

    /// The filters that need the record itself.
    public func matches(_ r: Record) -> Bool {
        if let k = key, r.key != k { return false }
        if let c = component, r.component != c { return false }
        return true
    }

    /// Applies the record filters, dedupes by event id (first wins) and cuts at `limit`.
    /// Input must already be in answer order.
    public func select(_ records: [Record]) -> (records: [Record], truncated: Bool) {
        var seen = Set<String>()
        var out: [Record] = []
        for r in records where matches(r) {
            guard seen.insert(r.eventID).inserted else { continue }
            if out.count == limit { return (out, true) }
            out.append(r)
        }
        return (out, false)
    }
}
