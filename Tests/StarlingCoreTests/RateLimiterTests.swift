import Testing
import StarlingCore

@Suite struct RateLimitParsingTests {
    @Test func parses() {
        #expect(RateLimit(parsing: "100") == RateLimit(ratePerSecond: 100, burst: 100))
        #expect(RateLimit(parsing: "100:200") == RateLimit(ratePerSecond: 100, burst: 200))
        #expect(RateLimit(parsing: " 0.5 : 10 ") == RateLimit(ratePerSecond: 0.5, burst: 10))
    }

    @Test func rejects() {
        for s in ["", "0", "-1", "0:10", "10:0", "abc", "10:", ":10", "1:2:3", "inf", "nan", "1e3", "0x10", "1..2", ".", "+5", "10:-5"] {
            #expect(RateLimit(parsing: s) == nil, "\(s)")
        }
    }
}

@Suite struct RateLimiterTests {
    @Test func burstThenRefusal() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 3))
        let t: Int64 = 1_000_000
        #expect(limiter.take(client: "a", nowMs: t) == nil)
        #expect(limiter.take(client: "a", nowMs: t) == nil)
        #expect(limiter.take(client: "a", nowMs: t) == nil)
        #expect(limiter.take(client: "a", nowMs: t) == 1)
        // Another client has its own bucket.
        #expect(limiter.take(client: "b", nowMs: t) == nil)
    }

    @Test func refillOverInjectedTime() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 2, burst: 2))
        var t: Int64 = 0
        #expect(limiter.take(client: "c", nowMs: t) == nil)
        #expect(limiter.take(client: "c", nowMs: t) == nil)
        #expect(limiter.take(client: "c", nowMs: t) != nil)
        t += 499
        #expect(limiter.take(client: "c", nowMs: t) != nil)
        t += 1 // 500 ms at 2/s is one token
        #expect(limiter.take(client: "c", nowMs: t) == nil)
        #expect(limiter.take(client: "c", nowMs: t) != nil)
        // A long pause refills only up to the burst.
        t += 60_000
        #expect(limiter.take(client: "c", nowMs: t) == nil)
        #expect(limiter.take(client: "c", nowMs: t) == nil)
        #expect(limiter.take(client: "c", nowMs: t) != nil)
        // Time going backwards neither refills nor traps.
        #expect(limiter.take(client: "c", nowMs: t - 10_000) != nil)
        #expect(limiter.take(client: "c", nowMs: .min) != nil)
        #expect(limiter.take(client: "c", nowMs: .max) == nil)
    }

    @Test func retryAfterValues() {
        var slow = RateLimiter(limit: RateLimit(ratePerSecond: 0.1, burst: 1))
        #expect(slow.take(client: "x", nowMs: 0) == nil)
        #expect(slow.take(client: "x", nowMs: 0) == 10)
        #expect(slow.take(client: "x", nowMs: 2_500) == 8) // 7.5 s left, rounded up
        #expect(slow.take(client: "x", nowMs: 9_999) == 1)
        #expect(slow.take(client: "x", nowMs: 10_000) == nil)

        var fast = RateLimiter(limit: RateLimit(ratePerSecond: 100, burst: 1))
        #expect(fast.take(client: "y", nowMs: 0) == nil)
        #expect(fast.take(client: "y", nowMs: 0) == 1) // never below 1

        // A rate that can never refill answers with the cap instead of trapping.
        var never = RateLimiter(limit: RateLimit(ratePerSecond: 0, burst: 1))
        #expect(never.take(client: "z", nowMs: 0) == nil)
        #expect(never.take(client: "z", nowMs: 1_000_000) == RateLimiter.maxRetryAfterSeconds)
        var nan = RateLimiter(limit: RateLimit(ratePerSecond: .nan, burst: .nan))
        #expect(nan.take(client: "z", nowMs: 0) == nil)
        #expect(nan.take(client: "z", nowMs: 0) == RateLimiter.maxRetryAfterSeconds)
        // A burst below one still lets one request through.
        var tiny = RateLimiter(limit: RateLimit(ratePerSecond: 0.5, burst: 0.5))
        #expect(tiny.take(client: "w", nowMs: 0) == nil)
        #expect(tiny.take(client: "w", nowMs: 0) == 2)
    }

    @Test func blockedReport() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 1))
        #expect(limiter.blockedReport().isEmpty)
        _ = limiter.take(client: "a", nowMs: 100)
        _ = limiter.take(client: "a", nowMs: 200) // refused
        _ = limiter.take(client: "a", nowMs: 300) // refused
        _ = limiter.take(client: "a", nowMs: 400) // refused
        _ = limiter.take(client: "b", nowMs: 150)
        _ = limiter.take(client: "b", nowMs: 250) // refused
        _ = limiter.take(client: "c", nowMs: 100) // allowed only
        let report = limiter.blockedReport()
        #expect(report.count == 2)
        #expect(report[0].client == "a")
        #expect(report[0].count == 3)
        #expect(report[0].firstBlockedAt == 200)
        #expect(report[0].lastBlockedAt == 400)
        #expect(report[1].client == "b")
        #expect(report[1].count == 1)
        #expect(report[1].firstBlockedAt == 250)
        #expect(report[1].lastBlockedAt == 250)
    }

    @Test func bucketsAreBounded() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 2), maxClients: 100)
        for i in 0..<1_000 {
            _ = limiter.take(client: "client-\(i)", nowMs: 0)
            #expect(limiter.trackedClients <= 100)
        }
        // Full buckets are dropped first; a recreated bucket behaves the same.
        var full = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 2), maxClients: 10)
        for i in 0..<10 { _ = full.take(client: "old-\(i)", nowMs: 0) }
        #expect(full.take(client: "hot", nowMs: 10_000) == nil) // all old buckets are full again and dropped
        #expect(full.take(client: "hot", nowMs: 10_000) == nil)
        #expect(full.take(client: "hot", nowMs: 10_000) == 1)
        #expect(full.trackedClients == 1)
    }

    @Test func reportIsBounded() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 1), maxBlockedEntries: 50)
        // A persistent offender with many refusals.
        _ = limiter.take(client: "heavy", nowMs: 0)
        for _ in 0..<10 { _ = limiter.take(client: "heavy", nowMs: 0) }
        for i in 0..<500 {
            _ = limiter.take(client: "c\(i)", nowMs: 0)
            _ = limiter.take(client: "c\(i)", nowMs: 0) // refused once
        }
        let report = limiter.blockedReport()
        #expect(report.count <= 50)
        #expect(report.first?.client == "heavy")
        #expect(report.first?.count == 10)
    }

    @Test func defaultReportBoundIsTenThousand() {
        var limiter = RateLimiter(limit: RateLimit(ratePerSecond: 1, burst: 1))
        #expect(limiter.maxBlockedEntries == 10_000)
        for i in 0..<10_500 {
            _ = limiter.take(client: "c\(i)", nowMs: 0)
            _ = limiter.take(client: "c\(i)", nowMs: 0)
        }
        #expect(limiter.blockedReport().count <= 10_000)
    }
}
