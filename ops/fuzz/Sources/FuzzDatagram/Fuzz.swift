import FuzzSupport
import StarlingCore

/// UDP datagrams (one JSON event each, fire and forget).
@_cdecl("FuzzDatagram_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let limits = Limits()
    return runFuzzer(argc, argv, seeds: {
        [
            #"{"session_id":"s1","component":"api","key":"api_latency_ms","value":42}"#,
            #"{"user_id":"u1","key":"error","value":{"code":500},"level":"error","ts":1700000000000}"#,
        ].map { Array($0.utf8) }
    }) { b in
        _ = EventValidator.event(fromDatagram: b, limits: limits)
    }
}
