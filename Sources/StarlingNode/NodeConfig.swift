import StarlingCore
import StarlingLog

/// Everything a node is started with (flags or TOML; see `starling node --help`).
public struct NodeConfig: Sendable {
    public var id: String
    public var dataDir: String
    public var http: HostPort
    public var peer: HostPort
    public var udp: HostPort?
    public var join: [HostPort] = []
    public var rf: Int = 2
    public var trustedProxies: [CIDR] = CIDR.parseList("127.0.0.1/32,::1/128") ?? []
    public var rateLimit: RateLimit?
    public var ttl = TTLSettings()
    /// How much log time of event ids dedupe keeps in memory (`--dedupe-window`, default 1 h).
    public var dedupeWindowMs: Int64 = 3_600_000
    public var retentionDays = 15
    public var archiveDir: String?
    public var fsync: FsyncPolicy = .interval
    public var fsyncIntervalMs = 100
    public var limits = Limits()
    /// Event-loop threads for HTTP/UDP (default: one per core).
    public var threads = System.coreCount
    /// UDP sockets sharing the port (SO_REUSEPORT, `--udp-sockets`); default half the event
    /// loops, at least one (`udpSocketCount`).
    public var udpSockets: Int?
    /// One socket per two event loops by default: on 2 cores shared with the senders, a second
    /// socket lost more at 100k datagrams/s (docs/measurements.md, "UDP sockets"); the other
    /// loops keep serving HTTP and peers.
    public var udpSocketCount: Int { max(1, udpSockets ?? threads / 2) }
    /// Receive buffer asked for on each UDP socket (`--udp-receive-buffer`): what absorbs a burst
    /// while the reading loop is not scheduled, since the kernel drops what a full queue cannot
    /// hold. SO_RCVBUFFORCE is tried first (it passes `net.core.rmem_max` with CAP_NET_ADMIN),
    /// then SO_RCVBUF (capped by `rmem_max`); the size granted is logged and exported.
    public var udpReceiveBufferBytes = 32 * 1024 * 1024
    /// Seed of the node's randomness (`NodeRandom`); nil draws one from the system at start.
    public var seed: UInt64?
    /// `/v1/admin/*` requires `Authorization: Bearer <token>` when set; when not, admin calls
    /// are taken only from a loopback client that came through no proxy.
    public var adminToken: String?
    /// A separate listener for `/metrics` (and `/healthz`); the public port then serves no metrics.
    public var metricsListen: HostPort?
    /// A MaxMind database (`--geoip FILE.mmdb`): `attrs.geo` from the client address.
    public var geoipPath: String?
    /// `attrs.ua` (browser, OS, device class) from a browser's User-Agent (`--enrich-ua`).
    public var enrichUserAgent = true
    /// The first-party id cookie (`--id-cookie NAME`), off unless set.
    public var idCookie: IDCookie?
    /// `--sink-postgres CONNINFO` (libpq's), `--sink-table`, `--sink-batch`: the PostgreSQL sink.
    public var sinkPostgres: String?
    /// Tracing (`--tracing on`, implied by `--otlp-endpoint`): requests with a sampled
    /// `traceparent`, and `--trace-sample` of those without, are traced across nodes. Spans go
    /// to `--otlp-endpoint` (OTLP/HTTP JSON) and the last ones to `GET /v1/admin/traces/ID`.
    public var tracing = false
    public var traceSample = 0.0
    public var otlpEndpoint: OTLPEndpoint?
    public var sinkTable = "starling_events"
    public var sinkBatch = 1000
    /// `--export-dir DIR`: every sealed day is exported there once, automatically (checked
    /// every 10 minutes), as `--export-format` / `--export-compress`.
    public var exportDir: String?
    public var exportFormat: ExportFormat = .ndjson
    public var exportCompression: ExportCompression = .gzip
    /// Write keys of the SDK endpoints (key → source name, `[write_keys]` in the config file).
    /// Empty: any key (or none) is accepted and kept in `attrs.write_key`; else an unknown key
    /// is answered 401 and a known one stamps `attrs.source`.
    public var writeKeys: [String: String] = [:]
    /// `/metrics` over HTTPS with the HTTP listener's TLS context (`--metrics-tls on`).
    public var metricsTLS = false
    /// TLS on the HTTP listener (`--tls-cert`, `--tls-key`; `--tls-client-ca` requires client
    /// certificates). Reloaded on SIGHUP.
    public var httpTLS: TLSFiles?
    /// mTLS between nodes (`--peer-tls-cert`, `--peer-tls-key`, `--peer-tls-ca`: the cluster CA).
    /// A peer presenting a certificate of the cluster is a member; one without is a client.
    public var peerTLS: TLSFiles?
    /// How long a forward to an owner may take before the client is answered 503 (tests of a
    /// held owner on a slow machine raise it).
    public var forwardTimeoutMs: Int64 = 5_000
    /// The cluster secret (`--cluster-secret-file`): when set, a peer is a member only after its
    /// hello proved the secret (`HelloAuth`), and this node proves it to the peers it calls.
    public var clusterSecret: [UInt8]?
    /// Whether processes without the secret may use the peer port as clients (`forwardEvents`
    /// with HTTP ingest semantics, e.g. `starling bench --mode peer`). Off: their hello is refused.
    public var peerClients = true
    /// LZ4 on peer frames: `auto` compresses only towards non-loopback peers (on loopback the
    /// copy is cheaper than the compression).
    public var peerCompression: PeerCompression = .auto

    public init(id: String, dataDir: String, http: HostPort, peer: HostPort) {
        self.id = id
        self.dataDir = dataDir
        self.http = http
        self.peer = peer
    }

    public static func isValidID(_ s: String) -> Bool {
        let u = s.utf8
        return (1...32).contains(u.count) && u.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }
}

import NIOCore

/// When peer frames are LZ4-compressed (bodies of 256 bytes or more that LZ4 shrinks).
public enum PeerCompression: String, Sendable, CaseIterable {
    case auto, always, never

    /// Whether frames to or from `host` are compressed. `auto`: not when the peer is on loopback
    /// (names count as loopback only when they are "localhost").
    public func compresses(host: String) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .auto:
            if host == "localhost" { return false }
            return !(IPAddress(host)?.isLoopback ?? false)
        }
    }
}

/// A server-set first-party id (Snowplow's network user id idea): set on ingest answers,
/// used as `terminal_id` for events that have none; not set or used when the request carries
/// `SP-Anonymous`.
public struct IDCookie: Sendable, Equatable {
    public var name: String
    public var domain: String?
    public var maxAgeSeconds: Int
    public init(name: String, domain: String? = nil, maxAgeSeconds: Int = 365 * 86_400) {
        self.name = name
        self.domain = domain
        self.maxAgeSeconds = maxAgeSeconds
    }
}
