import StarlingCore

// Identities: `identify`, `resolveIdentity`, `links` and their answers.

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
/// Body of `links`: which sessions is this user (or terminal) linked to?
public struct LinksRequest: Sendable, Equatable {
    public var user: Bool
    public var id: String

    public init(user: Bool, id: String) {
        self.user = user
        self.id = id
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.bool(user)
        w.string(id)
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> LinksRequest {
        try decodeBody(body, "links") { (r: inout BodyReader) throws(FrameError) in
            LinksRequest(user: try r.bool("user"), id: try r.string("id"))
        }
    }
}

/// Body of `linksResult`: the linked sessions, oldest link first.
public struct LinksResult: Sendable, Equatable {
    public var links: [NodeIndex.Link]

    public init(links: [NodeIndex.Link]) { self.links = links }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.u32(UInt32(min(links.count, Int(UInt32.max))))
        for l in links {
            w.string(l.sessionID)
            w.i64(l.linkedAt)
        }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> LinksResult {
        try decodeBody(body, "linksResult") { (r: inout BodyReader) throws(FrameError) in
            let n = try r.count("count", minimumBytes: 2 + 8)
            var links: [NodeIndex.Link] = []
            links.reserveCapacity(n)
            for _ in 0..<n { links.append(NodeIndex.Link(sessionID: try r.string("sessionID"), linkedAt: try r.i64("linkedAt"))) }
            return LinksResult(links: links)
        }
    }
}
