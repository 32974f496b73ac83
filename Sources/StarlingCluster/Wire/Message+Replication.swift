/// Body of `replicate`: records the owner has written, to be appended by a follower.
/// Each record is in its log encoding (`Record.encode`), CRC included, so the follower
/// verifies it before storing it.
public struct ReplicateBatch: Sendable, Equatable {
    public var records: [[UInt8]]
    public init(records: [[UInt8]]) { self.records = records }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(clamping: records.count))
        for r in records { w.blob(r) }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ReplicateBatch {
        try decodeBody(body, "replicate") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: 4)
            var out: [[UInt8]] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try r.blob("record")) }
            return ReplicateBatch(records: out)
        }
    }
}

/// Body of `replicateResult`: 200 when every record is in the follower's log (or was already).
public struct ReplicateResult: Sendable, Equatable {
    public var status: UInt16
    public var message: String
    public init(status: UInt16, message: String) {
        self.status = status
        self.message = message
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u16(status)
        w.string(message)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> ReplicateResult {
        try decodeBody(body, "replicateResult") { (r: inout BodyReader) throws(FrameError) in
            ReplicateResult(status: try r.u16("status"), message: try r.string("message"))
        }
    }
}

/// Body of `catchUp`: "send me the records, received at or after `since`, of the keys whose
/// replica set includes me", in pages ordered by key, starting after `afterKey`.
///
/// `previousMembers`, when not empty, narrows the request to keys the requester did NOT
/// replicate in the ring of those members (what a ring change newly made it responsible for).
///
/// `members` is the requester's current ring: the responder decides "keys whose replica set
/// includes the requester" in the requester's view, not its own.
public struct CatchUpRequest: Sendable, Equatable {
    public enum Mode: UInt8, Sendable {
        /// Restart, join or ring change: each key comes from one source, the first live member
        /// of its replica set (in the previous ring when given, else the current one) other than
        /// the requester.
        case handoff = 0
        /// Anti-entropy: only copies the responder holds without being in the key's replica set
        /// (a stand-in's), so the periodic pass moves little.
        case standIn = 1
    }
    public var mode: Mode = .handoff
    public var requester: String
    public var since: Int64
    public var afterKey: String?
    public var previousMembers: [String]
    public var members: [String]
    /// 0: start after `afterKey`. Otherwise resume inside `afterKey`, past its first `skip` items
    /// (links, then event refs): one key can hold more than a page.
    public var skip: UInt32 = 0
    public init(requester: String, since: Int64, afterKey: String?, previousMembers: [String] = [], members: [String] = [],
                skip: UInt32 = 0) {
        self.requester = requester
        self.since = since
        self.afterKey = afterKey
        self.previousMembers = previousMembers
        self.members = members
        self.skip = skip
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u8(mode.rawValue)
        w.string(requester)
        w.i64(since)
        w.optionalString(afterKey)
        w.u32(UInt32(clamping: previousMembers.count))
        for m in previousMembers { w.string(m) }
        w.u32(UInt32(clamping: members.count))
        for m in members { w.string(m) }
        w.u32(skip)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> CatchUpRequest {
        try decodeBody(body, "catchUp") { (r: inout BodyReader) throws(FrameError) in
            guard let mode = Mode(rawValue: try r.u8("mode")) else { throw FrameError.badBody("catchUp.mode") }
            let requester = try r.string("requester")
            let since = try r.i64("since")
            let after = try r.optionalString("afterKey")
            let n = try r.count("previousMembers", minimumBytes: 2)
            var prev: [String] = []
            for _ in 0..<n { prev.append(try r.string("member")) }
            let m = try r.count("members", minimumBytes: 2)
            var current: [String] = []
            for _ in 0..<m { current.append(try r.string("member")) }
            let skip = try r.u32("skip")
            var req = CatchUpRequest(requester: requester, since: since, afterKey: after, previousMembers: prev, members: current,
                                     skip: skip)
            req.mode = mode
            return req
        }
    }
}

/// Body of `catchUpResult`: one page of records (log encoding) and the key to continue after
/// (nil when done).
public struct CatchUpResult: Sendable, Equatable {
    public var records: [[UInt8]]
    public var nextKey: String?
    /// With `nextKey`: 0 to continue after that key, else inside it past this many items (see
    /// `CatchUpRequest.skip`).
    public var nextSkip: UInt32
    public init(records: [[UInt8]], nextKey: String?, nextSkip: UInt32 = 0) {
        self.records = records
        self.nextKey = nextKey
        self.nextSkip = nextSkip
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(clamping: records.count))
        for r in records { w.blob(r) }
        w.optionalString(nextKey)
        w.u32(nextSkip)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> CatchUpResult {
        try decodeBody(body, "catchUpResult") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: 4)
            var out: [[UInt8]] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try r.blob("record")) }
            let next = try r.optionalString("nextKey")
            return CatchUpResult(records: out, nextKey: next, nextSkip: try r.u32("nextSkip"))
        }
    }
}
