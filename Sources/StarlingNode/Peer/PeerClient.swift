import Logging
import NIOCore
import NIOSSL
import NIOPosix
import StarlingCluster
import StarlingCore
import Synchronization

/// One outbound connection to a peer: connects lazily, says hello (cluster id and protocol
/// version are checked by the other side), then multiplexes requests by request id.
/// A dropped connection fails every request pending on it; the next request reconnects.
final class PeerClient: Sendable {
    struct PeerUnavailable: Error, CustomStringConvertible {
        var description: String
    }

    let address: String
    let host: String
    let port: Int
    let group: EventLoopGroup
    let identity: @Sendable () -> (clusterID: UInt64, hello: Hello)
    let onClusterID: @Sendable (UInt64) -> Bool
    /// Whether the `helloAck` to the hello we sent is good: the cluster secret proven, where one
    /// is set, and with mTLS the server's certificate naming the node its ack names (the common
    /// names are passed; nil without TLS).
    let acceptsAck: @Sendable (Hello, Frame, [String]?) -> Bool
    /// Answers to requests the cluster node sent (`ClusterNode.requestIDBase` ids).
    let onNodeFrame: @Sendable (Frame) -> Void
    /// The connection closed or could not be made (the node fails its requests to this peer).
    let onLost: @Sendable () -> Void
    /// One request of the node's was not written (its body is over the frame limit).
    let onUnsent: @Sendable (UInt64) -> Void
    let logger: Logger
    /// Requests waiting for an answer, bounded: beyond this the caller gets an error at once.
    static let pendingMax = Limits().peerInFlightMax
    static let helloTimeout = TimeAmount.seconds(2)

    struct State {
        var channel: Channel?
        var connecting: EventLoopFuture<Channel>?
        /// Requests waiting for an answer, with the connection each was written to: a connection
        /// that closes fails only its own requests, not those already on its successor.
        var pending: [UInt64: (promise: EventLoopPromise<Frame>, channel: ObjectIdentifier)] = [:]
        var nextID: UInt64 = 1
        var closed = false
    }
    let state = Mutex(State())

    /// LZ4 on the frames this client writes (`PeerCompression`).
    let compress: Bool

    /// mTLS towards members (`--peer-tls-*`): our certificate, theirs checked against the cluster CA.
    let tls: TLSContext?

    init(address: String, group: EventLoopGroup, logger: Logger, compression: PeerCompression = .auto, tls: TLSContext? = nil,
         identity: @escaping @Sendable () -> (clusterID: UInt64, hello: Hello),
         onClusterID: @escaping @Sendable (UInt64) -> Bool,
         acceptsAck: @escaping @Sendable (Hello, Frame, [String]?) -> Bool = { _, _, _ in true },
         onNodeFrame: @escaping @Sendable (Frame) -> Void = { _ in },
         onLost: @escaping @Sendable () -> Void = {},
         onUnsent: @escaping @Sendable (UInt64) -> Void = { _ in }) {
        self.address = address
        let hp = HostPort(address)
        host = hp?.host ?? "127.0.0.1"
        port = hp?.port ?? 0
        compress = compression.compresses(host: host)
        self.group = group
        self.logger = logger
        self.identity = identity
        self.acceptsAck = acceptsAck
        self.tls = tls
        self.onClusterID = onClusterID
        self.onNodeFrame = onNodeFrame
        self.onLost = onLost
        self.onUnsent = onUnsent
    }

