import NIOCore
import StarlingCore

/// UDP ingest: one JSON event per datagram, fire-and-forget. Invalid datagrams are dropped
/// and counted (`starling_events_rejected_total{transport="udp",reason}`).
final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let api: NodeAPI
    /// Valid events of the current read burst, grouped by client ip; submitted together on
    /// `channelReadComplete` (one write-queue job per burst instead of one per datagram).
    var burst: [String: [IncomingEvent]] = [:]
    var burstBytes = 0
    /// The last sender and its address as text (formatting an address per datagram showed in profiles).
    var lastSender: SocketAddress?
    var lastIP = "unknown"
    init(api: NodeAPI) { self.api = api }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let metrics = api.engine.metrics
        if envelope.remoteAddress != lastSender {
            lastSender = envelope.remoteAddress
            lastIP = envelope.remoteAddress.ipAddress ?? "unknown"
        }
        let ip = lastIP
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
            burst[ip, default: []].append(event)
            burstBytes += envelope.data.readableBytes
            if burstBytes >= 1 << 20 { flush(context: context) }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush(context: context)
        context.fireChannelReadComplete()
    }

    func flush(context: ChannelHandlerContext) {
        guard !burst.isEmpty else { return }
        let metrics = api.engine.metrics
        for (ip, events) in burst {
            api.store(events, ip: ip, transport: .udp, bytes: burstBytes, on: context.eventLoop).whenSuccess { result in
                if case .failure(let e) = result { metrics.rejected(.udp, reason: e.reason, count: events.count) }
            }
        }
        burst.removeAll(keepingCapacity: true)
        burstBytes = 0
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A datagram socket error (e.g. ICMP unreachable) must not stop ingest.
        api.engine.metrics.rejected(.udp, reason: "socket_error")
    }
}
