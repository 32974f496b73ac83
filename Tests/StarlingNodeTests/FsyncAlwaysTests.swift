import Foundation
import Testing
import StarlingCore
@testable import StarlingNode

/// `--fsync always`: every answer, and a follower's confirmation of a replica, waits for the
/// fdatasync of its group; group commit makes it one fdatasync per group, not per request.
@Suite(.serialized) struct FsyncAlwaysTests {
    func count(_ metric: String, in text: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(metric + " ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? -1
    }

    @Test func concurrentWritersShareOneSyncPerGroup() throws {
        let node = try LiveNode { $0.fsync = .always }
        defer { node.stop() }
        let statuses = Mutex_<[Int]>([])
        let port = node.port
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            var mine: [Int] = []
            for i in 0..<40 {
                let body = Array(#"[{"session_id":"fa-\#(w)","key":"k","value":\#(i),"event_id":"\#(w)-\#(i)"}]"#.utf8)
                mine.append((try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events", body: body).status) ?? -1)
            }
            statuses.lock.withLock { statuses.value += mine }
        }
        #expect(statuses.get().allSatisfy { $0 == 202 } && statuses.get().count == 320)
        for w in 0..<8 {
            #expect(events(try node.json("GET", "/v1/sessions/fa-\(w)").1).count == 40)
        }
        let metrics = try node.call("GET", "/metrics").text
        let syncs = count("starling_log_fsync_seconds_count", in: metrics)
        let groups = count("starling_group_commit_events_count", in: metrics)
        // One fdatasync per group commit, before its answers: exactly as many as groups.
        #expect(syncs >= 1 && syncs == groups, "fsyncs \(syncs), group commits \(groups)")
    }

    @Test func replicasAreSyncedBeforeTheyConfirm() throws {
        let nodes = try replicatedNodes(["a", "b"], rf: 2) { $0.fsync = .always }
        defer { nodes.forEach { $0.stop() } }
        for i in 0..<20 {
            #expect(try nodes[i % 2].call("POST", "/v1/events", #"{"session_id":"fr-\#(i % 3)","key":"k","value":\#(i),"event_id":"f\#(i)"}"#).status == 202)
        }
        for n in nodes {
            let local = (0..<3).map { n.server.engine.session("fr-\($0)", query: EventQuery()).0.records.count }.reduce(0, +)
            #expect(local == 20, "\(n.server.config.id) holds \(local)")
            #expect(count("starling_log_fsync_seconds_count", in: try n.call("GET", "/metrics").text) >= 1)
        }
    }
}
