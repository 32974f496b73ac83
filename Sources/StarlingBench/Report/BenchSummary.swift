import Foundation
import Histogram

/// The result of a run, ready to print or to write as JSON (`--json FILE`). Built from the
/// merged `LoadStats`, the settings and the measured time; reads no clock.
public struct BenchSummary: Codable, Sendable, Equatable {
    public struct Latency: Codable, Sendable, Equatable {
        public var count: UInt64
        public var p50: UInt64
        public var p90: UInt64
        public var p99: UInt64
        public var p999: UInt64
        public var max: UInt64
        public var mean: Double
    }

    public struct OpenLoop: Codable, Sendable, Equatable {
        /// Requests per second asked for and actually sent.
        public var targetRate: Double
        public var achievedRate: Double
        /// Measured requests the schedule held but that were never sent (connection lost, run cut short).
        public var missed: Int
        /// Requests sent more than 1 ms after they were due (the generator or the connection fell behind).
        public var late: Int
        public var maxLagMicros: UInt64
    }

    public struct Verification: Codable, Sendable, Equatable {
        /// `starling_events_ingested_total{transport}` growth on the nodes asked.
        public var stored: Int
        /// Events acknowledged (udp: sent), warm-up included, since the nodes count those too.
        public var expected: Int
        public var nodes: [String]
        public var transport: String

        public init(stored: Int, expected: Int, nodes: [String], transport: String) {
            self.stored = stored
            self.expected = expected
            self.nodes = nodes
            self.transport = transport
        }
    }

    public var mode: String
    public var target: String
    /// "closed" or "open".
    public var loop: String
    public var connections: Int
    public var pipeline: Int
    public var threads: Int
    public var eventsPerRequest: Int
    public var eventBytes: Int
    public var sessions: Int
    public var warmupSeconds: Double
    public var warmupRequests: Int
    /// From the measurement start to the last measured send or answer.
    public var seconds: Double
    public var requestsSent: Int
    public var requestsAnswered: Int
    public var requestsOK: Int
    public var eventsSent: Int
    /// Events in requests answered 2xx.
    public var eventsAcked: Int
    public var bytesSent: Int
    public var errors: [String: Int]
    public var errorCount: Int
    /// 2xx requests and acknowledged events per second (for udp: sent per second).
    public var requestsPerSecond: Double
    public var eventsPerSecond: Double
    /// Microseconds; nil for udp (no answers).
    public var latencyMicros: Latency?
    public var openLoop: OpenLoop?
    public var verification: Verification?
    /// The command line, when the CLI ran it.
    public var command: String?

    public init(config c: BenchConfig, stats s: LoadStats, seconds: Double) {
        mode = c.mode.rawValue
        target = "\(c.host):\(c.port)"
        loop = c.isOpenLoop ? "open" : "closed"
        connections = c.connections
        pipeline = c.pipeline
        threads = c.threads
        eventsPerRequest = c.eventsPerRequest
        eventBytes = c.eventBytes
        sessions = c.sessions
        warmupSeconds = c.warmup
        warmupRequests = s.warmupSent
        self.seconds = seconds
        requestsSent = s.sent
        requestsAnswered = s.answered
        requestsOK = s.ok
        eventsSent = s.sentEvents
        eventsAcked = s.okEvents
        bytesSent = s.sentBytes
        errors = s.errors
        errorCount = s.errorCount
        let per = seconds > 0 ? 1 / seconds : 0
        if c.mode.isAnswered {
            requestsPerSecond = Double(s.ok) * per
            eventsPerSecond = Double(s.okEvents) * per
            let h = s.latency
            latencyMicros = h.totalCount == 0 ? nil : Latency(
                count: h.totalCount, p50: h.valueAtPercentile(50), p90: h.valueAtPercentile(90), p99: h.valueAtPercentile(99),
                p999: h.valueAtPercentile(99.9), max: h.maxRecorded, mean: (h.mean * 10).rounded() / 10)
        } else {
            requestsPerSecond = Double(s.sent) * per
            eventsPerSecond = Double(s.sentEvents) * per
            latencyMicros = nil
        }
        // Sends stop at the end of the window; answers may come later.
        let window = min(seconds, c.timeLimit)
        openLoop = c.isOpenLoop ? OpenLoop(targetRate: c.rate, achievedRate: window > 0 ? Double(s.sent) / window : 0,
                                           missed: max(0, s.scheduled - s.sent), late: s.late,
                                           maxLagMicros: s.maxLagNanos / 1_000) : nil
        verification = nil
        command = nil
    }

