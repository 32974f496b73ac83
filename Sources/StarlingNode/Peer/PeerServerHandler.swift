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
        runtime.handle(frame, from: hello, remoteIP: remoteIP, on: context.eventLoop).whenSuccess { reply in
            guard let reply else { return }
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
