import Foundation
import Testing
import StarlingNode

/// The `starling` binary built next to the tests (`swift build --build-tests`).
func starlingBinary() -> String? {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    for config in ["debug", "release"] {
        let p = url.appendingPathComponent(".build/\(config)/starling").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// A `starling node` child process on ephemeral ports; its HTTP port is read from its first stdout line.
final class NodeProcess: @unchecked Sendable {
    let process = Process()
    let out = Pipe()
    var port = 0
    var peerPort = 0
    var stdoutText = ""

    init(binary: String, id: String, data: String, extra: [String] = [], fileSizeLimit: Int? = nil, rf: Int = 1,
         peerPort: Int = 0) throws {
        let nodeArgs = ["node", "--id", id, "--data", data, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:\(peerPort)", "--rf", String(rf),
                             "--log-level", "error"] + extra
        if let limit = fileSizeLimit {
            // prlimit caps the size of any file the node writes: a stand-in for a full disk.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--fsize=\(limit)", binary] + nodeArgs
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = nodeArgs
        }
        process.standardOutput = out
        try process.run()
        // The node prints "starling node ID: http 127.0.0.1:PORT, ..." once it listens. n1: http 127.0.0.1:PORT, peer ..."
        var line = ""
        let deadline = Date().addingTimeInterval(30)
        while !line.contains("\n") && Date() < deadline && process.isRunning {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line += String(decoding: d, as: UTF8.self)
        }
        stdoutText = line
        guard let r = line.range(of: "http 127.0.0.1:"),
              let p = Int(line[r.upperBound...].prefix { $0.isNumber }) else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw SimpleHTTPClient.ClientError(description: "node did not report its port: \(line)")
        }
        port = p
        if let r = line.range(of: "peer 127.0.0.1:"), let pp = Int(line[r.upperBound...].prefix { $0.isNumber }) { self.peerPort = pp }
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }

    func post(_ body: String) -> Int {
        (try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events", body: Array(body.utf8), timeoutSeconds: 5).status) ?? -1
    }

    func getJSON(_ path: String) throws -> [String: Any] {
        let r = try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: path)
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    func sessionEventIDs(_ sid: String) throws -> [String] {
        let r = try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/v1/sessions/\(sid)?limit=100000")
        let obj = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        return (obj?["events"] as? [[String: Any]] ?? []).compactMap { $0["event_id"] as? String }
    }
}

final class Mutex_<T>: @unchecked Sendable {
    let lock = NSLock()
    var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
}

final class Flag: @unchecked Sendable {
    let lock = NSLock()
    var on = false
    var value: Bool { lock.withLock { on } }
    func set() { lock.withLock { on = true } }
}

final class AckLog: @unchecked Sendable {
    let lock = NSLock()
    var acked: [String: [String]] = [:]   // session -> event ids answered 202
    var attempts = 0
    func add(_ sid: String, _ ids: [String]) { lock.withLock { acked[sid, default: []].append(contentsOf: ids) } }
    func tried() { lock.withLock { attempts += 1 } }
}

@Suite(.serialized) struct ProcessTests {
    /// kill -9 while clients write; after a restart every 202-answered event is returned exactly once.
    @Test func killNineUnderLoadLosesNoAcknowledgedEvent() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found: run `swift build --build-tests` first")
            return
        }
        let data = NSTemporaryDirectory() + "starling-kill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: data) }
        let node = try NodeProcess(binary: bin, id: "k1", data: data)
        defer { if node.process.isRunning { node.kill9() } }
        let acks = AckLog()
        let writers = 4
        let group = DispatchGroup()
        let stopAt = Date().addingTimeInterval(20)   // hard bound on the load loop
        for w in 0..<writers {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                var n = 0
                var failuresInARow = 0
                while n < 3_000 && Date() < stopAt && failuresInARow < 20 {
                    let sid = "w\(w)-s\(n % 7)"
                    var ids: [String] = []
                    var parts: [String] = []
                    for b in 0..<5 {
                        let id = "w\(w)-\(n)-\(b)"
                        ids.append(id)
                        parts.append(#"{"session_id":"\#(sid)","key":"k","value":\#(n),"event_id":"\#(id)"}"#)
                    }
                    acks.tried()
                    let status = node.post("[" + parts.joined(separator: ",") + "]")
                    if status == 202 {
                        acks.add(sid, ids)
                        failuresInARow = 0
                    } else {
                        failuresInARow += 1
                    }
                    n += 1
                }
            }
        }
        // Kill once a good number of events have been acknowledged.
        _ = eventually(15) { acks.lock.withLock { acks.acked.values.reduce(0) { $0 + $1.count } } >= 2_000 }
        node.kill9()
        group.wait()
        let ackedTotal = acks.acked.values.reduce(0) { $0 + $1.count }
        #expect(ackedTotal >= 2_000, "the load did not get going (\(ackedTotal) acknowledged)")

        let restarted = try NodeProcess(binary: bin, id: "k1", data: data)
        defer { if restarted.process.isRunning { restarted.kill9() } }
        var lost = 0, duplicated = 0
        for (sid, ids) in acks.acked {
            let stored = try restarted.sessionEventIDs(sid)
            let counts = Dictionary(stored.map { ($0, 1) }, uniquingKeysWith: +)
            for id in ids {
                let c = counts[id] ?? 0
                if c == 0 { lost += 1 }
                if c > 1 { duplicated += 1 }
            }
            #expect(counts.values.allSatisfy { $0 == 1 }, "session \(sid) returned an event twice")
        }
        #expect(lost == 0, "\(lost) acknowledged events lost after kill -9")
        #expect(duplicated == 0)
        #expect(restarted.terminate() == 0, "SIGTERM must exit 0")
    }

    /// A full disk (here: a file-size limit) makes ingest answer 503 with a clear code; reads go on,
    /// nothing acknowledged is lost, and after the limit is gone the node takes writes again.
    @Test func diskFullAnswers503AndLosesNothing() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let data = NSTemporaryDirectory() + "starling-full-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: data) }
        let node = try NodeProcess(binary: bin, id: "f1", data: data, fileSizeLimit: 64 * 1024)
        defer { if node.process.isRunning { node.kill9() } }
        var acked: [String] = []
        var refused: SimpleHTTPClient.Response?
        let pad = String(repeating: "p", count: 2000)
        for i in 0..<400 {
            let body = #"{"session_id":"full","key":"k","value":"\#(pad)","event_id":"f\#(i)"}"#
            let r = try SimpleHTTPClient.request(host: "127.0.0.1", port: node.port, method: "POST", path: "/v1/events", body: Array(body.utf8))
            if r.status == 202 { acked.append("f\(i)") } else { refused = r; break }
        }
        #expect(acked.count > 5, "some events fit before the limit")
        #expect(refused?.status == 503)
        #expect(refused?.text.contains("storage_") == true, "answer: \(refused?.text ?? "none")")
        #expect(refused?.header("Retry-After") != nil)
        // Reads still work and return every acknowledged event.
        #expect(try node.sessionEventIDs("full").sorted() == acked.sorted())
        let metrics = try SimpleHTTPClient.request(host: "127.0.0.1", port: node.port, method: "GET", path: "/metrics").text
        #expect(metrics.contains("starling_log_write_errors_total"))
        #expect(node.terminate() == 0)
        // Restarted without the limit: everything acknowledged is there once, and writes work.
        let again = try NodeProcess(binary: bin, id: "f1", data: data)
        defer { if again.process.isRunning { again.kill9() } }
        #expect(try again.sessionEventIDs("full").sorted() == acked.sorted())
        #expect(again.post(#"{"session_id":"full","key":"k","value":1,"event_id":"after"}"#) == 202)
        #expect(again.terminate() == 0)
    }

    /// Three real processes: events posted round-robin to all nodes are each returned exactly
    /// once by a session query on every node; a killed node is shown down.
    @Test func threeNodeClusterRoutesAndFansOut() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let base = NSTemporaryDirectory() + "starling-3n-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: base) }
        let n1 = try NodeProcess(binary: bin, id: "n1", data: base + "/n1")
        defer { if n1.process.isRunning { n1.kill9() } }
        let join = ["--join", "127.0.0.1:\(n1.peerPort)"]
        let n2 = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", extra: join)
        defer { if n2.process.isRunning { n2.kill9() } }
        let n3 = try NodeProcess(binary: bin, id: "n3", data: base + "/n3", extra: join)
        defer { if n3.process.isRunning { n3.kill9() } }
        let nodes = [n1, n2, n3]
        func upCount(_ n: NodeProcess) -> Int {
            let members = (try? n.getJSON("/v1/cluster")["members"] as? [[String: Any]]) ?? nil
            return (members ?? []).filter { $0["status"] as? String == "up" }.count
        }
        #expect(eventually(15) { nodes.allSatisfy { upCount($0) == 3 } }, "members did not converge")
        var sent: [String: [String]] = [:]
        for i in 0..<120 {
            let sid = "cs\(i % 12)"
            let id = "ce\(i)"
            let status = nodes[i % 3].post(#"{"session_id":"\#(sid)","key":"k","value":\#(i),"event_id":"\#(id)"}"#)
            #expect(status == 202)
            sent[sid, default: []].append(id)
        }
        var owners = Set<String>()
        for (sid, ids) in sent {
            for n in nodes {
                let obj = try n.getJSON("/v1/sessions/\(sid)")
                let evs = obj["events"] as? [[String: Any]] ?? []
                #expect(evs.compactMap { $0["event_id"] as? String }.sorted() == ids.sorted(), "session \(sid) from node \(n.port)")
                #expect(obj["partial"] as? Bool == false)
                #expect((obj["state"] as? [String: Any])?["events"] as? Int == ids.count)
                owners.formUnion(evs.compactMap { $0["node"] as? String })
            }
        }
        #expect(owners.count == 3, "12 sessions should spread over all three owners, got \(owners)")
        n3.kill9()
        #expect(eventually(10) {
            let m = (try? n1.getJSON("/v1/cluster")["members"] as? [[String: Any]]) ?? nil
            return (m ?? []).contains { $0["id"] as? String == "n3" && $0["status"] as? String == "down" }
        }, "killed node not shown down")
        #expect(n1.terminate() == 0)
        #expect(n2.terminate() == 0)
    }

    /// rf=2 under continuous writes: kill -9 a node, restart it, add a fourth, let the first leave
    /// gracefully. Every 202-answered event is then returned exactly once by every live node.
    @Test func replicatedClusterSurvivesKillRestartJoinAndLeave() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let base = NSTemporaryDirectory() + "starling-rf2-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: base) }
        let n1 = try NodeProcess(binary: bin, id: "n1", data: base + "/n1", rf: 2)
        let join = ["--join", "127.0.0.1:\(n1.peerPort)"]
        let n2 = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", extra: join, rf: 2)
        let n3 = try NodeProcess(binary: bin, id: "n3", data: base + "/n3", extra: join, rf: 2)
        var all = [n1, n2, n3]
        defer { for n in all where n.process.isRunning { n.kill9() } }
        func upIDs(_ n: NodeProcess) -> Set<String> {
            let m = ((try? n.getJSON("/v1/cluster")["members"] as? [[String: Any]]) ?? nil) ?? []
            return Set(m.filter { $0["status"] as? String == "up" }.compactMap { $0["id"] as? String })
        }
        #expect(eventually(15) { [n1, n2, n3].allSatisfy { upIDs($0) == ["n1", "n2", "n3"] } }, "cluster did not form")

        // Writers: post to whichever nodes are in `targets`, record every 202.
        let acks = AckLog()
        let targets = Mutex_<[NodeProcess]>([n1, n2, n3])
        let stop = Flag()
        let group = DispatchGroup()
        let deadline = Date().addingTimeInterval(60)   // hard bound on the load
        for w in 0..<3 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                var n = 0
                while !stop.value && Date() < deadline && n < 20_000 {
                    let list = targets.get()
                    let node = list[n % list.count]
                    let sid = "r\(w)-\(n % 13)"
                    var ids: [String] = []
                    var parts: [String] = []
                    for b in 0..<3 {
                        let id = "w\(w)-\(n)-\(b)"
                        ids.append(id)
                        parts.append(#"{"session_id":"\#(sid)","key":"k","value":\#(n),"event_id":"\#(id)"}"#)
                    }
                    if node.post("[" + parts.joined(separator: ",") + "]") == 202 { acks.add(sid, ids) }
                    n += 1
                }
            }
        }
        func ackCount() -> Int { acks.lock.withLock { acks.acked.values.reduce(0) { $0 + $1.count } } }
        _ = eventually(20) { ackCount() >= 1_500 }
        // 1. kill -9 n2 under load.
        targets.set([n1, n3])
        n2.kill9()
        #expect(eventually(10) { !upIDs(n1).contains("n2") }, "n2 not detected")
        let beforeRestart = ackCount()
        _ = eventually(10) { ackCount() >= beforeRestart + 600 }
        #expect(ackCount() > beforeRestart, "writes must go on with one node down (rf=2, 2 live)")
        // 2. restart n2 with its data.
        let n2b = try NodeProcess(binary: bin, id: "n2", data: base + "/n2", rf: 2, peerPort: n2.peerPort)
        all.append(n2b)
        #expect(eventually(15) { upIDs(n1) == ["n1", "n2", "n3"] }, "n2 did not rejoin")
        targets.set([n1, n2b, n3])
        // 3. a fourth node joins.
        let n4 = try NodeProcess(binary: bin, id: "n4", data: base + "/n4", extra: ["--join", "127.0.0.1:\(n3.peerPort)"], rf: 2)
        all.append(n4)
        #expect(eventually(15) { upIDs(n1) == ["n1", "n2", "n3", "n4"] }, "n4 did not join")
        targets.set([n2b, n3, n4])
        let beforeLeave = ackCount()
        _ = eventually(10) { ackCount() >= beforeLeave + 600 }
        // 4. n1 leaves gracefully.
        #expect(n1.terminate() == 0)
        _ = eventually(5) { ackCount() >= beforeLeave + 900 }
        stop.set()
        group.wait()
        let live = [n2b, n3, n4]
        #expect(eventually(15) { live.allSatisfy { upIDs($0) == ["n2", "n3", "n4"] } }, "survivors did not agree")

        var lost = 0, duplicated = 0, checked = 0
        _ = eventually(30) {
            lost = 0; duplicated = 0; checked = 0
            for (sid, ids) in acks.acked {
                for node in live {
                    guard let stored = try? node.sessionEventIDs(sid) else { lost += ids.count; continue }
                    let counts = Dictionary(stored.map { ($0, 1) }, uniquingKeysWith: +)
                    for id in ids {
                        checked += 1
                        let c = counts[id] ?? 0
                        if c == 0 { lost += 1 }
                        if c > 1 { duplicated += 1 }
                    }
                }
            }
            return lost == 0 && duplicated == 0
        }
        #expect(ackCount() >= 2_000, "load too small to mean anything: \(ackCount())")
        #expect(lost == 0, "\(lost) of \(checked) acknowledged (event, node) answers missing")
        #expect(duplicated == 0)
        for n in live { #expect(n.terminate() == 0) }
    }

    @Test func badFlagsExitWithCode2() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        for args in [["node"], ["node", "--id", "BAD ID", "--data", "/tmp/x", "--http", "127.0.0.1:1", "--peer", "127.0.0.1:2"],
                     ["node", "--id", "a", "--data", "/tmp/x", "--http", "nope", "--peer", "127.0.0.1:2"],
                     ["node", "--bogus"], ["node", "--config", "/nonexistent/starling.toml"]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 2, "args \(args) exited \(p.terminationStatus)")
            #expect(text.split(separator: "\n").first?.lowercased().contains("error") == true, "first line: \(text)")
        }
    }

    @Test func configFileAndFlagsWin() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let dir = NSTemporaryDirectory() + "starling-cfg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let toml = """
        id = "from-file"
        data = "\(dir)/data"
        http = "127.0.0.1:1"
        peer = "127.0.0.1:0"
        rf = 1
        join = []
        """
        try toml.write(toFile: dir + "/node.toml", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        // --http overrides the file's unusable port 1.
        p.arguments = ["node", "--config", dir + "/node.toml", "--http", "127.0.0.1:0", "--log-level", "error"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line.contains("starling node from-file"), "stdout: \(line)")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    /// The SDK settings from a config file: `[write_keys]` and the id cookie.
    @Test func writeKeysAndIdCookieFromTheConfigFile() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return
        }
        let dir = NSTemporaryDirectory() + "starling-cfg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let toml = """
        id = "keys"
        data = "\(dir)/data"
        http = "127.0.0.1:0"
        peer = "127.0.0.1:0"
        rf = 1
        id_cookie = "vid"
        id_cookie_days = 30
        tracing = true
        trace_sample = 0.5
        udp_sockets = 1

        [write_keys]
        web = "wk-web"
        backend = "wk-backend"
        """
        try toml.write(toFile: dir + "/node.toml", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["node", "--config", dir + "/node.toml", "--log-level", "error"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        defer {
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
        }
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        // "starling node keys: http 127.0.0.1:PORT, peer ..."
        let http = line.split(separator: ",").first?.split(separator: ":").last
        let port = try #require(http.flatMap { Int($0.prefix { $0.isNumber }) }, "stdout: \(line)")
        let body = Array(#"{"batch":[{"type":"track","event":"e","userId":"u","messageId":"cfg-1","context":{"sessionId":"cfg"}}]}"#.utf8)
        func post(_ auth: String) throws -> SimpleHTTPClient.Response {
            try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/batch",
                                         headers: [("Content-Type", "application/json"), ("Authorization", "Basic " + auth)], body: body)
        }
        #expect(try post("b3RoZXI6").status == 401)                      // "other:"
        let ok = try post("d2stYmFja2VuZDo=")                             // "wk-backend:"
        #expect(ok.status == 200)
        #expect(ok.header("Set-Cookie")?.hasPrefix("vid=") == true && ok.header("Set-Cookie")?.contains("Max-Age=2592000") == true)
        let session = try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/v1/sessions/cfg")
        #expect(session.text.contains(#""source":"backend""#), "\(session.text)")
        // Tracing is on (a TOML boolean): the span lookup answers (400 for a bad id, not 404 "tracing_off").
        let traces = try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/v1/admin/traces/nothex")
        #expect(traces.status == 400, "\(traces.text)")
    }
}
