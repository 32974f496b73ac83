import NIOCore
import NIOHTTP1
import NIOPosix
import StarlingCore
import Synchronization

/// A request as the API sees it, independent of the socket (tests call `NodeAPI.handle` directly).
public struct APIRequest: Sendable {
    public var method: HTTPMethod
    public var uri: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer?
    /// The TCP peer's address (nil for in-memory tests, treated as a trusted local proxy).
    public var remoteIP: String?
    /// Which listener the request came to.
    public var listener: Listener = .main
    /// The request's span on this node, when it is traced (`Tracer.startRequest`).
    public var trace: TraceContext?
    public enum Listener: Sendable { case main, metrics }

    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders = [:], body: ByteBuffer? = nil, remoteIP: String? = nil) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.remoteIP = remoteIP
    }
}

public struct APIResponse: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var extraHeaders: [(String, String)] = []
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, contentType: String = "application/json", body: [UInt8], extraHeaders: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.extraHeaders = extraHeaders
    }

    public static func json(_ status: HTTPResponseStatus, _ value: JSONValue, headers: [(String, String)] = []) -> APIResponse {
        var out: [UInt8] = []
        JSONWriter.write(value, into: &out)
        return APIResponse(status: status, body: out, extraHeaders: headers)
    }

    public static func error(_ e: IngestError, headers: [(String, String)] = []) -> APIResponse {
        var fields: [(key: String, value: JSONValue)] = [("code", .string(e.code)), ("message", .string(e.message))]
        if let i = e.index { fields.append(("index", .number(String(i)))) }
        var h = headers
        if e.status == 503 && !h.contains(where: { $0.0 == "Retry-After" }) { h.append(("Retry-After", "1")) }
        return json(HTTPResponseStatus(statusCode: e.status), .object(JSONObject([("error", .object(JSONObject(fields)))])), headers: h)
    }

    public static func notFound(_ what: String) -> APIResponse {
        error(IngestError(status: 404, code: "not_found", message: what))
    }
}

/// The HTTP API of one node (SPEC "HTTP API"): routing, ingest, queries, operations.
public final class NodeAPI: Sendable {
    public let engine: Engine
    /// The node's cluster side (routing, replication, fan-out). Built before the API, in one order
    /// (`StarlingServer.init`): every request finds it.
    public let cluster: ClusterShell
    /// What `POST /v1/admin/leave` calls: the process shell stops the node as on SIGTERM (nil: the
    /// node cannot be stopped over HTTP, as in tests that run nodes in-process).
    let onLeaveRequest: (@Sendable () -> Void)?
    let limiter: Mutex<RateLimiter?>
    let rateLimitEnabled: Bool
    let threadPool: NIOThreadPool
    /// `--geoip`: the database, opened once (memory-mapped).
    let geoip: GeoIP?

    /// The 1×1 transparent GIF answered by `/t.gif`.
    public static let pixel: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    public init(engine: Engine, cluster: ClusterShell, threadPool: NIOThreadPool, onLeaveRequest: (@Sendable () -> Void)?) throws {
        geoip = try engine.config.geoipPath.map { try GeoIP(path: $0) }
        self.engine = engine
        self.cluster = cluster
        self.onLeaveRequest = onLeaveRequest
        self.threadPool = threadPool
        limiter = Mutex(engine.config.rateLimit.map { RateLimiter(limit: $0) })
        rateLimitEnabled = engine.config.rateLimit != nil
    }

    var config: NodeConfig { engine.config }

    // MARK: Client address

    /// The client's address: the TCP peer, or the first `X-Forwarded-For` entry when the
    /// peer is a trusted proxy.
    public func clientIP(_ req: APIRequest) -> String {
        let peer = req.remoteIP ?? "127.0.0.1"
        guard let xff = req.headers.first(name: "X-Forwarded-For"),
              let peerAddr = IPAddress(peer), config.trustedProxies.contains(where: { $0.contains(peerAddr) }) else {
            return peer
        }
        let first = xff.split(separator: ",", maxSplits: 1).first.map { $0.trimmingSpaces } ?? ""
        return IPAddress(first)?.description ?? peer
    }

