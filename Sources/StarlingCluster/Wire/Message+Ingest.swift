import StarlingCore

// Ingest between nodes: `forwardEvents`, `forwardRecords`, `forwardResult`.

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
