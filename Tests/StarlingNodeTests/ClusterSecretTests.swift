import Foundation
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

/// With a cluster secret, naming a member's id is not enough: a peer is a member only after its
/// hello proved the secret. Others are clients (events only, with client semantics) or refused.
@Suite(.serialized) struct ClusterSecretTests {
    static let secret = Array("shared-cluster-secret-0123456789".utf8)

    func members(_ n: LiveNode) -> [String: String] {
        let list = (try? n.json("GET", "/v1/cluster").1["members"] as? [[String: Any]]) ?? []
        var out: [String: String] = [:]
        for m in list ?? [] { out[m["id"] as? String ?? "?"] = m["status"] as? String }
        return out
    }

    func metric(_ n: LiveNode, _ name: String) -> Double { metricValue(n.server.engine.metrics, name) ?? 0 }

    @Test func membersProveTheSecretAndAnImpostorIsOnlyAClient() throws {
        let a = try LiveNode(id: "a") { $0.rf = 2; $0.clusterSecret = Self.secret }
        defer { a.stop() }
        let b = try LiveNode(id: "b") {
            $0.rf = 2
            $0.clusterSecret = Self.secret
            $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        }
        defer { b.stop() }
        #expect(eventually(10) { members(a) == ["a": "up", "b": "up"] && members(b) == ["a": "up", "b": "up"] })
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 })
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"cs","key":"k","value":1}"#).status == 202)
        #expect(b.server.engine.session("cs", query: EventQuery()).0.records.count == 1, "replicated to b")

        // A node with another secret never becomes a member; the refusals are counted.
        let c = try LiveNode(id: "c") {
            $0.rf = 2
            $0.clusterSecret = Array("not-the-cluster-secret-987654321".utf8)
            $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        }
        defer { c.stop() }
        #expect(eventually(10) { metric(a, "starling_peer_auth_refused_total") >= 1 })
        Thread.sleep(forTimeInterval: 1)
        #expect(members(a) == ["a": "up", "b": "up"])

        // An impostor names b without the secret: its hello is a client's.
        let impostor = try PeerClientTests.Client(port: a.server.peerPort!)
        impostor.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "b",
                            body: Hello(nodeID: "b", peer: "127.0.0.1:1", http: "127.0.0.1:2", incarnation: 99).encode()))
        #expect(try impostor.receive().kind == .helloAck)
        // It cannot replicate, pull or speak for membership.
        let record = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "forged", eventID: "f1", key: "k",
                            json: Array(#"{"session_id":"forged","key":"k","value":1}"#.utf8))
        impostor.send(Frame(kind: .replicate, clusterID: 0, requestID: 2, sender: "b",
                            body: ReplicateBatch(records: [record.encoded]).encode()))
        let refused = try impostor.receive()
        let code = try ErrorBody.decode(refused.body).code
        #expect(refused.kind == .error && code == "unauthenticated")
        impostor.send(Frame(kind: .catchUp, clusterID: 0, requestID: 3, sender: "b",
                            body: CatchUpRequest(requester: "b", since: 0, afterKey: nil, members: ["a", "b"]).encode()))
        #expect(try impostor.receive().kind == .error)
        impostor.send(Frame(kind: .membership, clusterID: 0, requestID: 4, sender: "b", body: [1, 2, 3]))
        #expect(eventually(5) { metric(a, "starling_peer_unauthenticated_frames_total") == 3 })
        #expect(a.server.engine.session("forged", query: EventQuery()).0.records.isEmpty)
        // Events are taken, as a client's: validated, routed, stamped with the connection's address.
        let r = try impostor.forward([#"{"session_id":"from-impostor","key":"k","value":1}"#], id: 5)
        #expect(r.status == 202 && r.accepted == 1)
        let stored = try a.json("GET", "/v1/sessions/from-impostor").1
        let list = (stored["events"] as? [[String: Any]]) ?? []
        #expect(list.count == 1 && list.first?["ip"] as? String == "127.0.0.1", "client semantics, not a member's forward")
        Thread.sleep(forTimeInterval: 1)
        #expect(members(a) == ["a": "up", "b": "up"] && members(b) == ["a": "up", "b": "up"])
    }

    @Test func withPeerClientsOffAHelloWithoutProofIsRefused() throws {
        let a = try LiveNode(id: "a") { $0.clusterSecret = Self.secret; $0.peerClients = false }
        defer { a.stop() }
        let client = try PeerClientTests.Client(port: a.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "bench-1",
                          body: Hello(nodeID: "bench-1", peer: "", http: "", incarnation: 0).encode()))
        #expect(try client.receive().kind == .refuse)
        #expect(metric(a, "starling_peer_auth_refused_total") == 1)
    }
}
