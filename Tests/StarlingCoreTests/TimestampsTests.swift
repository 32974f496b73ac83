import Testing
import StarlingCore

@Suite struct TimestampsTests {
    @Test func knownValues() {
        #expect(Timestamps.parseRFC3339("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamps.parseRFC3339("2000-01-01T00:00:00Z") == 946_684_800_000)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00Z") == 1_795_341_600_000)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.123Z") == 1_795_341_600_123)
        #expect(Timestamps.parseRFC3339("1969-12-31T23:59:59.999Z") == -1)
        #expect(Timestamps.parseRFC3339("0001-01-01T00:00:00Z") == -62_135_596_800_000)
        #expect(Timestamps.parseRFC3339("9999-12-31T23:59:59.999Z") == 253_402_300_799_999)
        #expect(Timestamps.parseRFC3339("2038-01-19T03:14:08Z") == 2_147_483_648_000)
    }

    @Test func lowercaseAndFractions() {
        let base: Int64 = 1_795_341_600_000
        #expect(Timestamps.parseRFC3339("2026-11-22t10:00:00z") == base)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.1Z") == base + 100)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.12Z") == base + 120)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.999999999Z") == base + 999)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.0001Z") == base)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00." + String(repeating: "9", count: 200) + "Z") == base + 999)
    }

    @Test func offsets() {
        let base: Int64 = 1_795_341_600_000 // 2026-11-22T10:00:00Z
        #expect(Timestamps.parseRFC3339("2026-11-22T19:00:00+09:00") == base)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00.123+09:00") == base - 9 * 3_600_000 + 123)
        #expect(Timestamps.parseRFC3339("2026-11-22T04:30:00-05:30") == base)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00+00:00") == base)
        #expect(Timestamps.parseRFC3339("2026-11-22T10:00:00-00:00") == base)
        // Offsets may move the instant across a day or year boundary.
        #expect(Timestamps.parseRFC3339("2027-01-01T08:59:59+09:00") == Timestamps.parseRFC3339("2026-12-31T23:59:59Z"))
        #expect(Timestamps.parseRFC3339("0001-01-01T00:00:00+01:00") == -62_135_596_800_000 - 3_600_000)
    }

    @Test func leapYearsAndSeconds() {
        #expect(Timestamps.parseRFC3339("2024-02-29T00:00:00Z") != nil)
        #expect(Timestamps.parseRFC3339("2000-02-29T00:00:00Z") != nil)
        #expect(Timestamps.parseRFC3339("2023-02-29T00:00:00Z") == nil)
        #expect(Timestamps.parseRFC3339("1900-02-29T00:00:00Z") == nil)
        #expect(Timestamps.parseRFC3339("2100-02-29T00:00:00Z") == nil)
        #expect(Timestamps.parseRFC3339("2024-03-01T00:00:00Z")! - Timestamps.parseRFC3339("2024-02-28T00:00:00Z")! == 2 * 86_400_000)
        // A leap second counts as second 59.
        #expect(Timestamps.parseRFC3339("2016-12-31T23:59:60Z") == Timestamps.parseRFC3339("2016-12-31T23:59:59Z"))
        #expect(Timestamps.parseRFC3339("2016-12-31T23:59:60.500Z") == Timestamps.parseRFC3339("2016-12-31T23:59:59.5Z"))
    }

    @Test func invalidInputs() {
        let bad = [
            "", "2026-11-22", "2026-11-22T10:00:00", "2026-11-22T10:00Z", "2026-11-22 10:00:00Z",
            "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-00T00:00:00Z",
            "2026-11-22T24:00:00Z", "2026-11-22T10:60:00Z", "2026-11-22T10:00:61Z", "0000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z", "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00+0900", "2026-11-22T10:00:00+09",
            "2026-11-22T10:00:00+24:00", "2026-11-22T10:00:00+09:60", "2026-11-22T10:00:00Zx", "2026-11-22T10:00:00ZZ",
            " 2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z ", "2026/11/22T10:00:00Z", "2026-1-22T10:00:00Z",
            "+2026-11-22T10:00:00Z", "2026-11-22T1a:00:00Z", "２０２６-11-22T10:00:00Z", "2026-11-22T10:00:00.12a3Z",
            "2026-11-22X10:00:00Z", "2026-11-22T10:00:00UTC",
        ]
        for s in bad {
            #expect(Timestamps.parseRFC3339(s) == nil, "\(s)")
        }
    }

    @Test func formatting() {
        #expect(Timestamps.formatRFC3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamps.formatRFC3339(1_795_341_600_123) == "2026-11-22T10:00:00.123Z")
        #expect(Timestamps.formatRFC3339(-1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamps.formatRFC3339(951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(Timestamps.formatRFC3339(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z")
        #expect(Timestamps.formatRFC3339(253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
        #expect(Timestamps.formatRFC3339(-62_135_596_800_001) == "0000-12-31T23:59:59.999Z")
        #expect(Timestamps.formatRFC3339(253_402_300_800_000) == "10000-01-01T00:00:00.000Z")
        #expect(Timestamps.formatRFC3339(-62_167_219_200_001) == "-0001-12-31T23:59:59.999Z")
        #expect(Timestamps.utcDay(-62_167_219_200_001) == "-0001-12-31")
        #expect(Timestamps.utcDay(253_402_300_800_000) == "10000-01-01")
        // Extremes do not trap.
        #expect(!Timestamps.formatRFC3339(.max).isEmpty)
        #expect(Timestamps.formatRFC3339(.min).hasPrefix("-"))
        #expect(!Timestamps.utcDay(.min).isEmpty)
    }

    @Test func formatParseRoundTrip() {
        var x: UInt64 = 0x1234_5678
        for _ in 0..<2_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            // Anywhere in 0001...9999.
            let ms = Int64(x % 315_537_897_600_000) - 62_135_596_800_000
            let text = Timestamps.formatRFC3339(ms)
            #expect(Timestamps.parseRFC3339(text) == ms, "\(text)")
            let day = Timestamps.utcDay(ms)
            #expect(text.hasPrefix(day))
            let start = Timestamps.parseUTCDay(day)
            #expect(start.map { $0 <= ms && ms - $0 < 86_400_000 } == true)
        }
    }

    @Test func utcDays() {
        #expect(Timestamps.utcDay(0) == "1970-01-01")
        #expect(Timestamps.utcDay(1_795_341_600_123) == "2026-11-22")
        #expect(Timestamps.utcDay(-1) == "1969-12-31")
        #expect(Timestamps.parseUTCDay("1970-01-01") == 0)
        #expect(Timestamps.parseUTCDay("2026-11-22") == 1_795_305_600_000)
        #expect(Timestamps.parseUTCDay("2024-02-29") == 1_709_164_800_000)
        for s in ["", "2023-02-29", "2026-11-22T00:00:00Z", "2026-11-2", "0000-01-01", "2026-13-01", " 2026-11-22", "20261122"] {
            #expect(Timestamps.parseUTCDay(s) == nil, "\(s)")
        }
    }
}
