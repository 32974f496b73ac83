import StarlingCore

// Message bodies carried in frames. All integers little-endian. Strings are a u16 byte length plus
// UTF-8 (a string longer than 65,535 bytes is cut at the last whole character that fits); byte blobs
// (`json`, `state`) are a u32 length plus bytes. Optionals are a presence byte (0 absent, 1 present)
// followed by the value; booleans are one byte, 0 or 1. Counts are u32 and are checked against the
// bytes left in the body before anything is allocated. Decoding rejects trailing bytes, invalid UTF-8
// and out-of-range enum bytes with `FrameError.badBody`.

// MARK: - Encoding helpers

struct BodyWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.appendLE(v) }
    mutating func u32(_ v: UInt32) { bytes.appendLE(v) }
    mutating func u64(_ v: UInt64) { bytes.appendLE(v) }
    mutating func i64(_ v: Int64) { bytes.appendLE(v) }
    mutating func i32(_ v: Int32) { bytes.appendLE(UInt32(bitPattern: v)) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    /// u16 length + UTF-8, cut at a character boundary when longer than 65,535 bytes.
    mutating func string(_ s: String) {
        let u = s.utf8
        var n = min(u.count, Int(UInt16.max))
        if n < u.count {
            // Back off over continuation bytes so the cut falls on a scalar boundary.
            let all = Array(u)
            while n > 0, all[n] & 0xC0 == 0x80 { n -= 1 }
        }
        bytes.appendLE(UInt16(n))
        bytes.append(contentsOf: u.prefix(n))
    }

    /// u32 length + bytes.
    mutating func blob(_ b: [UInt8]) {
        bytes.appendLE(UInt32(clamping: b.count))
        bytes.append(contentsOf: b.prefix(Int(UInt32.max)))
    }

    mutating func optionalString(_ s: String?) {
        if let s { u8(1); string(s) } else { u8(0) }
    }
    mutating func optionalBlob(_ b: [UInt8]?) {
        if let b { u8(1); blob(b) } else { u8(0) }
    }
    mutating func optionalI64(_ v: Int64?) {
        if let v { u8(1); i64(v) } else { u8(0) }
    }
}

// MARK: - Decoding helpers

/// Throwing, bounds-checked reader over a message body; wraps `ByteReader`.
struct BodyReader {
    var reader: ByteReader
    let what: String

    init(_ raw: UnsafeRawBufferPointer, what: String) {
        reader = ByteReader(raw)
        self.what = what
    }

    var remaining: Int { reader.remaining }

    func fail(_ field: String) -> FrameError { .badBody("\(what).\(field)") }

    mutating func u8(_ field: String) throws(FrameError) -> UInt8 {
        guard let v = reader.u8() else { throw fail(field) }
        return v
    }
    mutating func u16(_ field: String) throws(FrameError) -> UInt16 {
        guard let v = reader.u16() else { throw fail(field) }
        return v
    }
    mutating func u32(_ field: String) throws(FrameError) -> UInt32 {
        guard let v = reader.u32() else { throw fail(field) }
        return v
    }
    mutating func u64(_ field: String) throws(FrameError) -> UInt64 {
        guard let v = reader.u64() else { throw fail(field) }
        return v
    }
    mutating func i64(_ field: String) throws(FrameError) -> Int64 {
        guard let v = reader.i64() else { throw fail(field) }
        return v
    }
    mutating func i32(_ field: String) throws(FrameError) -> Int32 {
        Int32(bitPattern: try u32(field))
    }
    mutating func bool(_ field: String) throws(FrameError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        default: throw fail(field)
        }
    }

    /// Reads `count` bytes as strictly valid UTF-8.
    mutating func utf8(_ count: Int, _ field: String) throws(FrameError) -> String {
        guard let raw = reader.slice(count) else { throw fail(field) }
        let s = String(decoding: raw, as: UTF8.self)
        // Decoding repairs invalid sequences; any repair changes the bytes.
        guard s.utf8.elementsEqual(raw) else { throw fail(field) }
        return s
    }
    mutating func string(_ field: String) throws(FrameError) -> String {
        let n = try u16(field)
        return try utf8(Int(n), field)
    }
    mutating func blob(_ field: String) throws(FrameError) -> [UInt8] {
        let n = try u32(field)
        guard let count = Int(exactly: n), let raw = reader.slice(count) else { throw fail(field) }
        return Array(raw)
    }
    mutating func present(_ field: String) throws(FrameError) -> Bool {
        try bool(field)
    }
    mutating func optionalString(_ field: String) throws(FrameError) -> String? {
        try present(field) ? try string(field) : nil
    }
    mutating func optionalBlob(_ field: String) throws(FrameError) -> [UInt8]? {
        try present(field) ? try blob(field) : nil
    }
    mutating func optionalI64(_ field: String) throws(FrameError) -> Int64? {
        try present(field) ? try i64(field) : nil
    }

    /// A u32 element count, rejected when that many elements of at least `minimumBytes` each
    /// cannot fit in what remains of the body.
    mutating func count(_ field: String, minimumBytes: Int) throws(FrameError) -> Int {
        let n = try u32(field)
        guard let count = Int(exactly: n), count <= remaining / max(minimumBytes, 1) else { throw fail(field) }
        return count
    }

    func finish() throws(FrameError) {
        guard remaining == 0 else { throw .badBody("\(what): trailing bytes") }
    }
}

