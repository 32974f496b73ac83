import Foundation
import Testing
import StarlingCluster
import StarlingCore
@testable import StarlingNode

/// Tracing across nodes: three live nodes (rf 2) with tracing on; each node's spans are read
/// from its in-process store (`GET /v1/admin/traces/ID`, what the OTLP exporter also sends).
@Suite(.serialized) struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let clientSpan = "00f067aa0ba902b7"

    func spans(_ n: LiveNode, _ trace: String) throws -> [[String: Any]] {
        let (status, obj) = try n.json("GET", "/v1/admin/traces/\(trace)")
        guard status == 200 else { return [] }
        let rs = (obj["resourceSpans"] as? [[String: Any]])?.first
        return ((rs?["scopeSpans"] as? [[String: Any]])?.first?["spans"] as? [[String: Any]]) ?? []
    }

    func threeTracedNodes() throws -> (LiveNode, LiveNode, LiveNode) {
        let a = try LiveNode(id: "a") { $0.rf = 2; $0.tracing = true }
        let join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        let b = try LiveNode(id: "b") { $0.rf = 2; $0.tracing = true; $0.join = join }
        let c = try LiveNode(id: "c") { $0.rf = 2; $0.tracing = true; $0.join = join }
        func ringOf(_ n: LiveNode) -> [String] { (try? n.json("GET", "/v1/cluster").1["ring"] as? [String]) ?? [] }
        #expect(eventually(15) { [a, b, c].allSatisfy { ringOf($0).count == 3 } && [a, b, c].allSatisfy { !$0.server.api.cluster.catchingUp } })
        return (a, b, c)
    }

    @Test func aForwardedReplicatedEventIsOneTraceOnThreeNodes() throws {
        let (a, b, c) = try threeTracedNodes()
        defer { c.stop(); b.stop(); a.stop() }
        // A session that a receives, b owns and c follows.
        let ring = HashRing(members: ["a", "b", "c"])
        let session = try #require((0..<10_000).lazy.map { "trace-\($0)" }.first { ring.replicas(of: $0, count: 2) == ["b", "c"] })
        let parent = "00-\(Self.traceID)-\(Self.clientSpan)-01"
        let r = try a.call("POST", "/v1/events", #"{"session_id":"\#(session)","key":"page_view","value":1}"#, headers: [("traceparent", parent)])
        #expect(r.status == 202)
        // Spans are recorded when the work is answered: poll until each node has its own.
        var sa: [[String: Any]] = [], sb: [[String: Any]] = [], sc: [[String: Any]] = []
        let found = try eventually(5) {
            (sa, sb, sc) = (try spans(a, Self.traceID), try spans(b, Self.traceID), try spans(c, Self.traceID))
            return !sa.isEmpty && !sb.isEmpty && !sc.isEmpty
        }
        #expect(found)
        let ingest = try #require(sa.first { $0["name"] as? String == "POST /v1/events" })
        #expect(ingest["parentSpanId"] as? String == Self.clientSpan)
        #expect(ingest["traceId"] as? String == Self.traceID)
        let forward = try #require(sb.first { $0["name"] as? String == "peer forwardRecords" })
        #expect(forward["parentSpanId"] as? String == ingest["spanId"] as? String)
        let replicate = try #require(sc.first { $0["name"] as? String == "peer replicate" })
        #expect(replicate["parentSpanId"] as? String == forward["spanId"] as? String)
        // One trace id on all three nodes.
        #expect(Set((sa + sb + sc).compactMap { $0["traceId"] as? String }) == [Self.traceID])
        #expect(try a.json("GET", "/v1/admin/traces/nothex").0 == 400)
    }

    @Test func identityOnlyEventsForwardedAsJSONStayInTheTrace() throws {
        let (a, b, c) = try threeTracedNodes()
        defer { c.stop(); b.stop(); a.stop() }
        // A user whose key ("u:" + id) b owns and c follows, with no session: it travels as JSON
        // (`forwardEvents`) to b, which stores it and replicates it to c.
        let ring = HashRing(members: ["a", "b", "c"])
        let user = try #require((0..<10_000).lazy.map { "tu-\($0)" }.first { ring.replicas(of: "u:" + $0, count: 2) == ["b", "c"] })
        let trace = "7bf92f3577b34da6a3ce929d0e0e4739"
        let r = try a.call("POST", "/v1/events", #"{"user_id":"\#(user)","key":"login","value":1}"#,
                           headers: [("traceparent", "00-\(trace)-\(Self.clientSpan)-01")])
        #expect(r.status == 202)
        var sb: [[String: Any]] = [], sc: [[String: Any]] = []
        let found = try eventually(5) {
            (sb, sc) = (try spans(b, trace), try spans(c, trace))
            return !sb.isEmpty && !sc.isEmpty
        }
        #expect(found)
        let forward = try #require(sb.first { $0["name"] as? String == "peer forwardEvents" })
        let replicate = try #require(sc.first { $0["name"] as? String == "peer replicate" })
        #expect(replicate["parentSpanId"] as? String == forward["spanId"] as? String)
    }

    @Test func queryFanOutJoinsTheTrace() throws {
        let (a, b, c) = try threeTracedNodes()
        defer { c.stop(); b.stop(); a.stop() }
        let trace = "5bf92f3577b34da6a3ce929d0e0e4737"
        let r = try a.call("GET", "/v1/sessions/some-session", headers: [("traceparent", "00-\(trace)-\(Self.clientSpan)-01")])
        #expect(r.status == 200)
        var sa: [[String: Any]] = []
        let found = try eventually(5) {
            sa = try spans(a, trace)
            return try !sa.isEmpty && spans(b, trace).count == 1 && spans(c, trace).count == 1
        }
        #expect(found)
        let root = try #require(sa.first { $0["name"] as? String == "GET /v1/sessions/{id}" })
        for n in [b, c] {
            let q = try #require(try spans(n, trace).first)
            #expect(q["name"] as? String == "peer query")
            #expect(q["parentSpanId"] as? String == root["spanId"] as? String)
        }
    }

    @Test func unsampledAndUntracedRequestsRecordNothing() throws {
        let a = try LiveNode(id: "a") { $0.tracing = true }
        defer { a.stop() }
        let trace = "6bf92f3577b34da6a3ce929d0e0e4738"
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"s","key":"k","value":1}"#,
                           headers: [("traceparent", "00-\(trace)-\(Self.clientSpan)-00")]).status == 202)
        #expect(try spans(a, trace).isEmpty)
        #expect(metricValue(a.server.engine.metrics, "starling_trace_spans_total") == 0)
        // Tracing off: the lookup says so.
        let off = try LiveNode(id: "b")
        defer { off.stop() }
        #expect(try off.json("GET", "/v1/admin/traces/\(trace)").0 == 404)
    }
}
