import Logging
import NIOCore
import StarlingCluster

/// The accepting side of a peer connection: the first frame must be `hello` (cluster id and
/// protocol version checked by `ClusterRuntime.acceptHello`); later frames are requests that
/// the runtime answers, or one-way membership messages.
final class PeerServerHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    let api: NodeAPI
    var hello: Hello?
    /// The connection's peer address, read once (a client's events are stamped with it).
    var remoteIP: String?

    init(api: NodeAPI) { self.api = api }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let runtime = api.cluster else {
            context.close(promise: nil)   // still starting: the peer retries
            return
        }
        guard let hello else {
            let (reply, accepted) = runtime.acceptHello(frame)
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            if let accepted {
                self.hello = accepted
                remoteIP = context.channel.remoteAddress?.ipAddress
            } else {
                context.close(promise: nil)
            }
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let metrics = api.engine.metrics
        runtime.handle(frame, from: hello, remoteIP: remoteIP, on: context.eventLoop).whenSuccess { reply in
            guard var reply else { return }
            if reply.body.count > FrameLimits().bodyBytesMax {
                // Answers are paged to fit; this is the backstop. The asker gets an error for this
                // request alone instead of a frame that would close the connection.
                metrics.oversizeFramesRefused.increment()
                reply.body = ErrorBody(code: "frame_too_large", message: "the answer (\(reply.body.count) bytes) is over the frame limit").encode()
                reply.kind = .error
            }
            let (handler, context) = loopBound.value
            context.writeAndFlush(handler.wrapOutboundOut(reply), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Garbage or a corrupt frame on the peer port: count it, log it, drop the connection.
        api.engine.metrics.peerProtocolErrors.increment()
        api.cluster?.peerProtocolError(error, from: context.remoteAddress)
        context.close(promise: nil)
    }
}
