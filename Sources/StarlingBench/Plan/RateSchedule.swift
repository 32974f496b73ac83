/// The open-loop send plan of one connection: request `k` of connection `c` (of `C`) is due at
/// `start + (k·C + c) / rate`. Requests of all connections interleave into one evenly spaced
/// global sequence at `rate` per second, whatever the server does: a request that cannot be
/// sent at its time waits, and its latency counts from the time it was due (no coordinated
/// omission). Times are nanoseconds on any monotonic clock; the schedule reads no clock.
public struct RateSchedule: Sendable, Equatable {
    public let start: UInt64
    public let rate: Double
    public let connection: Int
    public let connections: Int
    /// Requests this connection sends in all (warm-up included): the first `limit` k.
    public let limit: Int
    /// The first k due at or after the measurement start (requests before it are warm-up).
    public let firstMeasured: Int

    /// - Parameters:
    ///   - measureStart: when measuring begins (`start` + warm-up).
    ///   - end: nothing is due at or after this time.
    ///   - quota: measured requests for this connection, if the run is bounded by count.
    public init(start: UInt64, rate: Double, connection: Int, connections: Int, measureStart: UInt64, end: UInt64, quota: Int?) {
        precondition(rate > 0 && connections > 0 && (0..<connections).contains(connection),
                     "bad schedule: rate \(rate), connection \(connection) of \(connections)")
        self.start = start
        self.rate = rate
        self.connection = connection
        self.connections = connections
        // Counts of k strictly before a time: those due at or after measureStart are measured.
        let warm = Self.countBefore(measureStart, start: start, rate: rate, connection: connection, connections: connections)
        let all = Self.countBefore(end, start: start, rate: rate, connection: connection, connections: connections)
        firstMeasured = warm
        limit = quota.map { min(all, warm + $0) } ?? all
    }

    /// When request `k` is due.
    @inlinable
    public func intended(_ k: Int) -> UInt64 {
        Self.time(k, start: start, rate: rate, connection: connection, connections: connections)
    }

    /// How many requests (from k = 0) are due at `now`, capped at `limit`.
    public func dueCount(at now: UInt64) -> Int {
        guard now >= start else { return 0 }
        return min(limit, Self.countBefore(now &+ 1, start: start, rate: rate, connection: connection, connections: connections))
    }

    /// Whether request `k` is measured (not warm-up).
    @inlinable
    public func isMeasured(_ k: Int) -> Bool { k >= firstMeasured }

    @inlinable
    static func time(_ k: Int, start: UInt64, rate: Double, connection: Int, connections: Int) -> UInt64 {
        let global = Double(k) * Double(connections) + Double(connection)
        return start &+ UInt64(global * 1e9 / rate)
    }

    /// Number of k >= 0 with time(k) < t. Computed in floating point, then corrected against
    /// `time` itself so the two never disagree by a rounding step.
    static func countBefore(_ t: UInt64, start: UInt64, rate: Double, connection: Int, connections: Int) -> Int {
        guard t > start else { return 0 }
        let elapsed = Double(t - start) * rate / 1e9
        let estimate = (elapsed - Double(connection)) / Double(connections)
        guard estimate < 9e15 else { return Int.max / 2 }
        var n = max(0, Int(estimate.rounded(.up)))
        while n > 0 && time(n - 1, start: start, rate: rate, connection: connection, connections: connections) >= t { n -= 1 }
        while time(n, start: start, rate: rate, connection: connection, connections: connections) < t { n += 1 }
        return n
    }
}