/// Runs `read` over `body` and requires it to use every byte.
func decodeBody<T>(_ body: [UInt8], _ what: String,
                   _ read: (inout BodyReader) throws(FrameError) -> T) throws(FrameError) -> T {
    let result: Result<T, FrameError> = body.withUnsafeBytes { raw in
        var r = BodyReader(raw, what: what)
        return Result { () throws(FrameError) -> T in
            let value = try read(&r)
            try r.finish()
            return value
        }
    }
    return try result.get()
}

// MARK: - Messages

/// Body of `hello` and `helloAck`: who the sender is and where it listens.
public struct Hello: Sendable, Equatable {
    public var nodeID: String
    /// The sender's peer listen address ("host:port").
    public var peer: String
    /// The sender's HTTP listen address ("host:port").
    public var http: String
    public var incarnation: UInt64

    public init(nodeID: String, peer: String, http: String, incarnation: UInt64) {
        self.nodeID = nodeID
        self.peer = peer
        self.http = http
        self.incarnation = incarnation
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.string(nodeID)
        w.string(peer)
        w.string(http)
        w.u64(incarnation)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> Hello {
        try decodeBody(body, "hello") { (r: inout BodyReader) throws(FrameError) in
            Hello(nodeID: try r.string("nodeID"), peer: try r.string("peer"), http: try r.string("http"),
                  incarnation: try r.u64("incarnation"))
        }
    }
}

/// Body of `refuse`: why a hello was not accepted.
public struct Refuse: Sendable, Equatable {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.string(reason)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> Refuse {
        try decodeBody(body, "refuse") { (r: inout BodyReader) throws(FrameError) in
            Refuse(reason: try r.string("reason"))
        }
    }
}

/// One event forwarded to its owner, as received by the forwarding node.
public struct ForwardedEvent: Sendable, Equatable {
    public var transport: UInt8
    public var ip: String
    public var receivedAt: Int64
    public var json: [UInt8]

    /// transport u8 + ip length u16 + receivedAt i64 + json length u32.
    static let minimumBytes = 1 + 2 + 8 + 4

    public init(transport: UInt8, ip: String, receivedAt: Int64, json: [UInt8]) {
        self.transport = transport
        self.ip = ip
        self.receivedAt = receivedAt
        self.json = json
    }

    func encode(into w: inout BodyWriter) {
        w.u8(transport)
        w.string(ip)
        w.i64(receivedAt)
        w.blob(json)
    }

    static func read(_ r: inout BodyReader) throws(FrameError) -> ForwardedEvent {
        ForwardedEvent(transport: try r.u8("transport"), ip: try r.string("ip"),
                       receivedAt: try r.i64("receivedAt"), json: try r.blob("json"))
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        encode(into: &w)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ForwardedEvent {
        try decodeBody(body, "forwardedEvent") { (r: inout BodyReader) throws(FrameError) in try read(&r) }
    }
}

/// Body of `forwardEvents`: u32 count, then the events.
public struct EventBatch: Sendable, Equatable {
    public var events: [ForwardedEvent]

    public init(events: [ForwardedEvent]) {
        self.events = events
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(clamping: events.count))
        for e in events.prefix(Int(UInt32.max)) { e.encode(into: &w) }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> EventBatch {
        try decodeBody(body, "eventBatch") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: ForwardedEvent.minimumBytes)
            var events: [ForwardedEvent] = []
            events.reserveCapacity(n)
            for _ in 0..<n { events.append(try ForwardedEvent.read(&r)) }
            return EventBatch(events: events)
        }
    }
}

/// Body of `forwardRecords`: events the receiving node already validated and stamped for
/// their owner, as records in their log encoding (CRC included), which the owner appends as
/// its own. u32 count, then per record: transport u8, flags u8 (bit 0: the client gave the
/// event id, so the owner dedupes it), record blob.
public struct RecordBatch: Sendable, Equatable {
    public struct Item: Sendable, Equatable {
        public var transport: UInt8
        public var clientID: Bool
        public var record: [UInt8]
        public init(transport: UInt8, clientID: Bool, record: [UInt8]) {
            self.transport = transport
            self.clientID = clientID
            self.record = record
        }
    }
    public var items: [Item]

