import Testing
@testable import StarlingBench

@Suite struct RateScheduleTests {
    @Test func allConnectionsTogetherFormOneEvenlySpacedSequence() {
        let start: UInt64 = 1_000_000_000
        let schedules = (0..<4).map {
            RateSchedule(start: start, rate: 1_000, connection: $0, connections: 4, measureStart: start,
                         end: start + 1_000_000_000, quota: nil)
        }
        var times: [UInt64] = []
        for s in schedules {
            #expect(s.limit == 250)
            for k in 0..<s.limit { times.append(s.intended(k)) }
        }
        times.sort()
        #expect(times.count == 1_000)
        for (i, t) in times.enumerated() { #expect(t == start + UInt64(i) * 1_000_000) }
    }

    @Test func dueCountAgreesWithIntendedTimesAtEveryBoundary() {
        var rng = SplitMix(seed: 7)
        for _ in 0..<200 {
            let connections = Int(rng.next() % 16) + 1
            let rate = Double(rng.next() % 100_000 + 1) / 7
            let c = Int(rng.next() % UInt64(connections))
            let start = rng.next() % 1_000_000_000
            let s = RateSchedule(start: start, rate: rate, connection: c, connections: connections,
                                 measureStart: start, end: start + 50_000_000_000, quota: nil)
            for k in [0, 1, 2, 17, 1_000].filter({ $0 < s.limit }) {
                let t = s.intended(k)
                #expect(s.dueCount(at: t) == k + 1, "due at its own time")
                if t > start { #expect(s.dueCount(at: t - 1) == k, "not due a nanosecond earlier") }
            }
        }
    }

    @Test func warmUpRequestsComeFirstAndTheQuotaCountsOnlyMeasuredOnes() {
        let s = RateSchedule(start: 0, rate: 100, connection: 0, connections: 1, measureStart: 1_000_000_000,
                             end: 3_000_000_000, quota: 50)
        #expect(s.firstMeasured == 100)          // 1 s of warm-up at 100/s
        #expect(!s.isMeasured(99) && s.isMeasured(100))
        #expect(s.limit == 150)                  // + the quota, well before the end
        let unbounded = RateSchedule(start: 0, rate: 100, connection: 0, connections: 1, measureStart: 1_000_000_000,
                                     end: 3_000_000_000, quota: nil)
        #expect(unbounded.limit == 300)          // nothing due at or after the end
        #expect(unbounded.dueCount(at: 10_000_000_000) == 300)
        #expect(unbounded.dueCount(at: 0) == 1)
    }

    @Test func aSlowConnectionStillHasItsFairShareOfTheSchedule() {
        // 3 connections at 10/s for 1 s: 4 + 3 + 3 requests.
        let limits = (0..<3).map {
            RateSchedule(start: 0, rate: 10, connection: $0, connections: 3, measureStart: 0, end: 1_000_000_000, quota: nil).limit
        }
        #expect(limits == [4, 3, 3])
    }
}

/// A tiny seeded generator for the tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