    /// The connected, greeted channel.
    func channel() -> EventLoopFuture<Channel> {
        let loop = group.next()
        let existing: EventLoopFuture<Channel>?? = state.withLock { s in
            if s.closed { return .some(nil) }
            if let c = s.channel, c.isActive { return c.eventLoop.makeSucceededFuture(c) }
            if let f = s.connecting { return f }
            return nil
        }
        if let existing {
            // A closed client (shut down, evicted or refused) never reconnects.
            return existing ?? loop.makeFailedFuture(PeerUnavailable(description: "connection to \(address) is closed"))
        }
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls.current, serverHostname: nil)) }
                    try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(PeerFrameEncoder(compress: compress)))
                    try sync.addHandler(PeerClientHandler(client: self))
                }
            }
            .connect(host: host, port: port)
        let greeted = connected.flatMap { [self] channel -> EventLoopFuture<Channel> in
            let (cid, hello) = identity()
            let p = channel.eventLoop.makePromise(of: Frame.self)
            let id: UInt64 = state.withLock { s in
                let id = s.nextID
                s.nextID += 1
                s.pending[id] = (p, ObjectIdentifier(channel))
                return id
            }
            channel.writeAndFlush(Frame(kind: .hello, clusterID: cid, requestID: id, sender: hello.nodeID, body: hello.encode()), promise: nil)
            // A peer that accepts the connection but never greets back must not hold every later
            // request behind this handshake.
            let helloTimer = channel.eventLoop.scheduleTask(in: Self.helloTimeout) { channel.close(promise: nil) }
            p.futureResult.whenComplete { _ in helloTimer.cancel() }
            return p.futureResult.flatMapThrowing { [self] reply -> Channel in
                switch reply.kind {
                case .helloAck:
                    // With mTLS the handshake is over: the server's certificate passed the cluster CA.
                    let names: [String]? = tls == nil ? nil
                        : ((try? channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self))?.peerCertificate?
                            .subjectName.filter { $0.type == .commonName }.map(\.value) ?? [])
                    guard acceptsAck(hello, reply, names) else {
                        channel.close(promise: nil)
                        throw PeerUnavailable(description: "peer \(address) did not prove it is the member it names")
                    }
                    guard onClusterID(reply.clusterID) else {
                        channel.close(promise: nil)
                        throw PeerUnavailable(description: "peer \(address) belongs to another cluster (\(String(reply.clusterID, radix: 16)))")
                    }
                    return channel
                case .refuse:
                    let reason = (try? Refuse.decode(reply.body).reason) ?? "refused"
                    logger.error("peer \(address) refused our hello: \(reason)")
                    channel.close(promise: nil)
                    throw PeerUnavailable(description: "peer \(address) refused: \(reason)")
                default:
                    channel.close(promise: nil)
                    throw PeerUnavailable(description: "peer \(address) answered hello with \(reply.kind)")
                }
            }
        }
        state.withLock { s in s.connecting = greeted }
        greeted.whenComplete { [self] result in
            state.withLock { s in
                s.connecting = nil
                if case .success(let c) = result { s.channel = c }
            }
        }
        return greeted
    }

    /// Sends a request and waits for the response with the same request id.
    func request(_ kind: MessageKind, body: [UInt8], timeout: TimeAmount) -> EventLoopFuture<Frame> {
        // Senders split lists to fit (`FrameBudget`); this is the backstop. A frame the receiver
        // refuses would close the shared connection and fail every request on it, so an oversize
        // body fails only its own request, before anything is written.
        if body.count > FrameLimits().bodyBytesMax {
            logger.error("not sending a \(kind) of \(body.count) bytes to \(address): over the frame limit")
            return group.next().makeFailedFuture(PeerUnavailable(description: "\(kind) body of \(body.count) bytes is over the frame limit"))
        }
        return channel().flatMap { [self] channel -> EventLoopFuture<Frame> in
            let p = channel.eventLoop.makePromise(of: Frame.self)
            let id: UInt64? = state.withLock { s in
                guard s.pending.count < Self.pendingMax else { return nil }
                let id = s.nextID
                s.nextID += 1
                s.pending[id] = (p, ObjectIdentifier(channel))
                return id
            }
            guard let id else {
                p.fail(PeerUnavailable(description: "too many requests in flight to \(address)"))
                return p.futureResult
            }
            let (cid, hello) = identity()
            channel.writeAndFlush(Frame(kind: kind, clusterID: cid, requestID: id, sender: hello.nodeID, body: body), promise: nil)
            let timer = channel.eventLoop.scheduleTask(in: timeout) { [self] in
                if let p = state.withLock({ $0.pending.removeValue(forKey: id) })?.promise {
                    p.fail(PeerUnavailable(description: "\(address) did not answer \(kind) within \(timeout.nanoseconds / 1_000_000) ms"))
                    // An unanswered request means the connection cannot be trusted (after a
                    // partition TCP may sit in retransmission backoff for minutes): drop it, so
                    // the next request connects afresh.
                    logger.warning("peer \(address) did not answer \(kind) in time; reconnecting")
                    channel.close(promise: nil)
                }
            }
            p.futureResult.whenComplete { _ in timer.cancel() }
            return p.futureResult
        }
    }

    /// Writes a frame the cluster node built (a request with its own id, or one-way gossip).
    /// An oversize body is not written (see `request`) and fails only its own request
    /// (`onUnsent`); a connection that cannot be made is reported through `onLost`.
    func send(frame: Frame) {
        if frame.body.count > FrameLimits().bodyBytesMax {
            logger.error("not sending a \(frame.kind) of \(frame.body.count) bytes to \(address): over the frame limit")
            if frame.requestID != 0 { onUnsent(frame.requestID) }
            return
        }
        channel().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                var f = frame
                f.clusterID = identity().clusterID
                channel.writeAndFlush(f, promise: nil)
            case .failure:
                if frame.requestID != 0 { onLost() }
            }
        }
    }

    func received(_ frame: Frame) {
        guard frame.isResponse || frame.kind == .helloAck || frame.kind == .refuse else { return }
        if frame.requestID & ClusterNode.requestIDBase != 0 {
            onNodeFrame(frame)
            return
        }
        if let p = state.withLock({ $0.pending.removeValue(forKey: frame.requestID) })?.promise {
            p.succeed(frame)
        }
    }

    func disconnected(_ channel: Channel) {
        let gone = ObjectIdentifier(channel)
        let pending: [EventLoopPromise<Frame>] = state.withLock { s in
            if let current = s.channel, ObjectIdentifier(current) == gone { s.channel = nil }
            let ids = s.pending.filter { $0.value.channel == gone }.map(\.key)
            return ids.compactMap { s.pending.removeValue(forKey: $0)?.promise }
        }
        for p in pending { p.fail(PeerUnavailable(description: "connection to \(address) lost")) }
        onLost()
    }

    /// Drops the current connection (the member went down: its connection may be stalled in
    /// TCP backoff); the client stays usable and the next request reconnects.
    func resetConnection() {
        // Forget it at once: until its close runs on its event loop it may still look active,
        // and a request made meanwhile must not be written to it.
        let c = state.withLock { s -> Channel? in
            let c = s.channel
            s.channel = nil
            return c
        }
        c?.close(promise: nil)
    }

    func close() {
        let c = state.withLock { s -> Channel? in
            s.closed = true
            return s.channel
        }
        c?.close(promise: nil)
    }
}

final class PeerClientHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let client: PeerClient
    init(client: PeerClient) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.received(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.disconnected(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        client.logger.warning("peer connection to \(client.address) failed: \(error)")
        context.close(promise: nil)
    }
}
