import Foundation
import StarlingCluster
import StarlingCore
import StarlingLog
import Testing
@testable import StarlingNode

/// A record whose `received_at` is near Int64.max used to trap the node while folding it, on
/// every start (recovery replays it), and replication carried it to followers.
@Suite(.serialized) struct BadRecordTests {
    func record(_ id: String, receivedAt: Int64) -> Record {
        Record(kind: .event, ts: 5, receivedAt: receivedAt, sessionID: "bad", eventID: id, key: "k",
               json: Array(#"{"session_id":"bad","key":"k","value":1,"event_id":"\#(id)"}"#.utf8))
    }

    /// Such a record already in the log: the node starts, skips it (logged, counted) and keeps
    /// the records around it.
    @Test func aRecordThatCannotBeFoldedIsSkippedAtRecovery() throws {
        let dir = NSTemporaryDirectory() + "starling-badrec-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let first = try LiveNode(id: "n1", dir: dir)
            #expect(try first.call("POST", "/v1/events", #"{"session_id":"bad","key":"k","value":0,"event_id":"before"}"#).status == 202)
            first.stop()
        }
        let log = SegmentedLog(directory: dir)
        _ = try log.recover { _, _, _ in }
        _ = try log.append([record("wild", receivedAt: .max), record("after", receivedAt: 1_700_000_000_000)],
                           nowMs: StarlingServer.systemMillis())
        log.closeFiles()
        let node = try LiveNode(id: "n1", dir: dir)
        defer { node.stop() }
        #expect(node.server.engine.skippedAtRecovery == 1)
        #expect(try node.call("GET", "/metrics").text.contains("starling_log_skipped_records_total 1"))
        let ids = events(try node.json("GET", "/v1/sessions/bad").1).compactMap { $0["event_id"] as? String }
        #expect(Set(ids) == ["before", "after"])
    }

    /// From the network it is refused before it is stored: a replicate with it answers 400,
    /// counted, and the node keeps serving.
    @Test func aRecordWithAWildTimeIsRefusedFromPeers() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let client = try PeerClientTests.Client(port: node.server.peerPort!)
        client.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "p-1",
                          body: Hello(nodeID: "p-1", peer: "", http: "", incarnation: 0).encode()))
        #expect(try client.receive().kind == .helloAck)
        let batch = ReplicateBatch(records: [record("wild", receivedAt: .max - 5).encoded])
        client.send(Frame(kind: .replicate, clusterID: 0, requestID: 2, sender: "p-1", body: batch.encode()))
        let answer = try ReplicateResult.decode(client.receive().body)
        #expect(answer.status == 400 && answer.message.contains("received_at"), "\(answer)")
        #expect(try node.call("GET", "/metrics").text.contains("starling_peer_records_refused_total 1"))
        #expect(try node.call("GET", "/v1/sessions/bad/state").status == 404)
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"ok","key":"k","value":1}"#).status == 202)
    }
}
