import NIOCore
import NIOHTTP1
import StarlingCore

/// Ingest in the wire formats of the trackers people already run (README, "Send from your
/// existing tracker"): Segment and RudderStack, PostHog, Snowplow. The pure mappings live in
/// `StarlingCore/SDK`; this shell decodes bodies (gzip), checks write keys, stores through the
/// same cluster path as `POST /v1/events` (so the same validation and the same `rf` promise)
/// and answers each SDK the way it reads answers.
extension NodeAPI {
    /// The SDK route for a path, if it is one.
    func sdkRoute(_ segs: [String], _ req: APIRequest, _ q: [String: String], _ loop: EventLoop) -> EventLoopFuture<APIResponse>? {
        let post = req.method == .POST
        func only(_ ok: Bool, _ allowed: String, _ body: () -> EventLoopFuture<APIResponse>) -> EventLoopFuture<APIResponse> {
            ok ? body() : loop.makeSucceededFuture(.error(IngestError(status: 405, code: "method_not_allowed",
                                                                      message: "use \(allowed) for /\(segs.joined(separator: "/"))"),
                                                          headers: [("Allow", allowed)]))
        }
        switch segs {
        case ["v1", "batch"]:
            return only(post, "POST", { segment(req, single: nil, loop) })
        case _ where segs.count == 2 && segs[0] == "v1" && SegmentFormat.types.contains(segs[1]) && segs[1] != "identify":
            return only(post, "POST", { segment(req, single: segs[1], loop) })
        case ["batch"], ["capture"], ["i", "v0", "e"], ["e"], ["track"]:
            return only(post, "POST", { posthog(req, loop) })
        case ["com.snowplowanalytics.snowplow", "tp2"]:
            return only(post, "POST", { snowplow(req, loop) })
        case ["i"]:
            return only(req.method == .GET || req.method == .HEAD, "GET", { snowplowPixel(req, q, loop) })
        case ["health"]:
            // Snowplow collectors answer their trackers' and load balancers' health checks here.
            return only(req.method == .GET || req.method == .HEAD, "GET", {
                loop.makeSucceededFuture(APIResponse(status: .ok, contentType: "text/plain", body: Array("OK".utf8)))
            })
        default:
            return nil
        }
    }

