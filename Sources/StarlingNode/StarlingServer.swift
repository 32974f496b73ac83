import Dispatch
import StarlingLog
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Prometheus
import StarlingCore
import Synchronization

/// Counts requests that have arrived but not been answered (for draining on SIGTERM).
final class InFlightCounter: Sendable {
    let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

/// A running node: engine + HTTP + UDP + peer listener. `start` binds everything;
/// `stop` drains and closes (the SIGTERM path).
public final class StarlingServer: Sendable {
    public let config: NodeConfig
    public let engine: Engine
    public let api: NodeAPI
    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool
    let logger: Logger
    let inFlight = InFlightCounter()
    let channels = Mutex<[Channel]>([])
    /// Bound addresses (useful when a port was 0).
    public let httpAddress: Mutex<SocketAddress?> = Mutex(nil)
    public let udpAddress: Mutex<SocketAddress?> = Mutex(nil)
    public let peerAddress: Mutex<SocketAddress?> = Mutex(nil)
    public let metricsAddress: Mutex<SocketAddress?> = Mutex(nil)

    /// The node's listening TCP sockets, bound in `init` (ports resolved) and accepting from `start`.
    let httpListener: BoundListener
    let peerListener: BoundListener
    /// Open connections, bounded (`Limits.httpConnectionsMax`, per address, `peerConnectionsMax`).
    let httpConnections: ConnectionLimiter
    let peerConnections: ConnectionLimiter
    /// TLS contexts (reloaded on SIGHUP): HTTPS, the peer port, our peer connections.
    let httpTLS: TLSContext?
    let peerServerTLS: TLSContext?

