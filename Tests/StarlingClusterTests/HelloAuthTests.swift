import Testing
@testable import StarlingCluster
@testable import StarlingCore

@Suite struct HelloAuthTests {
    let secret = Array("a-cluster-secret-of-32-bytes-xyz".utf8)
    let hello = Hello(nodeID: "n2", peer: "10.0.0.2:7000", http: "10.0.0.2:8000", incarnation: 3)
    func nonce(_ b: UInt8) -> [UInt8] { [UInt8](repeating: b, count: HelloProof.nonceBytes) }

    /// RFC 4231 test case 2: libcrypto's HMAC-SHA256 is wired right.
    @Test func hmacMatchesTheRFC() {
        let mac = HMACSHA256.mac(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        let hex = mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(HMACSHA256.equal(mac, mac) && !HMACSHA256.equal(mac, Array(mac.dropLast()) + [mac.last! ^ 1]))
    }

    @Test func aProvenHelloIsAMemberOnceAndOnlyWithTheRightSecret() {
        var acceptor = HelloAuth(secret: secret, clientsAllowed: true)
        var h = hello
        h.proof = HelloAuth(secret: secret, clientsAllowed: true).prove(hello, clusterID: 0xABC, now: 1_000_000, nonce: nonce(1))
        #expect(acceptor.verify(h, clusterID: 0xABC, now: 1_000_500) == .member)
        guard case .refused(let why) = acceptor.verify(h, clusterID: 0xABC, now: 1_000_600) else { Issue.record("a replay was accepted"); return }
        #expect(why.contains("replay"))
        // Another secret, another cluster id in the frame, another node id: refused.
        var other = hello
        other.proof = HelloAuth(secret: Array("another-secret-of-enough-bytes!!".utf8), clientsAllowed: true)
            .prove(hello, clusterID: 0xABC, now: 1_000_000, nonce: nonce(2))
        #expect(acceptor.verify(other, clusterID: 0xABC, now: 1_000_000) == .refused("wrong proof of the cluster secret"))
        var moved = hello
        moved.proof = acceptor.prove(hello, clusterID: 0xABC, now: 1_000_000, nonce: nonce(3))
        #expect(acceptor.verify(moved, clusterID: 0xABD, now: 1_000_000) == .refused("wrong proof of the cluster secret"))
        moved.nodeID = "n1"
        #expect(acceptor.verify(moved, clusterID: 0xABC, now: 1_000_000) == .refused("wrong proof of the cluster secret"))
        // A proof far from this node's clock.
        var late = hello
        late.proof = acceptor.prove(hello, clusterID: 0xABC, now: 1_000_000, nonce: nonce(4))
        guard case .refused(let skew) = acceptor.verify(late, clusterID: 0xABC, now: 1_000_000 + HelloAuth.skewMs + 1) else {
            Issue.record("a stale proof was accepted"); return
        }
        #expect(skew.contains("clock"))
    }

    @Test func noProofIsAClientOrRefused() {
        var open = HelloAuth(secret: secret, clientsAllowed: true)
        #expect(open.verify(hello, clusterID: 1, now: 0) == .client)
        var closed = HelloAuth(secret: secret, clientsAllowed: false)
        guard case .refused = closed.verify(hello, clusterID: 1, now: 0) else { Issue.record("a client was accepted with clients off"); return }
    }

    /// The ack proves the secret for this hello's nonce only.
    @Test func anAckIsBoundToTheHelloItAnswers() {
        let auth = HelloAuth(secret: secret, clientsAllowed: true)
        var ack = Hello(nodeID: "n1", peer: "10.0.0.1:7000", http: "10.0.0.1:8000", incarnation: 9)
        ack.proof = auth.prove(ack, clusterID: 7, now: 5, nonce: nonce(8), answering: nonce(1))
        #expect(auth.verifyAck(ack, clusterID: 7, answering: nonce(1)))
        #expect(!auth.verifyAck(ack, clusterID: 7, answering: nonce(2)))
        #expect(!HelloAuth(secret: Array("another-secret-of-enough-bytes!!".utf8), clientsAllowed: true).verifyAck(ack, clusterID: 7, answering: nonce(1)))
        var bare = ack
        bare.proof = nil
        #expect(!auth.verifyAck(bare, clusterID: 7, answering: nonce(1)))
        // A hello's proof is not an ack's (the tags differ).
        var asHello = ack
        asHello.proof = auth.prove(ack, clusterID: 7, now: 5, nonce: nonce(1))
        #expect(!auth.verifyAck(asHello, clusterID: 7, answering: nonce(1)))
    }

    /// Nonces are forgotten once their proofs are too old to be accepted anyway.
    @Test func rememberedNoncesExpire() {
        var acceptor = HelloAuth(secret: secret, clientsAllowed: true)
        for i in 0..<50 {
            var h = hello
            var n = nonce(0)
            n[0] = UInt8(i)
            h.proof = acceptor.prove(hello, clusterID: 1, now: Int64(i), nonce: n)
            #expect(acceptor.verify(h, clusterID: 1, now: Int64(i)) == .member)
        }
        #expect(acceptor.remembered == 50)
        var h = hello
        h.proof = acceptor.prove(hello, clusterID: 1, now: 3 * HelloAuth.skewMs, nonce: nonce(0xEE))
        #expect(acceptor.verify(h, clusterID: 1, now: 3 * HelloAuth.skewMs) == .member)
        #expect(acceptor.remembered == 1)
    }

    /// Without a proof a hello is the same bytes as before the secret existed; with one it
    /// round-trips.
    @Test func helloBodiesRoundTrip() throws {
        #expect(try Hello.decode(hello.encode()) == hello)
        var w = BodyWriter()
        w.string("n2"); w.string("10.0.0.2:7000"); w.string("10.0.0.2:8000"); w.u64(3)
        #expect(hello.encode() == w.bytes)
        var proven = hello
        proven.proof = HelloProof(time: -5, nonce: nonce(3), mac: [UInt8](repeating: 9, count: 32))
        #expect(try Hello.decode(proven.encode()) == proven)
        #expect(throws: FrameError.self) { try Hello.decode(Array(proven.encode().dropLast())) }
    }
}
