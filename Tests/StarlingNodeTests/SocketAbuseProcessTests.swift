import Foundation
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

/// Bad clients at the socket level, against a real node process: slowloris, ten thousand idle
/// connections, a client that never reads its answers, a peer that stops reading. The node
/// keeps serving everyone else, with a metric for each refusal.
@Suite(.serialized) struct SocketAbuseProcessTests {
    /// A TCP connection from a chosen loopback address (127.0.0.x are all local on Linux).
    final class Raw {
        let fd: Int32
        init(port: Int, from source: String = "127.0.0.1") throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var src = sockaddr_in()
            src.sin_family = sa_family_t(AF_INET)
            src.sin_addr.s_addr = inet_addr(source)
            var dst = sockaddr_in()
            dst.sin_family = sa_family_t(AF_INET)
            dst.sin_port = in_port_t(UInt16(port).bigEndian)
            dst.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &src) { s in
                s.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0 && withUnsafePointer(to: &dst) { d in
                d.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            guard ok else {
                close(fd)
                throw SimpleHTTPClient.ClientError(description: "connect from \(source): errno \(errno)")
            }
        }
        deinit { close(fd) }

        @discardableResult
        func send(_ bytes: [UInt8], nonBlocking: Bool = false) -> Int {
            bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | (nonBlocking ? Int32(MSG_DONTWAIT) : 0)) }
        }

        /// True once the node closed the connection (a read gives end of file or a reset).
        func closedByPeer(waitingMs: Int32 = 0) -> Bool {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, waitingMs) > 0 else { return false }
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                if n == 0 { return true }
                if n < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
            }
        }

        /// One `GET path` on this connection, waiting for the answer's status line.
        func get(_ path: String) -> Int? {
            send(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            guard n > 12 else { return nil }
            return Int(String(decoding: buf[9..<12], as: UTF8.self))
        }
    }

    func metric(_ node: NodeProcess, _ line: String) -> Double {
        guard let r = try? SimpleHTTPClient.request(host: "127.0.0.1", port: node.port, method: "GET", path: "/metrics") else { return -1 }
        for l in r.text.split(separator: "\n") where l.hasPrefix(line + " ") { return Double(l.split(separator: " ").last!) ?? -1 }
        return 0
    }

    func rss(_ node: NodeProcess) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(node.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 0
    }

    func node(_ extra: [String] = []) throws -> (NodeProcess, String)? {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found")
            return nil
        }
        let data = NSTemporaryDirectory() + "starling-abuse-" + UUID().uuidString
        // 127.0.0.1 is a trusted proxy by default (exempt from the per-address cap): not here.
        return (try NodeProcess(binary: bin, id: "a1", data: data, extra: ["--trusted-proxy", "10.255.255.255/32"] + extra), data)
    }

    @Test func slowlorisMeetsTheAddressCapAndTheHeaderTimeout() throws {
        guard let (n, data) = try node(["--http-connections-per-ip", "20", "--http-header-timeout", "1s"]) else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        var slow: [Raw] = []
        for _ in 0..<30 { slow.append(try Raw(port: n.port)) }
        let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        // A byte every 100 ms on each connection, for 2.5 s: the head never completes in time.
        let start = Date()
        var i = 0
        var servedMeanwhile = 0
        while Date().timeIntervalSince(start) < 2.5 && i < request.count {
            for c in slow { c.send([request[i]], nonBlocking: true) }
            i += 1
            if i % 5 == 0, try Raw(port: n.port, from: "127.0.0.2").get("/healthz") == 200 { servedMeanwhile += 1 }
            usleep(100_000)
        }
        #expect(servedMeanwhile >= 3, "another address was served while the slow clients held their connections")
        let refused = metric(n, #"starling_connections_refused_total{listener="http",reason="too_many_connections_from_address"}"#)
        #expect(refused == 10, "20 admitted from one address, the other 10 refused")
        #expect(eventually(5) { metric(n, #"starling_connection_timeouts_total{phase="header"}"#) >= 20 })
        #expect(slow.filter { $0.closedByPeer(waitingMs: 100) }.count == 30, "every slow connection is closed")
        #expect(try Raw(port: n.port).get("/healthz") == 200, "the address is served again once its slow connections are gone")
    }

    /// The header deadline runs from the end of the last answer, not from the connection's start:
    /// one connection asking every 300 ms for 2.4 s (more than twice the 1 s timeout) is served
    /// throughout, and closed about a second after its last request.
    @Test func aBusyKeepAliveConnectionOutlivesTheHeaderTimeout() throws {
        guard let (n, data) = try node(["--http-header-timeout", "1s"]) else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        let c = try Raw(port: n.port)
        var statuses: [Int?] = []
        for _ in 0..<8 {
            statuses.append(c.get("/healthz"))
            usleep(300_000)
        }
        #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(!c.closedByPeer(waitingMs: 0))
        let last = Date()
        #expect(c.closedByPeer(waitingMs: 3_000), "closed once idle for the header timeout")
        let idle = Date().timeIntervalSince(last)
        #expect(idle > 0.3 && idle < 2.5, "closed \(idle) s after the last answer")
        #expect(metric(n, #"starling_connection_timeouts_total{phase="header"}"#) == 1)
    }

    /// A body that stops coming is cut at the body timeout, counted under its own phase, while
    /// the header timeout (longer here) does not apply to it.
    @Test func aStalledBodyMeetsTheBodyTimeout() throws {
        guard let (n, data) = try node(["--http-header-timeout", "30s", "--http-body-timeout", "1s"]) else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        let c = try Raw(port: n.port)
        c.send(Array("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"session_id\"".utf8))
        let sent = Date()
        #expect(c.closedByPeer(waitingMs: 5_000), "the stalled body is cut")
        let after = Date().timeIntervalSince(sent)
        #expect(after > 0.5 && after < 3, "cut \(after) s after the head")
        #expect(metric(n, #"starling_connection_timeouts_total{phase="body"}"#) == 1)
        #expect(metric(n, #"starling_connection_timeouts_total{phase="header"}"#) == 0)
    }

    @Test func tenThousandIdleConnections() throws {
        guard let (n, data) = try node() else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        let before = rss(n)
        var idle: [Raw] = []
        // 40 addresses x 250: under the per-address cap (512); the node's total cap is 16,384.
        for a in 0..<40 {
            for _ in 0..<250 { idle.append(try Raw(port: n.port, from: "127.0.0.\(a + 2)")) }
        }
        #expect(eventually(20) { metric(n, "starling_http_connections_count") >= 10_000 })
        let t = Date()
        #expect(try Raw(port: n.port, from: "127.0.0.1").get("/healthz") == 200)
        #expect(Date().timeIntervalSince(t) < 2, "served at once next to 10,000 idle connections")
        let grown = rss(n) - before
        print("10,000 idle connections: node RSS grew by \(grown / 1_048_576) MB")
        #expect(grown < 512 * 1_048_576)
        idle.removeAll()
        #expect(eventually(10) { metric(n, "starling_http_connections_count") <= 1 })
    }

    @Test func aClientThatNeverReadsIsPausedNotBuffered() throws {
        guard let (n, data) = try node() else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        let before = rss(n)
        let greedy = try Raw(port: n.port)
        let one = Array("GET /v1/cluster HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let chunk = [UInt8]((0..<2_000).flatMap { _ in one })
        var sent = 0
        let start = Date()
        var stalled = 0
        while Date().timeIntervalSince(start) < 4 && sent < 512 * 1_048_576 {
            let k = greedy.send(chunk, nonBlocking: true)
            if k > 0 { sent += k; stalled = 0 } else { stalled += 1; usleep(10_000) }
            if stalled > 100 { break }   // a second with nothing taken: the node stopped reading
        }
        let grown = rss(n) - before
        print("a client that never reads: it got \(sent / 1_048_576) MB of requests in before the node stopped reading; RSS grew by \(grown / 1_048_576) MB")
        #expect(stalled > 100, "the node stopped reading the client")
        #expect(sent < 128 * 1_048_576)
        #expect(grown < 256 * 1_048_576)
        #expect(try Raw(port: n.port, from: "127.0.0.2").get("/healthz") == 200)
    }

    @Test func aPeerThatStopsReadingIsPaused() throws {
        guard let (n, data) = try node() else { return }
        defer { n.kill9(); try? FileManager.default.removeItem(atPath: data) }
        let body = (0..<500).map { i in #"{"session_id":"big","key":"k","value":"\#(i)-\#(String(repeating: "x", count: 500))"}"# }
        #expect(n.post("[" + body.joined(separator: ",") + "]") == 202)
        let before = rss(n)
        let peer = try Raw(port: n.peerPort)
        peer.send(FrameCodec.encode(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "reader-1",
                                          body: Hello(nodeID: "reader-1", peer: "", http: "", incarnation: 0).encode()), compress: false))
        // Each query answers ~250 KB; the peer asks again and again and never reads.
        var sent = 0
        var stalled = 0
        let start = Date()
        var id: UInt64 = 2
        while Date().timeIntervalSince(start) < 4 && stalled <= 100 {
            let q = FrameCodec.encode(Frame(kind: .query, clusterID: 0, requestID: id, sender: "reader-1",
                                            body: QueryRequest(scope: 0, id: "big", limit: 100_000).encode()), compress: false)
            let k = peer.send(q, nonBlocking: true)
            if k > 0 { sent += 1; id += 1; stalled = 0 } else { stalled += 1; usleep(10_000) }
        }
        let grown = rss(n) - before
        print("a peer that stops reading: \(sent) queries went in before the node stopped reading; RSS grew by \(grown / 1_048_576) MB")
        #expect(stalled > 100, "the node stopped reading the peer")
        #expect(grown < 256 * 1_048_576)
        #expect(try Raw(port: n.port).get("/healthz") == 200)
    }
}