    /// The JSON report (stable key order).
    public func json() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? e.encode(self)) ?? Data("{}".utf8)
    }

    /// The human-readable summary.
    public func text() -> String {
        var out: [String] = []
        let perRequest = eventsPerRequest > 1 ? " (\(eventsPerRequest) events per request)" : ""
        out.append("starling bench: \(mode) → \(target), \(loop) loop, \(connections) connection(s), pipeline \(pipeline), \(threads) thread(s)\(perRequest)")
        if warmupSeconds > 0 { out.append("  warm-up       \(Self.fmt(warmupSeconds)) s, \(Self.group(warmupRequests)) requests (not counted)") }
        out.append("  measured      \(Self.fmt(seconds)) s")
        if mode == BenchMode.udp.rawValue {
            out.append("  sent          \(Self.group(requestsSent)) datagrams, \(Self.group(bytesSent)) bytes")
        } else {
            out.append("  requests      \(Self.group(requestsSent)) sent, \(Self.group(requestsAnswered)) answered, \(Self.group(requestsOK)) ok")
            out.append("  events        \(Self.group(eventsSent)) sent, \(Self.group(eventsAcked)) acknowledged")
        }
        let unit = mode == BenchMode.udp.rawValue ? "sent" : "ok"
        out.append("  throughput    \(Self.group(Int(requestsPerSecond.rounded()))) req/s \(unit), \(Self.group(Int(eventsPerSecond.rounded()))) events/s")
        if let l = latencyMicros {
            out.append("  latency       p50 \(Self.micros(l.p50))  p90 \(Self.micros(l.p90))  p99 \(Self.micros(l.p99))  p99.9 \(Self.micros(l.p999))  max \(Self.micros(l.max))  (mean \(Self.micros(UInt64(l.mean))), \(Self.group(Int(l.count))) answers\(loop == "open" ? ", from the time each request was due" : ""))")
        }
        if let o = openLoop {
            let pct = requestsSent > 0 ? Double(o.late) * 100 / Double(requestsSent) : 0
            out.append("  rate          target \(Self.group(Int(o.targetRate.rounded())))/s, achieved \(Self.group(Int(o.achievedRate.rounded())))/s; late sends \(Self.group(o.late)) (\(Self.fmt(pct))%, max lag \(Self.micros(o.maxLagMicros))); never sent \(Self.group(o.missed))")
            if o.missed > 0 {
                out.append("  warning       \(Self.group(o.missed)) requests due in the window were never sent: the target rate is more than the server (or the generator) sustained; the percentiles leave them out")
            }
        }
        if errors.isEmpty {
            out.append("  errors        none")
        } else {
            out.append("  errors        \(Self.group(errorCount))")
            for (k, v) in errors.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                out.append("    \(Self.group(v).leftPadded(10))  \(k)")
            }
        }
        if let v = verification {
            let of = v.expected
            let lost = of - v.stored
            out.append("  stored        \(Self.group(v.stored)) of \(Self.group(of)) \(mode == BenchMode.udp.rawValue ? "sent" : "acknowledged")\(warmupRequests > 0 ? " incl. warm-up" : "") (transport \(v.transport), \(v.nodes.joined(separator: ", ")))"
                + (lost > 0 ? "; \(Self.group(lost)) missing (\(Self.fmt(Double(lost) * 100 / Double(max(of, 1))))%)" : ""))
        }
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: Formatting

    /// 1234567 → "1,234,567".
    public static func group(_ n: Int) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, ch) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// One decimal below 100, none above.
    public static func fmt(_ x: Double) -> String {
        if x >= 100 { return String(Int(x.rounded())) }
        let tenths = Int((x * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// 812 → "812 µs", 12345 → "12.3 ms", 2_100_000 → "2.10 s".
    public static func micros(_ us: UInt64) -> String {
        if us < 1_000 { return "\(us) µs" }
        if us < 1_000_000 {
            let ms = Double(us) / 1_000
            return ms < 10 ? String(format: "%.2f ms", ms) : (ms < 100 ? String(format: "%.1f ms", ms) : "\(Int(ms.rounded())) ms")
        }
        return String(format: "%.2f s", Double(us) / 1_000_000)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
