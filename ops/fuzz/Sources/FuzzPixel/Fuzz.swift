import FuzzSupport
import StarlingCore

/// The pixel (`GET /t.gif?...`): the request target split and percent-decoded, then the event.
@_cdecl("FuzzPixel_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let limits = Limits()
    return runFuzzer(argc, argv, seeds: {
        [
            "/t.gif?sid=s1&k=page_view&v=%2Fhome&uid=u1&ts=1700000000000",
            "/t.gif?sid=s%20x&k=click&v=buy%E2%9C%93&via=ad&eid=e-1&c=web&tid=t9",
            "/v1/sessions/s1?from=1&to=2&limit=10&format=html",
        ].map { Array($0.utf8) }
    }) { b in
        let target = String(decoding: b, as: UTF8.self)
        if let (_, query) = URLQuery.splitTarget(target) {
            _ = EventValidator.event(fromPixel: URLQuery.parse(query), limits: limits)
        }
        _ = EventValidator.event(fromPixel: URLQuery.parse(Substring(target)), limits: limits)
    }
}
