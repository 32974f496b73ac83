import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// Counts finished connections and wakes the runner when all are done (or on `stop`).
final class RunSignal: Sendable {
    let total: Int
    let finished = Atomic<Int>(0)
    let wake = DispatchSemaphore(value: 0)

    init(total: Int) {
        self.total = total
    }

    func connectionFinished() {
        if finished.wrappingAdd(1, ordering: .relaxed).newValue == total { wake.signal() }
    }

    var allFinished: Bool { finished.load(ordering: .relaxed) >= total }
}

public enum BenchError: Error, CustomStringConvertible, Sendable {
    case invalid(String)
    case cannotConnect(String)

    public var description: String {
        switch self {
        case .invalid(let s): return s
        case .cannotConnect(let s): return s
        }
    }
}

/// What a run produced.
public struct BenchOutcome: Sendable {
    public var stats: LoadStats
    /// Measured seconds: from the measurement start to the last measured send or answer.
    public var seconds: Double
    /// Connections that could not connect at the start (they kept retrying during the run).
    public var initialConnectFailures: Int
    public var summary: BenchSummary
}

/// Runs a load: connects every connection, starts them together, reports progress once a
/// second, stops at the end (or at the hard deadline: end + drain timeout), merges the
/// per-loop stats. Blocking; call it from a thread that is not an event loop.
public final class BenchRunner: Sendable {
    public let config: BenchConfig
    let signal: RunSignal
    let stopRequested = Atomic<Bool>(false)

    public init(config: BenchConfig) throws {
        if let p = config.problem() { throw BenchError.invalid(p) }
        self.config = config
        signal = RunSignal(total: config.connections)
    }

    /// Ends the run early (Ctrl-C): nothing more is sent, answers in flight are awaited (at
    /// most the drain timeout), and what was measured so far is reported.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
        signal.wake.signal()
    }

    /// A connection of any mode, type-erased for the runner.
    struct Handle: Sendable {
        var loop: EventLoop
        var open: @Sendable () -> EventLoopFuture<Void>
        var start: @Sendable (RunTimes) -> Void
        var abort: @Sendable () -> Void
        var stopSending: @Sendable () -> Void
    }

    static func handle<D: LoadDialect>(index: Int, config: BenchConfig, loop: EventLoop, shared: NIOLoopBound<LoopShared>,
                                       signal: RunSignal, dialect: @escaping @Sendable () -> D) throws -> Handle {
        let box = try loop.submit {
            NIOLoopBound(LoadConnection(index: index, config: config, loop: loop, shared: shared.value, signal: signal, dialect: dialect()),
                         eventLoop: loop)
        }.wait()
        return Handle(loop: loop,
                      open: { loop.flatSubmit { box.value.open() } },
                      start: { times in loop.execute { box.value.start(times) } },
                      abort: { loop.execute { box.value.abort() } },
                      stopSending: { loop.execute { box.value.stopSending() } })
    }

    /// One connection handle per `connections`, spread over the event loops, speaking the mode's dialect.
    func makeHandles(loops: [EventLoop], shared: [NIOLoopBound<LoopShared>]) throws -> [Handle] {
        let c = config
        let template = Workload.template(for: c)
        var handles: [Handle] = []
        for i in 0..<c.connections {
            let li = i % loops.count
            let h: Handle
            // Ring routing: connection i goes to route i mod the routes, and writes only its sessions.
            let route = c.routes.isEmpty ? nil : c.routes[i % c.routes.count]
            var target = c
            if let route {
                target.host = route.host
                target.port = route.port
            }
            switch c.mode {
            case .http, .batch, .pixel:
                h = try Self.handle(index: i, config: target, loop: loops[li], shared: shared[li], signal: signal) {
                    HTTPDialect(template: template, sessions: c.sessions, map: route?.sessions)
                }
            case .udp:
                h = try Self.handle(index: i, config: c, loop: loops[li], shared: shared[li], signal: signal) {
                    UDPDialect(template: template, sessions: c.sessions)
                }
            case .peer:
                h = try Self.handle(index: i, config: c, loop: loops[li], shared: shared[li], signal: signal) {
                    PeerDialect(body: template, sessions: c.sessions, clientID: c.clientID)
                }
            }
            handles.append(h)
        }

        return handles
    }

    public func run(progress: (@Sendable (ProgressLine) -> Void)? = nil) throws -> BenchOutcome {
        let c = config
        let group = MultiThreadedEventLoopGroup(numberOfThreads: c.threads)
        defer { try? group.syncShutdownGracefully() }
        var loops: [EventLoop] = []
        for l in group.makeIterator() { loops.append(l) }
        let shared = try loops.map { loop in try loop.submit { NIOLoopBound(LoopShared(), eventLoop: loop) }.wait() }

        let handles = try makeHandles(loops: loops, shared: shared)

        // Connect everything first, so the load starts together.
        var failures: [String] = []
        for f in handles.map({ $0.open() }) {
            do { try f.wait() } catch { failures.append("\(error)") }
        }
        if failures.count == handles.count {
            for h in handles { h.abort() }
            throw BenchError.cannotConnect("cannot reach \(c.host):\(c.port) (\(c.mode.rawValue)): \(failures[0])")
        }

        let t0 = monotonicNanos() + 2_000_000
        let measureStart = t0 + UInt64(c.warmup * 1e9)
        let end = measureStart + UInt64(c.timeLimit * 1e9)
        let times = RunTimes(start: t0, measureStart: measureStart, end: end)
        for h in handles { h.start(times) }

        // Wait: progress once a second, until every connection finished or the hard deadline.
        let drain = UInt64(c.drainTimeout * 1e9)
        var hardDeadline = end + drain
        var nextTick = t0 + 1_000_000_000
        var last = LoadStats.Progress()
        var lastAt = t0
        var stopping = false
        while !signal.allFinished {
            let now = monotonicNanos()
            if !stopping && stopRequested.load(ordering: .relaxed) {
                stopping = true
                for h in handles { h.stopSending() }
                hardDeadline = min(hardDeadline, now + drain)
            }
            if now >= hardDeadline { break }
            let until = min(nextTick, hardDeadline)
            if until > now { _ = signal.wake.wait(timeout: .now() + .nanoseconds(Int(until - now))) }
            let at = monotonicNanos()
            if at >= nextTick {
                nextTick += 1_000_000_000
                if let progress {
                    var p = LoadStats.Progress()
                    for s in shared {
                        p = p + ((try? s.nonisolated_submit { v in var q = v.stats.progress; q.inFlight = v.inFlight; return q }) ?? .init())
                    }
                    let phase = stopping ? "stopping" : (at < measureStart ? "warm-up" : (at < end ? "measuring" : "draining"))
                    progress(ProgressLine(elapsed: Double(at - t0) / 1e9, phase: phase, previous: last, current: p,
                                          seconds: Double(at - lastAt) / 1e9, answered: c.mode.isAnswered))
                    last = p
                    lastAt = at
                }
            }
        }

        // Stop whatever is left and collect.
        for h in handles { h.abort() }
        var stats = LoadStats()
        for s in shared {
            stats.merge(try s.nonisolated_submit { $0.stats })
        }
        let seconds = stats.lastActivity > measureStart ? Double(stats.lastActivity - measureStart) / 1e9 : 0
        return BenchOutcome(stats: stats, seconds: seconds, initialConnectFailures: failures.count,
                            summary: BenchSummary(config: c, stats: stats, seconds: seconds))
    }
}

