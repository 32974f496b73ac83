import StarlingCore

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
