import NIOCore
import NIOPosix

/// Monotonic nanoseconds (the clock every schedule and latency uses).
@inline(__always)
func monotonicNanos() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

/// The run's three instants (monotonic ns).
struct RunTimes: Sendable {
    var start: UInt64
    var measureStart: UInt64
    var end: UInt64
}

/// What the connections of one event loop share: their stats and requests in flight.
final class LoopShared {
    var stats = LoadStats()
    var inFlight = 0
}

/// One load connection (TCP, or a connected UDP socket): pacing, requests in flight,
/// reconnection. Confined to its event loop; the protocol lives in `D`.
///
/// Open loop: request k is due at `RateSchedule.intended(k)`; a timer fires at the next due
/// time and everything due is sent (up to `pipeline` in flight; the rest waits and its latency
/// keeps counting from the due time). Closed loop: `pipeline` requests in flight, the next sent
/// when an answer arrives. Stops by itself: at the end time, at its quota, or when the runner
/// aborts it at the hard deadline.
final class LoadConnection<D: LoadDialect>: NIOScheduledCallbackHandler {
    let index: Int
    let config: BenchConfig
    let loop: EventLoop
    let shared: LoopShared
    let signal: RunSignal
    var dialect: D
    let eventsPerRequest: Int

    var context: ChannelHandlerContext?
    var channel: Channel?
    var connecting = false
    var ready = false
    var readyPromise: EventLoopPromise<Void>?
    var cumulation: ByteBuffer?
    /// The server said it will close this connection: send nothing more on it.
    var closing = false
    /// The server refused our handshake: do not reconnect.
    var refused = false

    var times: RunTimes?
    var schedule: RateSchedule?
    /// Closed loop: measured requests left to send (nil: bounded by time only).
    var quota: Int?
    var seq = 0
    var pending = PendingQueue()
    var timer: NIOScheduledCallback?
    var sendingDone = false
    var finished = false

    static var reconnectDelay: TimeAmount { .milliseconds(100) }
    /// Open loop: a request due before the end whose timer fired a little after it still goes out.
    static var endGraceNanos: UInt64 { 100_000_000 }
    /// Open-loop UDP sends what is due at most this often (below the 1 ms "late" threshold).
    static var datagramTickNanos: UInt64 { 500_000 }
    /// Datagrams written per turn of the loop in closed-loop UDP, before letting I/O run.
    static var udpBurst: Int { 64 }

    init(index: Int, config: BenchConfig, loop: EventLoop, shared: LoopShared, signal: RunSignal, dialect: D) {
        self.index = index
        self.config = config
        self.loop = loop
        self.shared = shared
        self.signal = signal
        self.dialect = dialect
        eventsPerRequest = config.eventsPerRequest
    }

    var stats: LoadStats {
        get { shared.stats }
        _modify { yield &shared.stats }
    }

    // MARK: Connecting