extension NIOLoopBound where Value == LoopShared {
    /// Runs `body` on the value's loop and waits (the caller is not on that loop).
    func nonisolated_submit<T: Sendable>(_ body: @escaping @Sendable (LoopShared) -> T) throws -> T {
        let me = self
        return try eventLoop.submit { body(me.value) }.wait()
    }
}

/// One progress line (stderr, once a second).
public struct ProgressLine: Sendable {
    public var elapsed: Double
    public var phase: String
    public var requestsPerSecond: Double
    public var eventsPerSecond: Double
    public var errors: Int
    public var inFlight: Int

    public init(elapsed: Double, phase: String, previous: LoadStats.Progress, current: LoadStats.Progress, seconds: Double, answered: Bool) {
        self.elapsed = elapsed
        self.phase = phase
        let per = seconds > 0 ? 1 / seconds : 0
        requestsPerSecond = Double((answered ? current.answered - previous.answered : current.sent - previous.sent)) * per
        eventsPerSecond = answered ? Double(current.okEvents - previous.okEvents) * per : requestsPerSecond
        errors = current.errors
        inFlight = current.inFlight
    }

    public var text: String {
        let t = "\(Int(elapsed.rounded()))s".leftPadded(5)
        let req = BenchSummary.group(Int(requestsPerSecond.rounded())).leftPadded(10)
        let ev = BenchSummary.group(Int(eventsPerSecond.rounded())).leftPadded(10)
        return "[\(t)] \(phase + String(repeating: " ", count: max(0, 9 - phase.count))) \(req) req/s \(ev) events/s  errors \(BenchSummary.group(errors))  in flight \(inFlight)"
    }
}
