import Foundation
import Testing
import StarlingCore
@testable import StarlingNode

/// Two live nodes in one process, b joined to a, both seeing two members up.
func twoNodes(rf: Int = 1) throws -> (LiveNode, LiveNode) {
    let a = try LiveNode(id: "a") { $0.rf = rf }
    let b = try LiveNode(id: "b") { $0.rf = rf; $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)] }
    func upCount(_ n: LiveNode) -> Int {
        ((try? n.json("GET", "/v1/cluster").1["members"] as? [[String: Any]]) ?? [])?.filter { $0["status"] as? String == "up" }.count ?? 0
    }
    #expect(eventually(10) { upCount(a) == 2 && upCount(b) == 2 })
    return (a, b)
}

@Suite(.serialized) struct ClusterTests {
    @Test func nodeOfAnotherClusterIsRefusedAtHello() throws {
        let a = try LiveNode(id: "a")
        defer { a.stop() }
        let bDir = NSTemporaryDirectory() + "starling-other-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: bDir) }
        do {
            let b = try LiveNode(id: "b", dir: bDir)   // starts its own cluster
            b.stop()
        }
        let aPeer = a.server.peerPort!
        let b = try LiveNode(id: "b", dir: bDir) { $0.join = [HostPort(host: "127.0.0.1", port: aPeer)] }
        defer { b.stop() }
        let refused = try eventually(10) {
            try a.call("GET", "/metrics").text.contains("starling_peer_refused_hellos_total 1")
                || a.call("GET", "/metrics").text.contains("starling_peer_refused_hellos_total 2")
        }
        #expect(refused, "a node with another cluster id must be refused")
        let members = (try a.json("GET", "/v1/cluster").1["members"] as? [[String: Any]]) ?? []
        #expect(members.map { $0["id"] as? String } == ["a"])
    }

    @Test func garbageOnThePeerPortIsCountedAndDropped() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(node.server.peerPort!).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(ok == 0)
        var rng = SplitMix64(seed: 11)
        let junk = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        #expect(n <= 0, "the node must close a connection that sends garbage")
        let counted = try eventually { try node.call("GET", "/metrics").text.contains("starling_peer_protocol_errors_total 1") }
        #expect(counted)
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"g","key":"k","value":1}"#).status == 202)
    }

    @Test func twoNodesInOneProcessShareSessionsAndLinks() throws {
        let (a, b) = try twoNodes()
        defer { a.stop(); b.stop() }
        // Identity link through one node, identity-only events through the other.
        #expect(try a.call("POST", "/v1/identify", #"{"session_id":"L1","user_id":"lu"}"#).status == 204)
        for i in 0..<10 {
            #expect(try b.call("POST", "/v1/events", #"{"user_id":"lu","key":"k","value":\#(i)}"#).status == 202)
        }
        for node in [a, b] {
            let (_, q) = try node.json("GET", "/v1/sessions/L1")
            #expect(events(q).count == 10)
            #expect((q["state"] as? [String: Any])?["user_id"] as? String == "lu")
            let links = (try node.json("GET", "/v1/users/lu/sessions").1["sessions"] as? [[String: Any]]) ?? []
            #expect(links.map { $0["session_id"] as? String } == ["L1"])
            #expect(events(try node.json("GET", "/v1/users/lu/events").1).count == 10)
            #expect(try node.call("GET", "/v1/sessions/L1/state").status == 200)
        }
    }

    /// Events owned by the other node travel as finished records: stored once, stamped with
    /// their owner's id, and a client-given id sent twice is stored once.
    @Test func forwardedRecordsAreStampedByTheOwnerAndDeduped() throws {
        let (a, b) = try twoNodes()
        defer { a.stop(); b.stop() }
        let batch = "[" + (0..<40).map { #"{"session_id":"fr-\#($0)","key":"k","value":\#($0),"event_id":"id-\#($0)"}"# }.joined(separator: ",") + "]"
        #expect(try b.call("POST", "/v1/events", batch).status == 202)
        #expect(try b.call("POST", "/v1/events", batch).status == 202)
        let forwarded = metricValue(b.server.engine.metrics, "starling_events_forwarded_total") ?? 0
        #expect(forwarded >= 20, "about half of 80 events belong to a")
        var owners = Set<String>()
        for i in 0..<40 {
            let list = events(try a.json("GET", "/v1/sessions/fr-\(i)").1)
            #expect(list.count == 1, "fr-\(i)")
            #expect(list.first?["event_id"] as? String == "id-\(i)")
            #expect(list.first?["value"] as? Int == i)
            if let n = list.first?["node"] as? String { owners.insert(n) }
        }
        #expect(owners == ["a", "b"])
    }

    /// With rf=2 every record a node stores as owner is shipped to the other node, and the
    /// replication frames that carried them are counted: records shipped / frames is the mean
    /// replication frame (`ops/bench/run` prints it per scaling point).
    @Test func replicationFramesAndRecordsShippedAreCounted() throws {
        let (a, b) = try twoNodes(rf: 2)
        defer { a.stop(); b.stop() }
        let batch = "[" + (0..<60).map { #"{"session_id":"rc-\#($0)","key":"k","value":\#($0)}"# }.joined(separator: ",") + "]"
        #expect(try a.call("POST", "/v1/events", batch).status == 202)
        #expect(try b.call("POST", "/v1/events", batch).status == 202)
        var shipped = 0.0
        for n in [a, b] {
            let records = metricValue(n.server.engine.metrics, "starling_replica_records_shipped_total") ?? -1
            let frames = metricValue(n.server.engine.metrics, "starling_replica_batches_total") ?? -1
            #expect(records > 0 && frames >= 1 && frames <= records, "each node owns some of the 60 sessions and ships them")
            shipped += records
        }
        // Every one of the 120 events was stored by its owner and shipped once to the other node.
        #expect(shipped == 120)
    }
}
