import Foundation
import Testing
import StarlingNode

/// A member killed for good: the survivors say the cluster is degraded, answer every
/// acknowledged event with `partial: false` (each key still has an answering copy), and once an
/// operator removes the dead member (`starling cluster remove`), the cluster is whole again with
/// two copies of everything, each survivor holding all of it.
@Suite(.serialized) struct DegradedProcessTests {
    @Test func aDeadMemberLeavesAnswersCompleteAndIsRemovedByTheOperator() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let base = NSTemporaryDirectory() + "starling-degraded-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: base) }
        let n1 = try NodeProcess(binary: bin, id: "n1", data: base + "/n1", rf: 2)
        let join = ["--join", "127.0.0.1:\(n1.peerPort)"]
        let n2 = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", extra: join, rf: 2)
        let n3 = try NodeProcess(binary: bin, id: "n3", data: base + "/n3", extra: join, rf: 2)
        var running = [n1, n2, n3]
        defer { for n in running where n.process.isRunning { n.kill9() } }
        func status(_ n: NodeProcess) -> [String: String] {
            let m = ((try? n.getJSON("/v1/cluster")["members"] as? [[String: Any]]) ?? nil) ?? []
            var out: [String: String] = [:]
            for x in m { out[x["id"] as? String ?? "?"] = x["status"] as? String }
            return out
        }
        #expect(eventually(15) { [n1, n2, n3].allSatisfy { status($0) == ["n1": "up", "n2": "up", "n3": "up"] } }, "cluster did not form")

        var sent: [String: [String]] = [:]
        for i in 0..<150 {
            let sid = "dg\(i % 30)"
            let id = "dge\(i)"
            #expect([n1, n2, n3][i % 3].post(#"{"session_id":"\#(sid)","key":"k","value":\#(i),"event_id":"\#(id)"}"#) == 202)
            sent[sid, default: []].append(id)
        }
        func answersEverything(_ n: NodeProcess, _ label: String) throws {
            for (sid, ids) in sent {
                let obj = try n.getJSON("/v1/sessions/\(sid)")
                let got = (obj["events"] as? [[String: Any]] ?? []).compactMap { $0["event_id"] as? String }
                #expect(got.sorted() == ids.sorted(), "\(label): session \(sid)")
                #expect(obj["partial"] as? Bool == false, "\(label): session \(sid) partial")
            }
        }

        func pulled(_ n: NodeProcess) -> Double {
            let text = (try? SimpleHTTPClient.request(host: "127.0.0.1", port: n.port, method: "GET", path: "/metrics").text) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("starling_catch_up_records_total ") }
            return line.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        }
        n3.kill9()
        running = [n1, n2]
        #expect(eventually(15) { [n1, n2].allSatisfy { status($0)["n3"] == "down" } }, "n3 not marked down")
        // What each survivor had pulled before the ring without n3 (its catch-up starts 0.5 s
        // after the ring change).
        let pulledBefore = [n1, n2].map(pulled)
        for n in [n1, n2] {
            let cluster = try n.getJSON("/v1/cluster")
            #expect(cluster["degraded"] as? Bool == true && cluster["down"] as? [String] == ["n3"])
            let ready = try SimpleHTTPClient.request(host: "127.0.0.1", port: n.port, method: "GET", path: "/readyz")
            let body = (try JSONSerialization.jsonObject(with: Data(ready.body)) as? [String: Any]) ?? [:]
            #expect(ready.status == 200 && body["degraded"] as? Bool == true && body["down"] as? [String] == ["n3"])
        }
        try answersEverything(n1, "n1 with n3 down")
        try answersEverything(n2, "n2 with n3 down")

        // A live member cannot be removed this way; the dead one can.
        let refused = try SimpleHTTPClient.request(host: "127.0.0.1", port: n1.port, method: "POST", path: "/v1/admin/remove/n2")
        #expect(refused.status == 409)
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: bin)
        cli.arguments = ["cluster", "remove", "n3", "--node", "127.0.0.1:\(n1.port)"]
        cli.standardOutput = FileHandle.nullDevice
        try cli.run()
        cli.waitUntilExit()
        #expect(cli.terminationStatus == 0)
        #expect(eventually(10) { [n1, n2].allSatisfy { status($0)["n3"] == "left" } }, "n3 not removed everywhere")
        for n in [n1, n2] {
            let cluster = try n.getJSON("/v1/cluster")
            #expect(cluster["degraded"] as? Bool == false && (cluster["down"] as? [String])?.isEmpty == true)
        }
        try answersEverything(n1, "n1 after remove")

        // Two copies of everything: each survivor alone answers every event from its own data
        // (the other is killed; its keys' sets still name a survivor, so nothing is partial).
        // First both must have pulled what the ring without n3 gave them: their handoff for it
        // is done when the ring they last caught up in full is the current one.
        // (`caught_up_ring` alone could name [n1, n2] from when the cluster formed, so the pull
        // must also have grown since n3 went down.)
        func caughtUp(_ n: NodeProcess, since before: Double) -> Bool {
            guard let cluster = try? n.getJSON("/v1/cluster") else { return false }
            return cluster["caught_up_ring"] as? [String] == ["n1", "n2"] && cluster["catching_up"] as? Bool == false
                && pulled(n) > before
        }
        #expect(eventually(30) { caughtUp(n1, since: pulledBefore[0]) && caughtUp(n2, since: pulledBefore[1]) }, "the survivors did not catch up")
        n2.kill9()
        running = [n1]
        #expect(eventually(15) { status(n1)["n2"] == "down" })
        try answersEverything(n1, "n1 alone")
        let again = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", extra: join, rf: 2)
        running = [n1, again]
        #expect(eventually(15) { status(n1)["n2"] == "up" && status(again)["n1"] == "up" })
        n1.kill9()
        running = [again]
        #expect(eventually(15) { status(again)["n1"] == "down" })
        try answersEverything(again, "n2 alone")
        #expect(again.terminate() == 0)
    }
}
