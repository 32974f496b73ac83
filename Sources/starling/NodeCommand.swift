import ArgumentParser
import Dispatch
import Logging
import StarlingCore
import StarlingLog
import StarlingNode
import TOMLKit
#if canImport(Glibc)
import Glibc
#endif

/// A configuration problem: exit code 2, first line names it.
struct ConfigError: Error, CustomStringConvertible {
    var description: String
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Run one Starling node.")

    @Option(help: "Unique, stable node name ([a-z0-9-]{1,32}).") var id: String?
    @Option(help: "The node's data directory (log, identity links); survives kill -9.") var data: String?
    @Option(help: "HTTP listen address HOST:PORT (ingest, query, admin).") var http: String?
    @Option(help: "Peer (binary protocol) listen address HOST:PORT.") var peer: String?
    @Option(help: "UDP ingest listen address HOST:PORT (optional).") var udp: String?
    @Option(help: "Peer addresses of existing members, comma-separated.") var join: String?
    @Option(help: "Copies of every event (default 2). A standalone node runs with --rf 1.") var rf: Int?
    @Option(name: .customLong("trusted-proxy"), help: "CIDRs whose X-Forwarded-For is believed (default 127.0.0.1/32,::1/128).") var trustedProxy: String?
    @Option(name: .customLong("rate-limit"), help: "Per-client-IP ingest limit RPS[:BURST] (default off).") var rateLimit: String?
    @Option(name: .customLong("short-ttl"), help: "Session short TTL, e.g. 30m, 1800s (default 30m).") var shortTTL: String?
    @Option(name: .customLong("long-ttl"), help: "Session long TTL, e.g. 30d (default 30d).") var longTTL: String?
    @Option(name: .customLong("dedupe-window"),
            help: "How long a client's event id is remembered for dedupe, e.g. 1h, 6h (default 1h).") var dedupeWindow: String?
    @Option(name: .customLong("retention-days"), help: "Days of log kept (default 15).") var retentionDays: Int?
    @Option(help: "Move expired days here instead of deleting them.") var archive: String?
    @Option(help: "fsync policy: always | interval | never (default interval).") var fsync: String?
    @Option(name: .customLong("segment-mb"),
            help: "Log segment size in MiB, 1...2048 (default 64): start-up folds at most one segment, and memory holds one segment's refs.")
    var segmentMB: Int?
    @Option(name: .customLong("fsync-interval-ms"), help: "fsync period for --fsync interval (default 100).") var fsyncIntervalMs: Int?
    @Option(help: "Event-loop threads (default: cores).") var threads: Int?
    @Option(name: .customLong("udp-receive-buffer"), help: "Receive buffer of each UDP socket, in bytes (default 33554432; above net.core.rmem_max it needs CAP_NET_ADMIN, else the kernel grants rmem_max).") var udpReceiveBuffer: Int?
    @Option(name: .customLong("udp-sockets"), help: "UDP sockets sharing the --udp port with SO_REUSEPORT, spread over the event loops (default: half the threads, at least 1; 1 turns sharing off).") var udpSockets: Int?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (default info).") var logLevel: String?
    @Option(name: .customLong("admin-token-file"), help: "File holding the token that /v1/admin/* calls must send as 'Authorization: Bearer TOKEN' (default: admin calls only from this host, not through a proxy).") var adminTokenFile: String?
    @Option(help: "Separate listen address HOST:PORT for /metrics (then the HTTP port serves no metrics).") var metrics: String?
    @Option(help: "MaxMind database (.mmdb, City or ASN) for attrs.geo on events received over HTTP.") var geoip: String?
    @Option(name: .customLong("enrich-ua"), help: "on | off: attrs.ua (browser, OS, device class) from browsers' User-Agent (default on).") var enrichUA: String?
    @Option(name: .customLong("id-cookie"), help: "Name of a first-party id cookie to set on ingest answers and use as terminal_id (default off).") var idCookie: String?
    @Option(name: .customLong("id-cookie-domain"), help: "Domain attribute of the id cookie (default: the host's).") var idCookieDomain: String?
    @Option(name: .customLong("id-cookie-days"), help: "Lifetime of the id cookie in days, sliding (default 365).") var idCookieDays: Int?
    @Option(name: .customLong("export-dir"), help: "Export every sealed day here automatically (checked every 10 minutes; each member its own events).") var exportDir: String?
    @Option(name: .customLong("export-format"), help: "ndjson | tsv | csv for --export-dir (default ndjson).") var exportFormat: String?
    @Option(name: .customLong("export-compress"), help: "none | gzip | lz4 | zstd for --export-dir (default gzip).") var exportCompress: String?
    @Option(name: .customLong("tracing"), help: "on: trace requests that carry a sampled traceparent (W3C) across nodes; spans at GET /v1/admin/traces/ID (default off).") var tracing: String?
    @Option(name: .customLong("trace-sample"), help: "Share (0 to 1) of requests without a traceparent that start a trace (default 0).") var traceSample: String?
    @Option(name: .customLong("otlp-endpoint"), help: "Export spans by OTLP/HTTP JSON to http://HOST:PORT[/v1/traces] (turns tracing on).") var otlpEndpoint: String?
    @Option(name: .customLong("sink-postgres"), help: "libpq connection string: stream every stored event into PostgreSQL (at least once; one row per event).") var sinkPostgres: String?
    @Option(name: .customLong("sink-table"), help: "Table of the PostgreSQL sink, made if missing (default starling_events).") var sinkTable: String?
    @Option(name: .customLong("sink-batch"), help: "Events per sink statement (default 1000).") var sinkBatch: Int?
    @Option(name: .customLong("metrics-tls"), help: "on | off: serve --metrics over HTTPS with the --tls-cert certificate (and --tls-client-ca, if set, for scrapers' certificates); default off.") var metricsTLS: String?
    @Option(name: .customLong("http-connections-max"), help: "Open HTTP connections in all (default 16384); more are closed at accept.") var httpConnectionsMax: Int?
    @Option(name: .customLong("http-connections-per-ip"), help: "Open HTTP connections from one address, trusted proxies exempt (default 512).") var httpConnectionsPerIP: Int?
    @Option(name: .customLong("http-header-timeout"), help: "Time a client has to send a request's head, e.g. 20s (default 60s).") var httpHeaderTimeout: String?
    @Option(name: .customLong("http-body-timeout"), help: "Time a client has to send a request's body once its head is in, e.g. 20s (default 60s).") var httpBodyTimeout: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain for HTTPS on --http (with --tls-key; reloaded on SIGHUP).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("tls-client-ca"), help: "PEM CA: HTTP clients must present a certificate it signed.") var tlsClientCA: String?
    @Option(name: .customLong("peer-tls-cert"), help: "PEM certificate of this node, signed by the cluster CA (mTLS between nodes).") var peerTLSCert: String?
    @Option(name: .customLong("peer-tls-key"), help: "PEM private key for --peer-tls-cert.") var peerTLSKey: String?
    @Option(name: .customLong("peer-tls-ca"), help: "PEM cluster CA: a peer presenting a certificate it signed is a member.") var peerTLSCA: String?
    @Option(name: .customLong("cluster-secret-file"), help: "File holding the cluster's shared secret (at least 16 bytes): peers must prove it in their hello to be treated as members.") var clusterSecretFile: String?
    @Option(name: .customLong("peer-clients"), help: "on | off: whether processes without the cluster secret may send events on the peer port as clients (default on).") var peerClients: String?
    @Option(name: .customLong("peer-compression"), help: "LZ4 on peer frames: auto (not on loopback) | always | never (default auto).") var peerCompression: String?
    @Option(help: "TOML file with the same settings (keys as the flags without dashes); flags win.") var config: String?

    func run() throws {
        // A file-size limit must fail the write (EFBIG, answered 503), not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        // Connections are file descriptors: take the hard limit (Limits.httpConnectionsMax is 16 k).
        var files = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0 && files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        }
        let cfg: NodeConfig
        let level: Logger.Level
        do {
            (cfg, level) = try resolve()
        } catch let e as ConfigError {
            throw ValidationError(e.description)
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "starling.\(cfg.id)")
        logger.logLevel = level
        let done = DispatchSemaphore(value: 0)
        let server: StarlingServer
        do {
            // STARLING_CLOCK_OFFSET_MS shifts the node's clock (benchmarks and drills only: it
            // makes "yesterday" without waiting a day; never set it on a real cluster).
            let offset = ProcessInfoEnv.int("STARLING_CLOCK_OFFSET_MS") ?? 0
            if offset != 0 { logger.warning("clock shifted by \(offset) ms (STARLING_CLOCK_OFFSET_MS)") }
            server = try StarlingServer(config: cfg, logger: logger, clock: { StarlingServer.systemMillis() + offset },
                                        onLeaveRequest: { done.signal() })
            try server.start()
        } catch {
            throw CommandFailure(description: "error: node \(cfg.id) could not start: \(error)", code: 1)
        }
        // SIGTERM / SIGINT: stop accepting, drain, flush, exit 0.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let q = DispatchQueue(label: "starling.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: q)
            s.setEventHandler { done.signal() }
            s.resume()
            sources.append(s)
        }
        // SIGHUP: reread TLS certificates and keys (new connections use them).
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: q)
        hup.setEventHandler { server.reloadTLS() }
        hup.resume()
        sources.append(hup)
        FileHandleOut.stdout("starling node \(cfg.id): http \(cfg.http.host):\(server.httpPort ?? 0)"
              + (cfg.udp.map { ", udp \($0.host):\(server.udpPort ?? 0)" } ?? "")
              + ", peer \(cfg.peer.host):\(server.peerPort ?? 0), rf \(cfg.rf)\n")
        done.wait()
        logger.info("stopping: leaving the cluster and draining")
        server.stop()
        _ = sources
        Glibc.exit(0)
    }

    /// Flags over TOML over defaults.
    func resolve() throws -> (NodeConfig, Logger.Level) {
        let src = ConfigSource(file: try config.map(ConfigSource.load) ?? [:])
        guard let id = try src.str(id, "id") else { throw ConfigError(description: "missing --id (or 'id' in the config file)") }
        guard NodeConfig.isValidID(id) else { throw ConfigError(description: "invalid --id '\(id)': use 1 to 32 of [a-z0-9-]") }
        guard let data = try src.str(data, "data") else { throw ConfigError(description: "missing --data (or 'data' in the config file)") }
        guard let httpText = try src.str(http, "http") else { throw ConfigError(description: "missing --http (or 'http' in the config file)") }
        guard let httpAddr = HostPort(httpText) else { throw ConfigError(description: "invalid --http '\(httpText)': expected HOST:PORT") }
        guard let peerText = try src.str(peer, "peer") else { throw ConfigError(description: "missing --peer (or 'peer' in the config file)") }
        guard let peerAddr = HostPort(peerText) else { throw ConfigError(description: "invalid --peer '\(peerText)': expected HOST:PORT") }
        var c = NodeConfig(id: id, dataDir: data, http: httpAddr, peer: peerAddr)
        try applyListeners(&c, src)
        try applyPolicies(&c, src)
        var level = Logger.Level.info
        if let l = try src.str(logLevel, "log_level") {
            guard let v = Logger.Level(rawValue: l) else { throw ConfigError(description: "invalid --log-level '\(l)'") }
            level = v
        }
        return (c, level)
    }

    /// The optional listeners, the admin token and the peers to join.
    func applyListeners(_ c: inout NodeConfig, _ src: ConfigSource) throws {
        if let u = try src.str(udp, "udp") {
            guard let a = HostPort(u) else { throw ConfigError(description: "invalid --udp '\(u)': expected HOST:PORT") }
            c.udp = a
        }
        if let m = try src.str(metrics, "metrics") {
            guard let a = HostPort(m) else { throw ConfigError(description: "invalid --metrics '\(m)': expected HOST:PORT") }
            c.metricsListen = a
        }
        if let f = try src.str(adminTokenFile, "admin_token_file") {
            guard let bytes = FileIO.readFile(f) else {
                throw ConfigError(description: "cannot read --admin-token-file '\(f)'")
            }
            let token = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
            guard token.utf8.count >= 16 else { throw ConfigError(description: "--admin-token-file '\(f)': the token must be at least 16 bytes") }
            c.adminToken = token
        }
        if let f = try src.str(clusterSecretFile, "cluster_secret_file") {
            guard let bytes = FileIO.readFile(f) else { throw ConfigError(description: "cannot read --cluster-secret-file '\(f)'") }
            let secret = Array(String(decoding: bytes, as: UTF8.self).trimmingWhitespace.utf8)
            guard secret.count >= 16 else { throw ConfigError(description: "--cluster-secret-file '\(f)': the secret must be at least 16 bytes") }
            c.clusterSecret = secret
        }
        let (cert, key, clientCA) = (try src.str(tlsCert, "tls_cert"), try src.str(tlsKey, "tls_key"), try src.str(tlsClientCA, "tls_client_ca"))
        if cert != nil || key != nil || clientCA != nil {
            guard let cert, let key else { throw ConfigError(description: "--tls-cert and --tls-key go together") }
            c.httpTLS = TLSFiles(cert: cert, key: key, ca: clientCA)
        }
        if let on = try src.onOff(metricsTLS, "metrics_tls", flag: "metrics-tls") {
            if on {
                guard c.metricsListen != nil, c.httpTLS != nil else {
                    throw ConfigError(description: "--metrics-tls on needs --metrics (its own listener) and --tls-cert/--tls-key (the certificate it serves)")
                }
                c.metricsTLS = true
            }
        }
        let (pc, pk, pca) = (try src.str(peerTLSCert, "peer_tls_cert"), try src.str(peerTLSKey, "peer_tls_key"), try src.str(peerTLSCA, "peer_tls_ca"))
        if pc != nil || pk != nil || pca != nil {
            guard let pc, let pk, let pca else { throw ConfigError(description: "--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together") }
            c.peerTLS = TLSFiles(cert: pc, key: pk, ca: pca)
        }
        if let g = try src.str(geoip, "geoip") {
            guard access(g, R_OK) == 0 else { throw ConfigError(description: "cannot read --geoip '\(g)'") }
            c.geoipPath = g
        }
        if let on = try src.onOff(enrichUA, "enrich_ua", flag: "enrich-ua") { c.enrichUserAgent = on }
        if let name = try src.str(idCookie, "id_cookie") {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
                throw ConfigError(description: "invalid --id-cookie '\(name)': a cookie name is a token (letters, digits, - _ .)")
            }
            var cookie = IDCookie(name: name, domain: try src.str(idCookieDomain, "id_cookie_domain"))
            if let days = try src.int(idCookieDays, "id_cookie_days") {
                guard days >= 1 else { throw ConfigError(description: "invalid --id-cookie-days \(days): at least 1") }
                cookie.maxAgeSeconds = days * 86_400
            }
            c.idCookie = cookie
        }
        if let pg = try src.str(sinkPostgres, "sink_postgres") { c.sinkPostgres = pg }
        if let on = try src.onOff(tracing, "tracing", flag: "tracing") { c.tracing = on }
        if traceSample == nil, let d = src.file["trace_sample"]?.double {   // a TOML float
            guard d >= 0, d <= 1 else { throw ConfigError(description: "invalid trace_sample \(d): a number from 0 to 1") }
            c.traceSample = d
        } else if let s = try src.str(traceSample, "trace_sample") {
            guard let v = Double(s), v >= 0, v <= 1 else { throw ConfigError(description: "invalid --trace-sample '\(s)': a number from 0 to 1") }
            c.traceSample = v
        }
        if let e = try src.str(otlpEndpoint, "otlp_endpoint") {
            guard let v = OTLPEndpoint(e) else { throw ConfigError(description: "invalid --otlp-endpoint '\(e)': http://HOST:PORT[/PATH] (https: send to a local collector)") }
            c.otlpEndpoint = v
        }
        if let d = try src.str(exportDir, "export_dir") {
            guard d.hasPrefix("/") else { throw ConfigError(description: "invalid --export-dir '\(d)': an absolute directory") }
            c.exportDir = d
        }
        if let f = try src.str(exportFormat, "export_format") {
            guard let v = ExportFormat(rawValue: f) else { throw ConfigError(description: "invalid --export-format '\(f)': ndjson, tsv or csv") }
            c.exportFormat = v
        }
        if let f = try src.str(exportCompress, "export_compress") {
            guard let v = ExportCompression(rawValue: f) else { throw ConfigError(description: "invalid --export-compress '\(f)': none, gzip, lz4 or zstd") }
            c.exportCompression = v
        }
        if let t = try src.str(sinkTable, "sink_table") {
            guard let first = t.utf8.first, (first >= 97 && first <= 122) || first == 95,
                  t.utf8.count <= 63, t.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) else {
                throw ConfigError(description: "invalid --sink-table '\(t)': lowercase letters, digits and _, starting with a letter")
            }
            c.sinkTable = t
        }
        if let b = try src.int(sinkBatch, "sink_batch") {
            guard b >= 1 && b <= 10_000 else { throw ConfigError(description: "invalid --sink-batch \(b): 1 to 10000") }
            c.sinkBatch = b
        }
        if let table = src.file["write_keys"] {
            // [write_keys] source = "key": the SDK endpoints' keys, named by source.
            guard let t = table.table else { throw ConfigError(description: "config key 'write_keys' must be a table of source = \"key\"") }
            for (source, v) in t {
                guard let key = v.string, !key.isEmpty else { throw ConfigError(description: "write_keys.\(source) must be a non-empty string") }
                guard c.writeKeys[key] == nil else { throw ConfigError(description: "write_keys: the key of '\(source)' is also another source's") }
                c.writeKeys[key] = source
            }
        }
        if let on = try src.onOff(peerClients, "peer_clients", flag: "peer-clients") { c.peerClients = on }
        if let j = try src.str(join, "join") {
            var list: [HostPort] = []
            for part in j.split(separator: ",") where !part.isEmpty {
                guard let a = HostPort(String(part)) else { throw ConfigError(description: "invalid --join entry '\(part)': expected HOST:PORT") }
                list.append(a)
            }
            c.join = list
        }
    }

    /// Replication, trust, limits, TTLs, retention, durability and threads.
    func applyPolicies(_ c: inout NodeConfig, _ src: ConfigSource) throws {
        if let rf = try src.int(rf, "rf") {
            guard (1...9).contains(rf) else { throw ConfigError(description: "invalid --rf \(rf): must be 1...9") }
            c.rf = rf
        }
        if let t = try src.str(trustedProxy, "trusted_proxy") {
            guard let list = CIDR.parseList(t) else { throw ConfigError(description: "invalid --trusted-proxy '\(t)': expected CIDR[,CIDR...]") }
            c.trustedProxies = list
        }
        if let r = try src.str(rateLimit, "rate_limit") {
            guard let l = RateLimit(parsing: r) else { throw ConfigError(description: "invalid --rate-limit '\(r)': expected RPS[:BURST]") }
            c.rateLimit = l
        }
        if let s = try src.str(shortTTL, "short_ttl") {
            guard let ms = Durations.parse(s) else { throw ConfigError(description: "invalid --short-ttl '\(s)': expected e.g. 30m, 1800s, 2h") }
            c.ttl.shortMs = ms
        }
        if let s = try src.str(longTTL, "long_ttl") {
            guard let ms = Durations.parse(s) else { throw ConfigError(description: "invalid --long-ttl '\(s)': expected e.g. 30d") }
            c.ttl.longMs = ms
        }
        if let s = try src.str(dedupeWindow, "dedupe_window") {
            guard let ms = Durations.parse(s) else { throw ConfigError(description: "invalid --dedupe-window '\(s)': expected e.g. 1h, 90m") }
            c.dedupeWindowMs = ms
        }
        if let n = try src.int(httpConnectionsMax, "http_connections_max") {
            guard n >= 1 else { throw ConfigError(description: "invalid --http-connections-max \(n): must be at least 1") }
            c.limits.httpConnectionsMax = n
        }
        if let n = try src.int(httpConnectionsPerIP, "http_connections_per_ip") {
            guard n >= 1 else { throw ConfigError(description: "invalid --http-connections-per-ip \(n): must be at least 1") }
            c.limits.httpConnectionsPerIPMax = n
        }
        if let s = try src.str(httpHeaderTimeout, "http_header_timeout") {
            guard let ms = Durations.parse(s), ms >= 1, ms <= Int64(Int32.max) else {
                throw ConfigError(description: "invalid --http-header-timeout '\(s)': expected e.g. 20s, 500ms")
            }
            c.limits.httpHeaderTimeoutMs = Int(ms)
        }
        if let s = try src.str(httpBodyTimeout, "http_body_timeout") {
            guard let ms = Durations.parse(s), ms >= 1, ms <= Int64(Int32.max) else {
                throw ConfigError(description: "invalid --http-body-timeout '\(s)': expected e.g. 20s, 500ms")
            }
            c.limits.httpBodyTimeoutMs = Int(ms)
        }
        if c.ttl.longMs < c.ttl.shortMs { throw ConfigError(description: "--long-ttl must not be shorter than --short-ttl") }
        if let d = try src.int(retentionDays, "retention_days") {
            guard d >= 1 else { throw ConfigError(description: "invalid --retention-days \(d): must be at least 1") }
            c.retentionDays = d
        }
        c.archiveDir = try src.str(archive, "archive")
        if let f = try src.str(fsync, "fsync") {
            guard let p = FsyncPolicy(rawValue: f) else { throw ConfigError(description: "invalid --fsync '\(f)': use always, interval or never") }
            c.fsync = p
        }
        if let ms = try src.int(fsyncIntervalMs, "fsync_interval_ms") {
            guard ms >= 1 else { throw ConfigError(description: "invalid --fsync-interval-ms \(ms): must be at least 1") }
            c.fsyncIntervalMs = ms
        }
        if let mb = try src.int(segmentMB, "segment_mb") {
            // Index entries hold block offsets in 32 bits; a segment may pass its size by one group.
            guard (1...2048).contains(mb) else { throw ConfigError(description: "invalid --segment-mb \(mb): use 1...2048") }
            c.limits.segmentBytesMax = mb << 20
        }
        if let p = try src.str(peerCompression, "peer_compression") {
            guard let v = PeerCompression(rawValue: p) else { throw ConfigError(description: "invalid --peer-compression '\(p)': use auto, always or never") }
            c.peerCompression = v
        }
        if let t = try src.int(threads, "threads") {
            guard (1...256).contains(t) else { throw ConfigError(description: "invalid --threads \(t)") }
            c.threads = t
        }
        if let u = try src.int(udpSockets, "udp_sockets") {
            guard (1...64).contains(u) else { throw ConfigError(description: "invalid --udp-sockets \(u): 1 to 64") }
            c.udpSockets = u
        }
        if let b = try src.int(udpReceiveBuffer, "udp_receive_buffer") {
            guard (65_536...(1 << 30)).contains(b) else { throw ConfigError(description: "invalid --udp-receive-buffer \(b): 65536 to 1073741824 bytes") }
            c.udpReceiveBufferBytes = b
        }
    }
}

