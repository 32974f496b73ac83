import CCrypto
import StarlingCore

/// HMAC-SHA256 from libcrypto (Debian's libssl-dev): pure computation.
public enum HMACSHA256 {
    public static let bytes = 32

    public static func mac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &length)
            }
        }
        precondition(done != nil && length == UInt32(bytes), "HMAC-SHA256 failed")
        return Array(out.prefix(bytes))
    }

    /// Compares in time that does not depend on where the bytes differ.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}

/// What a `hello` (or `helloAck`) carries to prove that its sender holds the cluster secret:
/// the sender's clock, a fresh random nonce, and an HMAC-SHA256 keyed by the secret over the
/// frame's cluster id, the hello's fields, the time and the nonce (an ack also covers the
/// nonce of the hello it answers, so it cannot be replayed to another connection).
public struct HelloProof: Sendable, Equatable {
    public static let nonceBytes = 16

    public var time: Int64
    public var nonce: [UInt8]
    public var mac: [UInt8]

    public init(time: Int64, nonce: [UInt8], mac: [UInt8]) {
        self.time = time
        self.nonce = nonce
        self.mac = mac
    }
}

/// Checks and makes hello proofs (pure: time and nonces are passed in). A node with a cluster
/// secret treats a peer as a member only after its hello proved the secret; a hello without a
/// proof is a client's (if clients are allowed on the peer port), a hello with a wrong one is
/// refused. Replays are refused: a proof is good for `skewMs` either side of this node's clock,
/// and a nonce is accepted once within that time.
public struct HelloAuth: Sendable {
    public enum Verdict: Equatable, Sendable {
        case member
        case client
        case refused(String)
    }

    public static let skewMs: Int64 = 60_000
    /// Nonces remembered (a member opens a handful of connections; this bounds a flood of
    /// well-formed proofs, which only a secret holder can make).
    public static let seenMax = 100_000

    let secret: [UInt8]
    public let clientsAllowed: Bool
    var seen: Set<[UInt8]> = []
    var seenOrder: [(nonce: [UInt8], expires: Int64)] = []
    var seenHead = 0

    public init(secret: [UInt8], clientsAllowed: Bool) {
        self.secret = secret
        self.clientsAllowed = clientsAllowed
    }

    static func message(_ tag: String, clusterID: UInt64, _ hello: Hello, time: Int64, nonce: [UInt8], answering: [UInt8]) -> [UInt8] {
        var w = BodyWriter()
        w.string(tag)
        w.u64(clusterID)
        w.string(hello.nodeID)
        w.string(hello.peer)
        w.string(hello.http)
        w.u64(hello.incarnation)
        w.i64(time)
        w.blob(nonce)
        w.blob(answering)
        return w.bytes
    }

    /// The proof for our own `hello` (`answering` empty) or `helloAck` (the hello's nonce).
    public func prove(_ hello: Hello, clusterID: UInt64, now: Int64, nonce: [UInt8], answering: [UInt8] = []) -> HelloProof {
        let tag = answering.isEmpty ? "starling-hello-1" : "starling-ack-1"
        return HelloProof(time: now, nonce: nonce,
                          mac: HMACSHA256.mac(key: secret, Self.message(tag, clusterID: clusterID, hello, time: now, nonce: nonce, answering: answering)))
    }

    /// Whether `proof` is right for `hello` (or, with `answering`, for an ack of that nonce).
    func macIsRight(_ hello: Hello, _ proof: HelloProof, clusterID: UInt64, answering: [UInt8]) -> Bool {
        let tag = answering.isEmpty ? "starling-hello-1" : "starling-ack-1"
        let expected = HMACSHA256.mac(key: secret, Self.message(tag, clusterID: clusterID, hello, time: proof.time, nonce: proof.nonce, answering: answering))
        return HMACSHA256.equal(expected, proof.mac)
    }

    /// The acceptor's verdict on a hello that came in a frame with `clusterID`.
    public mutating func verify(_ hello: Hello, clusterID: UInt64, now: Int64) -> Verdict {
        guard let proof = hello.proof else {
            return clientsAllowed ? .client : .refused("no proof of the cluster secret (clients are not allowed on the peer port)")
        }
        guard proof.nonce.count == HelloProof.nonceBytes, proof.mac.count == HMACSHA256.bytes,
              macIsRight(hello, proof, clusterID: clusterID, answering: []) else {
            return .refused("wrong proof of the cluster secret")
        }
        guard abs(proof.time &- now) <= Self.skewMs else {
            return .refused("proof of the cluster secret is \(abs(proof.time &- now) / 1000) s away from this node's clock (at most \(Self.skewMs / 1000) s)")
        }
        expire(now: now)
        guard !seen.contains(proof.nonce) else { return .refused("a proof of the cluster secret seen before (a replay)") }
        guard seen.count < Self.seenMax else { return .refused("too many hellos in the last \(Self.skewMs / 1000) s") }
        seen.insert(proof.nonce)
        seenOrder.append((proof.nonce, proof.time + Self.skewMs))
        return .member
    }

    /// The connector's check of a `helloAck` to its hello with nonce `ours`.
    public func verifyAck(_ ack: Hello, clusterID: UInt64, answering ours: [UInt8]) -> Bool {
        guard let proof = ack.proof, proof.nonce.count == HelloProof.nonceBytes, proof.mac.count == HMACSHA256.bytes else { return false }
        return macIsRight(ack, proof, clusterID: clusterID, answering: ours)
    }

    /// Forgets nonces whose proofs are too old to be accepted anyway (in the order they came;
    /// an entry expires at its proof's time plus the skew).
    mutating func expire(now: Int64) {
        while seenHead < seenOrder.count, seenOrder[seenHead].expires < now {
            seen.remove(seenOrder[seenHead].nonce)
            seenHead += 1
        }
        if seenHead > 1024 && seenHead * 2 > seenOrder.count {
            seenOrder.removeFirst(seenHead)
            seenHead = 0
        }
    }

    /// Nonces remembered now.
    public var remembered: Int { seen.count }
}
