import Foundation
import Logging
import StarlingBench
import StarlingCore
import StarlingNode
import Testing

/// A node on ephemeral loopback ports (HTTP, UDP, peer), rf 1, with its own data directory.
final class BenchTarget {
    let dir = NSTemporaryDirectory() + "starling-bench-test-" + UUID().uuidString
    let server: StarlingServer

    init(configure: (inout NodeConfig) -> Void = { _ in }) throws {
        var c = NodeConfig(id: "n1", dataDir: dir, http: HostPort(host: "127.0.0.1", port: 0), peer: HostPort(host: "127.0.0.1", port: 0))
        c.udp = HostPort(host: "127.0.0.1", port: 0)
        c.rf = 1
        c.threads = 2
        configure(&c)
        var logger = Logger(label: "bench-test")
        logger.logLevel = .warning
        server = try StarlingServer(config: c, logger: logger)
        try server.start()
    }

    deinit {
        server.stop(drainSeconds: 5)
        try? FileManager.default.removeItem(atPath: dir)
    }

    func get(_ path: String) throws -> [String: Any] {
        let r = try SimpleHTTPClient.request(host: "127.0.0.1", port: server.httpPort!, method: "GET", path: path)
        return (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
    }

    /// Events stored for the bench's sessions, counted by querying every session.
    func storedEvents(prefix: String, sessions: Int) throws -> Int {
        var total = 0
        for n in 0..<sessions {
            let id = Workload.sessionID(prefix: prefix, n: n, sessions: sessions)
            let events = try get("/v1/sessions/\(id)")["events"] as? [[String: Any]] ?? []
            #expect(events.allSatisfy { $0["session_id"] as? String == id && $0["key"] as? String == Workload.key })
            total += events.count
        }
        return total
    }
}

@Suite(.serialized) struct EndToEndTests {
    static let sessions = 10

    func config(_ mode: BenchMode, _ node: BenchTarget, prefix: String) -> BenchConfig {
        let port: Int
        switch mode {
        case .http, .batch, .pixel: port = node.server.httpPort!
        case .udp: port = node.server.udpPort!
        case .peer: port = node.server.peerPort!
        }
        var c = BenchConfig(mode: mode, host: "127.0.0.1", port: port)
        c.sessions = Self.sessions
        c.sessionPrefix = prefix
        c.connections = 3
        c.duration = 15
        c.eventBytes = 120
        return c
    }

    /// Runs the bench and checks that what it says was acknowledged is exactly what the node stores.
    func runAndVerify(_ c: BenchConfig, _ node: BenchTarget, requests: Int) throws -> BenchOutcome {
        let outcome = try BenchRunner(config: c).run()
        let s = outcome.stats
        #expect(s.errors.isEmpty, "errors: \(s.errors)")
        #expect(s.sent == requests)
        #expect(s.ok == requests)
        #expect(s.okEvents == requests * c.eventsPerRequest)
        #expect(s.latency.totalCount == UInt64(requests))
        #expect(outcome.summary.latencyMicros != nil)
        let stored = try node.storedEvents(prefix: c.sessionPrefix, sessions: Self.sessions)
        #expect(stored == s.okEvents)
        return outcome
    }

    @Test func httpClosedLoopWithPipelining() throws {
        let node = try BenchTarget()
        var c = config(.http, node, prefix: "e2e-http-")
        c.pipeline = 4
        c.requests = 300
        _ = try runAndVerify(c, node, requests: 300)
    }

    @Test func batchClosedLoop() throws {
        let node = try BenchTarget()
        var c = config(.batch, node, prefix: "e2e-batch-")
        c.batch = 20
        c.requests = 60
        _ = try runAndVerify(c, node, requests: 60)
    }

    @Test func pixelOpenLoopKeepsTheRate() throws {
        let node = try BenchTarget()
        var c = config(.pixel, node, prefix: "e2e-pixel-")
        c.rate = 1_000
        c.requests = 200
        let outcome = try runAndVerify(c, node, requests: 200)
        let o = try #require(outcome.summary.openLoop)
        #expect(o.missed == 0)
        // 200 requests at 1,000/s take about 0.2 s; a loaded machine may stretch it, not shrink it.
        #expect(outcome.seconds >= 0.19)
    }

    @Test func peerProtocolClientIsIngestedLikeHTTP() throws {
        let node = try BenchTarget()
        var c = config(.peer, node, prefix: "e2e-peer-")
        c.batch = 10
        c.pipeline = 2
        c.requests = 60
        _ = try runAndVerify(c, node, requests: 60)
        let metrics = try SimpleHTTPClient.request(host: "127.0.0.1", port: node.server.httpPort!, method: "GET", path: "/metrics").text
        #expect(MetricsText.sum("starling_events_ingested_total", labels: ["transport": "peer"], in: metrics) == 600)
    }

    @Test func udpDatagramsAreAllStoredAtAModestRate() throws {
        let node = try BenchTarget()
        var c = config(.udp, node, prefix: "e2e-udp-")
        c.connections = 1
        c.rate = 1_000
        c.requests = 200
        let outcome = try BenchRunner(config: c).run()
        #expect(outcome.stats.sent == 200)
        #expect(outcome.summary.latencyMicros == nil)
        let deadline = Date().addingTimeInterval(5)
        var stored = 0
        while Date() < deadline {
            stored = try node.storedEvents(prefix: c.sessionPrefix, sessions: Self.sessions)
            if stored >= 200 { break }
            usleep(50_000)
        }
        #expect(stored == 200)
    }

    @Test func anUnreachableTargetFailsFastWithAMessage() throws {
        var c = BenchConfig(mode: .http, host: "127.0.0.1", port: 1)
        c.connections = 2
        c.duration = 1
        #expect {
            _ = try BenchRunner(config: c).run()
        } throws: { error in
            "\(error)".contains("cannot reach 127.0.0.1:1")
        }
    }

    @Test func serverErrorsAreCountedByStatusAndCode() throws {
        // A per-IP limit of 5 requests (burst 5) refuses most of 40 with 429 rate_limited.
        let node = try BenchTarget { $0.rateLimit = RateLimit(parsing: "1:5") }
        var c = config(.http, node, prefix: "e2e-limited-")
        c.requests = 40
        c.connections = 2
        let outcome = try BenchRunner(config: c).run()
        let s = outcome.stats
        #expect(s.sent == 40 && s.answered == 40)
        #expect(s.ok >= 5 && s.ok < 40)
        #expect(s.errors == ["HTTP 429 rate_limited": 40 - s.ok])
        #expect(outcome.summary.text().contains("HTTP 429 rate_limited"))
        #expect(try node.storedEvents(prefix: c.sessionPrefix, sessions: Self.sessions) == s.okEvents)
    }
}
