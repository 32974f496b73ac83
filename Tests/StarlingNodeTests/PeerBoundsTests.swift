import Foundation
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

/// Work a peer connection can cause is bounded (`Limits`): requests in flight per connection,
/// the size of member lists in a catch-up request, and the outbound clients kept.
@Suite(.serialized) struct PeerBoundsTests {
    func greeted(_ node: LiveNode, as id: String) throws -> PeerClientTests.Client {
        let client = try PeerClientTests.Client(port: node.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: id,
                          body: Hello(nodeID: id, peer: "", http: "", incarnation: 0).encode()))
        #expect(try client.receive().kind == .helloAck)
        return client
    }

    /// 50 requests on one connection while the writer is held: at most twice the bound (4) are
    /// admitted; the rest are answered `overloaded` at once or wait unread in the socket until
    /// answers drain; all are answered and the connection survives.
    @Test func requestsInFlightPerConnectionAreBounded() throws {
        let node = try LiveNode { $0.limits.peerInFlightMax = 4 }
        defer { node.stop() }
        let client = try greeted(node, as: "flood-1")
        let gate = DispatchSemaphore(value: 0)
        node.server.engine.exclusive { gate.wait() }
        // All 50 frames in one write, so they arrive together.
        var bytes: [UInt8] = []
        for i in 0..<50 {
            let batch = EventBatch(events: [ForwardedEvent(transport: 0, ip: "", receivedAt: 0,
                                                           json: Array(#"{"session_id":"fl","key":"k","value":\#(i)}"#.utf8))])
            bytes += FrameCodec.encode(Frame(kind: .forwardEvents, clusterID: 0, requestID: UInt64(10 + i), sender: "flood-1",
                                             body: batch.encode()), compress: true)
        }
        _ = bytes.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // While the writer is held, whatever was read is admitted up to twice the bound (the rest
        // of that read is refused at once); what was not read waits in the socket.
        usleep(500_000)
        let admitted = node.server.engine.pending.withLock { $0.jobs.count }
        gate.signal()
        var answers: [Frame] = []
        while answers.count < 50, let f = try? client.receive() { answers.append(f) }
        #expect(admitted >= 1 && admitted <= 8, "\(admitted) requests of one connection were admitted with a bound of 4")
        #expect(answers.count == 50, "every request must be answered on the same connection")
        let overloaded = answers.filter { $0.kind == .error }.count
        let stored = answers.filter { $0.kind == .forwardResult }.compactMap { try? ForwardResult.decode($0.body) }.filter { $0.status == 202 }.count
        #expect(overloaded + stored == 50 && stored >= admitted, "overloaded \(overloaded), stored \(stored)")
        #expect(try node.call("GET", "/v1/sessions/fl").status == 200)
    }

    /// A catch-up request naming more members than a cluster may have is refused (counted)
    /// instead of building a ring of them on the node.
    @Test func aCatchUpRequestWithTooManyMembersIsRefused() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"cu","key":"k","value":1}"#).status == 202)
        let client = try greeted(node, as: "cu-1")
        let members = (0...Limits().membersMax).map { "m\($0)" }
        let req = CatchUpRequest(requester: "cu-1", since: 0, afterKey: nil, members: members)
        client.send(Frame(kind: .catchUp, clusterID: 0, requestID: 5, sender: "cu-1", body: req.encode()))
        let answer = try client.receive()
        let page = try CatchUpResult.decode(answer.body)
        #expect(page.records.isEmpty && page.nextKey == nil)
        #expect(try node.call("GET", "/metrics").text.contains("starling_peer_protocol_errors_total 1"))
        // Within the bound it is answered.
        let ok = CatchUpRequest(requester: "cu-1", since: 0, afterKey: nil, members: ["cu-1", "n1"])
        client.send(Frame(kind: .catchUp, clusterID: 0, requestID: 6, sender: "cu-1", body: ok.encode()))
        #expect(try CatchUpResult.decode(client.receive().body).records.count == 1)
    }

    /// Clients of addresses no member has are dropped on a membership change, and past the bound
    /// a new address gets a closed client that fails at once.
    @Test func outboundClientsAreEvictedAndBounded() throws {
        let node = try LiveNode { $0.limits.peerClientsMax = 3 }
        defer { node.stop() }
        let runtime = node.server.api.cluster
        for port in 1...3 { _ = runtime.client(for: "127.0.0.1:\(port)") }
        #expect(runtime.clients.withLock { $0.count } == 3)
        let refused = runtime.client(for: "127.0.0.1:4")
        #expect(throws: (any Error).self) { try refused.request(.links, body: [], timeout: .seconds(1)).wait() }
        #expect(runtime.clients.withLock { $0["127.0.0.1:4"] } == nil)
        runtime.evictClients(keeping: runtime.members)
        #expect(runtime.clients.withLock { $0.count } == 0)
    }
}
