import FuzzSupport
import StarlingCore

/// The SDK formats (`StarlingCore/SDK`): the first byte picks Segment (batch or a single call),
/// PostHog, Snowplow's POST payload or its `GET /i` query; the rest is the body or the query.
@_cdecl("FuzzSDK_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let limits = Limits()
    return runFuzzer(argc, argv, seeds: {
        [
            "0" + #"{"batch":[{"type":"track","event":"e","userId":"u","messageId":"m","context":{"sessionId":1700000000000},"timestamp":"2026-01-01T00:00:00.123456+00:00"}],"sentAt":"x"}"#,
            "1" + #"{"userId":"u","anonymousId":"a","traits":{"plan":"pro"},"context":{"sessionId":"s"}}"#,
            "2" + #"{"api_key":"k","batch":[{"event":"$identify","distinct_id":"d","uuid":"u","properties":{"$session_id":"s","$anon_distinct_id":"a"}}]}"#,
            "3" + #"{"schema":"iglu:x/payload_data/jsonschema/1-0-4","data":[{"e":"ue","sid":"s","dtm":1,"ue_px":"eyJkYXRhIjp7InNjaGVtYSI6ImlnbHU6YS9iL2pzb25zY2hlbWEvMS0wLTAiLCJkYXRhIjp7fX19"}]}"#,
            "4" + "e=se&se_ca=c&se_ac=a&se_va=2&sid=s&cx=eyJkYXRhIjpbXX0%3D&dtm=1700000000000",
        ].map { Array($0.utf8) }
    }) { b in
        guard let selector = b.first else { return }
        let rest = Array(b.dropFirst())
        let authorization = "Basic " + String(decoding: rest.prefix(24), as: UTF8.self)
        if selector % 5 == 4 {
            let fields = URLQuery.parse(Substring(String(decoding: rest, as: UTF8.self)))
            _ = SnowplowFormat.event(query: fields, extra: JSONObject(), limits: limits)
            return
        }
        guard case .success(let body) = rest.withUnsafeBytes({ SDKMapping.parse($0, limits: limits) }) else { return }
        switch selector % 5 {
        case 0:
            _ = SegmentFormat.writeKey(authorization: authorization, body: body)
            _ = SegmentFormat.map(body, single: nil, extra: JSONObject([("write_key", .string("k"))]), limits: limits)
        case 1:
            _ = SegmentFormat.map(body, single: "identify", extra: JSONObject(), limits: limits)
        case 2:
            _ = PostHogFormat.apiKey(body)
            _ = PostHogFormat.map(body, extra: JSONObject(), limits: limits)
        default:
            _ = SnowplowFormat.map(body, extra: JSONObject(), limits: limits)
        }
    }
}
