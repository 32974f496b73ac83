import Testing
import StarlingCore

/// The SDK mappings (`StarlingCore/SDK`), on bodies shaped as the SDKs send them.
@Suite struct SDKFormatTests {
    let limits = Limits()

    func json(_ text: String) -> JSONValue { try! JSONParser.parse(Array(text.utf8)) }

    /// The stored client fields of a mapped event, as an object.
    func fields(_ e: IncomingEvent) -> JSONObject {
        // The prefix ends ready for the stamped fields: drop a trailing comma, then close it.
        var text = e.prefix
        if text.last == UInt8(ascii: ",") { text.removeLast() }
        guard case .object(let o) = try! JSONParser.parse(text + Array("}".utf8)) else { fatalError("not an object") }
        return o
    }

    func object(_ v: JSONValue?) -> JSONObject? {
        if case .object(let o)? = v { return o }
        return nil
    }

    @Test func segmentBatchMapsEveryTypeOntoTheEventModel() throws {
        let body = json("""
        {"batch":[
          {"type":"track","event":"added_to_cart","userId":"u1","anonymousId":"a1","messageId":"m1",
           "timestamp":"2026-12-07T06:04:45.390487+00:00","properties":{"sku":"x"},"context":{"sessionId":1765000000000},
           "integrations":{"All":true}},
          {"type":"page","name":"checkout","category":"shop","anonymousId":"a1","messageId":"m2","properties":{"url":"/c"}},
          {"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m3","traits":{"plan":"pro"},"context":{"sessionId":"s-9"}},
          {"type":"alias","userId":"u1","previousId":"a1","messageId":"m4"}
        ],"sentAt":"2026-12-07T06:04:46Z","writeKey":"wk"}
        """)
        let batch = try SegmentFormat.map(body, single: nil, extra: JSONObject([("write_key", .string("wk"))]), limits: limits).get()
        #expect(batch.events.count == 4)
        let track = batch.events[0]
        #expect(track.key == "added_to_cart" && track.userID == "u1" && track.terminalID == "a1" && track.eventID == "m1")
        #expect(track.sessionID == "a1-1765000000000", "a numeric session id is unique per device only: prefixed")
        #expect(track.ts == 1_796_623_485_390)
        let f = fields(track)
        #expect(f["value"] == json(#"{"sku":"x"}"#))
        let attrs = try #require(object(f["attrs"]))
        #expect(attrs["sdk"] == .string("segment") && attrs["type"] == .string("track") && attrs["write_key"] == .string("wk"))
        #expect(attrs["sent_at"] == .string("2026-12-07T06:04:46Z") && attrs["integrations"] != nil)
        #expect(batch.events[1].key == "page" && batch.events[1].sessionID == nil && batch.events[1].terminalID == "a1")
        #expect(object(fields(batch.events[1])["attrs"])?["name"] == .string("checkout"))
        #expect(batch.events[2].key == "identify" && fields(batch.events[2])["value"] == json(#"{"plan":"pro"}"#))
        #expect(batch.events[3].key == "alias" && fields(batch.events[3])["value"] == json(#"{"previous_id":"a1"}"#))
        #expect(batch.links == [SDKLink(sessionID: "s-9", userID: "u1", terminalID: "a1")], "identify with a session links it")
    }

