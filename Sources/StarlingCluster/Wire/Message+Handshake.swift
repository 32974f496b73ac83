import StarlingCore

// Handshake and errors: `hello`/`helloAck`, `refuse`, `error`.

/// Body of `hello` and `helloAck`: who the sender is and where it listens.
public struct Hello: Sendable, Equatable {
    public var nodeID: String
    /// The sender's peer listen address ("host:port").
    public var peer: String
    /// The sender's HTTP listen address ("host:port").
    public var http: String
    public var incarnation: UInt64
    /// Proof of the cluster secret (`HelloAuth`), only where one is configured. Encoded after
    /// the other fields only when present, so a hello without it is the same bytes as before.
    public var proof: HelloProof?

    public init(nodeID: String, peer: String, http: String, incarnation: UInt64, proof: HelloProof? = nil) {
        self.nodeID = nodeID
        self.peer = peer
        self.http = http
        self.incarnation = incarnation
        self.proof = proof
    }

    public func encode() -> [UInt8] {
        var w = BodyWriter()
        w.string(nodeID)
        w.string(peer)
        w.string(http)
        w.u64(incarnation)
        if let proof {
            w.i64(proof.time)
            w.blob(proof.nonce)
            w.blob(proof.mac)
        }
        return w.bytes
    }

    public static func decode(_ body: [UInt8]) throws(FrameError) -> Hello {
        try decodeBody(body, "hello") { (r: inout BodyReader) throws(FrameError) in
            var h = Hello(nodeID: try r.string("nodeID"), peer: try r.string("peer"), http: try r.string("http"),
                          incarnation: try r.u64("incarnation"))
            if r.remaining > 0 {
                h.proof = HelloProof(time: try r.i64("proof.time"), nonce: try r.blob("proof.nonce"), mac: try r.blob("proof.mac"))
            }
            return h
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
