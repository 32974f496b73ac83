/// A token-bucket rate: `ratePerSecond` tokens are added per second, up to `burst`.
public struct RateLimit: Sendable, Equatable {
    public var ratePerSecond: Double
    public var burst: Double

    public init(ratePerSecond: Double, burst: Double) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
    }

    /// "100" (burst = rate) or "100:200" (rate 100/s, burst 200). Decimals allowed ("0.5:10").
    /// Surrounding spaces are ignored. Rejects values <= 0 and anything that is not a plain
    /// decimal number (no signs, exponents, "inf" or "nan").
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let rate = RateLimit.positive(parts[0])
        else { return nil }
        var burst = rate
        if parts.count == 2 {
            guard let b = RateLimit.positive(parts[1]) else { return nil }
            burst = b
        }
        self.init(ratePerSecond: rate, burst: burst)
    }

    private static func positive(_ raw: Substring) -> Double? {
        let text = raw.trimmingSpaces
        var dots = 0
        var digits = 0
        for c in text.utf8 {
            if c == UInt8(ascii: ".") {
                dots += 1
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                digits += 1
            } else {
                return nil
            }
        }
        guard digits > 0, dots <= 1, text.utf8.count <= 32,
              let v = Double(text), v.isFinite, v > 0
        else { return nil }
        return v
    }
}

private extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}

/// A per-client token-bucket rate limiter. Time is passed in (`nowMs`, epoch milliseconds);
/// it never reads a clock. Not thread-safe by itself (a value type): keep it behind an actor or lock.
///
/// Memory is bounded:
/// - at most `maxClients` buckets. A bucket that has refilled to full is dropped first (recreating it
///   later gives the same answer). When that is not enough, the least recently used buckets are
///   dropped (down to 90% of the bound, so the cost is amortised); this may briefly favour those clients.
/// - at most `maxBlockedEntries` entries in the blocked report; when full, the entries with the
///   smallest refusal counts are dropped (down to 90% of the bound).
///
/// A burst below 1 is treated as 1 (otherwise no request could ever pass). A rate that is not a
/// positive finite number never refills; Retry-After is then capped at `maxRetryAfterSeconds`.
public struct RateLimiter: Sendable {
    public let limit: RateLimit
    public let maxClients: Int
    public let maxBlockedEntries: Int
    /// The largest Retry-After value returned, in seconds.
    public static let maxRetryAfterSeconds = 86_400

    private struct Bucket: Sendable {
        var tokens: Double
        var updatedMs: Int64
    }

    private struct Blocked: Sendable {
        var count: Int
        var firstMs: Int64
        var lastMs: Int64
    }

    private let capacity: Double
    private let refillPerMs: Double
    private var buckets: [String: Bucket] = [:]
    private var blocked: [String: Blocked] = [:]

    public init(limit: RateLimit, maxClients: Int = 100_000, maxBlockedEntries: Int = 10_000) {
        self.limit = limit
        self.maxClients = max(1, maxClients)
        self.maxBlockedEntries = max(1, maxBlockedEntries)
        let burst = limit.burst
        self.capacity = burst.isFinite ? max(1, burst) : (burst > 0 ? .greatestFiniteMagnitude : 1)
        let rate = limit.ratePerSecond
        self.refillPerMs = rate > 0 ? (rate.isFinite ? rate / 1000 : .infinity) : 0
    }

    /// How many clients currently have a bucket.
    public var trackedClients: Int { buckets.count }

    /// Takes one token for `client` at time `nowMs` (epoch ms). Returns nil when allowed, or the number of
    /// whole seconds (>= 1) the client should wait (for Retry-After) when refused.
    public mutating func take(client: String, nowMs: Int64) -> Int? {
        var bucket: Bucket
        if let existing = buckets[client] {
            bucket = existing
            bucket.tokens = refilled(bucket, at: nowMs)
            bucket.updatedMs = max(bucket.updatedMs, nowMs)
        } else {
            if buckets.count >= maxClients { evictBuckets(nowMs: nowMs) }
            bucket = Bucket(tokens: capacity, updatedMs: nowMs)
        }

        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            buckets[client] = bucket
            return nil
        }
        buckets[client] = bucket
        recordRefusal(client: client, nowMs: nowMs)

        let missing = 1 - bucket.tokens
        let waitSeconds = refillPerMs > 0 ? missing / refillPerMs / 1000 : .infinity
        let limitSeconds = Double(RateLimiter.maxRetryAfterSeconds)
        guard waitSeconds.isFinite, waitSeconds < limitSeconds else { return RateLimiter.maxRetryAfterSeconds }
        return max(1, Int(waitSeconds.rounded(.up)))
    }

    /// Clients refused at least once: count of refusals, first and last refusal time. Sorted by count
    /// descending (then by client, for a stable order).
    public func blockedReport() -> [(client: String, count: Int, firstBlockedAt: Int64, lastBlockedAt: Int64)] {
        blocked
            .map { (client: $0.key, count: $0.value.count, firstBlockedAt: $0.value.firstMs, lastBlockedAt: $0.value.lastMs) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.client < $1.client }
    }

    // MARK: Internals

    /// Tokens in `bucket` at `nowMs`, capped at capacity. Time going backwards adds nothing.
    private func refilled(_ bucket: Bucket, at nowMs: Int64) -> Double {
        let (elapsed, overflow) = nowMs.subtractingReportingOverflow(bucket.updatedMs)
        if overflow { return nowMs > bucket.updatedMs ? capacity : bucket.tokens }
        guard elapsed > 0 else { return bucket.tokens }
        if refillPerMs == 0 { return bucket.tokens }
        let added = Double(elapsed) * refillPerMs
        return added.isNaN ? bucket.tokens : min(capacity, bucket.tokens + added)
    }

    private mutating func evictBuckets(nowMs: Int64) {
        // Full buckets carry no state: a new bucket starts full too.
        let full = buckets.filter { refilled($0.value, at: nowMs) >= capacity }
        for key in full.keys { buckets.removeValue(forKey: key) }
        let target = maxClients - maxClients / 10 - 1
        guard buckets.count > target else {
            return
        }
        // Still too many: drop the least recently used down to 90% of the bound.
        let excess = buckets.count - max(0, target)
        let oldest = buckets.sorted { $0.value.updatedMs < $1.value.updatedMs }.prefix(excess)
        for (key, _) in oldest { buckets.removeValue(forKey: key) }
    }

    private mutating func recordRefusal(client: String, nowMs: Int64) {
        if var entry = blocked[client] {
            entry.count += 1
            entry.lastMs = nowMs
            blocked[client] = entry
            return
        }
        if blocked.count >= maxBlockedEntries {
            let keep = max(0, maxBlockedEntries - max(1, maxBlockedEntries / 10))
            let smallest = blocked.sorted { $0.value.count < $1.value.count }.prefix(blocked.count - keep)
            for (key, _) in smallest { blocked.removeValue(forKey: key) }
        }
        blocked[client] = Blocked(count: 1, firstMs: nowMs, lastMs: nowMs)
    }
}