    /// Connects (and for the peer protocol says hello); succeeds once load can be sent.
    func open() -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        readyPromise = promise
        connecting = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        let initializer: @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(LoadHandler<D>(connection: bound.value))
            }
        }
        let timeout = TimeAmount.nanoseconds(Int64(config.connectTimeout * 1e9))
        let connected: EventLoopFuture<Channel>
        if D.isAnswered {
            connected = ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer(initializer)
                .connect(host: config.host, port: config.port)
        } else {
            connected = DatagramBootstrap(group: loop)
                .channelInitializer(initializer)
                .connect(host: config.host, port: config.port)
        }
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.channel = channel
                self.proceedIfConnected()
            case .failure(let error):
                self.connecting = false
                self.failOpen(ConnectError(description: "connect failed: \(Self.short(error))"))
            }
        }
        // A handshake that never completes must not hang the run.
        loop.assumeIsolated().scheduleTask(in: timeout + .milliseconds(500)) {
            guard let p = self.readyPromise, p.futureResult === promise.futureResult else { return }
            self.failOpen(ConnectError(description: "no handshake answer within \(self.config.connectTimeout) s"))
            self.channel?.close(promise: nil)
        }
        return promise.futureResult
    }

    struct ConnectError: Error, CustomStringConvertible {
        var description: String
    }

    func failOpen(_ error: ConnectError) {
        if let p = readyPromise {
            readyPromise = nil
            p.fail(error)
        }
        if times != nil {
            count(error: error.description)
            scheduleReconnect()
        }
    }

    static func short(_ error: Error) -> String {
        if let e = error as? NIOConnectionError, let first = e.connectionErrors.first { return short(first.error) }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        let s = "\(error)"
        return s.count > 80 ? String(s.prefix(80)) : s
    }

    func active(_ context: ChannelHandlerContext) {
        self.context = context
        proceedIfConnected()
    }

    /// Once both the connect future succeeded and the channel is active (either may come
    /// first): say hello, or start.
    func proceedIfConnected() {
        guard connecting, channel != nil, let context else { return }
        connecting = false
        if D.needsHandshake {
            var buf = context.channel.allocator.buffer(capacity: 256)
            dialect.writeHandshake(into: &buf)
            context.writeAndFlush(NIOAny(buf), promise: nil)
        } else {
            becomeReady()
        }
    }

    func becomeReady() {
        ready = true
        if let p = readyPromise {
            readyPromise = nil
            p.succeed(())
        }
        pump()
    }

    func inactive() {
        context = nil
        channel = nil
        connecting = false
        ready = false
        closing = false
        cumulation = nil
        lost(kind: "connection closed")
        if readyPromise != nil { failOpen(ConnectError(description: "connection closed during the handshake")) }
        cancelTimer()
        guard times != nil, !finished else { return }
        if sendingDone || refused {
            sendingDone = true
            maybeFinish()
        } else if readyPromise == nil {
            scheduleReconnect()
        }
    }

    /// Requests in flight on a lost connection count as errors of `kind`.
    func lost(kind: String) {
        let left = pending.drain()
        shared.inFlight -= left.count
        for e in left {
            if e.measured { stats.error(kind) } else { stats.warmupErrors += 1 }
        }
    }

    var reconnectPending = false

    func scheduleReconnect() {
        guard let times, !finished, !refused, !reconnectPending, !connecting, channel == nil else { return }
        let now = monotonicNanos()
        if now + UInt64(Self.reconnectDelay.nanoseconds) >= times.end {
            sendingDone = true
            maybeFinish()
            return
        }
        reconnectPending = true
        loop.assumeIsolated().scheduleTask(in: Self.reconnectDelay) {
            self.reconnectPending = false
            guard !self.finished, self.channel == nil, !self.connecting else { return }
            _ = self.open()
        }
    }

    // MARK: Running

    /// Starts the load at `times` (all connections share them).
    func start(_ times: RunTimes) {
        self.times = times
        if config.isOpenLoop {
            let s = RateSchedule(start: times.start, rate: config.rate, connection: index, connections: config.connections,
                                 measureStart: times.measureStart, end: times.end, quota: config.quota(connection: index))
            schedule = s
            stats.scheduled += s.limit - s.firstMeasured
        } else {
            quota = config.quota(connection: index)
        }
        if ready {
            // Everyone starts at `times.start` (open loop: the first due time).
            if let s = schedule, s.limit > 0 { arm(at: s.intended(0)) } else if schedule == nil { arm(at: times.start) } else { pump() }
        } else if channel == nil && !connecting && readyPromise == nil {
            scheduleReconnect()
        }
    }

    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        pump()
    }

    func arm(at t: UInt64) {
        guard timer == nil else { return }
        timer = try? loop.assumeIsolated().scheduleCallback(at: .uptimeNanoseconds(t), handler: self)
    }

    func cancelTimer() {
        if let t = timer {
            timer = nil
            loop.assumeIsolated().cancelScheduledCallback(t)
        }
    }

    func closedLoopCanSend(_ now: UInt64, _ times: RunTimes) -> Bool {
        now < times.end && (quota ?? 1) > 0
    }

    /// Sends whatever the mode allows now.
    func pump() {
        guard let times, !finished else { return }
        guard !sendingDone else { return maybeFinish() }
        guard ready, let context, !closing else { return }
        let now = monotonicNanos()
        var wrote = 0
        let pipeline = config.pipeline
        if let s = schedule {
            if now >= times.end + Self.endGraceNanos {
                // The window is over: requests still waiting for a free slot are never sent
                // (reported as such); answers in flight may still come back.
                sendingDone = true
                return maybeFinish()
            }
            let due = s.dueCount(at: now)
            while seq < due && (D.isAnswered ? pending.count < pipeline : context.channel.isWritable) {
                let intended = s.intended(seq)
                let measured = s.isMeasured(seq)
                if measured { stats.recordLag(nanos: now &- intended) }
                send(context, start: intended, now: now, measured: measured)
                wrote += 1
            }
            if seq >= s.limit {
                sendingDone = true
            } else if seq >= due {
                // Datagrams get no answer to time, so they leave in small bursts (one timer
                // and one sendmmsg per tick instead of one per datagram); HTTP and peer
                // requests leave at their due time.
                let next = s.intended(seq)
                arm(at: D.isAnswered ? next : max(next, now + Self.datagramTickNanos))
            }
            // Otherwise the pipeline is full (an answer pumps again) or the socket is (writability pumps).
        } else if now < times.start {
            arm(at: times.start)
        } else if D.isAnswered {
            while pending.count < pipeline {
                guard closedLoopCanSend(now, times) else {
                    sendingDone = true
                    break
                }
                send(context, start: now, now: now, measured: now >= times.measureStart)
                wrote += 1
            }
        } else {
            while wrote < Self.udpBurst && context.channel.isWritable {
                guard closedLoopCanSend(now, times) else {
                    sendingDone = true
                    break
                }
                send(context, start: now, now: now, measured: now >= times.measureStart)
                wrote += 1
            }
            if !sendingDone && context.channel.isWritable {
                loop.assumeIsolated().execute { self.pump() }
            }
        }
        if wrote > 0 { context.flush() }
        maybeFinish()
    }

    @inline(__always)
    func send(_ context: ChannelHandlerContext, start: UInt64, now: UInt64, measured: Bool) {
        let k = seq
        seq += 1
        var buf = context.channel.allocator.buffer(capacity: dialect.requestBytes)
        let first = Workload.firstEvent(connection: index, connections: config.connections, seq: k, eventsPerRequest: eventsPerRequest)
        dialect.writeRequest(firstEvent: first, requestID: UInt64(k) + 1, into: &buf)
        let bytes = buf.readableBytes
        context.write(NIOAny(buf), promise: nil)
        if D.isAnswered {
            pending.append(id: UInt64(k) + 1, start: start, measured: measured)
            shared.inFlight += 1
        }
        if measured {
            stats.sent += 1
            stats.sentEvents += eventsPerRequest
            stats.sentBytes += bytes
            stats.lastActivity = now
            if let q = quota { quota = q - 1 }
        } else {
            stats.warmupSent += 1
        }
    }

    func read(_ incoming: ByteBuffer) {
        var buf: ByteBuffer
        if var c = cumulation {
            cumulation = nil
            c.writeImmutableBuffer(incoming)
            buf = c
        } else {
            buf = incoming
        }
        let now = monotonicNanos()
        do {
            while let answer = try dialect.next(&buf) {
                handle(answer, now: now)
                if context == nil { return }
            }
        } catch {
            count(error: "protocol error: \(error)")
            context?.close(promise: nil)
            return
        }
        if buf.readableBytes > 0 {
            buf.discardReadBytes()
            cumulation = buf
        }
        pump()
    }

    func handle(_ answer: DialectAnswer, now: UInt64) {
        switch answer {
        case .ready:
            becomeReady()
        case .refused(let reason):
            refused = true
            failOpen(ConnectError(description: "the node refused the handshake: \(reason)"))
            context?.close(promise: nil)
        case .response(let id, let ok, let error, let closes):
            guard let e = pending.complete(id: id) else {
                count(error: "protocol error: an answer to no request in flight")
                context?.close(promise: nil)
                return
            }
            shared.inFlight -= 1
            if e.measured {
                stats.answered += 1
                stats.recordLatency(nanos: now > e.start ? now - e.start : 0)
                stats.lastActivity = now
                if ok {
                    stats.ok += 1
                    stats.okEvents += eventsPerRequest
                } else {
                    stats.error(error ?? "error")
                }
            } else {
                stats.warmupAnswered += 1
                if ok { stats.warmupOKEvents += eventsPerRequest } else { stats.warmupErrors += 1 }
            }
            if closes { closing = true }
        }
    }

    /// An error not tied to a request: measured once the measurement started.
    func count(error kind: String) {
        if let times, monotonicNanos() >= times.measureStart {
            stats.error(kind)
        } else {
            stats.warmupErrors += 1
        }
    }

    func maybeFinish() {
        guard sendingDone, pending.isEmpty, !finished else { return }
        finished = true
        cancelTimer()
        context?.close(promise: nil)
        signal.connectionFinished()
    }

    /// The user stopped the run: send nothing more (requests not yet due leave the schedule),
    /// let what is in flight come back.
    func stopSending() {
        guard times != nil, !finished, !sendingDone else { return }
        if let s = schedule {
            let due = max(s.dueCount(at: monotonicNanos()), s.firstMeasured)
            if s.limit > due { stats.scheduled -= s.limit - due }
        }
        sendingDone = true
        cancelTimer()
        maybeFinish()
    }

    /// The hard deadline passed: what is in flight is unanswered.
    func abort() {
        guard !finished else { return }
        lost(kind: "unanswered at end")
        sendingDone = true
        maybeFinish()
    }
}

/// The channel side of a `LoadConnection`: forwards events to it.
final class LoadHandler<D: LoadDialect>: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let connection: LoadConnection<D>

    init(connection: LoadConnection<D>) {
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        connection.active(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.inactive()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A connected UDP socket reads envelopes; the node never answers datagrams, so ignore them.
        guard D.isAnswered else { return }
        connection.read(unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { connection.pump() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if D.isAnswered {
            connection.count(error: "connection error: \(LoadConnection<D>.short(error))")
            context.close(promise: nil)
        } else {
            // ICMP errors on a connected UDP socket (e.g. port unreachable): count, keep sending.
            connection.count(error: "udp: \(LoadConnection<D>.short(error))")
        }
    }
}
