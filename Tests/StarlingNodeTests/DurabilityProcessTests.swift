import Foundation
import Testing
import StarlingCluster
import StarlingNode

/// Two real `starling node` processes with rf=2, the second joined to the first.
func twoProcesses(_ bin: String, base: String) throws -> (NodeProcess, NodeProcess) {
    let n1 = try NodeProcess(binary: bin, id: "n1", data: base + "/n1", rf: 2)
    let n2 = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", extra: ["--join", "127.0.0.1:\(n1.peerPort)"], rf: 2)
    func upIDs(_ n: NodeProcess) -> Set<String> {
        let m = ((try? n.getJSON("/v1/cluster")["members"] as? [[String: Any]]) ?? nil) ?? []
        return Set(m.filter { $0["status"] as? String == "up" }.compactMap { $0["id"] as? String })
    }
    #expect(eventually(15) { [n1, n2].allSatisfy { upIDs($0) == ["n1", "n2"] } }, "the two nodes did not form a cluster")
    return (n1, n2)
}

/// Sets the running process's soft file-size limit (`prlimit --pid`, the hard limit untouched so
/// it can be raised again): 1 byte makes every log write fail (a full disk), "unlimited" heals it.
func setFileSizeLimit(_ node: NodeProcess, _ limit: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
    p.arguments = ["--pid", String(node.process.processIdentifier), "--fsize=\(limit):"]
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "prlimit --fsize=\(limit) failed")
}

/// The defects of acknowledged events that a chaos run cannot see, through real processes.
@Suite(.serialized) struct DurabilityProcessTests {
    /// The owner appends, its follower's disk is full, the client gets 503 and retries. The retry
    /// is a duplicate on the owner; it must be answered 202 only once the follower holds the
    /// event (it used to be answered 202 at once, with one copy). Then the owner is killed, and
    /// the follower's own copy must hold the event.
    @Test func aRetryAfterAFailedReplicaIsAcknowledgedOnlyWithBothCopies() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found: run `swift build --build-tests` first")
            return
        }
        let base = NSTemporaryDirectory() + "starling-retry-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (n1, n2) = try twoProcesses(bin, base: base)
        defer { for n in [n1, n2] where n.process.isRunning { n.kill9() } }
        let sid = session(replicatedOn: ["n1"], ring: ["n1", "n2"], rf: 1, prefix: "retry")   // n1 owns it
        let event = #"{"session_id":"\#(sid)","key":"k","value":1,"event_id":"retry-1"}"#
        try setFileSizeLimit(n2, "1")
        #expect(n1.post(event) == 503, "the follower's write failure must fail the request")
        // Still failing: the retry must not be acknowledged from the owner's copy alone.
        #expect(n1.post(event) == 503, "a retry was acknowledged while the follower cannot store it")
        try setFileSizeLimit(n2, "unlimited")
        var statuses: [Int] = []
        let acknowledged = eventually(15) {
            statuses.append(n1.post(event))
            return statuses.last == 202
        }
        #expect(acknowledged, "the retry never succeeded: \(statuses)")
        n1.kill9()
        let ids = try n2.sessionEventIDs(sid)
        #expect(ids == ["retry-1"], "the follower's own copy: \(ids)")
    }

    /// SIGTERM while a write waits for its follower (stopped for 0.7 s): the write completes
    /// with 202 and the node exits 0. Closing peer connections before the drain used to fail it
    /// with 503.
    @Test func sigtermFinishesAWriteWaitingForItsFollower() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found: run `swift build --build-tests` first")
            return
        }
        let base = NSTemporaryDirectory() + "starling-drain-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (n1, n2) = try twoProcesses(bin, base: base)
        defer {
            kill(n2.process.processIdentifier, SIGCONT)
            for n in [n1, n2] where n.process.isRunning { n.kill9() }
        }
        let sid = session(replicatedOn: ["n1"], ring: ["n1", "n2"], rf: 1, prefix: "drain")
        kill(n2.process.processIdentifier, SIGSTOP)
        let status = Mutex_<Int>(0)
        let done = DispatchSemaphore(value: 0)
        let port = n1.port
        DispatchQueue.global().async {
            let body = Array(#"{"session_id":"\#(sid)","key":"k","value":1,"event_id":"drain-1"}"#.utf8)
            status.set((try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events",
                                                      body: body, timeoutSeconds: 20).status) ?? -1)
            done.signal()
        }
        usleep(300_000)   // the write is now waiting for n2
        let exit = Mutex_<Int32>(-1)
        let exited = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            exit.set(n1.terminate())
            exited.signal()
        }
        usleep(400_000)
        kill(n2.process.processIdentifier, SIGCONT)
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(status.get() == 202, "the in-flight write was answered \(status.get())")
        #expect(exited.wait(timeout: .now() + 20) == .success)
        #expect(exit.get() == 0)
        #expect(try n2.sessionEventIDs(sid) == ["drain-1"])
    }
}
