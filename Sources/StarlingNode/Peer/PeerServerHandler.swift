import Logging
import NIOCore
import NIOSSL
import StarlingCluster

/// The accepting side of a peer connection: the first frame must be `hello` (cluster id and
/// protocol version checked by `ClusterShell.acceptHello`); later frames are requests that
/// the runtime answers, or one-way membership messages.
///
/// Bounded: at most `Limits.peerInFlightMax` requests of one connection are being answered at a
/// time, at most 16 of them queries or catch-up pages (answers of up to a frame each), and at most
/// 16 MiB of answers written but not yet taken by the socket. At a bound, requests already read
/// wait in order (past twice the in-flight bound they are answered `overloaded` at once) and the
/// handler stops reading the connection, so TCP pushes back on the sender: a peer that sends but
/// does not read stops itself. Membership messages never wait.
final class PeerServerHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    let api: NodeAPI
    let inFlightMax: Int
    var hello: Hello?
    /// Whether the hello made this a member's connection (`ClusterShell.acceptHello`).
    var member = false
    /// The connection's peer address, read once (a client's events are stamped with it).
    var remoteIP: String?
    /// Requests being answered (loop-confined, like the rest of the handler).
    var inFlight = 0
    /// A read the pipeline asked for while reading was held back.
    var readHeld = false
    /// This connection's number (`Inbound.connection`): the node's answers come back by it.
    let connectionID = ClusterShell.newConnectionID()
    /// Requests read but not started (`drain`), from `waitingHead` on.
    var waiting: [Frame] = []
    var waitingHead = 0
    /// Queries and catch-up pages being answered.
    var heavyInFlight = 0
    /// Answer bytes written but not yet taken by the socket.
    var unsentBytes = 0
    static let heavyInFlightMax = 16
    static let unsentBytesMax = 16 << 20
    static let done = Frame(kind: .error, clusterID: 0, requestID: 0, sender: "")

    init(api: NodeAPI) {
        self.api = api
        inFlightMax = api.engine.config.limits.peerInFlightMax
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let runtime = api.cluster
        guard let hello else {
            // With mTLS, the handshake is over by the first frame: a certificate presented was
            // checked against the cluster CA; its common name must be the node the hello names.
            let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
            let certificate = tls.map { h -> PeerCertificate in
                guard let cert = h.peerCertificate else { return .anonymous }
                return .named(cert.subjectName.filter { $0.type == .commonName }.map(\.value))
            }
            let (reply, accepted, member) = runtime.acceptHello(frame, certificate: certificate)
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            if let accepted {
                self.hello = accepted
                self.member = member
                remoteIP = context.channel.remoteAddress?.ipAddress
            } else {
                context.close(promise: nil)
            }
            return
        }
        if frame.kind == .membership {
            // One-way and cheap: never behind requests (a held ping would make a member suspect).
            _ = api.cluster.handle(frame, from: hello, member: member, remoteIP: remoteIP, connection: connectionID, on: context.eventLoop)
            return
        }
        // Requests wait their turn here (in order) while the connection is at a bound; past
        // twice the in-flight bound they are answered `overloaded` at once.
        if waiting.count - waitingHead >= 2 * inFlightMax {
            api.engine.metrics.peerProtocolErrors.increment()
            let body = ErrorBody(code: "overloaded", message: "\(inFlight) requests of this connection are in flight").encode()
            send(context: context, Frame(kind: .error, isResponse: true, clusterID: frame.clusterID,
                                         requestID: frame.requestID, sender: api.engine.config.id, body: body))
            return
        }
        waiting.append(frame)
        drain(context: context)
    }

    /// Starts waiting requests while the connection is under its bounds: requests in flight,
    /// heavy ones (queries and catch-up pages, whose answers are up to a frame each) in flight,
    /// and answer bytes written but not yet taken by the socket. A peer that stops reading
    /// stops its own requests, and then (reads held) its connection.
    func drain(context: ChannelHandlerContext) {
        guard let hello else { return }
        while waitingHead < waiting.count, inFlight < inFlightMax, unsentBytes < Self.unsentBytesMax {
            let frame = waiting[waitingHead]
            let heavy = frame.kind == .query || frame.kind == .catchUp
            if heavy && heavyInFlight >= Self.heavyInFlightMax { break }
            waiting[waitingHead] = Self.done
            waitingHead += 1
            inFlight += 1
            if heavy { heavyInFlight += 1 }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let metrics = api.engine.metrics
            api.cluster.handle(frame, from: hello, member: member, remoteIP: remoteIP, connection: connectionID, on: context.eventLoop).whenComplete { result in
                let (handler, context) = loopBound.value
                handler.inFlight -= 1
                if heavy { handler.heavyInFlight -= 1 }
                if case .success(var reply?) = result {
                    if reply.body.count > FrameLimits().bodyBytesMax {
                        // Answers are paged to fit; this is the backstop. The asker gets an error for this
                        // request alone instead of a frame that would close the connection.
                        metrics.oversizeFramesRefused.increment()
                        reply.body = ErrorBody(code: "frame_too_large", message: "the answer (\(reply.body.count) bytes) is over the frame limit").encode()
                        reply.kind = .error
                    }
                    handler.send(context: context, reply)
                }
                handler.drain(context: context)
                handler.resumeReadingIfAllowed(context: context)
            }
        }
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingHead = 0
        }
    }

    /// Writes an answer, counting its bytes until the socket took them.
    func send(context: ChannelHandlerContext, _ frame: Frame) {
        let size = frame.body.count + 72
        unsentBytes += size
        let p = context.eventLoop.makePromise(of: Void.self)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        p.futureResult.whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.unsentBytes -= size
            handler.drain(context: context)
            handler.resumeReadingIfAllowed(context: context)
        }
        context.writeAndFlush(wrapOutboundOut(frame), promise: p)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // Nothing for `Limits.peerIdleTimeoutMs` (a member pings far more often): a stuck or
            // half-sent connection is closed; a client reconnects on its next request.
            api.engine.metrics.timedOut("peer_idle")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Backpressure

    var mayRead: Bool { inFlight < inFlightMax && waitingHead == waiting.count && unsentBytes < Self.unsentBytesMax }

    func read(context: ChannelHandlerContext) {
        if mayRead && context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfAllowed(context: context)
        context.fireChannelWritabilityChanged()
    }

    func resumeReadingIfAllowed(context: ChannelHandlerContext) {
        guard readHeld, mayRead, context.channel.isWritable else { return }
        readHeld = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOSSLError || error is BoringSSLError {
            // mTLS: no TLS, or a certificate not of the cluster (the handshake failed).
            api.engine.metrics.peerTLSRefused.increment()
            api.engine.logger.warning("refused a peer connection from \(context.remoteAddress?.ipAddress ?? "?"): TLS: \(error)")
            context.close(promise: nil)
            return
        }
        // Garbage or a corrupt frame on the peer port: count it, log it, drop the connection.
        api.engine.metrics.peerProtocolErrors.increment()
        api.cluster.peerProtocolError(error, from: context.remoteAddress)
        context.close(promise: nil)
    }
}