    @Test func segmentSingleCallsAndWriteKeys() throws {
        let one = try SegmentFormat.map(json(#"{"userId":"u","event":"e"}"#), single: "track", extra: JSONObject(), limits: limits).get()
        #expect(one.events.map(\.key) == ["e"])
        // Basic auth carries "KEY:" in base64; the body's writeKey is the fallback.
        #expect(SegmentFormat.writeKey(authorization: "Basic d2stbGl2ZTo=", body: json("{}")) == "wk-live")
        #expect(SegmentFormat.writeKey(authorization: nil, body: json(#"{"writeKey":"b"}"#)) == "b")
        #expect(SegmentFormat.writeKey(authorization: "Bearer x", body: json("{}")) == nil)
    }

    @Test func segmentRefusesMalformedMessagesWithTheirIndex() {
        func refusal(_ text: String) -> IngestError? {
            if case .failure(let e) = SegmentFormat.map(json(text), single: nil, extra: JSONObject(), limits: limits) { return e }
            return nil
        }
        #expect(refusal(#"{"sentAt":"x"}"#)?.code == "missing_field")
        let noIdentity = refusal(#"{"batch":[{"type":"track","event":"e","userId":"u"},{"type":"track","event":"e"}]}"#)
        #expect(noIdentity?.code == "missing_field" && noIdentity?.index == 1)
        #expect(refusal(#"{"batch":[{"type":"launch","userId":"u"}]}"#)?.code == "invalid_field")
        #expect(refusal(#"{"batch":[{"type":"track","userId":"u"}]}"#)?.message.contains("event") == true)
        #expect(refusal(#"{"batch":[{"type":"track","event":"e","userId":"u","timestamp":"yesterday"}]}"#)?.code == "invalid_field")
        #expect(refusal(#"{"batch":[7]}"#)?.code == "invalid_event")
        #expect(refusal("[1]")?.code == "invalid_event")
        let long = String(repeating: "x", count: 300)
        #expect(refusal(#"{"batch":[{"type":"track","event":"\#(long)","userId":"u"}]}"#)?.code == "invalid_field",
                "the SPEC's key limit (256 bytes) holds")
    }

    @Test func postHogMapsBatchesAndSingleEvents() throws {
        let body = json("""
        {"api_key":"phc_1","sent_at":"2026-12-07T06:00:00Z","batch":[
          {"event":"$pageview","distinct_id":"d1","uuid":"0191-a","timestamp":"2026-12-07T06:00:00.5+00:00",
           "properties":{"$session_id":"s1","$current_url":"https://x/","$device_id":"dev"}},
          {"event":"$identify","distinct_id":"user@x","uuid":"0191-b","properties":{"$session_id":"s1","$anon_distinct_id":"d1"}}
        ]}
        """)
        #expect(PostHogFormat.apiKey(body) == "phc_1")
        let batch = try PostHogFormat.map(body, extra: JSONObject(), limits: limits).get()
        #expect(batch.events.map(\.key) == ["$pageview", "$identify"])
        let e = batch.events[0]
        #expect(e.sessionID == "s1" && e.userID == "d1" && e.terminalID == "dev" && e.eventID == "0191-a" && e.ts == 1_796_623_200_500)
        #expect(object(fields(e)["value"])?["$current_url"] == .string("https://x/"))
        #expect(batch.links == [SDKLink(sessionID: "s1", userID: "user@x", terminalID: "d1")])
        let single = try PostHogFormat.map(json(#"{"api_key":"k","event":"clicked","distinct_id":7}"#), extra: JSONObject(), limits: limits).get()
        #expect(single.events.first?.userID == "7" && single.events.first?.sessionID == nil)
        if case .failure(let err) = PostHogFormat.map(json(#"{"batch":[{"event":"x"}]}"#), extra: JSONObject(), limits: limits) {
            #expect(err.code == "missing_field" && err.index == 0 && err.message.contains("distinct_id"))
        } else {
            Issue.record("an event without distinct_id was accepted")
        }
    }

    @Test func snowplowMapsPostPayloadsWithEncodedContexts() throws {
        // ue_px and cx as the Python tracker sends them: URL-safe, padded base64.
        let ue = #"{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/link_click/jsonschema/1-0-0","data":{"target":"/c"}}}"#
        let cx = #"{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-2","data":{"sessionId":"cs-1","userId":"cu-1","sessionIndex":3}}]}"#
        let body = json("""
        {"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[
          {"e":"pv","eid":"e1","url":"https://shop/","page":"Shop","sid":"s1","uid":"u1","duid":"d1","dtm":"1765000000123","stm":"1765000000200","aid":"shop","p":"web"},
          {"e":"se","eid":"e2","se_ca":"cart","se_ac":"add","se_la":"sku","se_va":"2","dtm":1765000000124,"cx":"\(urlSafe(cx))"},
          {"e":"ue","eid":"e3","ue_px":"\(urlSafe(ue))","sid":"s1"}
        ]}
        """)
        let batch = try SnowplowFormat.map(body, extra: JSONObject(), limits: limits).get()
        #expect(batch.events.map(\.key) == ["page_view", "add", "link_click"])
        let pv = batch.events[0]
        #expect(pv.sessionID == "s1" && pv.userID == "u1" && pv.terminalID == "d1" && pv.eventID == "e1" && pv.ts == 1_765_000_000_123)
        #expect(object(fields(pv)["value"])?["title"] == .string("Shop"))
        #expect(object(object(fields(pv)["attrs"])?["fields"])?["aid"] == .string("shop"), "unmapped fields are kept")
        let se = batch.events[1]
        #expect(se.sessionID == "cs-1" && se.terminalID == "cu-1", "the client_session context gives the session")
        #expect(se.ts == 1_765_000_000_124, "integer times are accepted as well as strings")
        #expect(object(fields(se)["value"])?["value"] == .number("2"))
        let click = batch.events[2]
        #expect(fields(click)["value"] == json(#"{"target":"/c"}"#))
        #expect(object(fields(click)["attrs"])?["schema"] == .string("iglu:com.acme/link_click/jsonschema/1-0-0"))
    }

    @Test func snowplowGetAndMalformedFields() {
        let ok = SnowplowFormat.event(query: ["e": "pv", "url": "https://x/", "sid": "s", "eid": "e9"], extra: JSONObject(), limits: limits)
        #expect((try? ok.get())?.key == "page_view")
        func refusal(_ q: [String: String]) -> IngestError? {
            if case .failure(let e) = SnowplowFormat.event(query: q, extra: JSONObject(), limits: limits) { return e }
            return nil
        }
        #expect(refusal(["sid": "s"])?.code == "missing_field")
        #expect(refusal(["e": "ue", "sid": "s", "ue_px": "%%%"])?.code == "invalid_field")
        #expect(refusal(["e": "ue", "sid": "s", "ue_pr": "{not json"])?.code == "invalid_field")
        #expect(refusal(["e": "ue", "sid": "s", "ue_pr": #"{"data":1}"#])?.code == "invalid_field")
        #expect(refusal(["e": "se", "sid": "s"])?.message.contains("se_ac") == true)
        #expect(refusal(["e": "pv", "sid": "s", "dtm": "soon"])?.code == "invalid_field")
        #expect(refusal(["e": "pv"])?.code == "missing_field", "no session, user or terminal id")
    }

    @Test func base64TakesBothAlphabetsPaddedOrNot() {
        #expect(SDKMapping.base64Decode("aGk_Pz8-") == Array("hi???>".utf8))
        #expect(SDKMapping.base64Decode("aGk/Pz8+") == Array("hi???>".utf8))
        #expect(SDKMapping.base64Decode("aA==") == Array("h".utf8))
        #expect(SDKMapping.base64Decode("aA") == Array("h".utf8))
        #expect(SDKMapping.base64Decode("a") == nil)
        #expect(SDKMapping.base64Decode("aA==aA") == nil)
        #expect(SDKMapping.base64Decode("a*b") == nil)
    }

    /// URL-safe, padded base64, as the trackers encode.
    func urlSafe(_ s: String) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            let n = min(3, b.count - i)
            var v = UInt32(b[i]) << 16
            if n > 1 { v |= UInt32(b[i + 1]) << 8 }
            if n > 2 { v |= UInt32(b[i + 2]) }
            out.append(table[Int((v >> 18) & 63)])
            out.append(table[Int((v >> 12) & 63)])
            out.append(n > 1 ? table[Int((v >> 6) & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? table[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
