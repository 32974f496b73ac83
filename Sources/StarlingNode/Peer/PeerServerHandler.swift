import Logging
import NIOCore
import StarlingCluster

/// The accepting side of a peer connection: the first frame must be `hello` (cluster id and
/// protocol version checked by `ClusterShell.acceptHello`); later frames are requests that
/// the runtime answers, or one-way membership messages.
///
/// Bounded: at most `Limits.peerInFlightMax` requests of one connection are being answered at a
/// time. At the bound, or while the socket cannot take more writes (a peer that sends but does
/// not read), the handler stops reading the connection, so TCP pushes back on the sender; reads
/// resume as answers drain. Frames already read past twice the bound are answered `overloaded`
/// at once.
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

    init(api: NodeAPI) {
        self.api = api
        inFlightMax = api.engine.config.limits.peerInFlightMax
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let runtime = api.cluster
        guard let hello else {
            let (reply, accepted, member) = runtime.acceptHello(frame)
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
        let metrics = api.engine.metrics
        if inFlight >= 2 * inFlightMax {
            metrics.peerProtocolErrors.increment()
            let body = ErrorBody(code: "overloaded", message: "\(inFlight) requests of this connection are in flight").encode()
            context.writeAndFlush(wrapOutboundOut(Frame(kind: .error, isResponse: true, clusterID: frame.clusterID,
                                                         requestID: frame.requestID, sender: api.engine.config.id, body: body)), promise: nil)
            return
        }
        inFlight += 1
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        runtime.handle(frame, from: hello, member: member, remoteIP: remoteIP, connection: connectionID, on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            handler.inFlight -= 1
            if case .success(var reply?) = result {
                if reply.body.count > FrameLimits().bodyBytesMax {
                    // Answers are paged to fit; this is the backstop. The asker gets an error for this
                    // request alone instead of a frame that would close the connection.
                    metrics.oversizeFramesRefused.increment()
                    reply.body = ErrorBody(code: "frame_too_large", message: "the answer (\(reply.body.count) bytes) is over the frame limit").encode()
                    reply.kind = .error
                }
                context.writeAndFlush(handler.wrapOutboundOut(reply), promise: nil)
            }
            handler.resumeReadingIfAllowed(context: context)
        }
    }

    // MARK: Backpressure

    var mayRead: Bool { inFlight < inFlightMax }

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
        // Garbage or a corrupt frame on the peer port: count it, log it, drop the connection.
        api.engine.metrics.peerProtocolErrors.increment()
        api.cluster.peerProtocolError(error, from: context.remoteAddress)
        context.close(promise: nil)
    }
}
