#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import NIOHTTP1
import StarlingCore
import Synchronization

/// `--otlp-endpoint http://HOST:PORT[/PATH]` (path default `/v1/traces`).
public struct OTLPEndpoint: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var path: String

    /// nil unless `http://host[:port][/path]`; https is not spoken by the exporter (send to a
    /// local collector, which forwards over TLS).
    public init?(_ url: String) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(7)
        let hostPort = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(hostPort.count)
        guard let hp = HostPort(String(hostPort.contains(":") ? hostPort : hostPort + ":4318")) else { return nil }
        host = hp.host
        port = hp.port
        self.path = path.isEmpty ? "/v1/traces" : String(path)
    }
}

/// The node's tracing (the I/O shell of `StarlingCore/Trace`): starts spans for traced requests,
/// keeps the last `recentMax` finished spans for `GET /v1/admin/traces/ID`, and exports them to
/// the OTLP endpoint from a thread of its own, in batches, never blocking a request: a full
/// queue drops spans (counted).
///
/// Which requests are traced: those with a sampled `traceparent`, and a `--trace-sample`
/// share of those without (a new trace). Across nodes the context travels in peer frames
/// (`Frame.traces`), so the owner's and the replicas' work joins the request's trace.
public final class Tracer: Sendable {
    public let enabled: Bool
    let sample: Double
    let node: String
    let endpoint: OTLPEndpoint?
    let metrics: NodeMetrics
    let logger: Logger
    /// The node's one randomness (`NodeRandom`): span and trace ids, and the sampling draw.
    let random: NodeRandom
    let recent = Mutex<(spans: [Span], next: Int)>(([], 0))
    let queue = Mutex<[Span]>([])
    let stopped = Atomic<Bool>(false)
    let exporter = DispatchQueue(label: "starling.otlp")
    let exporterDone = DispatchSemaphore(value: 0)
    static let recentMax = 10_000
    static let queueMax = 20_000
    static let batchMax = 1_000

    init(config: NodeConfig, random: NodeRandom, metrics: NodeMetrics, logger: Logger) {
        self.random = random
        enabled = config.tracing || config.otlpEndpoint != nil
        sample = config.traceSample
        node = config.id
        endpoint = config.otlpEndpoint
        self.metrics = metrics
        self.logger = logger
    }

    func start() {
        guard let endpoint else { return }
        exporter.async { [self] in
            while !stopped.load(ordering: .relaxed) {
                for _ in 0..<10 where !stopped.load(ordering: .relaxed) { usleep(100_000) }
                flush(to: endpoint)
            }
            flush(to: endpoint)
            exporterDone.signal()
        }
    }

    /// Stops the exporter after one last flush (bounded by its HTTP timeout).
    func stop() {
        guard endpoint != nil, !stopped.exchange(true, ordering: .relaxed) else { return }
        _ = exporterDone.wait(timeout: .now() + 10)
    }

    /// Wall-clock nanoseconds (spans are read next to other services' spans).
    static func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }


    /// A span begun: its context (this span as the parent of what follows) and its parent.
    public struct Started: Sendable {
        public var context: TraceContext
        public var parent: UInt64
        public var startNanos: Int64
    }

    /// A span for a request with this `traceparent` (nil: none or invalid), or nil when the
    /// request is not traced.
    func startRequest(traceparent: String?) -> Started? {
        guard enabled else { return nil }
        if let header = traceparent, let parent = TraceContext.parse(traceparent: header) {
            guard parent.sampled else { return nil }
            return Started(context: parent.child(random.nonZero()), parent: parent.spanID, startNanos: Self.nowNanos())
        }
        guard sample > 0, Double(random.next() >> 11) * 0x1p-53 < sample else { return nil }
        let root = TraceContext(traceHigh: random.next(), traceLow: random.nonZero(), spanID: random.nonZero())
        return Started(context: root, parent: 0, startNanos: Self.nowNanos())
    }

    /// A span that continues a context received from a peer.
    func startChild(of parent: TraceContext) -> Started {
        Started(context: parent.child(random.nonZero()), parent: parent.spanID, startNanos: Self.nowNanos())
    }

    func finish(_ s: Started, name: String, kind: Span.Kind, attributes: [(String, Span.Value)] = [], error: Bool = false) {
        var attrs: [(String, Span.Value)] = [("starling.node", .string(node))]
        attrs += attributes
        record(Span(name: name, kind: kind, context: s.context, parentSpanID: s.parent, startNanos: s.startNanos,
                    endNanos: Self.nowNanos(), attributes: attrs, error: error))
    }

    func record(_ span: Span) {
        metrics.traceSpans.increment()
        recent.withLock { r in
            if r.spans.count < Self.recentMax {
                r.spans.append(span)
            } else {
                r.spans[r.next] = span
                r.next = (r.next + 1) % Self.recentMax
            }
        }
        guard endpoint != nil else { return }
        let kept = queue.withLock { q in
            guard q.count < Self.queueMax else { return false }
            q.append(span)
            return true
        }
        if !kept { metrics.traceSpansDropped.increment() }
    }

    /// The recent spans of one trace, oldest first.
    func spans(traceHigh: UInt64, traceLow: UInt64) -> [Span] {
        recent.withLock { r in r.spans.filter { $0.traceHigh == traceHigh && $0.traceLow == traceLow } }
            .sorted { $0.startNanos < $1.startNanos }
    }

    func flush(to endpoint: OTLPEndpoint) {
        while true {
            let batch: [Span] = queue.withLock { q in
                let n = min(q.count, Self.batchMax)
                defer { q.removeFirst(n) }
                return Array(q.prefix(n))
            }
            guard !batch.isEmpty else { return }
            let body = OTLPJSON.encode(batch, service: "starling", node: node)
            do {
                let r = try SimpleHTTPClient.request(host: endpoint.host, port: endpoint.port, method: "POST", path: endpoint.path,
                                                     headers: [("Content-Type", "application/json")], body: body, timeoutSeconds: 5)
                if (200..<300).contains(r.status) {
                    metrics.traceSpansExported.increment(by: Int64(batch.count))
                } else {
                    metrics.traceExportErrors.increment()
                    metrics.traceSpansDropped.increment(by: Int64(batch.count))
                    logger.warning("OTLP export: \(endpoint.host):\(endpoint.port)\(endpoint.path) answered \(r.status); \(batch.count) spans dropped")
                }
            } catch {
                metrics.traceExportErrors.increment()
                metrics.traceSpansDropped.increment(by: Int64(batch.count))
                logger.warning("OTLP export to \(endpoint.host):\(endpoint.port) failed: \(error); \(batch.count) spans dropped")
                return
            }
        }
    }
}
