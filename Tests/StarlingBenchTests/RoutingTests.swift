import Foundation
import Logging
import StarlingBench
import StarlingCluster
import StarlingCore
import StarlingNode
import Testing

/// A ring-routing client: each session goes straight to its owner.
@Suite struct BenchRoutingTests {
    let members: [BenchRouting.Member] = [("a", HostPort(host: "127.0.0.1", port: 1)), ("b", HostPort(host: "127.0.0.1", port: 2)),
                                          ("c", HostPort(host: "::1", port: 3))]

    @Test func everySessionGoesToItsOwnerOnce() {
        let routes = BenchRouting.routes(ring: members, vnodes: 64, prefix: "p-", sessions: 300)
        #expect(routes.map(\.node) == ["a", "b", "c"])
        #expect(routes.flatMap(\.sessions).sorted() == Array(0..<300))
        let ring = HashRing(members: ["a", "b", "c"], vnodes: 64)
        for r in routes {
            for n in r.sessions { #expect(ring.owner(of: Workload.sessionID(prefix: "p-", n: n, sessions: 300)) == r.node) }
        }
    }

    @Test func membersOwningNoSessionGetNoRoute() {
        let routes = BenchRouting.routes(ring: members, vnodes: 64, prefix: "p-", sessions: 1)
        #expect(routes.count == 1 && routes[0].sessions == [0])
    }

    @Test func routesFromAClusterAnswer() throws {
        let json = #"{"self":"a","ring":["a","b"],"vnodes":64,"members":[{"id":"a","http":"127.0.0.1:8081","status":"up"},{"id":"b","http":"[::1]:8082","status":"up"},{"id":"c","http":"127.0.0.1:8083","status":"down"}]}"#
        let routes = try BenchRouting.routes(clusterJSON: Array(json.utf8), prefix: "p-", sessions: 50)
        #expect(Set(routes.map(\.node)) == ["a", "b"])
        #expect(routes.first { $0.node == "b" }.map { ($0.host, $0.port) } ?? ("", 0) == ("::1", 8082))
        #expect(throws: BenchRouting.Unreadable.self) { try BenchRouting.routes(clusterJSON: Array(#"{"ring":["x"],"vnodes":8,"members":[]}"#.utf8), prefix: "p-", sessions: 5) }
    }

    @Test func aMapRestrictsTheSessionsWritten() {
        let t = Workload.httpPost(host: "h", port: 1, prefix: "p-", sessions: 100, eventBytes: 80, events: 6, batch: true)
        var out = t.bytes
        out.withUnsafeMutableBytes { t.patch($0, firstEvent: 4, sessions: 100, map: [7, 42, 99]) }
        let text = String(decoding: out, as: UTF8.self)
        // Events 4...9 take map[1], map[2], map[0], map[1], map[2], map[0].
        let ids = text.split(separator: "\"").filter { $0.hasPrefix("p-") }
        #expect(ids == ["p-42", "p-99", "p-07", "p-42", "p-99", "p-07"])
    }
}

/// Two nodes, rf 1: a ring-routing bench sends every event to its owner, so nothing is forwarded.
@Suite(.serialized) struct RingRoutingEndToEndTests {
    @Test func aRingRoutingClientNeedsNoHop() throws {
        let first = try BenchTarget()
        let second = try BenchTarget { c in
            c.id = "n2"
            c.join = [HostPort(host: "127.0.0.1", port: first.server.peerPort!)]
        }
        let deadline = Date().addingTimeInterval(10)
        func ringSize(_ node: BenchTarget) -> Int { ((try? node.get("/v1/cluster"))?["ring"] as? [String])?.count ?? 0 }
        while Date() < deadline, ringSize(first) != 2 || ringSize(second) != 2 { usleep(50_000) }
        #expect(ringSize(first) == 2 && ringSize(second) == 2, "the two nodes did not form one ring in 10 s")
        let r = try SimpleHTTPClient.request(host: "127.0.0.1", port: first.server.httpPort!, method: "GET", path: "/v1/cluster")
        var c = BenchConfig(mode: .batch, host: "127.0.0.1", port: first.server.httpPort!)
        c.sessions = 40
        c.sessionPrefix = "ring-"
        c.batch = 10
        c.connections = 4
        c.requests = 40
        c.duration = 15
        c.eventBytes = 100
        c.routes = try BenchRouting.routes(clusterJSON: r.body, prefix: c.sessionPrefix, sessions: c.sessions)
        #expect(c.routes.count == 2)
        #expect(c.problem() == nil)
        let outcome = try BenchRunner(config: c).run()
        #expect(outcome.stats.errors.isEmpty, "errors: \(outcome.stats.errors)")
        #expect(outcome.stats.okEvents == 400)
        var forwarded = 0.0, ingested = 0.0
        for node in [first, second] {
            let m = try SimpleHTTPClient.request(host: "127.0.0.1", port: node.server.httpPort!, method: "GET", path: "/metrics").text
            forwarded += MetricsText.sum("starling_events_forwarded_total", labels: [:], in: m) ?? 0
            ingested += MetricsText.sum("starling_events_ingested_total", labels: [:], in: m) ?? 0
        }
        #expect(forwarded == 0, "a ring-routing client's events need no hop")
        #expect(ingested == 400)
    }
}