    /// Builds the node in one order: the engine (recovers the log), the HTTP and peer sockets
    /// (bound, not yet accepting: the cluster shell names their resolved addresses), the cluster
    /// shell, the API. `onLeaveRequest` is what `POST /v1/admin/leave` calls.
    public init(config: NodeConfig, logger: Logger, clock: @escaping @Sendable () -> Int64 = StarlingServer.systemMillis,
                onLeaveRequest: (@Sendable () -> Void)? = nil) throws {
        self.config = config
        self.logger = logger
        exportTimer = config.exportDir == nil ? nil : DispatchSource.makeTimerSource(queue: exportQueue)
        engine = try Engine(config: config, metrics: NodeMetrics(), logger: logger, clock: clock)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, config.threads))
        threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        var bound: [BoundListener] = []
        do {
            bound.append(try BoundListener.bind(host: config.http.host, port: config.http.port))
            bound.append(try BoundListener.bind(host: config.peer.host, port: config.peer.port))
            let cluster = try ClusterShell(engine: engine, group: group, threadPool: threadPool, logger: logger,
                                           peerAddress: bound[1].address.description, httpAddress: bound[0].address.description)
            api = try NodeAPI(engine: engine, cluster: cluster, threadPool: threadPool, onLeaveRequest: onLeaveRequest)
        } catch {
            for b in bound { close(b.fd) }
            engine.shutdown()
            try? threadPool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw error
        }
        httpListener = bound[0]
        peerListener = bound[1]
        let proxies = config.trustedProxies
        httpConnections = ConnectionLimiter(totalMax: config.limits.httpConnectionsMax, perAddressMax: config.limits.httpConnectionsPerIPMax,
                                            exempt: { ip in IPAddress(ip).map { a in proxies.contains { $0.contains(a) } } ?? false })
        peerConnections = ConnectionLimiter(totalMax: config.limits.peerConnectionsMax)
        httpTLS = try config.httpTLS.map { try TLSContext($0, role: .httpServer) }
        peerServerTLS = try config.peerTLS.map { try TLSContext($0, role: .peerServer) }
    }

    /// Rereads every TLS certificate and key (SIGHUP). A file that does not load leaves that
    /// context as it was; both outcomes are logged and counted.
    public func reloadTLS() {
        for (name, ctx) in [("http", httpTLS), ("peer", peerServerTLS), ("peer client", api.cluster.peerClientTLS)] {
            guard let ctx else { continue }
            do {
                try ctx.reload()
                engine.metrics.tlsReloads(ok: true)
                logger.notice("reloaded the \(name) TLS certificate and key")
            } catch {
                engine.metrics.tlsReloads(ok: false)
                logger.error("could not reload the \(name) TLS certificate and key (the previous ones stay): \(error)")
            }
        }
    }

    /// Counts a new connection against `limiter`, or refuses it (counted, logged): the channel
    /// is closed before it reads anything.
    static func admit(_ channel: Channel, _ limiter: ConnectionLimiter, listener: String, gauge: Gauge,
                      metrics: NodeMetrics, logger: Logger) -> Bool {
        let ip = channel.remoteAddress?.ipAddress ?? ""
        if let refusal = limiter.admit(ip) {
            metrics.connectionRefused(listener: listener, reason: refusal.rawValue)
            logger.warning("refused a \(listener) connection from \(ip): \(refusal.rawValue) (\(limiter.open) open)")
            return false
        }
        gauge.set(Double(limiter.open))
        channel.closeFuture.whenComplete { _ in
            limiter.release(ip)
            gauge.set(Double(limiter.open))
        }
        return true
    }

    struct ConnectionRefused: Error {}

    @Sendable public static func systemMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public var httpPort: Int? { httpAddress.withLock { $0?.port } }
    public var udpPort: Int? { udpAddress.withLock { $0?.port } }
    public var peerPort: Int? { peerAddress.withLock { $0?.port } }
    public var metricsPort: Int? { metricsAddress.withLock { $0?.port } }
    /// `--sink-postgres`: started with the node, stopped before the log closes.
    let sink: Mutex<PostgresSink?> = Mutex(nil)
    /// `--export-dir`: the timer of the automatic export of sealed days (made here, started by
    /// `start`, cancelled by `stop`).
    let exportQueue = DispatchQueue(label: "starling.export")
    nonisolated(unsafe) let exportTimer: DispatchSourceTimer?

    public func start() throws {
        // Peers first, and the cluster shell started, before clients are let in.
        try acceptPeers()
        api.cluster.start()
        try acceptHTTP()
        try bindMetrics()
        try bindUDP()
        if let t = exportTimer {
            t.schedule(deadline: .now() + .seconds(60), repeating: .seconds(600))
            t.setEventHandler { [weak self] in _ = self?.exportSealedDays() }
            t.resume()
        }
        api.cluster.tracer.start()
        if let conninfo = config.sinkPostgres {
            let s = PostgresSink(conninfo: conninfo, table: config.sinkTable, batchMax: config.sinkBatch, log: engine.log,
                                 dataDir: config.dataDir, metrics: engine.metrics, logger: logger)
            s.start()
            sink.withLock { $0 = s }
        }
        logger.info("node started", metadata: [
            "id": "\(config.id)", "http": "\(httpAddress.withLock { $0 }.map { "\($0)" } ?? "-")",
            "udp": "\(udpAddress.withLock { $0 }.map { "\($0)" } ?? "-")", "peer": "\(peerAddress.withLock { $0 }.map { "\($0)" } ?? "-")",
            "rf": "\(config.rf)", "fsync": "\(config.fsync.rawValue)",
        ])
    }

    func acceptPeers() throws {
        let api = self.api
        let compression = config.peerCompression
        let (limiter, metrics, logger) = (peerConnections, engine.metrics, logger)
        let idleMs = config.limits.peerIdleTimeoutMs
        let tls = peerServerTLS
        let peer = try peerListener.accept(with: ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard Self.admit(channel, limiter, listener: "peer", gauge: metrics.peerConnections, metrics: metrics, logger: logger) else {
                        throw ConnectionRefused()
                    }
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls.current)) }
                    try sync.addHandler(IdleStateHandler(readTimeout: .milliseconds(Int64(idleMs))))
                    try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
                    let remote = channel.remoteAddress?.ipAddress ?? ""
                    try sync.addHandler(MessageToByteHandler(PeerFrameEncoder(compress: compression.compresses(host: remote))))
                    try sync.addHandler(PeerServerHandler(api: api))
                }
            }, backlog: 256)
        peerAddress.withLock { $0 = peer.localAddress }
        channels.withLock { $0.append(peer) }
    }

    func acceptHTTP() throws {
        let api = self.api
        let inFlight = self.inFlight
        let (limiter, metrics, logger) = (httpConnections, engine.metrics, logger)
        let tls = httpTLS
        let http = try httpListener.accept(with: ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard Self.admit(channel, limiter, listener: "http", gauge: metrics.httpConnections, metrics: metrics, logger: logger) else {
                        throw ConnectionRefused()
                    }
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls.current)) }
                    // A client that sends but does not read its answers: stop reading it while
                    // its answers cannot be written, instead of queueing them without bound.
                    try sync.addHandler(BackPressureHandler())
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true, withOutboundHeaderValidation: false)
                    try sync.addHandler(HTTPHandler(api: api, inFlight: inFlight))
                }
            }, backlog: 1024)
        httpAddress.withLock { $0 = http.localAddress }
        channels.withLock { $0.append(http) }
    }

    /// `/metrics` on a listener of its own (`--metrics`), if asked for.
    func bindMetrics() throws {
        let api = self.api
        let inFlight = self.inFlight
        let (limiter, nodeMetrics, logger) = (httpConnections, engine.metrics, logger)
        let tls = config.metricsTLS ? httpTLS : nil
        if let m = config.metricsListen {
            let metrics = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard Self.admit(channel, limiter, listener: "metrics", gauge: nodeMetrics.httpConnections, metrics: nodeMetrics, logger: logger) else {
                            throw ConnectionRefused()
                        }
                        let sync = channel.pipeline.syncOperations
                        if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls.current)) }
                        try sync.addHandler(BackPressureHandler())
                        try sync.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                        try sync.configureHTTPServerPipeline(withErrorHandling: true, withOutboundHeaderValidation: false)
                        try sync.addHandler(HTTPHandler(api: api, inFlight: inFlight, listener: .metrics))
                    }
                }
                .bind(host: m.host, port: m.port).wait()
            metricsAddress.withLock { $0 = metrics.localAddress }
            channels.withLock { $0.append(metrics) }
        }
    }

    func bindUDP() throws {
        let api = self.api
        guard let udp = config.udp else { return }
        // Several sockets on the same port (SO_REUSEPORT), on different event loops: the kernel
        // spreads senders over them by address, so datagrams are read and parsed on several
        // cores. The first socket takes the port (an ephemeral one in tests); the others join it.
        let sockets = config.udpSocketCount
        var loops: [EventLoop] = []
        for l in group.makeIterator() { loops.append(l) }
        var port = udp.port
        for k in 0..<sockets {
            let u = try DatagramBootstrap(group: loops[k % loops.count])
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT), value: sockets > 1 ? 1 : 0)
                .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(clamping: config.udpReceiveBufferBytes))
                .channelOption(.maxMessagesPerRead, value: 64)
                // recvmmsg: up to 32 datagrams per system call, each in its own slot of one
                // buffer (a slot holds one byte over the limit, so oversize datagrams are seen).
                .channelOption(.datagramVectorReadMessageCount, value: config.limits.udpReadDatagramsMax)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: config.limits.udpReadDatagramsMax * (config.limits.datagramBytesMax + 1)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPHandler(api: api)) }
                }
                .bind(host: udp.host, port: port).wait()
            grantReceiveBuffer(u)
            if k == 0 {
                udpAddress.withLock { $0 = u.localAddress }
                port = u.localAddress?.port ?? port
                api.engine.metrics.udpPort.withLock { $0 = port }
            }
            channels.withLock { $0.append(u) }
        }
    }

    /// Asks for the configured receive buffer past `rmem_max` (SO_RCVBUFFORCE, allowed with
    /// CAP_NET_ADMIN); without the capability the SO_RCVBUF set at bind stands. Exports and logs
    /// what the kernel granted (Linux reports twice the size asked, its bookkeeping included).
    func grantReceiveBuffer(_ channel: Channel) {
        let want = SocketOptionValue(clamping: config.udpReceiveBufferBytes)
        let forced = (try? channel.setOption(ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_RCVBUFFORCE), value: want).wait()) != nil
        let granted = (try? channel.getOption(.socketOption(.so_rcvbuf)).wait()).map { Int($0) / 2 } ?? 0
        api.engine.metrics.udpReceiveBuffer.set(Double(granted))
        if granted < config.udpReceiveBufferBytes {
            logger.warning("UDP receive buffer: \(granted) bytes granted of \(config.udpReceiveBufferBytes) asked (net.core.rmem_max caps it without CAP_NET_ADMIN); bursts beyond it are dropped by the kernel")
        } else if forced {
            logger.info("UDP receive buffer: \(granted) bytes")
        }
    }

    /// The SIGTERM path (SPEC): stop accepting, finish in-flight requests (up to
    /// `drainSeconds`), flush, leave the cluster, close. The order matters: an in-flight write
    /// may be waiting for its followers, so the peer side (membership, connections) stays up
    /// until the drain is over; leaving first would make followers fence the write, and closing
    /// peer connections first would fail it.
    public func stop(drainSeconds: Double = 10) {
        let listeners = channels.withLock { c -> [Channel] in
            let l = c
            c.removeAll()
            return l
        }
        let cluster = api.cluster
        cluster.beginDrain()
        for ch in listeners { try? ch.close().wait() }
        let deadline = ContinuousClock.now + .milliseconds(Int(drainSeconds * 1000))
        while inFlight.current > 0 && ContinuousClock.now < deadline {
            usleep(5_000)
        }
        cluster.leave()
        exportTimer?.cancel()
        exportQueue.sync {}
        sink.withLock { $0 }?.stop()
        api.cluster.tracer.stop()
        engine.shutdown()
        cluster.closeConnections()
        try? threadPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        logger.info("node stopped", metadata: ["id": "\(config.id)"])
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension StarlingServer {
    /// `--export-dir`: exports each sealed day of the log that has no manifest there yet (days
    /// before today, UTC, oldest first), as `starling export` would, and returns the days done.
    /// Runs on its own queue every 10 minutes, so a day is exported shortly after midnight and
    /// before retention can remove it.
    @discardableResult
    public func exportSealedDays() -> [String] {
        guard let dir = config.exportDir else { return [] }
        let today = Timestamps.utcDay(engine.now)
        let cluster = api.cluster, me = config.id
        let name = "\(me).\(config.exportFormat.fileExtension)\(config.exportCompression.suffix)"
        var done: [String] = []
        for day in engine.log.days where day < today && !FileIO.exists("\(dir)/\(day)/\(name).manifest.json") {
            do {
                let m = try engine.export(day: day, format: config.exportFormat, compression: config.exportCompression, extraColumns: [],
                                          outDir: dir) { r in
                    cluster.owner(of: r.sessionID.isEmpty ? (NodeIndex.subjects(listing: r).first?.ringKey ?? "") : r.sessionID) == me
                }
                logger.info("exported \(day)", metadata: ["events": "\(m.events)", "file": "\(dir)/\(day)/\(m.file)"])
                done.append(day)
            } catch {
                logger.error("automatic export of \(day) failed: \(error)")
            }
        }
        return done
    }
}
