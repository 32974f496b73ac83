import NIOHTTP1
import StarlingCore

/// What the receiving node adds to a request's events (`Enrichment`): `attrs.geo` from the
/// client address (`--geoip`), `attrs.ua` from a browser's User-Agent (`--enrich-ua`), and the
/// first-party id cookie as `terminal_id` (`--id-cookie`). Computed once per request, applied
/// to each event before routing, so owners and replicas store it as received.
struct RequestEnrichment {
    var attrs = JSONObject()
    /// The first-party id for events without a terminal id (nil: off, or the client opted out).
    var cookieID: String?
    /// `Set-Cookie` for a new (or refreshed) id.
    var setCookie: String?

    /// `Set-Cookie` added to an answer, when there is one.
    func headers() -> [(String, String)] { setCookie.map { [("Set-Cookie", $0)] } ?? [] }
}

extension NodeAPI {
    func enrichment(_ req: APIRequest, ip: String) -> RequestEnrichment {
        var e = RequestEnrichment()
        if let geoip, let geo = geoip.lookup(ip) {
            e.attrs.fields.append(("geo", .object(geo)))
        }
        if config.enrichUserAgent, let header = req.headers.first(name: "User-Agent"), let ua = UserAgent.parse(header) {
            e.attrs.fields.append(("ua", ua.json))
        }
        if let cookie = config.idCookie, req.headers.first(name: "SP-Anonymous") == nil {
            let id = Self.cookieValue(req.headers, name: cookie.name).flatMap { Self.validCookieID($0) ? $0 : nil } ?? Self.newCookieID()
            e.cookieID = id
            // Sent on every answer, so the lifetime slides with the visitor's activity.
            var c = "\(cookie.name)=\(id); Max-Age=\(cookie.maxAgeSeconds); Path=/; SameSite=None; Secure; HttpOnly"
            if let domain = cookie.domain { c += "; Domain=\(domain)" }
            e.setCookie = c
        }
        return e
    }

    /// Applies a request's enrichment to its events, counting what was added.
    func enrich(_ events: inout [IncomingEvent], _ e: RequestEnrichment) {
        guard !e.attrs.fields.isEmpty || e.cookieID != nil else { return }
        var geo = 0, ua = 0
        for i in events.indices {
            for added in Enrichment.addAttrs(e.attrs, to: &events[i]) {
                if added == "geo" { geo += 1 } else if added == "ua" { ua += 1 }
            }
            if let id = e.cookieID { Enrichment.setTerminal(id, on: &events[i]) }
        }
        if geo > 0 { engine.metrics.enriched(kind: "geo", geo) }
        if ua > 0 { engine.metrics.enriched(kind: "ua", ua) }
    }

    static func cookieValue(_ headers: HTTPHeaders, name: String) -> String? {
        for header in headers[canonicalForm: "Cookie"] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingSpaces == name { return String(kv[1].trimmingSpaces) }
            }
        }
        return nil
    }

    /// Ids this node makes: 32 lowercase hex digits. Anything else in the cookie is replaced.
    static func validCookieID(_ s: String) -> Bool {
        s.utf8.count == 32 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    static func newCookieID() -> String {
        var rng = SystemRandomNumberGenerator()
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(rng.next()) + hex(rng.next())
    }
}
