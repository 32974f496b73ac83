import Foundation
import Testing
@testable import StarlingCore

@Suite struct TraceTests {
    @Test func parsesTraceparent() throws {
        let t = try #require(TraceContext.parse(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        #expect(t.traceHigh == 0x0af7651916cd43dd && t.traceLow == 0x8448eb211c80319c && t.spanID == 0xb7ad6b7169203331 && t.sampled)
        #expect(t.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(TraceContext.parse(traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?.sampled == false)
        // A later version may add fields after a dash.
        #expect(TraceContext.parse(traceparent: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra") != nil)
    }

    @Test func refusesBadTraceparents() {
        for bad in ["", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",          // short
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",       // version 00 with more
                    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",         // version ff
                    "00-00000000000000000000000000000000-b7ad6b7169203331-01",         // zero trace id
                    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",         // zero span id
                    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",         // upper case
                    "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"] {
            #expect(TraceContext.parse(traceparent: bad) == nil, "\(bad)")
        }
    }

    @Test func distinctKeepsTheFirstOfEachInOrderUpToTheLimit() {
        let a = TraceContext(traceHigh: 1, traceLow: 1, spanID: 1), b = TraceContext(traceHigh: 2, traceLow: 2, spanID: 2)
        let c = TraceContext(traceHigh: 3, traceLow: 3, spanID: 3)
        #expect(TraceContext.distinct([a, b, a, c, b], max: 8) == [a, b, c])
        #expect(TraceContext.distinct([a, a, b, c], max: 2) == [a, b])
        #expect(TraceContext.distinct([], max: 8) == [])
    }

    @Test func wireRoundTrip() throws {
        let t = TraceContext(traceHigh: 0x0102030405060708, traceLow: 0x1112131415161718, spanID: 0x2122232425262728, sampled: true)
        var b: [UInt8] = []
        t.encode(into: &b)
        #expect(b.count == TraceContext.wireBytes)
        #expect(TraceContext.decode(b[...]) == t)
        #expect(TraceContext.decode(b[1...]) == nil)
        b[24] = 0x02
        #expect(TraceContext.decode(b[...]) == nil)
    }

    @Test func otlpJSONHasTheProtocolsShape() throws {
        let ctx = TraceContext(traceHigh: 0x0af7651916cd43dd, traceLow: 0x8448eb211c80319c, spanID: 0xb7ad6b7169203331)
        let span = Span(name: "POST /v1/events", kind: .server, context: ctx, parentSpanID: 0x00f067aa0ba902b7,
                        startNanos: 1_700_000_000_000_000_000, endNanos: 1_700_000_000_001_000_000,
                        attributes: [("http.response.status_code", .int(202)), ("starling.node", .string("a"))], error: false)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(OTLPJSON.encode([span], service: "starling", node: "a"))) as? [String: Any])
        let rs = try #require((root["resourceSpans"] as? [[String: Any]])?.first)
        let resAttrs = try #require((rs["resource"] as? [String: Any])?["attributes"] as? [[String: Any]])
        #expect(resAttrs.contains { $0["key"] as? String == "service.name" && ($0["value"] as? [String: Any])?["stringValue"] as? String == "starling" })
        let s = try #require(((rs["scopeSpans"] as? [[String: Any]])?.first?["spans"] as? [[String: Any]])?.first)
        #expect(s["traceId"] as? String == "0af7651916cd43dd8448eb211c80319c")
        #expect(s["spanId"] as? String == "b7ad6b7169203331")
        #expect(s["parentSpanId"] as? String == "00f067aa0ba902b7")
        #expect(s["kind"] as? Int == 2)
        #expect(s["startTimeUnixNano"] as? String == "1700000000000000000")
        #expect(s["endTimeUnixNano"] as? String == "1700000000001000000")
        let attrs = try #require(s["attributes"] as? [[String: Any]])
        #expect(attrs.contains { $0["key"] as? String == "http.response.status_code" && ($0["value"] as? [String: Any])?["intValue"] as? String == "202" })
        #expect((s["status"] as? [String: Any])?["code"] as? Int == 0)
    }
}
