import Foundation
import StarlingCore
import Testing
@testable import StarlingNode

/// The SDK endpoints on a live node: bodies as the SDKs send them (gzip too), write keys, the
/// answers each SDK reads, CORS, and repeats stored once.
@Suite struct SDKIngestTests {
    func post(_ node: LiveNode, _ path: String, _ body: [UInt8], _ headers: [(String, String)] = []) throws -> SimpleHTTPClient.Response {
        try SimpleHTTPClient.request(host: "127.0.0.1", port: node.port, method: "POST", path: path,
                                     headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    func stored(_ node: LiveNode, _ session: String) throws -> [[String: Any]] {
        events(try node.json("GET", "/v1/sessions/\(session)").1)
    }

    static let segmentBatch = #"""
    {"batch":[{"type":"track","event":"added_to_cart","userId":"u1","anonymousId":"a1","messageId":"m-1","context":{"sessionId":"seg-s"},"properties":{"sku":"x"}},
              {"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m-2","context":{"sessionId":"seg-s"},"traits":{"plan":"pro"}}],
     "sentAt":"2026-12-07T06:00:00Z"}
    """#

    @Test func gzipBodiesAreInflatedUnderTheBodyLimit() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let gz = Gzip.compress(Array(Self.segmentBatch.utf8))
        let r = try post(node, "/v1/batch", gz, [("Content-Encoding", "gzip"), ("Authorization", "Basic d2s6")])
        #expect(r.status == 200 && r.text == #"{"success":true}"#, "\(r.status) \(r.text)")
        let list = try stored(node, "seg-s")
        #expect(list.count == 2)
        #expect((list.first?["attrs"] as? [String: Any])?["write_key"] as? String == "wk", "without configured keys the key is recorded")
        // The identify linked the session to its user.
        let linked = try node.json("GET", "/v1/users/u1/sessions").1["sessions"] as? [[String: Any]]
        #expect(linked?.first?["session_id"] as? String == "seg-s")

        // A bomb: 3 MiB of spaces in 3 KiB. Refused by the 1 MiB limit on what it inflates to.
        let bomb = Gzip.compress(Array(#"{"batch":["#.utf8) + [UInt8](repeating: 0x20, count: 3 << 20) + Array("]}".utf8))
        #expect(bomb.count < 10_000)
        let big = try post(node, "/v1/batch", bomb, [("Content-Encoding", "gzip")])
        #expect(big.status == 413 && big.text.contains("body_too_large"))
        let corrupt = try post(node, "/v1/batch", Array(gz.prefix(gz.count / 2)), [("Content-Encoding", "gzip")])
        #expect(corrupt.status == 400 && corrupt.text.contains("invalid_encoding"))
        let brotli = try post(node, "/v1/batch", gz, [("Content-Encoding", "br")])
        #expect(brotli.status == 415)
        #expect(metricValue(node.server.engine.metrics, "starling_http_inflated_bodies_total") == 3)
        #expect(metricValue(node.server.engine.metrics, #"starling_events_ingested_total{transport="segment"}"#) == 2)
    }

    @Test func repeatsOfABatchAreStoredOnce() throws {
        let node = try LiveNode()
        defer { node.stop() }
        for _ in 0..<3 {
            #expect(try post(node, "/v1/batch", Array(Self.segmentBatch.utf8)).status == 200)
        }
        #expect(try stored(node, "seg-s").count == 2, "messageId is the idempotency key")
        let ph = #"{"api_key":"k","batch":[{"event":"$pageview","distinct_id":"d","uuid":"p-1","properties":{"$session_id":"ph-s"}}]}"#
        for path in ["/batch/", "/i/v0/e/", "/capture/"] {
            let r = try post(node, path, Array(ph.utf8))
            #expect(r.status == 200 && r.text == #"{"status":1}"#)
        }
        #expect(try stored(node, "ph-s").count == 1)
    }

    @Test func writeKeysWhenConfigured() throws {
        let node = try LiveNode { $0.writeKeys = ["wk-web": "web"] }
        defer { node.stop() }
        let unknown = try post(node, "/v1/batch", Array(Self.segmentBatch.utf8), [("Authorization", "Basic bm9wZTo=")])
        #expect(unknown.status == 401)
        let obj = (try JSONSerialization.jsonObject(with: Data(unknown.body))) as? [String: Any] ?? [:]
        #expect(errorCode(obj) == "unauthorized", "the SPEC's error JSON")
        #expect(obj["code"] as? String == "unauthorized", "and the top-level code RudderStack's SDK reads")
        #expect(try post(node, "/v1/batch", Array(Self.segmentBatch.utf8)).status == 401, "no key at all")
        #expect(try stored(node, "seg-s").isEmpty)
        let known = try post(node, "/v1/batch", Array(Self.segmentBatch.utf8), [("Authorization", "Basic d2std2ViOg==")])
        #expect(known.status == 200)
        #expect((try stored(node, "seg-s").first?["attrs"] as? [String: Any])?["source"] as? String == "web")
        let ph = #"{"api_key":"wk-web","event":"x","distinct_id":"d","properties":{"$session_id":"ph-k"}}"#
        #expect(try post(node, "/i/v0/e/", Array(ph.utf8)).status == 200)
        #expect(try node.call("GET", "/i?e=pv&sid=sp-k&aid=other").status == 401, "Snowplow's app id is its key")
        #expect(try node.call("GET", "/i?e=pv&sid=sp-k&aid=wk-web").status == 200)
        let tp2 = #"{"data":[{"e":"pv","sid":"sp-k","aid":"ANY"}]}"#
        #expect(try post(node, "/com.snowplowanalytics.snowplow/tp2", Array(tp2.utf8)).status == 401)
        #expect(try post(node, "/com.snowplowanalytics.snowplow/tp2", Array(tp2.replacingOccurrences(of: "ANY", with: "wk-web").utf8)).status == 200)
    }

    @Test func bothIdentifyShapesAndSnowplowAnswers() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"spec-s","user_id":"su"}"#).status == 204, "the SPEC's identify")
        let seg = try node.call("POST", "/v1/identify", #"{"userId":"su2","anonymousId":"an","traits":{},"context":{"sessionId":"seg-id"}}"#)
        #expect(seg.status == 200 && seg.text == #"{"success":true}"#, "Segment's identify")
        #expect(try stored(node, "seg-id").first?["key"] as? String == "identify")
        let pixel = try node.call("GET", "/i?e=pv&url=https%3A%2F%2Fx%2F&sid=sp-s&eid=sp-1")
        #expect(pixel.status == 200 && pixel.header("Content-Type") == "image/gif")
        #expect(pixel.header("Cache-Control") == "no-cache, no-store, must-revalidate")
        let bad = try node.call("GET", "/i?e=ue&sid=sp-s&ue_px=***")
        #expect(bad.status == 400 && bad.header("Content-Type") == "image/gif")
        let tp2 = #"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","eid":"sp-1","sid":"sp-s"},{"e":"pp","eid":"sp-2","sid":"sp-s"}]}"#
        let r = try post(node, "/com.snowplowanalytics.snowplow/tp2", Array(tp2.utf8))
        #expect(r.status == 200 && r.text == "ok")
        #expect(try stored(node, "sp-s").map { $0["key"] as? String } == ["page_view", "page_ping"], "sp-1 sent twice, stored once")
        #expect(try node.call("GET", "/health").status == 200)
        let invalid = try post(node, "/com.snowplowanalytics.snowplow/tp2", Array(#"{"data":[{"e":"pv","sid":"x"},{"sid":"y"}]}"#.utf8))
        #expect(invalid.status == 400 && invalid.text.contains("\"index\":1"))
    }

    @Test func browsersGetCORSOnIngestPathsOnly() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let origin = ("Origin", "https://shop.example")
        let pre = try node.call("OPTIONS", "/com.snowplowanalytics.snowplow/tp2", headers: [origin, ("Access-Control-Request-Headers", "content-type, sp-anonymous")])
        #expect(pre.status == 204)
        #expect(pre.header("Access-Control-Allow-Origin") == "https://shop.example")
        #expect(pre.header("Access-Control-Allow-Credentials") == "true")
        #expect(pre.header("Access-Control-Allow-Headers") == "content-type, sp-anonymous")
        let ingest = try node.call("POST", "/v1/events", #"{"session_id":"c","key":"k","value":1}"#, headers: [origin])
        #expect(ingest.status == 202 && ingest.header("Access-Control-Allow-Origin") == "https://shop.example")
        let query = try node.call("GET", "/v1/sessions/c", headers: [origin])
        #expect(query.status == 200 && query.header("Access-Control-Allow-Origin") == nil, "queries are not opened to other origins")
    }

    @Test func gzipRoundTripsAndRefusesTrailingBytes() {
        let data = Array((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) })
        let gz = Gzip.compress(data)
        #expect(gz.withUnsafeBytes { Gzip.inflate($0, limit: 1 << 20) } == .success(data))
        #expect(gz.withUnsafeBytes { Gzip.inflate($0, limit: 100_000) } == .failure(.tooLarge))
        let trailing = gz + [1, 2, 3]
        if case .failure(.corrupt) = trailing.withUnsafeBytes({ Gzip.inflate($0, limit: 1 << 20) }) {} else {
            Issue.record("bytes after the stream were accepted")
        }
        if case .failure(.corrupt) = [UInt8]("plain".utf8).withUnsafeBytes({ Gzip.inflate($0, limit: 1 << 20) }) {} else {
            Issue.record("a plain body was inflated")
        }
    }
}