    /// nil when allowed; otherwise the 429 answer.
    func rateLimit(_ ip: String, transport: Transport) -> Int? {
        guard rateLimitEnabled else { return nil }
        let now = engine.now
        guard let wait = limiter.withLock({ $0?.take(client: ip, nowMs: now) }) else { return nil }
        engine.metrics.rateLimited.increment()
        return wait
    }

    /// Per-IP check for UDP datagrams (no answer is possible; the datagram is dropped).
    public func allowDatagram(from ip: String) -> Bool { rateLimit(ip, transport: .udp) == nil }

    // MARK: Routing

    public func handle(_ req: APIRequest, on loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let tracer = cluster.tracer
        guard tracer.enabled, req.listener == .main,
              let started = tracer.startRequest(traceparent: req.headers.first(name: "traceparent")) else { return handleRequest(req, on: loop) }
        var traced = req
        traced.trace = started.context
        let name = "\(req.method) \(Self.routeName(req.uri))"
        return handleRequest(traced, on: loop).map { r in
            tracer.finish(started, name: name, kind: .server,
                          attributes: [("http.request.method", .string("\(req.method)")), ("url.path", .string(String(req.uri.prefix { $0 != "?" }))),
                                       ("http.response.status_code", .int(Int64(r.status.code)))],
                          error: r.status.code >= 500)
            return r
        }
    }

    /// `GET /v1/admin/traces/TRACE_ID`: this node's recent spans of one trace, as OTLP JSON
    /// (what the exporter would send), for a look without a collector and for tests.
    func traceAnswer(_ id: String) -> APIResponse {
        guard cluster.tracer.enabled else {
            return .error(IngestError(status: 404, code: "tracing_off", message: "tracing is off on this node (--tracing on or --otlp-endpoint)"))
        }
        guard let (hi, lo) = TraceContext.parseTraceID(id) else {
            return .error(IngestError(code: "bad_trace_id", message: "a trace id is 32 lower-case hex digits, not all zero"))
        }
        let body = OTLPJSON.encode(cluster.tracer.spans(traceHigh: hi, traceLow: lo), service: "starling", node: config.id)
        return APIResponse(status: .ok, contentType: "application/json", body: body)
    }

    /// A span name without ids: `/v1/sessions/{id}`, `/v1/users/{id}/events`.
    static func routeName(_ uri: String) -> String {
        let path = uri.prefix { $0 != "?" }
        var segs = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if segs.count >= 3, segs[0] == "v1", ["sessions", "users", "terminals", "traces"].contains(segs[1]) || (segs[1] == "admin" && segs.count >= 4) {
            segs[segs[1] == "admin" ? 3 : 2] = "{id}"
        }
        return "/" + segs.joined(separator: "/")
    }

