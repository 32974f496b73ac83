import Foundation
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

/// A client (not a ring member) on the peer port: `hello`, then `forwardEvents`, answered like
/// `POST /v1/events` with a batch (ARCHITECTURE "Peer protocol": clients).
@Suite(.serialized) struct PeerClientTests {
    /// A blocking peer-protocol client over a plain socket.
    final class Client {
        let fd: Int32
        var inbox: [UInt8] = []

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { throw FrameError.truncated(0) }
        }

        deinit { close(fd) }

        func send(_ frame: Frame) {
            let bytes = FrameCodec.encode(frame, compress: true)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        func receive() throws -> Frame {
            while true {
                if let (frame, used) = try inbox.withUnsafeBytes({ raw throws(FrameError) in try FrameParser().parse(raw) }) {
                    inbox.removeFirst(used)
                    return frame
                }
                var buf = [UInt8](repeating: 0, count: 65_536)
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw FrameError.truncated(inbox.count) }
                inbox += buf[0..<n]
            }
        }

        func forward(_ jsons: [String], id: UInt64) throws -> ForwardResult {
            // The client's transport/ip/received_at fields are ignored by the node.
            let batch = EventBatch(events: jsons.map { ForwardedEvent(transport: 0, ip: "6.6.6.6", receivedAt: 1, json: Array($0.utf8)) })
            send(Frame(kind: .forwardEvents, clusterID: 0, requestID: id, sender: "client-1", body: batch.encode()))
            let answer = try receive()
            #expect(answer.kind == .forwardResult && answer.isResponse && answer.requestID == id)
            return try ForwardResult.decode(answer.body)
        }
    }

    func ingested(_ node: LiveNode, _ transport: String) throws -> Int {
        let text = try node.call("GET", "/metrics").text
        for line in text.split(separator: "\n") where line.hasPrefix("starling_events_ingested_total{transport=\"\(transport)\"}") {
            return Int(Double(line.split(separator: " ").last ?? "") ?? 0)
        }
        return 0
    }

    @Test func clientEventsAreRoutedToTheirOwnersAndReplicated() throws {
        let a = try LiveNode(id: "a") { $0.rf = 2 }
        defer { a.stop() }
        let b = try LiveNode(id: "b") {
            $0.rf = 2
            $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        }
        defer { b.stop() }
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 && (try? b.call("GET", "/readyz").status) == 200 })

        let client = try Client(port: a.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "client-1",
                          body: Hello(nodeID: "client-1", peer: "", http: "", incarnation: 0).encode()))
        let ack = try client.receive()
        #expect(ack.kind == .helloAck)

        let sessions = (0..<20).map { "pc-\($0)" }
        let sent = (0..<40).map { #"{"session_id":"\#(sessions[$0 % 20])","key":"k","value":\#($0)}"# }
        let r = try client.forward(sent, id: 7)
        #expect(r.status == 202 && r.accepted == 40 && r.index == -1)

        // Owners stored them (both nodes own some of 20 sessions), not just the node we spoke to.
        let onA = try ingested(a, "peer"), onB = try ingested(b, "peer")
        #expect(onA + onB == 40)
        #expect(onA > 0 && onB > 0, "every event was stored by the node the client spoke to: \(onA) / \(onB)")
        // rf 2: each node answers every session in full; the address is the connection's.
        for node in [a, b] {
            var total = 0
            for s in sessions {
                let list = events(try node.json("GET", "/v1/sessions/\(s)").1)
                #expect(list.allSatisfy { $0["ip"] as? String == "127.0.0.1" })
                total += list.count
            }
            #expect(total == 40)
        }

        // One bad event refuses the whole batch, with its index, and stores nothing.
        let bad = [#"{"session_id":"pc-bad","key":"k","value":1}"#, #"{"session_id":"pc-bad","value":2}"#]
        let refused = try client.forward(bad, id: 8)
        #expect(refused.status == 400 && refused.code == "missing_field" && refused.index == 1 && refused.accepted == 0)
        #expect(events(try a.json("GET", "/v1/sessions/pc-bad").1).isEmpty)
        #expect(try a.call("GET", "/metrics").text.contains(#"starling_events_rejected_total{transport="peer",reason="missing_field"} 1"#))
    }

    @Test func aSingleNodeAnswersAClientWith503WhenItCannotStoreRfCopies() throws {
        let a = try LiveNode(id: "a") { $0.rf = 2 }   // alone: fewer live members than rf
        defer { a.stop() }
        let client = try Client(port: a.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "client-2",
                          body: Hello(nodeID: "client-2", peer: "", http: "", incarnation: 0).encode()))
        #expect(try client.receive().kind == .helloAck)
        let r = try client.forward([#"{"session_id":"x","key":"k","value":1}"#], id: 2)
        #expect(r.status == 503 && r.code == "not_enough_replicas")
    }

    /// Stamped records skip validation, so a client may not send them: 403 and counted.
    @Test func aClientCannotForwardStampedRecords() throws {
        let a = try LiveNode(id: "a")
        defer { a.stop() }
        let client = try Client(port: a.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "client-3",
                          body: Hello(nodeID: "client-3", peer: "", http: "", incarnation: 0).encode()))
        #expect(try client.receive().kind == .helloAck)
        let record = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "forged", eventID: "E", key: "k",
                            json: Array(#"{"session_id":"forged","key":"k","value":1}"#.utf8))
        let batch = RecordBatch(items: [RecordBatch.Item(transport: 0, clientID: false, record: record.encoded)])
        client.send(Frame(kind: .forwardRecords, clusterID: 0, requestID: 2, sender: "client-3", body: batch.encode()))
        let answer = try client.receive()
        let r = try ForwardResult.decode(answer.body)
        #expect(answer.kind == .forwardResult && r.status == 403 && r.code == "not_a_member")
        #expect(events(try a.json("GET", "/v1/sessions/forged").1).isEmpty)
        #expect(try a.call("GET", "/metrics").text.contains(#"starling_events_rejected_total{transport="peer",reason="not_a_member"} 1"#))
    }
}