extension String {
    var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}

/// A node's settings as the config file gives them, with flags taking precedence.
struct ConfigSource {
    var file: [String: TOMLValueConvertible]

    static let knownKeys: Set<String> = ["id", "data", "http", "peer", "udp", "join", "rf", "trusted_proxy", "rate_limit", "short_ttl",
                                         "long_ttl", "dedupe_window", "segment_mb", "retention_days", "archive", "fsync", "fsync_interval_ms", "threads", "log_level",
                                         "admin_token_file", "metrics", "metrics_tls", "peer_compression", "cluster_secret_file", "peer_clients",
                                         "http_connections_max", "http_connections_per_ip", "http_header_timeout", "http_body_timeout",
                                         "tls_cert", "tls_key", "tls_client_ca", "peer_tls_cert", "peer_tls_key", "peer_tls_ca",
                                         "write_keys", "export_dir", "export_format", "export_compress", "sink_postgres", "sink_table", "sink_batch", "geoip", "enrich_ua", "id_cookie", "id_cookie_domain", "id_cookie_days",
                                         "tracing", "trace_sample", "otlp_endpoint", "udp_sockets"]

    /// Reads a TOML config file; unknown keys are refused.
    static func load(_ path: String) throws -> [String: TOMLValueConvertible] {
        guard let bytes = FileIO.readFile(path) else { throw ConfigError(description: "cannot read config file \(path)") }
        var file: [String: TOMLValueConvertible] = [:]
        do {
            let table = try TOMLTable(string: String(decoding: bytes, as: UTF8.self))
            for (k, v) in table { file[k.replacingDashes] = v }
        } catch {
            throw ConfigError(description: "config file \(path) is not valid TOML: \(error)")
        }
        if let bad = file.keys.sorted().first(where: { !knownKeys.contains($0) }) {
            throw ConfigError(description: "config file \(path): unknown key '\(bad)'")
        }
        return file
    }