    /// Whether a `POST /v1/identify` body is Segment's (`userId`/`anonymousId`/`traits`, no
    /// `session_id`) rather than the SPEC's.
    func isSegmentIdentify(_ req: APIRequest) -> Bool {
        guard let body = req.body, let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) else { return false }
        if req.headers.first(name: "Content-Encoding") != nil { return true }
        let text = String(decoding: bytes.prefix(config.limits.bodyBytesMax), as: UTF8.self)
        return !text.contains("\"session_id\"") && (text.contains("\"userId\"") || text.contains("\"anonymousId\""))
    }

    // MARK: Formats

    func segment(_ req: APIRequest, single: String?, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let limits = config.limits
        let auth = req.headers.first(name: "Authorization")
        return sdkIngest(req, .segment, loop,
                         keyOf: { SegmentFormat.writeKey(authorization: auth, body: $0) },
                         map: { SegmentFormat.map($0, single: single, extra: $1, limits: limits) },
                         ok: { _ in .json(.ok, .object(JSONObject([("success", .bool(true))]))) },
                         failed: Self.sdkError)
    }

    func posthog(_ req: APIRequest, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let limits = config.limits
        return sdkIngest(req, .posthog, loop,
                         keyOf: PostHogFormat.apiKey,
                         map: { PostHogFormat.map($0, extra: $1, limits: limits) },
                         ok: { _ in .json(.ok, .object(JSONObject([("status", .number("1"))]))) },
                         failed: Self.sdkError)
    }

    func snowplow(_ req: APIRequest, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let limits = config.limits
        return sdkIngest(req, .snowplow, loop,
                         keyOf: SnowplowFormat.appID,
                         map: { SnowplowFormat.map($0, extra: $1, limits: limits) },
                         ok: { _ in APIResponse(status: .ok, contentType: "text/plain", body: Array("ok".utf8)) },
                         failed: Self.sdkError)
    }

    /// `GET /i`: one Snowplow event from the query string, answered with the pixel whatever
    /// happens (the status says what did).
    func snowplowPixel(_ req: APIRequest, _ q: [String: String], _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        @Sendable func gif(_ status: HTTPResponseStatus, _ extra: [(String, String)] = []) -> APIResponse {
            APIResponse(status: status, contentType: "image/gif", body: Self.pixel,
                        extraHeaders: [("Cache-Control", "no-cache, no-store, must-revalidate")] + extra)
        }
        let ip = clientIP(req)
        if let wait = rateLimit(ip, transport: .snowplow) {
            engine.metrics.rejected(.snowplow, reason: "rate_limited")
            return loop.makeSucceededFuture(gif(.tooManyRequests, [("Retry-After", String(wait))]))
        }
        if !config.writeKeys.isEmpty {
            // Snowplow trackers send no key; with write keys configured, the app id must be one.
            guard let aid = q["aid"], config.writeKeys[aid] != nil else {
                engine.metrics.rejected(.snowplow, reason: "unauthorized")
                return loop.makeSucceededFuture(gif(.unauthorized, [("X-Starling-Error", "unauthorized")]))
            }
        }
        let enrichment = enrichment(req, ip: ip)
        var q = q
        if let id = enrichment.cookieID, (q["nuid"] ?? "").isEmpty { q["nuid"] = id }
        switch SnowplowFormat.event(query: q, extra: keyStamp(q["aid"]), limits: config.limits) {
        case .failure(let e):
            engine.metrics.rejected(.snowplow, reason: e.reason)
            return loop.makeSucceededFuture(gif(HTTPResponseStatus(statusCode: e.status), [("X-Starling-Error", e.code)]))
        case .success(let event):
            let metrics = engine.metrics
            var events = [event]
            enrich(&events, enrichment)
            return store(events, ip: ip, transport: .snowplow, bytes: req.uri.utf8.count, on: loop, trace: req.trace).map { result in
                switch result {
                case .success: return gif(.ok, enrichment.headers())
                case .failure(let e):
                    metrics.rejected(.snowplow, reason: e.reason)
                    return gif(HTTPResponseStatus(statusCode: e.status), [("Retry-After", "1"), ("X-Starling-Error", e.code)])
                }
            }
        }
    }

    // MARK: Shared

    /// Errors as both the SPEC's `{"error":{…}}` and the SDKs' top-level `code`/`message`
    /// (RudderStack's SDK reads `payload['code']` and fails on any other shape).
    static func sdkError(_ e: IngestError) -> APIResponse {
        var inner: [(key: String, value: JSONValue)] = [("code", .string(e.code)), ("message", .string(e.message))]
        if let i = e.index { inner.append(("index", .number(String(i)))) }
        var headers: [(String, String)] = []
        if e.status == 503 { headers.append(("Retry-After", "1")) }
        return .json(HTTPResponseStatus(statusCode: e.status),
                     .object(JSONObject([("code", .string(e.code)), ("message", .string(e.message)), ("error", .object(JSONObject(inner)))])),
                     headers: headers)
    }

    /// The `attrs` stamp for a write key: with configured keys, the source it names
    /// (`source`); without, the key as sent (`write_key`).
    func keyStamp(_ key: String?) -> JSONObject {
        if !config.writeKeys.isEmpty, let key, let source = config.writeKeys[key] { return JSONObject([("source", .string(source))]) }
        if config.writeKeys.isEmpty, let key { return JSONObject([("write_key", .string(key))]) }
        return JSONObject()
    }

    /// The request body, inflated when `Content-Encoding` says gzip or deflate; the 1 MiB body
    /// limit applies to the inflated size.
    func decodedBody(_ req: APIRequest) -> Result<[UInt8], IngestError> {
        let body = req.body ?? ByteBuffer()
        let limit = config.limits.bodyBytesMax
        let encoding = req.headers.first(name: "Content-Encoding")?.lowercased().trimmingSpaces ?? "identity"
        switch encoding {
        case "identity", "":
            return .success(body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? [])
        case "gzip", "x-gzip", "deflate":
            let inflated = body.withUnsafeReadableBytes { Gzip.inflate($0, limit: limit) }
            engine.metrics.inflatedBodies.increment()
            switch inflated {
            case .success(let bytes): return .success(bytes)
            case .failure(.tooLarge): return .failure(.bodyTooLarge(limit))
            case .failure(.corrupt(let why)): return .failure(IngestError(code: "invalid_encoding", message: "Content-Encoding \(encoding): \(why)"))
            }
        default:
            return .failure(IngestError(status: 415, code: "unsupported_encoding", message: "Content-Encoding '\(encoding)' is not supported (use gzip, deflate or none)"))
        }
    }

    /// One SDK request: rate limit, inflate, parse, write key, map, store every event on `rf`
    /// nodes, make the links, answer. An empty batch is answered as stored.
    func sdkIngest(_ req: APIRequest, _ transport: Transport, _ loop: EventLoop,
                   keyOf: (JSONValue) -> String?,
                   map: (JSONValue, JSONObject) -> Result<SDKBatch, IngestError>,
                   ok: @escaping @Sendable (Int) -> APIResponse,
                   failed: @escaping @Sendable (IngestError) -> APIResponse) -> EventLoopFuture<APIResponse> {
        let metrics = engine.metrics
        let ip = clientIP(req)
        func refuse(_ e: IngestError, headers: [(String, String)] = []) -> EventLoopFuture<APIResponse> {
            metrics.rejected(transport, reason: e.reason)
            var r = failed(e)
            r.extraHeaders += headers
            return loop.makeSucceededFuture(r)
        }
        if let wait = rateLimit(ip, transport: transport) {
            return refuse(IngestError(status: 429, code: "rate_limited", message: "too many requests from \(ip); retry in \(wait) s"),
                          headers: [("Retry-After", String(wait))])
        }
        let bytes: [UInt8]
        switch decodedBody(req) {
        case .failure(let e): return refuse(e)
        case .success(let b): bytes = b
        }
        let parsed = bytes.withUnsafeBytes { SDKMapping.parse($0, limits: config.limits) }
        let body: JSONValue
        switch parsed {
        case .failure(let e): return refuse(e)
        case .success(let v): body = v
        }
        let key = keyOf(body)
        if !config.writeKeys.isEmpty && (key.map { config.writeKeys[$0] == nil } ?? true) {
            return refuse(IngestError(status: 401, code: "unauthorized",
                                      message: key == nil ? "a write key is required" : "unknown write key"))
        }
        let batch: SDKBatch
        switch map(body, keyStamp(key)) {
        case .failure(let e): return refuse(e)
        case .success(let b): batch = b
        }
        let enrichment = enrichment(req, ip: ip)
        var enriched = batch.events
        enrich(&enriched, enrichment)
        let events = enriched, links = batch.links
        let stored: EventLoopFuture<Result<Int, IngestError>> = events.isEmpty
            ? loop.makeSucceededFuture(.success(0))
            : store(events, ip: ip, transport: transport, bytes: bytes.count, on: loop, trace: req.trace)
        let cluster = self.cluster
        return stored.flatMap { result -> EventLoopFuture<APIResponse> in
            if case .failure(let e) = result {
                metrics.rejected(transport, reason: e.reason, count: events.count)
                return loop.makeSucceededFuture(failed(e))
            }
            // Links after the events: a failed link is answered as a failure, and the SDK's
            // retry stores nothing twice (event ids are kept).
            var chain = loop.makeSucceededFuture(Result<Int, IngestError>.success(0))
            for l in links {
                chain = chain.flatMap { r in
                    guard case .success = r else { return loop.makeSucceededFuture(r) }
                    return cluster.identify(sessionID: l.sessionID, userID: l.userID, terminalID: l.terminalID, on: loop)
                }
            }
            return chain.map { r in
                switch r {
                case .success:
                    var answer = ok(events.count)
                    answer.extraHeaders += enrichment.headers()
                    return answer
                case .failure(let e): return failed(e)
                }
            }
        }
    }

    // MARK: Browsers (CORS)

    /// Paths that take events, where browsers are welcome from any origin (with credentials,
    /// so the first-party cookie works). Queries and admin are not among them.
    static func isIngestPath(_ segs: [String]) -> Bool {
        switch segs {
        case ["v1", "events"], ["t.gif"], ["v1", "batch"], ["batch"], ["capture"], ["i", "v0", "e"], ["e"], ["track"],
             ["com.snowplowanalytics.snowplow", "tp2"], ["i"]:
            return true
        case _ where segs.count == 2 && segs[0] == "v1":
            return SegmentFormat.types.contains(segs[1])
        default:
            return false
        }
    }

    /// CORS headers for an ingest answer to a request with `Origin`: the origin echoed, with
    /// credentials.
    static func corsHeaders(origin: String) -> [(String, String)] {
        [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin")]
    }

    /// The answer to an `OPTIONS` preflight on an ingest path.
    static func preflight(_ req: APIRequest) -> APIResponse {
        var headers: [(String, String)] = [("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
                                           ("Access-Control-Max-Age", "86400")]
        if let origin = req.headers.first(name: "Origin") { headers = corsHeaders(origin: origin) + headers }
        let asked = req.headers.first(name: "Access-Control-Request-Headers")
        headers.append(("Access-Control-Allow-Headers", asked ?? "Content-Type, Content-Encoding, Authorization, SP-Anonymous"))
        return APIResponse(status: .noContent, body: [], extraHeaders: headers)
    }
}
