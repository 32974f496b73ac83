import NIOCore
import NIOHTTP1
import StarlingCore

/// One HTTP/1.1 connection: collects a request (refusing an oversized body as soon as its
/// size is known), hands it to `NodeAPI`, writes the answer. Keep-alive and pipelining come
/// from NIO's server pipeline; responses are written in request order.
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer?, ContinuousClock.Instant)
        /// The body was refused (413); the rest of it is dropped and the connection closed after the answer.
        case discarding
    }

    let api: NodeAPI
    let inFlight: InFlightCounter
    let listener: APIRequest.Listener
    var state = State.idle
    /// The peer's address as text, formatted once per connection.
    var remoteIP: String??
    /// What the connection waits for: the next request's `header`, the current request's
    /// `body`, or nil while a request is being answered; and since when.
    var phase: String?
    var phaseSince = NIODeadline.now()
    /// The one timer that checks the phase's deadline (`Limits.httpHeaderTimeoutMs`,
    /// `httpBodyTimeoutMs`). It is not moved per request: scheduling and cancelling a task
    /// twice per request was 4 % of a single-event POST's CPU. It fires no later than the
    /// current phase's deadline and no later than the shorter timeout after it was set, so any
    /// later phase's deadline (which starts after it was set) is never missed; a fire that is
    /// early sets it again.
    var timer: Scheduled<Void>?

    init(api: NodeAPI, inFlight: InFlightCounter, listener: APIRequest.Listener = .main) {
        self.listener = listener
        self.api = api
        self.inFlight = inFlight
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context, phase: "header") }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context, phase: "header")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
    }

    func stopTimer() {
        phase = nil
        timer?.cancel()
        timer = nil
    }

    /// Starts the clock for the next part of a request (`header`: the next head; `body`: the
    /// rest of this request); nil `phase` stops it (a request is being answered).
    func arm(context: ChannelHandlerContext, phase: String?) {
        self.phase = phase
        guard phase != nil else { return }
        phaseSince = .now()
        if timer == nil { schedule(context: context, at: phaseSince + .milliseconds(shortestTimeoutMs)) }
    }

    func timeoutMs(_ phase: String) -> Int64 {
        let limits = api.engine.config.limits
        return Int64(phase == "header" ? limits.httpHeaderTimeoutMs : limits.httpBodyTimeoutMs)
    }

    var shortestTimeoutMs: Int64 { min(timeoutMs("header"), timeoutMs("body")) }

    func schedule(context: ChannelHandlerContext, at when: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: when) {
            let (handler, context) = bound.value
            handler.timerFired(context: context)
        }
    }

    func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard let phase else { return }   // answering: the next phase sets the timer again
        let ms = timeoutMs(phase)
        let due = phaseSince + .milliseconds(ms)
        let now = NIODeadline.now()
        guard now >= due else {
            schedule(context: context, at: min(due, now + .milliseconds(shortestTimeoutMs)))
            return
        }
        self.phase = nil
        api.engine.metrics.timedOut(phase)
        api.engine.logger.warning("closed an HTTP connection from \(context.channel.remoteAddress?.ipAddress ?? "?"): the request \(phase) was not in within \(ms) ms")
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            arm(context: context, phase: "body")
            let limit = api.engine.config.limits.bodyBytesMax
            if let len = head.headers.first(name: "Content-Length").flatMap({ Int($0) }), len > limit {
                refuseBody(context: context, head: head)
                return
            }
            state = .receiving(head, nil, .now)
        case .body(var chunk):
            switch state {
            case .receiving(let head, var body, let started):
                let limit = api.engine.config.limits.bodyBytesMax
                if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                    refuseBody(context: context, head: head)
                    return
                }
                if body == nil {
                    body = chunk
                } else {
                    body!.writeBuffer(&chunk)
                }
                state = .receiving(head, body, started)
            default:
                break
            }
        case .end:
            arm(context: context, phase: nil)
            switch state {
            case .receiving(let head, let body, let started):
                state = .idle
                dispatch(context: context, head: head, body: body, started: started)
            case .discarding:
                state = .idle
            case .idle:
                break
            }
        }
    }

    func refuseBody(context: ChannelHandlerContext, head: HTTPRequestHead) {
        state = .discarding
        let limit = api.engine.config.limits.bodyBytesMax
        api.engine.metrics.rejected(.http, reason: "body_too_large")
        write(context: context, head: head, response: .error(.bodyTooLarge(limit)), keepAlive: false, started: .now)
    }

    func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer?, started: ContinuousClock.Instant) {
        if remoteIP == nil { remoteIP = .some(context.channel.remoteAddress?.ipAddress) }
        let remote = remoteIP ?? nil
        var req = APIRequest(method: head.method, uri: head.uri, headers: head.headers, body: body, remoteIP: remote)
        req.listener = listener
        inFlight.add(1)
        let future = api.handle(req, on: context.eventLoop)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        future.whenComplete { result in
            let (handler, context) = bound.value
            handler.inFlight.add(-1)
            let response: APIResponse
            switch result {
            case .success(let r): response = r
            case .failure(let e): response = .error(IngestError(status: 500, code: "internal", message: "\(e)"))
            }
            handler.write(context: context, head: head, response: response, keepAlive: head.isKeepAlive, started: started)
        }
    }

    func write(context: ChannelHandlerContext, head: HTTPRequestHead, response: APIResponse, keepAlive: Bool, started: ContinuousClock.Instant) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(4 + response.extraHeaders.count)
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        for (n, v) in response.extraHeaders { headers.add(name: n, value: v) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let out = HTTPResponseHead(version: head.version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(out)), promise: nil)
        if head.method != .HEAD && !response.body.isEmpty {
            var buf = context.channel.allocator.buffer(capacity: response.body.count)
            buf.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        }
        api.engine.metrics.requestSeconds.record(ContinuousClock.now - started)
        api.engine.metrics.responded(Int(response.status.code))
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            arm(context: context, phase: "header")
        } else {
            let channel = context.channel
            context.writeAndFlushPromise(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        api.engine.metrics.httpErrors.increment()
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // A client that sends nothing for the idle timeout (slow or stuck) is disconnected.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension ChannelHandlerContext {
    func writeAndFlushPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let p = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: p)
        return p.futureResult
    }
}
