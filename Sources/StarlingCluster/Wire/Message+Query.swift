import StarlingCore

// Queries: `query`, `queryResult`.

/// Body of `query`.
public struct QueryRequest: Sendable, Equatable {
    /// 0 session, 1 user, 2 terminal.
    public var scope: UInt8
    public var id: String
    public var from: Int64?
    public var to: Int64?
    public var key: String?
    public var component: String?
    public var limit: UInt32
    public var wantState: Bool
    /// Where to resume: answers come in pages that each fit a frame, and a page that stopped at
    /// its budget says where the next one starts (`QueryResult.nextOffset`, a position in the
    /// responder's answer order).
    public var offset: UInt32 = 0

    /// Largest valid `scope` byte.
    public static let scopeMax: UInt8 = 2

    public init(scope: UInt8, id: String, from: Int64? = nil, to: Int64? = nil, key: String? = nil,
                component: String? = nil, limit: UInt32, wantState: Bool = false) {
        self.scope = scope
        self.id = id
        self.from = from
        self.to = to
        self.key = key
        self.component = component
        self.limit = limit
        self.wantState = wantState
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u8(scope)
        w.string(id)
        w.optionalI64(from)
        w.optionalI64(to)
        w.optionalString(key)
        w.optionalString(component)
        w.u32(limit)
        w.bool(wantState)
        w.u32(offset)
        return w.bytes
    }

    /// Rejects a scope byte above `scopeMax`.
    public static func decode(_ body: [UInt8]) throws(FrameError) -> QueryRequest {
        try decodeBody(body, "query") { (r: inout BodyReader) throws(FrameError) in
            let scope = try r.u8("scope")
            guard scope <= scopeMax else { throw r.fail("scope") }
            var q = QueryRequest(scope: scope, id: try r.string("id"), from: try r.optionalI64("from"),
                                 to: try r.optionalI64("to"), key: try r.optionalString("key"),
                                 component: try r.optionalString("component"), limit: try r.u32("limit"),
                                 wantState: try r.bool("wantState"))
            q.offset = try r.u32("offset")
            return q
        }
    }
}

/// One stored event in a query answer.
public struct QueryHit: Sendable, Equatable {
    public var eventID: String
    public var ts: Int64
    public var receivedAt: Int64
    public var json: [UInt8]

    /// eventID length u16 + ts i64 + receivedAt i64 + json length u32.
    static let minimumBytes = 2 + 8 + 8 + 4

    public init(eventID: String, ts: Int64, receivedAt: Int64, json: [UInt8]) {
        self.eventID = eventID
        self.ts = ts
        self.receivedAt = receivedAt
        self.json = json
    }

    func encode(into w: inout BodyWriter) {
        w.string(eventID)
        w.i64(ts)
        w.i64(receivedAt)
        w.blob(json)
    }

    static func read(_ r: inout BodyReader) throws(FrameError) -> QueryHit {
        QueryHit(eventID: try r.string("eventID"), ts: try r.i64("ts"), receivedAt: try r.i64("receivedAt"),
                 json: try r.blob("json"))
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        encode(into: &w)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> QueryHit {
        try decodeBody(body, "queryHit") { (r: inout BodyReader) throws(FrameError) in try read(&r) }
    }
}

/// Body of `queryResult`: u32 hit count, hits, truncated, optional state (u32 + JSON), optional error.
public struct QueryResult: Sendable, Equatable {
    public var hits: [QueryHit]
    public var truncated: Bool
    /// JSON text of the session state, when the answering node owns the session.
    public var state: [UInt8]?
    public var error: String?
    /// Set when the page is full (frame budget) and more may follow: ask again with this
    /// `offset` and the limit less the hits so far (nil: done).
    public var nextOffset: UInt32?

    public init(hits: [QueryHit], truncated: Bool = false, state: [UInt8]? = nil, error: String? = nil, nextOffset: UInt32? = nil) {
        self.hits = hits
        self.truncated = truncated
        self.state = state
        self.error = error
        self.nextOffset = nextOffset
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(clamping: hits.count))
        for h in hits.prefix(Int(UInt32.max)) { h.encode(into: &w) }
        w.bool(truncated)
        w.optionalBlob(state)
        w.optionalString(error)
        w.bool(nextOffset != nil)
        if let nextOffset { w.u32(nextOffset) }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> QueryResult {
        try decodeBody(body, "queryResult") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: QueryHit.minimumBytes)
            var hits: [QueryHit] = []
            hits.reserveCapacity(n)
            for _ in 0..<n { hits.append(try QueryHit.read(&r)) }
            let truncated = try r.bool("truncated")
            let state = try r.optionalBlob("state")
            let error = try r.optionalString("error")
            var next: UInt32?
            if try r.present("nextOffset") { next = try r.u32("nextOffset") }
            return QueryResult(hits: hits, truncated: truncated, state: state, error: error, nextOffset: next)
        }
    }
}