    public init(items: [Item]) { self.items = items }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(clamping: items.count))
        for i in items.prefix(Int(UInt32.max)) {
            w.u8(i.transport)
            w.u8(i.clientID ? 1 : 0)
            w.blob(i.record)
        }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> RecordBatch {
        try decodeBody(body, "recordBatch") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: 1 + 1 + 4)
            var items: [Item] = []
            items.reserveCapacity(n)
            for _ in 0..<n {
                let transport = try r.u8("transport")
                let flags = try r.u8("flags")
                guard flags & ~1 == 0 else { throw FrameError.badBody("recordBatch: reserved flag bits set") }
                items.append(Item(transport: transport, clientID: flags & 1 == 1, record: try r.blob("record")))
            }
            return RecordBatch(items: items)
        }
    }
}

/// Body of `forwardResult`: what the owner answered for a batch.
public struct ForwardResult: Sendable, Equatable {
    /// The HTTP status the owner would answer (202, 400, 503...).
    public var status: UInt16
    public var code: String
    public var message: String
    public var accepted: UInt32
    /// Index of the offending event in the batch, -1 for none.
    public var index: Int32

    public init(status: UInt16, code: String, message: String, accepted: UInt32, index: Int32 = -1) {
        self.status = status
        self.code = code
        self.message = message
        self.accepted = accepted
        self.index = index
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u16(status)
        w.string(code)
        w.string(message)
        w.u32(accepted)
        w.i32(index)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ForwardResult {
        try decodeBody(body, "forwardResult") { (r: inout BodyReader) throws(FrameError) in
            ForwardResult(status: try r.u16("status"), code: try r.string("code"), message: try r.string("message"),
                          accepted: try r.u32("accepted"), index: try r.i32("index"))
        }
    }
}

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

/// Body of `identify`: link a session to a user and/or terminal on the owner.
public struct IdentifyRequest: Sendable, Equatable {
    public var sessionID: String
    public var userID: String?
    public var terminalID: String?

    public init(sessionID: String, userID: String? = nil, terminalID: String? = nil) {
        self.sessionID = sessionID
        self.userID = userID
        self.terminalID = terminalID
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.string(sessionID)
        w.optionalString(userID)
        w.optionalString(terminalID)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> IdentifyRequest {
        try decodeBody(body, "identify") { (r: inout BodyReader) throws(FrameError) in
            IdentifyRequest(sessionID: try r.string("sessionID"), userID: try r.optionalString("userID"),
                            terminalID: try r.optionalString("terminalID"))
        }
    }
}

/// Body of `identifyResult`.
public struct IdentifyResult: Sendable, Equatable {
    public var status: UInt16
    public var code: String
    public var message: String

    public init(status: UInt16, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u16(status)
        w.string(code)
        w.string(message)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> IdentifyResult {
        try decodeBody(body, "identifyResult") { (r: inout BodyReader) throws(FrameError) in
            IdentifyResult(status: try r.u16("status"), code: try r.string("code"), message: try r.string("message"))
        }
    }
}

/// Body of `resolveIdentity`: find the session linked to a user or terminal.
public struct ResolveIdentity: Sendable, Equatable {
    public var userID: String?
    public var terminalID: String?

    public init(userID: String? = nil, terminalID: String? = nil) {
        self.userID = userID
        self.terminalID = terminalID
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.optionalString(userID)
        w.optionalString(terminalID)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ResolveIdentity {
        try decodeBody(body, "resolveIdentity") { (r: inout BodyReader) throws(FrameError) in
            ResolveIdentity(userID: try r.optionalString("userID"), terminalID: try r.optionalString("terminalID"))
        }
    }
}

/// Body of `resolveResult`: the linked session, if any.
public struct ResolveResult: Sendable, Equatable {
    public var sessionID: String?

    public init(sessionID: String? = nil) {
        self.sessionID = sessionID
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.optionalString(sessionID)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ResolveResult {
        try decodeBody(body, "resolveResult") { (r: inout BodyReader) throws(FrameError) in
            ResolveResult(sessionID: try r.optionalString("sessionID"))
        }
    }
}

/// Body of `error`: a request could not be served.
public struct ErrorBody: Sendable, Equatable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.string(code)
        w.string(message)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ErrorBody {
        try decodeBody(body, "error") { (r: inout BodyReader) throws(FrameError) in
            ErrorBody(code: try r.string("code"), message: try r.string("message"))
        }
    }
}
