import Histogram

/// What the connections of one event loop saw. Each loop keeps its own (no locks on the hot
/// path); the runner merges them at the end. Only measured requests (not warm-up) count in
/// the main fields. Latency is recorded in microseconds in an HDR histogram.
public struct LoadStats: Sendable {
    /// Latencies above this (one hour) are recorded as this.
    public static let latencyMicrosMax: UInt64 = 3_600_000_000

    public var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: LoadStats.latencyMicrosMax,
                                           numberOfSignificantValueDigits: .three)
    /// Measured requests written (datagrams sent, frames sent).
    public var sent = 0
    public var sentEvents = 0
    public var sentBytes = 0
    /// Measured requests the open-loop schedule held (sent or not).
    public var scheduled = 0
    /// Measured answers of any kind.
    public var answered = 0
    /// Measured 2xx answers and the events they acknowledged.
    public var ok = 0
    public var okEvents = 0
    /// Measured failures by kind: `HTTP 503 overloaded`, `peer 400 invalid_event`,
    /// `connection closed`, `unanswered at end`, `connect failed`, ...
    public var errors: [String: Int] = [:]
    /// Open loop: requests sent more than `lateThresholdNanos` after they were due, and the worst lag.
    public var late = 0
    public var maxLagNanos: UInt64 = 0
    /// Warm-up traffic (not in the fields above).
    public var warmupSent = 0
    public var warmupAnswered = 0
    public var warmupOKEvents = 0
    public var warmupErrors = 0
    /// Latest measured send or answer (monotonic ns), to compute the measured time.
    public var lastActivity: UInt64 = 0

    /// A send this much later than its due time counts as late.
    public static let lateThresholdNanos: UInt64 = 1_000_000

    public init() {}

    public var errorCount: Int { errors.values.reduce(0, +) }

    public mutating func recordLatency(nanos: UInt64) {
        let micros = min(max(1, nanos / 1_000), Self.latencyMicrosMax)
        _ = latency.record(micros)
    }

    public mutating func recordLag(nanos: UInt64) {
        if nanos > Self.lateThresholdNanos { late += 1 }
        if nanos > maxLagNanos { maxLagNanos = nanos }
    }

    public mutating func error(_ kind: String, count: Int = 1) {
        errors[kind, default: 0] += count
    }

    public mutating func merge(_ o: LoadStats) {
        latency.add(o.latency)
        sent += o.sent
        sentEvents += o.sentEvents
        sentBytes += o.sentBytes
        scheduled += o.scheduled
        answered += o.answered
        ok += o.ok
        okEvents += o.okEvents
        for (k, v) in o.errors { errors[k, default: 0] += v }
        late += o.late
        maxLagNanos = max(maxLagNanos, o.maxLagNanos)
        warmupSent += o.warmupSent
        warmupAnswered += o.warmupAnswered
        warmupOKEvents += o.warmupOKEvents
        warmupErrors += o.warmupErrors
        lastActivity = max(lastActivity, o.lastActivity)
    }

    /// The counters the progress line needs (cheap to copy; no histogram).
    public var progress: Progress {
        Progress(sent: sent + warmupSent, answered: answered + warmupAnswered, okEvents: okEvents + warmupOKEvents,
                 errors: errorCount + warmupErrors, inFlight: 0)
    }

    public struct Progress: Sendable, Equatable {
        public var sent: Int
        public var answered: Int
        public var okEvents: Int
        public var errors: Int
        public var inFlight: Int

        public init(sent: Int = 0, answered: Int = 0, okEvents: Int = 0, errors: Int = 0, inFlight: Int = 0) {
            self.sent = sent
            self.answered = answered
            self.okEvents = okEvents
            self.errors = errors
            self.inFlight = inFlight
        }

        public static func + (a: Progress, b: Progress) -> Progress {
            Progress(sent: a.sent + b.sent, answered: a.answered + b.answered, okEvents: a.okEvents + b.okEvents,
                     errors: a.errors + b.errors, inFlight: a.inFlight + b.inFlight)
        }
    }
}