    func str(_ flag: String?, _ key: String) throws -> String? {
        if let flag { return flag }
        guard let v = file[key] else { return nil }
        if let s = v.string { return s }
        if let a = v.array { return a.compactMap { $0.string }.joined(separator: ",") }
        if let i = v.int { return String(i) }
        throw ConfigError(description: "config key '\(key)' must be a string")
    }

    /// An `on`/`off` setting (a TOML boolean too); `flag` is the flag's name for the error.
    func onOff(_ value: String?, _ key: String, flag: String) throws -> Bool? {
        if value == nil, let b = file[key]?.bool { return b }
        guard let v = try str(value, key) else { return nil }
        guard v == "on" || v == "off" else { throw ConfigError(description: "invalid --\(flag) '\(v)': use on or off") }
        return v == "on"
    }

    func int(_ flag: Int?, _ key: String) throws -> Int? {
        if let flag { return flag }
        guard let v = file[key] else { return nil }
        if let i = v.int { return i }
        throw ConfigError(description: "config key '\(key)' must be an integer")
    }
}

extension String {
    /// Without leading and trailing whitespace (a file's final newline).
    var trimmingWhitespace: String { String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()) }
}

/// Reads the environment without Foundation.
enum ProcessInfoEnv {
    static func int(_ name: String) -> Int64? {
        guard let v = getenv(name) else { return nil }
        return Int64(String(cString: v))
    }
}
