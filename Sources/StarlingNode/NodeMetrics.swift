import Prometheus
import StarlingCore
import StarlingLog
import Synchronization

/// Every metric a node exports at `/metrics`, on its own registry (so several nodes can
/// live in one test process). Names are part of the external contract (SPEC).
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    let ingested: [Transport: Counter]
    let rejectedCache = Mutex<[String: Counter]>([:])
    public let duplicates: Counter
    public let logBytes: Gauge
    public let logAppendedBytes: Counter
    public let logCorruptBlocks: Counter
    public let logTruncatedBytes: Counter
    public let logCorruptHeaders: Counter
    public let logSkippedRecords: Counter
    public let peerRecordsRefused: Counter
    public let oversizeFramesRefused: Counter
    public let adminRefused: Counter
    /// The PostgreSQL sink: events confirmed, failed attempts, events PostgreSQL refused,
    /// segments removed before it read them, and how far behind the log it is.
    public let sinkEvents: Counter
    public let traceSpans: Counter
    public let traceSpansExported: Counter
    public let traceSpansDropped: Counter
    public let traceExportErrors: Counter
    public let sinkErrors: Counter
    public let sinkRejected: Counter
    public let sinkSkippedSegments: Counter
    public let sinkLagBytes: Gauge
    /// `starling export`: events written, and blocks or records that could not be.
    public let exportedEvents: Counter
    public let exportErrors: Counter
    /// Request bodies sent compressed (`Content-Encoding: gzip`/`deflate`) and inflated.
    public let inflatedBodies: Counter
    public let logWriteErrors: Counter
    public let writeQueueEvents: Gauge
    public let fsyncSeconds: DurationHistogram
    public let groupCommitEvents: ValueHistogram
    public let requestSeconds: DurationHistogram
    /// HTTP answers by status code (`starling_http_responses_total{status}`), made once: the
    /// codes the API answers, and `other`. Read without a lock on every answer.
    let responses: [Int: Counter]
    let otherResponses: Counter
    /// The data directory's filesystem (`statvfs`), refreshed every 10 s by the engine.
    public let diskFreeBytes: Gauge
    /// Datagrams the kernel dropped on this node's UDP sockets (`udpPort`), read at each scrape.
    public let udpSocketDrops: Gauge
    /// The receive buffer the kernel granted each UDP socket, in bytes.
    public let udpReceiveBuffer: Gauge
    /// The bound UDP port, set once the sockets are bound (nil: no UDP listener).
    public let udpPort = Mutex<Int?>(nil)
    public let diskSizeBytes: Gauge
    public let rateLimited: Counter
    public let httpErrors: Counter
    public let retentionDeletedDays: Counter
    public let sessions: Gauge
    public let dedupeEntries: Gauge
    public let sessionsEvicted: Counter
    public let identities: Gauge
    public let identitiesEvicted: Counter
    public let blockCacheBytes: Gauge
    public let openRefs: Gauge
    public let indexDamaged: Counter
    public let checkpointDamaged: Counter
    public let checkpointWritten: Counter
    public let checkpointWriteErrors: Counter
    public let checkpointBytes: Gauge
    public let indexRebuilt: Counter
    public let indexWriteErrors: Counter
    public let indexReadErrors: Counter
    public let indexSealed: Counter
    public let indexFiles: Gauge
    public let indexResidentBytes: Gauge
    public let membershipEpoch: Gauge
    public let liveMembers: Gauge
    public let peerRefused: Counter
    public let peerProtocolErrors: Counter
    public let forwardedEvents: Counter
    public let forwardBatches: Counter
    public let replicaBatches: Counter
    public let replicaRecordsShipped: Counter
    public let replicaRecords: Counter
    public let replicationFailures: Counter
    public let catchUpRecords: Counter
    public let catchUpRunning: Gauge
    public let catchUpScanErrors: Counter
    public let peerAuthRefused: Counter
    public let peerTLSRefused: Counter
    public let httpConnections: Gauge
    public let peerConnections: Gauge
    let refusedConnections = Mutex<[String: Counter]>([:])
    let timeouts = Mutex<[String: Counter]>([:])
    let enrichedCounters = Mutex<[String: Counter]>([:])
    public let peerUnauthenticated: Counter
    public let ringShare: Gauge
    public let replicationSeconds: DurationHistogram

    /// Buckets shared by the request and replication latency histograms.
    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    static func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "starling", metricName: name, unitName: unit, helpText: help)
    }

    public init() {
        var ing: [Transport: Counter] = [:]
        for t in Transport.allCases {
            ing[t] = registry.makeCounter(descriptor: Self.d("events_ingested", "total", "Events stored, by transport"),
                                          labels: [("transport", t.rawValue)])
        }
        ingested = ing
        duplicates = registry.makeCounter(descriptor: Self.d("events_duplicate", "total", "Events acknowledged but not stored again (event_id already stored in the session)"))
        logBytes = registry.makeGauge(descriptor: Self.d("log", "bytes", "Bytes of log segments on disk"))
        logAppendedBytes = registry.makeCounter(descriptor: Self.d("log_appended", "bytes_total", "Bytes appended to the log"))
        logCorruptBlocks = registry.makeCounter(descriptor: Self.d("log_corrupt_blocks", "total", "Corrupt log regions skipped at recovery"))
        logTruncatedBytes = registry.makeCounter(descriptor: Self.d("log_truncated", "bytes_total", "Bytes of torn log tail cut at recovery"))
        logCorruptHeaders = registry.makeCounter(descriptor: Self.d("log_corrupt_segment_headers", "total", "Segments whose header was damaged at recovery (their blocks were recovered)"))
        logSkippedRecords = registry.makeCounter(descriptor: Self.d("log_skipped_records", "total", "Records recovery read but could not fold (times or sizes out of range), skipped"))
        peerRecordsRefused = registry.makeCounter(descriptor: Self.d("peer_records_refused", "total", "Records from peers refused by field checks (times, lengths, kinds)"))
        oversizeFramesRefused = registry.makeCounter(descriptor: Self.d("peer_oversize_frames", "total", "Answers too large for one frame, replaced by an error answer"))
        inflatedBodies = registry.makeCounter(descriptor: Self.d("http_inflated_bodies", "total", "Request bodies inflated from gzip or deflate"))
        exportedEvents = registry.makeCounter(descriptor: Self.d("export_events", "total", "Events written by exports of sealed days"))
        exportErrors = registry.makeCounter(descriptor: Self.d("export_errors", "total", "Blocks or records an export could not read"))
        traceSpans = registry.makeCounter(descriptor: Self.d("trace_spans", "total", "Spans recorded by this node"))
        traceSpansExported = registry.makeCounter(descriptor: Self.d("trace_spans_exported", "total", "Spans the OTLP endpoint accepted"))
        traceSpansDropped = registry.makeCounter(descriptor: Self.d("trace_spans_dropped", "total", "Spans dropped: the export queue was full or the endpoint refused them"))
        traceExportErrors = registry.makeCounter(descriptor: Self.d("trace_export_errors", "total", "Failed OTLP exports (connection or status)"))
        sinkEvents = registry.makeCounter(descriptor: Self.d("sink_events", "total", "Events the PostgreSQL sink sent and PostgreSQL confirmed"))
        sinkErrors = registry.makeCounter(descriptor: Self.d("sink_errors", "total", "Failed sink attempts (connection or statement), retried"))
        sinkRejected = registry.makeCounter(descriptor: Self.d("sink_rejected_events", "total", "Events PostgreSQL refused one by one (skipped)"))
        sinkSkippedSegments = registry.makeCounter(descriptor: Self.d("sink_skipped_segments", "total", "Log segments removed by retention before the sink read them"))
        sinkLagBytes = registry.makeGauge(descriptor: Self.d("sink_lag", "bytes", "Bytes of the log after the sink's cursor"))
        adminRefused = registry.makeCounter(descriptor: Self.d("admin_refused", "total", "Admin calls refused (no or wrong token, or not from this host)"))
        logWriteErrors = registry.makeCounter(descriptor: Self.d("log_write_errors", "total", "Failed log writes or fsyncs (disk full, I/O error)"))
        writeQueueEvents = registry.makeGauge(descriptor: Self.d("write_queue", "events", "Events waiting for the log writer"))
        fsyncSeconds = registry.makeDurationHistogram(
            descriptor: Self.d("log_fsync", "seconds", "fdatasync latency"),
            buckets: [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10),
                      .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1)])
        groupCommitEvents = registry.makeValueHistogram(
            descriptor: Self.d("group_commit", "events", "Events written per group commit"),
            buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000])
        var byStatus: [Int: Counter] = [:]
        for code in [200, 202, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 501, 503, 507] {
            byStatus[code] = registry.makeCounter(descriptor: Self.d("http_responses", "total", "HTTP answers by status code"),
                                                  labels: [("status", String(code))])
        }
        responses = byStatus
        otherResponses = registry.makeCounter(descriptor: Self.d("http_responses", "total", "HTTP answers by status code"),
                                              labels: [("status", "other")])
        diskFreeBytes = registry.makeGauge(descriptor: Self.d("data_disk_free", "bytes", "Bytes available to the node on its data directory's filesystem"))
        udpSocketDrops = registry.makeGauge(descriptor: Self.d("udp_socket_drops", "", "Datagrams the kernel dropped on this node's UDP sockets because their receive queue was full, since the sockets opened (from /proc/net/udp; fire-and-forget senders are never told)"))
        udpReceiveBuffer = registry.makeGauge(descriptor: Self.d("udp_receive_buffer", "bytes", "Receive buffer the kernel granted each UDP socket (--udp-receive-buffer; net.core.rmem_max caps it without CAP_NET_ADMIN)"))
        diskSizeBytes = registry.makeGauge(descriptor: Self.d("data_disk_size", "bytes", "Size of the data directory's filesystem"))
        requestSeconds = registry.makeDurationHistogram(
            descriptor: Self.d("http_request_duration", "seconds", "HTTP request latency, from request head to response"),
            buckets: Self.latencyBuckets)
        rateLimited = registry.makeCounter(descriptor: Self.d("rate_limited_requests", "total", "Ingest requests refused by the per-IP rate limiter"))
        httpErrors = registry.makeCounter(descriptor: Self.d("http_protocol_errors", "total", "Malformed HTTP requests"))
        retentionDeletedDays = registry.makeCounter(descriptor: Self.d("retention_deleted_days", "total", "Day directories removed by retention"))
        sessions = registry.makeGauge(descriptor: Self.d("sessions", "count", "Sessions known to this node"))
        identities = registry.makeGauge(descriptor: Self.d("identities", "count", "Users and terminals known to this node (their links and newest receive time)"))
        identitiesEvicted = registry.makeCounter(descriptor: Self.d("identities_evicted", "total", "Identities forgotten once their sessions were forgotten and their events deleted"))
        sessionsEvicted = registry.makeCounter(descriptor: Self.d("sessions_evicted", "total", "Expired session states forgotten after retention deleted their events"))
        blockCacheBytes = registry.makeGauge(descriptor: Self.d("block_cache", "bytes", "Uncompressed block payloads held by the query block cache"))
        dedupeEntries = registry.makeGauge(descriptor: Self.d("dedupe_window", "entries", "Event ids held for dedupe (the last --dedupe-window of log time)"))
        checkpointDamaged = registry.makeCounter(descriptor: Self.d("checkpoint_damaged", "total", "Checkpoints found torn, damaged or ahead of the log at start-up (the whole log was folded)"))
        checkpointWritten = registry.makeCounter(descriptor: Self.d("checkpoint_written", "total", "Checkpoints written as segments were sealed"))
        checkpointWriteErrors = registry.makeCounter(descriptor: Self.d("checkpoint_write_errors", "total", "Checkpoints that could not be written"))
        checkpointBytes = registry.makeGauge(descriptor: Self.d("checkpoint", "bytes", "Size of the last checkpoint written"))
        indexDamaged = registry.makeCounter(descriptor: Self.d("index_damaged", "total", "Sealed segment index files found torn, damaged or stale at start-up (rebuilt)"))
        indexRebuilt = registry.makeCounter(descriptor: Self.d("index_rebuilt", "total", "Sealed segment index files rebuilt from the log at start-up (missing or damaged)"))
        indexWriteErrors = registry.makeCounter(descriptor: Self.d("index_write_errors", "total", "Sealed segment index files that could not be written (kept in memory)"))
        indexReadErrors = registry.makeCounter(descriptor: Self.d("index_read_errors", "total", "Index lookups that found a damaged chunk (the answer is partial)"))
        indexSealed = registry.makeCounter(descriptor: Self.d("index_sealed_segments", "total", "Segment indexes written as segments were sealed"))
        indexFiles = registry.makeGauge(descriptor: Self.d("index_files", "count", "Sealed segment index files open"))
        indexResidentBytes = registry.makeGauge(descriptor: Self.d("index_resident", "bytes", "Memory held for sealed segment indexes (chunk tables, refs waiting for their file)"))
        openRefs = registry.makeGauge(descriptor: Self.d("index_open", "refs", "Record refs held in memory (records not yet in a sealed segment index)"))
        membershipEpoch = registry.makeGauge(descriptor: Self.d("membership", "epoch", "Membership epoch as this node sees it"))
        liveMembers = registry.makeGauge(descriptor: Self.d("live", "members", "Members in the ring (up or suspect)"))
        peerRefused = registry.makeCounter(descriptor: Self.d("peer_refused_hellos", "total", "Peer connections refused at hello (cluster id or version mismatch)"))
        peerProtocolErrors = registry.makeCounter(descriptor: Self.d("peer_protocol_errors", "total", "Malformed frames or bodies on the peer port"))
        forwardedEvents = registry.makeCounter(descriptor: Self.d("events_forwarded", "total", "Events forwarded to their owner node"))
        forwardBatches = registry.makeCounter(descriptor: Self.d("forward_batches", "total", "Frames of forwarded events sent to owners (events forwarded / batches = the mean frame)"))
        replicaBatches = registry.makeCounter(descriptor: Self.d("replica_batches", "total", "Replication frames sent to followers (records shipped / batches = the mean frame)"))
        replicaRecordsShipped = registry.makeCounter(descriptor: Self.d("replica_records_shipped", "total", "Records sent to followers in replication frames"))
        replicaRecords = registry.makeCounter(descriptor: Self.d("replica_records", "total", "Records stored as a follower (replication and catch-up)"))
        replicationFailures = registry.makeCounter(descriptor: Self.d("replication_failures", "total", "Write groups whose replication to a follower failed (answered 503)"))
        catchUpRecords = registry.makeCounter(descriptor: Self.d("catch_up_records", "total", "Records pulled from peers by catch-up"))
        httpConnections = registry.makeGauge(descriptor: Self.d("http_connections", "count", "Open HTTP connections (main and metrics listeners)"))
        peerConnections = registry.makeGauge(descriptor: Self.d("peer_connections", "count", "Open connections on the peer port"))
        peerTLSRefused = registry.makeCounter(descriptor: Self.d("peer_tls_refused", "total", "Peer connections whose TLS handshake failed (no TLS, or a certificate not of the cluster)"))
        peerAuthRefused = registry.makeCounter(descriptor: Self.d("peer_auth_refused", "total", "Peer hellos (and acks) refused for a missing, wrong or replayed proof of the cluster secret"))
        peerUnauthenticated = registry.makeCounter(descriptor: Self.d("peer_unauthenticated_frames", "total", "Member-only frames refused on peer connections that did not prove the cluster secret"))
        catchUpScanErrors = registry.makeCounter(descriptor: Self.d("catch_up_scan_errors", "total", "Blocks a catch-up scan of the log could not read (skipped to the next valid block)"))
        catchUpRunning = registry.makeGauge(descriptor: Self.d("catch_up", "running", "1 while a catch-up (handoff, restart, anti-entropy) is streaming"))
        ringShare = registry.makeGauge(descriptor: Self.d("ring", "share", "Fraction of the key space this node owns"))
        replicationSeconds = registry.makeDurationHistogram(
            descriptor: Self.d("replication", "seconds", "Time from shipping a write group to every follower's answer"),
            buckets: Self.latencyBuckets)
    }

    public func responded(_ status: Int) {
        (responses[status] ?? otherResponses).increment()
    }

    public func ingested(_ t: Transport, _ n: Int) {
        ingested[t]?.increment(by: Int64(n))
    }

    public func rejected(_ t: Transport, reason: String, count: Int = 1) {
        let key = t.rawValue + "|" + reason
        let c = rejectedCache.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(descriptor: Self.d("events_rejected", "total", "Events refused, by transport and reason"),
                                         labels: [("transport", t.rawValue), ("reason", reason)])
            cache[key] = c
            return c
        }
        c.increment(by: Int64(count))
    }

    /// A SIGHUP reload of a TLS context, by outcome.
    public func tlsReloads(ok: Bool) {
        counter(in: timeouts, ok ? "tls-reload-ok" : "tls-reload-failed") {
            registry.makeCounter(descriptor: Self.d("tls_reloads", "total", "TLS certificate reloads (SIGHUP), by result"),
                                 labels: [("result", ok ? "ok" : "failed")])
        }.increment()
    }

    /// A connection closed at accept: `listener` http|peer, `reason` the limit it met.
    public func connectionRefused(listener: String, reason: String) {
        counter(in: refusedConnections, listener + "|" + reason) {
            registry.makeCounter(descriptor: Self.d("connections_refused", "total", "Connections closed at accept, by listener and limit"),
                                 labels: [("listener", listener), ("reason", reason)])
        }.increment()
    }

    /// A connection closed for being too slow: `phase` header|body|peer_idle.
    /// Events enriched where they were received, by kind (`geo`, `ua`).
    public func enriched(kind: String, _ n: Int) {
        counter(in: enrichedCounters, kind) {
            registry.makeCounter(descriptor: Self.d("events_enriched", "total", "Events enriched where first received, by kind (geo, ua)"),
                                 labels: [("kind", kind)])
        }.increment(by: Int64(n))
    }

    public func timedOut(_ phase: String) {
        counter(in: timeouts, phase) {
            registry.makeCounter(descriptor: Self.d("connection_timeouts", "total", "Connections closed for sending too slowly, by phase (header, body, peer_idle)"),
                                 labels: [("phase", phase)])
        }.increment()
    }

    func counter(in cache: borrowing Mutex<[String: Counter]>, _ key: String, make: () -> Counter) -> Counter {
        cache.withLock { c in
            if let hit = c[key] { return hit }
            let new = make()
            c[key] = new
            return new
        }
    }

    public func exposition() -> [UInt8] {
        if let port = udpPort.withLock({ $0 }) {
            let tables = ["/proc/net/udp", "/proc/net/udp6"].compactMap { path in
                FileIO.readStream(path).map { String(decoding: $0, as: UTF8.self) }
            }
            if let drops = ProcNetUDP.drops(inTables: tables, port: port) { udpSocketDrops.set(Double(drops)) }
        }
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}
