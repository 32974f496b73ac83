import Foundation
import Testing
import StarlingCore
@testable import StarlingNode

@Suite(.serialized) struct HTTPTests {
    @Test func ingestAndQueryOneSession() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let (s1, a1) = try node.json("POST", "/v1/events", #"{"session_id":"s1","key":"page_view","value":"/home","via":"ad","ts":1000}"#)
        #expect(s1 == 202)
        #expect(a1["accepted"] as? Int == 1)
        let batch = #"[{"session_id":"s1","key":"click","value":{"x":1},"ts":3000},{"session_id":"s1","key":"cart","value":2,"ts":2000,"event_id":"e-2"},{"session_id":"other","key":"k","value":null}]"#
        let (s2, a2) = try node.json("POST", "/v1/events", batch)
        #expect(s2 == 202)
        #expect(a2["accepted"] as? Int == 3)
        let (s3, q) = try node.json("GET", "/v1/sessions/s1")
        #expect(s3 == 200)
        let evs = events(q)
        #expect(evs.map { $0["key"] as? String } == ["page_view", "cart", "click"])   // ordered by ts
        #expect(evs.map { $0["ts"] as? Int } == [1000, 2000, 3000])
        #expect(evs[1]["event_id"] as? String == "e-2")
        #expect((evs[0]["event_id"] as? String)?.count == 26)
        #expect(evs[0]["node"] as? String == "n1")
        #expect(evs[0]["ip"] as? String == "127.0.0.1")
        #expect(evs[0]["received_at"] is Int)
        #expect((evs[2]["value"] as? [String: Any])?["x"] as? Int == 1)
        #expect(q["partial"] as? Bool == false)
        let state = q["state"] as? [String: Any]
        #expect(state?["events"] as? Int == 3)
        #expect(state?["via_first"] as? String == "ad")
        #expect(state?["via_last"] as? String == "ad")
    }

    @Test func ndjsonAndFilters() throws {
        let node = try LiveNode()
        defer { node.stop() }
        var lines = ""
        for i in 0..<20 {
            lines += #"{"session_id":"f","key":"\#(i % 2 == 0 ? "even" : "odd")","component":"\#(i < 10 ? "web" : "api")","value":\#(i),"ts":\#(1000 + i)}"# + "\n"
        }
        let r = try node.call("POST", "/v1/events", lines, headers: [("Content-Type", "application/x-ndjson")])
        #expect(r.status == 202)
        #expect(events(try node.json("GET", "/v1/sessions/f?key=even").1).count == 10)
        #expect(events(try node.json("GET", "/v1/sessions/f?component=api").1).count == 10)
        #expect(events(try node.json("GET", "/v1/sessions/f?from=1005&to=1009").1).count == 5)
        let (_, lim) = try node.json("GET", "/v1/sessions/f?limit=3")
        #expect(events(lim).map { $0["value"] as? Int } == [0, 1, 2])
        #expect(lim["truncated"] as? Bool == true)
        let nd = try node.call("GET", "/v1/sessions/f?format=ndjson&limit=4")
        #expect(nd.text.split(separator: "\n").count == 4)
        #expect(nd.header("Content-Type") == "application/x-ndjson")
        let html = try node.call("GET", "/v1/sessions/f", headers: [("Accept", "text/html")])
        #expect(html.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(html.text.contains("<table id=\"events\">"))
        #expect(html.header("Content-Security-Policy")?.contains("script-src 'nonce-") == true, "only the page's own script may run")
        #expect(try node.call("GET", "/v1/sessions/f?format=xml").status == 400)
        #expect(try node.call("GET", "/v1/sessions/f?limit=abc").status == 400)
    }

    @Test func unknownSessionAndState() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let (s, q) = try node.json("GET", "/v1/sessions/nobody")
        #expect(s == 200)
        #expect(events(q).isEmpty)
        #expect(q["state"] is NSNull)
        #expect(try node.call("GET", "/v1/sessions/nobody/state").status == 404)
        try node.call("POST", "/v1/events", #"{"session_id":"st","key":"k","value":1,"via":"mail","user_id":"u"}"#)
        let (ss, st) = try node.json("GET", "/v1/sessions/st/state")
        #expect(ss == 200)
        for k in ["first_seen", "last_seen", "events", "short_expires_at", "long_expires_at", "via_first", "via_last", "user_id", "terminal_id"] {
            #expect(st.keys.contains(k), "state lacks \(k)")
        }
        #expect(st["user_id"] as? String == "u")
        #expect((st["short_expires_at"] as? Int ?? 0) - (st["last_seen"] as? Int ?? 0) == 30 * 60 * 1000)
    }

