import NIOCore
import StarlingCore

/// UDP ingest: one JSON event per datagram, fire-and-forget. Invalid datagrams are dropped
/// and counted (`starling_events_rejected_total{transport="udp",reason}`).
final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let api: NodeAPI
    init(api: NodeAPI) { self.api = api }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let metrics = api.engine.metrics
        let ip = envelope.remoteAddress.ipAddress ?? "unknown"
        guard api.allowDatagram(from: ip) else {
            metrics.rejected(.udp, reason: "rate_limited")
            return
        }
        let limits = api.engine.config.limits
        let result = envelope.data.withUnsafeReadableBytes { EventValidator.event(fromDatagram: $0, limits: limits) }
        switch result {
        case .failure(let e):
            metrics.rejected(.udp, reason: e.reason)
        case .success(let event):
            api.store([event], ip: ip, transport: .udp, bytes: envelope.data.readableBytes, on: context.eventLoop).whenSuccess { result in
                if case .failure(let e) = result { metrics.rejected(.udp, reason: e.reason) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A datagram socket error (e.g. ICMP unreachable) must not stop ingest.
        api.engine.metrics.rejected(.udp, reason: "socket_error")
    }
}