    func handleRequest(_ req: APIRequest, on loop: EventLoop) -> EventLoopFuture<APIResponse> {
        guard let (segs, rawQuery) = URLQuery.splitTarget(req.uri) else {
            return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "request target is not valid percent-encoded UTF-8")))
        }
        // Browsers: ingest paths answer any origin, with credentials, and their preflights.
        guard req.listener == .main, Self.isIngestPath(segs) else { return route(req, segs, rawQuery, loop) }
        if req.method == .OPTIONS { return loop.makeSucceededFuture(Self.preflight(req)) }
        guard let origin = req.headers.first(name: "Origin") else { return route(req, segs, rawQuery, loop) }
        return route(req, segs, rawQuery, loop).map { r in
            var r = r
            r.extraHeaders += Self.corsHeaders(origin: origin)
            return r
        }
    }

    func route(_ req: APIRequest, _ segs: [String], _ rawQuery: Substring, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let q = URLQuery.parse(rawQuery)
        let get = req.method == .GET || req.method == .HEAD
        func only(_ ok: Bool, _ allowed: String, _ body: () -> EventLoopFuture<APIResponse>) -> EventLoopFuture<APIResponse> {
            ok ? body() : loop.makeSucceededFuture(.error(IngestError(status: 405, code: "method_not_allowed",
                                                                      message: "use \(allowed) for /\(segs.joined(separator: "/"))"),
                                                          headers: [("Allow", allowed)]))
        }
        if req.listener == .metrics {
            // The metrics listener serves metrics and liveness, nothing else.
            switch segs {
            case ["metrics"]: return only(get, "GET", { loop.makeSucceededFuture(metricsAnswer()) })
            case ["healthz"]: return only(get, "GET", { loop.makeSucceededFuture(.json(.ok, .object(JSONObject([("status", .string("ok"))])))) })
            default: return loop.makeSucceededFuture(.notFound("the metrics listener serves /metrics and /healthz"))
            }
        }
        if segs.first == "v1" && segs.dropFirst().first == "admin", let refusal = adminRefusal(req) {
            engine.metrics.adminRefused.increment()
            return loop.makeSucceededFuture(.error(refusal))
        }
        if let sdk = sdkRoute(segs, req, q, loop) { return sdk }
        if segs == ["v1", "identify"] && req.method == .POST && isSegmentIdentify(req) { return segment(req, single: "identify", loop) }
        switch segs.count {
        case 1 where segs[0] == "t.gif": return only(get, "GET", { pixel(req, q, loop) })
        case 1 where segs[0] == "healthz": return only(get, "GET", { loop.makeSucceededFuture(.json(.ok, .object(JSONObject([("status", .string("ok"))])))) })
        case 1 where segs[0] == "readyz": return only(get, "GET", { loop.makeSucceededFuture(readyz()) })
        case 1 where segs[0] == "metrics":
            guard config.metricsListen == nil else {
                return loop.makeSucceededFuture(.notFound("metrics are served on the metrics listener (--metrics)"))
            }
            return only(get, "GET", { loop.makeSucceededFuture(metricsAnswer()) })
        case 2 where segs[0] == "v1" && segs[1] == "events": return only(req.method == .POST, "POST", { ingest(req, loop) })
        case 2 where segs[0] == "v1" && segs[1] == "identify": return only(req.method == .POST, "POST", { identify(req, loop) })
        case 2 where segs[0] == "v1" && segs[1] == "cluster": return only(get, "GET", { loop.makeSucceededFuture(clusterView()) })
        case 3 where segs[0] == "v1" && segs[1] == "admin" && segs[2] == "leave":
            return only(req.method == .POST, "POST", {
                guard let stop = onLeaveRequest else {
                    return loop.makeSucceededFuture(.error(IngestError(status: 501, code: "not_supported", message: "this node cannot be stopped over HTTP")))
                }
                // Answer first, then leave the cluster and exit as on SIGTERM.
                loop.scheduleTask(in: .milliseconds(50)) { stop() }
                return loop.makeSucceededFuture(.json(.accepted, .object(JSONObject([("leaving", .string(config.id))]))))
            })
        case 3 where segs[0] == "v1" && segs[1] == "admin" && segs[2] == "export":
            return only(req.method == .POST, "POST", { export(req, loop) })
        case 4 where segs[0] == "v1" && segs[1] == "admin" && segs[2] == "traces":
            return only(get, "GET", { loop.makeSucceededFuture(traceAnswer(segs[3])) })
        case 4 where segs[0] == "v1" && segs[1] == "admin" && segs[2] == "remove":
            return only(req.method == .POST, "POST", { loop.makeSucceededFuture(removeMember(segs[3])) })
        case 3 where segs[0] == "v1" && segs[1] == "stats" && segs[2] == "components": return only(get, "GET", { loop.makeSucceededFuture(components()) })
        case 3 where segs[0] == "v1" && segs[1] == "stats" && segs[2] == "blocked": return only(get, "GET", { loop.makeSucceededFuture(blocked()) })
        case 3 where segs[0] == "v1" && segs[1] == "sessions": return only(get, "GET", { sessionQuery(segs[2], req, q, loop) })
        case 4 where segs[0] == "v1" && segs[1] == "sessions" && segs[3] == "state": return only(get, "GET", { sessionState(segs[2], loop) })
        case 4 where segs[0] == "v1" && (segs[1] == "users" || segs[1] == "terminals") && segs[3] == "sessions":
            return only(get, "GET", { linkedSessions(user: segs[1] == "users", segs[2], loop) })
        case 4 where segs[0] == "v1" && (segs[1] == "users" || segs[1] == "terminals") && segs[3] == "events":
            return only(get, "GET", { identityQuery(user: segs[1] == "users", segs[2], req, q, loop) })
        default:
            return loop.makeSucceededFuture(.notFound("no such endpoint: \(req.method) /\(segs.joined(separator: "/"))"))
        }
    }

    // MARK: Ingest

    func ingest(_ req: APIRequest, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let ip = clientIP(req)
        if let wait = rateLimit(ip, transport: .http) {
            engine.metrics.rejected(.http, reason: "rate_limited")
            return loop.makeSucceededFuture(.error(IngestError(status: 429, code: "rate_limited", message: "too many requests from \(ip); retry in \(wait) s"),
                                                   headers: [("Retry-After", String(wait))]))
        }
        var body = req.body ?? ByteBuffer()
        if req.headers.first(name: "Content-Encoding") != nil {
            switch decodedBody(req) {
            case .failure(let e):
                engine.metrics.rejected(.http, reason: e.reason)
                return loop.makeSucceededFuture(.error(e))
            case .success(let bytes): body = ByteBuffer(bytes: bytes)
            }
        }
        let format = EventValidator.format(contentType: req.headers.first(name: "Content-Type"))
        let parsed = body.withUnsafeReadableBytes { EventValidator.events(fromBody: $0, format: format, limits: config.limits) }
        switch parsed {
        case .failure(let e):
            engine.metrics.rejected(.http, reason: e.reason)
            return loop.makeSucceededFuture(.error(e))
        case .success(var events):
            let metrics = engine.metrics
            let enrichment = enrichment(req, ip: ip)
            enrich(&events, enrichment)
            let count = events.count
            return store(events, ip: ip, transport: .http, bytes: body.readableBytes, on: loop, trace: req.trace).map { result in
                switch result {
                case .success: return .json(.accepted, .object(JSONObject([("accepted", .number(String(count)))])), headers: enrichment.headers())
                case .failure(let e):
                    metrics.rejected(.http, reason: e.reason, count: count)
                    return .error(e)
                }
            }
        }
    }

    /// Routes events through the cluster.
    public func store(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop,
                      trace: TraceContext? = nil) -> EventLoopFuture<Result<Int, IngestError>> {
        return cluster.ingest(events, ip: ip, transport: transport, bytes: bytes, on: loop, trace: trace)
    }

    func pixel(_ req: APIRequest, _ q: [String: String], _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        @Sendable func gif(_ status: HTTPResponseStatus, _ extra: [(String, String)] = []) -> APIResponse {
            APIResponse(status: status, contentType: "image/gif", body: Self.pixel,
                        extraHeaders: [("Cache-Control", "no-store")] + extra)
        }
        let ip = clientIP(req)
        if let wait = rateLimit(ip, transport: .pixel) {
            engine.metrics.rejected(.pixel, reason: "rate_limited")
            return loop.makeSucceededFuture(gif(.tooManyRequests, [("Retry-After", String(wait))]))
        }
        let enrichment = enrichment(req, ip: ip)
        var q = q
        // The first-party id stands in for a missing terminal id before validation, so a
        // pixel with no id of its own is stored under the visitor's.
        if let id = enrichment.cookieID, (q["tid"] ?? "").isEmpty { q["tid"] = id }
        switch EventValidator.event(fromPixel: q, limits: config.limits) {
        case .failure(let e):
            engine.metrics.rejected(.pixel, reason: e.reason)
            return loop.makeSucceededFuture(gif(.badRequest, [("X-Starling-Error", e.code)]))
        case .success(let event):
            let metrics = engine.metrics
            var events = [event]
            enrich(&events, enrichment)
            return store(events, ip: ip, transport: .pixel, bytes: req.uri.utf8.count, on: loop, trace: req.trace).map { result in
                switch result {
                case .success: return gif(.ok, enrichment.headers())
                case .failure(let e):
                    metrics.rejected(.pixel, reason: e.reason)
                    return gif(HTTPResponseStatus(statusCode: e.status), [("Retry-After", "1"), ("X-Starling-Error", e.code)])
                }
            }
        }
    }

    func identify(_ req: APIRequest, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let ip = clientIP(req)
        if let wait = rateLimit(ip, transport: .http) {
            return loop.makeSucceededFuture(.error(IngestError(status: 429, code: "rate_limited", message: "too many requests from \(ip); retry in \(wait) s"),
                                                   headers: [("Retry-After", String(wait))]))
        }
        let limits = config.limits
        let body = req.body ?? ByteBuffer()
        let parsed: Result<(String, String?, String?), IngestError> = body.withUnsafeReadableBytes { bytes in
            guard bytes.count <= limits.eventBytesMax else { return .failure(.eventTooLarge(bytes.count, limits.eventBytesMax)) }
            guard let v = try? JSONParser.parse(bytes, maxDepth: limits.jsonDepthMax) else {
                return .failure(.invalidJSON("body is not valid JSON"))
            }
            guard case .object(let o) = v else { return .failure(.init(code: "invalid_event", message: "identify body must be a JSON object")) }
            do {
                // The same field rules as events (EventValidator); empty identities count as absent.
                guard let sid = try EventValidator.string(o, "session_id", min: 1, max: limits.sessionIDBytesMax) else {
                    throw IngestError.missingField("session_id")
                }
                let uid = try EventValidator.string(o, "user_id", min: 0, max: limits.identityBytesMax).flatMap { $0.isEmpty ? nil : $0 }
                let tid = try EventValidator.string(o, "terminal_id", min: 0, max: limits.identityBytesMax).flatMap { $0.isEmpty ? nil : $0 }
                guard uid != nil || tid != nil else {
                    throw IngestError(code: "missing_field", message: "identify needs 'user_id' or 'terminal_id'")
                }
                return .success((sid, uid, tid))
            } catch let e as IngestError {
                return .failure(e)
            } catch {
                return .failure(.init(code: "invalid_event", message: "\(error)"))
            }
        }
        switch parsed {
        case .failure(let e): return loop.makeSucceededFuture(.error(e))
        case .success(let (sid, uid, tid)):
            return cluster.identify(sessionID: sid, userID: uid, terminalID: tid, on: loop).map { result in
                switch result {
                case .success: return APIResponse(status: .noContent, body: [])
                case .failure(let e): return .error(e)
                }
            }
        }
    }

    // MARK: Queries

    enum Format { case json, ndjson, html }

    func format(_ req: APIRequest, _ q: [String: String]) -> Format? {
        switch q["format"] {
        case "json": return .json
        case "ndjson": return .ndjson
        case "html": return .html
        case nil:
            if let accept = req.headers.first(name: "Accept") {
                if ASCIISearch.contains(accept, "text/html") { return .html }
                if ASCIISearch.contains(accept, "ndjson") { return .ndjson }
            }
            return .json
        default: return nil
        }
    }

    func sessionQuery(_ id: String, _ req: APIRequest, _ q: [String: String], _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let query: EventQuery
        switch EventQuery.parse(q, limits: config.limits) {
        case .success(let v): query = v
        case .failure(let e): return loop.makeSucceededFuture(.error(e))
        }
        guard let fmt = format(req, q) else {
            return loop.makeSucceededFuture(.error(IngestError(code: "invalid_parameter", message: "'format' must be json, ndjson or html")))
        }
        let now = engine.now
        let cluster = self.cluster
        return cluster.query(scope: 0, id: id, query: query, on: loop, trace: req.trace).flatMap { answer in
            let stateValue: JSONValue? = answer.stateJSON.flatMap { try? JSONParser.parse($0) }
            switch fmt {
            case .json:
                return loop.makeSucceededFuture(APIResponse(status: .ok, body: QueryRender.json(
                    subjectKey: "session_id", subject: id, records: answer.records,
                    state: .some(stateValue), partial: answer.partial, truncated: answer.truncated)))
            case .ndjson:
                return loop.makeSucceededFuture(APIResponse(status: .ok, contentType: "application/x-ndjson", body: QueryRender.ndjson(records: answer.records)))
            case .html:
                let state = stateValue.flatMap(SessionState.init(json:))
                // The user's other sessions, for the links at the top.
                let links = state?.userID.map { cluster.links(user: true, id: $0, on: loop) } ?? loop.makeSucceededFuture([])
                return links.map { links in
                    var context = QueryRender.PageContext()
                    context.filters = q
                    context.path = "/v1/sessions/" + QueryRender.percentEncode(id)
                    context.otherSessions = links.sorted { $0.linkedAt > $1.linkedAt }.map { ($0.sessionID, $0.linkedAt) }
                    context.nonce = Self.newNonce()
                    return Self.htmlPage(QueryRender.html(title: "Session \(id)", records: answer.records, state: state, now: now,
                                                          partial: answer.partial, truncated: answer.truncated, context: context),
                                         nonce: context.nonce)
                }
            }
        }
    }

    func identityQuery(user: Bool, _ id: String, _ req: APIRequest, _ q: [String: String], _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let query: EventQuery
        switch EventQuery.parse(q, limits: config.limits) {
        case .success(let v): query = v
        case .failure(let e): return loop.makeSucceededFuture(.error(e))
        }
        guard let fmt = format(req, q) else {
            return loop.makeSucceededFuture(.error(IngestError(code: "invalid_parameter", message: "'format' must be json, ndjson or html")))
        }
        let now = engine.now
        return cluster.query(scope: user ? 1 : 2, id: id, query: query, on: loop, trace: req.trace).map { answer in
            switch fmt {
            case .json:
                return APIResponse(status: .ok, body: QueryRender.json(
                    subjectKey: user ? "user_id" : "terminal_id", subject: id, records: answer.records,
                    state: nil, partial: answer.partial, truncated: answer.truncated))
            case .ndjson:
                return APIResponse(status: .ok, contentType: "application/x-ndjson", body: QueryRender.ndjson(records: answer.records))
            case .html:
                var context = QueryRender.PageContext()
                context.filters = q
                context.path = "/v1/\(user ? "users" : "terminals")/\(QueryRender.percentEncode(id))/events"
                context.nonce = Self.newNonce()
                return Self.htmlPage(QueryRender.html(title: "\(user ? "User" : "Terminal") \(id)", records: answer.records, state: nil, now: now,
                                                      partial: answer.partial, truncated: answer.truncated, context: context),
                                     nonce: context.nonce)
            }
        }
    }

    /// An HTML page whose only script is the one carrying `nonce`: the Content-Security-Policy
    /// lets nothing else run or load, should an event's text ever get past the escaping.
    static func htmlPage(_ body: [UInt8], nonce: String) -> APIResponse {
        APIResponse(status: .ok, contentType: "text/html; charset=utf-8", body: body, extraHeaders: [
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; form-action 'self'; base-uri 'none'"),
            ("X-Content-Type-Options", "nosniff"),
        ])
    }

    static func newNonce() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(rng.next() as UInt64, radix: 36) + String(rng.next() as UInt64, radix: 36)
    }

    /// The owner's session state (asked over the peer protocol when another node owns it).
    func sessionState(_ id: String, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        return cluster.query(scope: 0, id: id, query: EventQuery(limit: 1), on: loop).map { answer in
            guard let state = answer.stateJSON, let v = try? JSONParser.parse(state) else {
                if answer.partial { return .error(IngestError(status: 503, code: "owner_unavailable", message: "the owner of session '\(id)' did not answer")) }
                return .notFound("session '\(id)' is unknown or expired")
            }
            return .json(.ok, v)
        }
    }

    func linkedSessions(user: Bool, _ id: String, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        return cluster.links(user: user, id: id, on: loop).map { links in
            .json(.ok, .object(JSONObject([
                ("sessions", .array(links.map { .object(JSONObject([("session_id", .string($0.sessionID)), ("linked_at", .number(String($0.linkedAt)))])) })),
            ])))
        }
    }

    // MARK: Operations

    func metricsAnswer() -> APIResponse {
        APIResponse(status: .ok, contentType: "text/plain; version=0.0.4", body: engine.metrics.exposition())
    }

    /// Why an admin call is refused, or nil. With a token: the bearer token must match (compared
    /// in constant time). Without one: only a loopback client that came through no proxy (a
    /// load balancer on the same host adds X-Forwarded-For) may call.
    func adminRefusal(_ req: APIRequest) -> IngestError? {
        if let token = config.adminToken {
            let given = req.headers.first(name: "authorization").flatMap { h -> Substring? in
                h.hasPrefix("Bearer ") ? h.dropFirst(7) : nil
            }
            guard let given, Self.constantTimeEqual(Array(given.utf8), Array(token.utf8)) else {
                return IngestError(status: 401, code: "unauthorized", message: "admin calls need Authorization: Bearer <admin token>")
            }
            return nil
        }
        let peer = req.remoteIP.flatMap(IPAddress.init) ?? IPAddress("127.0.0.1")
        let loopback = CIDR.parseList("127.0.0.0/8,::1/128") ?? []
        guard let peer, loopback.contains(where: { $0.contains(peer) }), !req.headers.contains(name: "x-forwarded-for") else {
            return IngestError(status: 403, code: "forbidden",
                               message: "admin calls are taken from this host only, not through a proxy; set --admin-token-file to call from elsewhere")
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return diff == 0
    }

    /// 200 while this node takes writes. A degraded cluster (a member down, not removed) is
    /// still ready, so a load balancer keeps every live node, and the body says so.
    func readyz() -> APIResponse {
        if let reason = cluster.unavailableReason() ?? engine.unavailableReason() { return .error(reason) }
        let down = cluster.downMembers
        var fields: [(String, JSONValue)] = [("status", .string("ready"))]
        if !down.isEmpty {
            fields += [("degraded", .bool(true)), ("down", .array(down.map { .string($0) })),
                       ("hint", .string("a member is down: it comes back, or an operator runs `starling cluster remove ID`"))]
        }
        return .json(.ok, .object(JSONObject(fields)))
    }

    /// `POST /v1/admin/remove/{id}`: a member down for good becomes `left` cluster-wide.
    func removeMember(_ id: String) -> APIResponse {
        switch cluster.remove(member: id) {
        case .success:
            return .json(.ok, .object(JSONObject([("removed", .string(id))])))
        case .failure(.unknown):
            return .error(IngestError(status: 404, code: "unknown_member", message: "no member '\(id)' in this node's view"))
        case .failure(.isMe):
            return .error(IngestError(status: 409, code: "not_down", message: "'\(id)' is this node; a live member leaves with `starling cluster leave`"))
        case .failure(.notDown(let status)):
            return .error(IngestError(status: 409, code: "not_down", message: "'\(id)' is \(status.rawValue), not down; only a down member can be removed (a live one leaves with `starling cluster leave`)"))
        }
    }

    func clusterView() -> APIResponse {
        return .json(.ok, cluster.clusterJSON())
    }

    func components() -> APIResponse {
        let list = engine.componentStats().map { (name, s) -> JSONValue in
            .object(JSONObject([("component", .string(name)), ("events", .number(String(s.events))),
                                ("errors", .number(String(s.errors))), ("last_seen", .number(String(s.lastSeen)))]))
        }
        return .json(.ok, .object(JSONObject([("components", .array(list))])))
    }

    func blocked() -> APIResponse {
        let report = limiter.withLock { $0?.blockedReport() } ?? []
        let list = report.map { b -> JSONValue in
            .object(JSONObject([("ip", .string(b.client)), ("count", .number(String(b.count))),
                                ("first_blocked_at", .number(String(b.firstBlockedAt))),
                                ("last_blocked_at", .number(String(b.lastBlockedAt)))]))
        }
        return .json(.ok, .object(JSONObject([("rate_limit_enabled", .bool(rateLimitEnabled)), ("blocked", .array(list))])))
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
