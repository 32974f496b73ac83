import FuzzSupport
import StarlingCore

/// `POST /v1/events` bodies (JSON: one event or an array; NDJSON) and the JSON parser itself.
@_cdecl("FuzzIngest_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let limits = Limits()
    return runFuzzer(argc, argv, seeds: {
        [
            #"{"session_id":"s1","key":"page_view","value":"/home"}"#,
            #"[{"session_id":"s1","key":"k","value":1,"ts":1700000000000,"event_id":"e1"},{"user_id":"u","key":"k","value":{"a":[1,2,{"b":null}]}}]"#,
            "{\"session_id\":\"s\\u00e9\\ud83d\\ude00\",\"key\":\"k\",\"value\":-1.5e3,\"via\":\"ad\",\"component\":\"api\",\"level\":\"error\"}\n{\"terminal_id\":\"t\",\"key\":\"k\",\"value\":true}\n",
            #"{"session_id":"s","key":"k","value":1,"ts":"2026-12-07T03:00:00.123Z","attrs":{"x":"y"}}"#,
        ].map { Array($0.utf8) }
    }) { b in
        _ = EventValidator.events(fromBody: b, format: .json, limits: limits)
        _ = EventValidator.events(fromBody: b, format: .ndjson, limits: limits)
        _ = try? JSONParser.parse(b)
    }
}