    @Test func duplicateEventIDIsAcknowledgedAndStoredOnce() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let e = #"{"session_id":"d","key":"k","value":1,"event_id":"same"}"#
        #expect(try node.call("POST", "/v1/events", e).status == 202)
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"d","key":"k2","value":2,"event_id":"same"}"#).status == 202)
        #expect(try node.call("POST", "/v1/events", "[\(e),\(e)]").status == 202)
        let evs = events(try node.json("GET", "/v1/sessions/d").1)
        #expect(evs.count == 1)
        #expect(evs.first?["key"] as? String == "k")   // the first copy wins
        // Another session may reuse the id.
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"d2","key":"k","value":1,"event_id":"same"}"#).status == 202)
        #expect(events(try node.json("GET", "/v1/sessions/d2").1).count == 1)
    }

    @Test func invalidRequestStoresNothing() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let (s, obj) = try node.json("POST", "/v1/events", #"[{"session_id":"v","key":"k","value":1},{"session_id":"v","key":"k"}]"#)
        #expect(s == 400)
        #expect(errorCode(obj) == "missing_field")
        #expect((obj["error"] as? [String: Any])?["index"] as? Int == 1)
        #expect(((obj["error"] as? [String: Any])?["message"] as? String)?.contains("value") == true)
        #expect(events(try node.json("GET", "/v1/sessions/v").1).isEmpty)
        let (s2, o2) = try node.json("POST", "/v1/events", "{not json")
        #expect(s2 == 400)
        #expect(errorCode(o2) == "invalid_json")
        let metrics = try node.call("GET", "/metrics").text
        #expect(metrics.contains(#"starling_events_rejected_total{transport="http",reason="invalid_json"} 1"#))
    }

    @Test func oversizeBodiesAre413() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let big = String(repeating: "x", count: 33 * 1024)
        let (s1, o1) = try node.json("POST", "/v1/events", #"{"session_id":"o","key":"k","value":"\#(big)"}"#)
        #expect(s1 == 413)
        #expect(errorCode(o1) == "event_too_large")
        let huge = String(repeating: " ", count: 1024 * 1024 + 10)
        let (s2, o2) = try node.json("POST", "/v1/events", huge)
        #expect(s2 == 413)
        #expect(errorCode(o2) == "body_too_large")
        // The node keeps serving.
        #expect(try node.call("GET", "/healthz").status == 200)
    }

    @Test func pixel() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let r = try node.call("GET", "/t.gif?sid=px&k=view&v=%2Fhome&via=banner&uid=u7&ts=5000")
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "image/gif")
        #expect(r.header("Cache-Control") == "no-store")
        #expect(r.body == NodeAPI.pixel)
        let bad = try node.call("GET", "/t.gif?sid=px")
        #expect(bad.status == 400)
        #expect(bad.body == NodeAPI.pixel)
        let evs = events(try node.json("GET", "/v1/sessions/px").1)
        #expect(evs.count == 1)
        #expect(evs.first?["value"] as? String == "/home")
        #expect(evs.first?["user_id"] as? String == "u7")
        #expect(evs.first?["ts"] as? Int == 5000)
    }

    @Test func identifyLinksIdentitiesToSessions() throws {
        let node = try LiveNode()
        defer { node.stop() }
        // Before any link: stored, found by identity, no session.
        #expect(try node.call("POST", "/v1/events", #"{"user_id":"u1","key":"early","value":1}"#).status == 202)
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"S","user_id":"u1","terminal_id":"t1"}"#).status == 204)
        #expect(try node.call("POST", "/v1/events", #"{"user_id":"u1","key":"late","value":2}"#).status == 202)
        #expect(try node.call("POST", "/v1/events", #"{"terminal_id":"t1","key":"term","value":3}"#).status == 202)
        let sess = events(try node.json("GET", "/v1/sessions/S").1)
        #expect(Set(sess.compactMap { $0["key"] as? String }) == ["late", "term"])
        #expect(sess.allSatisfy { $0["session_id"] as? String == "S" })
        let byUser = events(try node.json("GET", "/v1/users/u1/events").1)
        #expect(Set(byUser.compactMap { $0["key"] as? String }) == ["early", "late"])
        #expect(events(try node.json("GET", "/v1/terminals/t1/events").1).count == 1)
        let (_, links) = try node.json("GET", "/v1/users/u1/sessions")
        let list = links["sessions"] as? [[String: Any]] ?? []
        #expect(list.count == 1)
        #expect(list.first?["session_id"] as? String == "S")
        #expect(list.first?["linked_at"] is Int)
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"S"}"#).status == 400)
        #expect(try node.call("POST", "/v1/identify", #"{"user_id":"u"}"#).status == 400)
        let (badStatus, bad) = try node.json("POST", "/v1/identify", #"{"session_id":7,"user_id":"u"}"#)
        #expect(badStatus == 400)
        #expect(errorCode(bad) == "invalid_field")
    }

    @Test func operationsEndpoints() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(try node.call("GET", "/healthz").status == 200)
        #expect(try node.call("GET", "/readyz").status == 200)
        let (cs, cluster) = try node.json("GET", "/v1/cluster")
        #expect(cs == 200)
        #expect(cluster["self"] as? String == "n1")
        #expect((cluster["members"] as? [[String: Any]])?.first?["status"] as? String == "up")
        try node.call("POST", "/v1/events", #"[{"session_id":"c","key":"api_error","component":"billing","value":1},{"session_id":"c","key":"ok","component":"billing","value":1}]"#)
        let comps = (try node.json("GET", "/v1/stats/components").1["components"] as? [[String: Any]]) ?? []
        #expect(comps.first?["component"] as? String == "billing")
        #expect(comps.first?["events"] as? Int == 2)
        #expect(comps.first?["errors"] as? Int == 1)
        let metrics = try node.call("GET", "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.text.contains(#"starling_events_ingested_total{transport="http"} 2"#))
        #expect(metrics.text.contains("starling_http_request_duration_seconds_bucket"))
        #expect(try node.call("GET", "/nope").status == 404)
        #expect(try node.call("DELETE", "/v1/events").status == 405)
        #expect(try node.call("GET", "/v1/events").status == 405)
    }

    @Test func notReadyWithoutEnoughReplicas() throws {
        let node = try LiveNode { $0.rf = 2 }
        defer { node.stop() }
        #expect(try node.call("GET", "/readyz").status == 503)
        let r = try node.call("POST", "/v1/events", #"{"session_id":"x","key":"k","value":1}"#)
        #expect(r.status == 503)
        #expect(r.header("Retry-After") != nil)
        #expect(r.text.contains("rf=2"))
        #expect(try node.call("GET", "/t.gif?sid=x&k=k&v=1").status == 503)
    }

    @Test func rateLimitingPerClientIP() throws {
        let node = try LiveNode { $0.rateLimit = RateLimit(ratePerSecond: 1, burst: 3) }
        defer { node.stop() }
        var statuses: [Int] = []
        for _ in 0..<5 {
            statuses.append(try node.call("POST", "/v1/events", #"{"session_id":"r","key":"k","value":1}"#,
                                          headers: [("X-Forwarded-For", "203.0.113.7, 10.0.0.1")]).status)
        }
        #expect(statuses.prefix(3).allSatisfy { $0 == 202 })
        #expect(statuses.last == 429)
        let limited = try node.call("POST", "/v1/events", #"{"session_id":"r","key":"k","value":1}"#, headers: [("X-Forwarded-For", "203.0.113.7")])
        #expect(limited.header("Retry-After") != nil)
        // Another client is not affected.
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"r","key":"k","value":1}"#, headers: [("X-Forwarded-For", "198.51.100.1")]).status == 202)
        let blocked = (try node.json("GET", "/v1/stats/blocked").1["blocked"] as? [[String: Any]]) ?? []
        #expect(blocked.first?["ip"] as? String == "203.0.113.7")
        #expect((blocked.first?["count"] as? Int ?? 0) >= 2)
        // The stored ip is the forwarded client, since 127.0.0.1 is a trusted proxy.
        #expect(events(try node.json("GET", "/v1/sessions/r").1).first?["ip"] as? String == "203.0.113.7")
    }

    @Test func forwardedForIsIgnoredFromUntrustedPeers() throws {
        let node = try LiveNode { $0.trustedProxies = CIDR.parseList("10.0.0.0/8")! }
        defer { node.stop() }
        try node.call("POST", "/v1/events", #"{"session_id":"xf","key":"k","value":1}"#, headers: [("X-Forwarded-For", "203.0.113.9")])
        #expect(events(try node.json("GET", "/v1/sessions/xf").1).first?["ip"] as? String == "127.0.0.1")
    }

    @Test func udpIngestAndRejects() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let port = node.server.udpPort!
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        func send(_ s: String) {
            let bytes = Array(s.utf8)
            _ = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
        }
        for i in 0..<10 { send(#"{"session_id":"udp","key":"k","value":\#(i)}"#) }
        send("garbage")
        send(#"{"session_id":"udp","value":1}"#)
        let ok = try eventually { events(try node.json("GET", "/v1/sessions/udp").1).count == 10 }
        #expect(ok)
        let gotRejects = try eventually {
            let m = try node.call("GET", "/metrics").text
            return m.contains(#"starling_events_rejected_total{transport="udp",reason="invalid_json"} 1"#)
                && m.contains(#"starling_events_rejected_total{transport="udp",reason="missing_field"} 1"#)
        }
        #expect(gotRejects)
    }

    @Test func udpSocketsShareThePort() throws {
        let node = try LiveNode { $0.udpSockets = 4 }
        defer { node.stop() }
        let port = node.server.udpPort!
        // Four sockets of this process on the port (SO_REUSEPORT), as /proc/net/udp lists them.
        let table = (try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8)) ?? ""
        let local = String(format: "0100007F:%04X", port)
        #expect(table.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first.map(String.init) == local }.count == 4)
        // 32 senders (32 source ports, which the kernel spreads over the sockets), 5 datagrams each.
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        for sender in 0..<32 {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            for i in 0..<5 {
                let bytes = Array(#"{"session_id":"rp","key":"k","value":1,"event_id":"s\#(sender)-\#(i)"}"#.utf8)
                _ = withUnsafePointer(to: &addr) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                        bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                }
            }
        }
        let all = try eventually { events(try node.json("GET", "/v1/sessions/rp?limit=1000").1).count == 160 }
        #expect(all)
    }

    /// The UDP receive buffer asked for is granted past `rmem_max` when the process may force it
    /// (root here), else up to `rmem_max`; the gauge shows what the kernel granted.
    @Test func udpReceiveBufferIsGrantedAndExported() throws {
        let asked = 6 * 1024 * 1024
        let node = try LiveNode { $0.udpReceiveBufferBytes = asked }
        defer { node.stop() }
        let rmemMax = Int(((try? String(contentsOfFile: "/proc/sys/net/core/rmem_max", encoding: .utf8)) ?? "0")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let expected = geteuid() == 0 ? asked : min(asked, rmemMax)
        #expect(metricValue(node.server.engine.metrics, "starling_udp_receive_buffer_bytes") == Double(expected))
    }

    /// Datagrams the kernel drops on the node's port show in `starling_udp_socket_drops`. To
    /// make the kernel drop some for certain, a socket of this test joins the port's reuse group
    /// with the smallest receive buffer and is never read: what the kernel hashes to it
    /// overflows, and its row in /proc/net/udp carries the drops the node reports.
    @Test func kernelDropsOnTheUDPPortAreReported() throws {
        let node = try LiveNode { $0.udpSockets = 2 }
        defer { node.stop() }
        let port = node.server.udpPort!
        func drops() throws -> Double? {
            let text = try node.call("GET", "/metrics").text
            return text.split(separator: "\n").first { $0.hasPrefix("starling_udp_socket_drops ") }
                .flatMap { Double($0.split(separator: " ")[1]) }
        }
        #expect(try drops() == 0)
        let sink = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sink) }
        var one: Int32 = 1
        setsockopt(sink, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(sink, SOL_SOCKET, SO_RCVBUF, &one, socklen_t(MemoryLayout<Int32>.size))
        let addr = loopback(port)
        #expect(withSockaddr(addr) { bind(sink, $0, $1) } == 0, "joined the port's reuse group")
        let bytes = Array(#"{"session_id":"dr","key":"k","value":1}"#.utf8)
        for _ in 0..<64 {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            for _ in 0..<20 {
                _ = withSockaddr(addr) { sa, len in bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, len) } }
            }
            close(fd)
        }
        #expect(try eventually { (try drops() ?? 0) > 0 })
    }

    @Test func garbageAndSlowClientsDoNotHurtTheNode() throws {
        let node = try LiveNode()
        defer { node.stop() }
        // Raw garbage instead of HTTP.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(node.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let junk: [UInt8] = Array("\u{01}\u{02}GARBAGE \r\n\r\n\r\n".utf8)
        _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        #expect(n > 0 && String(decoding: buf[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 400"))
        close(fd)
        // A slow client that sends half a request holds only its own connection.
        let slow = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(slow) }
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(slow, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let half = Array("POST /v1/events HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"sess".utf8)
        _ = half.withUnsafeBytes { send(slow, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"g","key":"k","value":1}"#).status == 202)
        #expect(try node.call("GET", "/healthz").status == 200)
    }

    @Test func restartKeepsEventsStateAndLinks() throws {
        let dir = NSTemporaryDirectory() + "starling-restart-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let node = try LiveNode(dir: dir)
            try node.call("POST", "/v1/events", #"[{"session_id":"p","key":"a","value":1,"via":"x"},{"session_id":"p","key":"b","value":2}]"#)
            try node.call("POST", "/v1/identify", #"{"session_id":"p","user_id":"pu"}"#)
            node.stop()
        }
        let node = try LiveNode(dir: dir)
        defer { node.stop() }
        let (_, q) = try node.json("GET", "/v1/sessions/p")
        #expect(events(q).count == 2)
        #expect((q["state"] as? [String: Any])?["events"] as? Int == 2)
        #expect((q["state"] as? [String: Any])?["via_first"] as? String == "x")
        #expect((q["state"] as? [String: Any])?["user_id"] as? String == "pu")
        #expect(try node.call("POST", "/v1/events", #"{"user_id":"pu","key":"c","value":3}"#).status == 202)
        #expect(events(try node.json("GET", "/v1/sessions/p").1).count == 3)
    }

    @Test func dataDirectoryOfAnotherNodeIsRefused() throws {
        let dir = NSTemporaryDirectory() + "starling-owner-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try LiveNode(id: "alpha", dir: dir)
        a.stop()
        #expect(throws: (any Error).self) { _ = try LiveNode(id: "beta", dir: dir) }
    }

    @Test func sessionTTLsFollowTheInjectedServerClock() throws {
        let now = ManualClock(1_700_000_000_000)
        let node = try LiveNode(configure: { $0.ttl = TTLSettings(shortMs: 1000, longMs: 5000) }, clock: { now.value })
        defer { node.stop() }
        try node.call("POST", "/v1/events", #"{"session_id":"t","key":"k","value":1,"ts":1}"#)
        #expect(try node.json("GET", "/v1/sessions/t/state").1["active"] as? Bool == true)
        now.advance(2000)
        let (s, st) = try node.json("GET", "/v1/sessions/t/state")
        #expect(s == 200)
        #expect(st["active"] as? Bool == false)
        now.advance(4000)
        #expect(try node.call("GET", "/v1/sessions/t/state").status == 404)
        try node.call("POST", "/v1/events", #"{"session_id":"t","key":"k","value":2}"#)
        #expect(try node.json("GET", "/v1/sessions/t/state").1["events"] as? Int == 1)
    }
}

final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var v: Int64
    init(_ v: Int64) { self.v = v }
    var value: Int64 { lock.withLock { v } }
    func advance(_ ms: Int64) { lock.withLock { v += ms } }
}
