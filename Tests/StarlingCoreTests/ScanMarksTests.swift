import Testing
@testable import StarlingCore

@Suite struct ScanMarksTests {
    func at(_ segment: UInt32, _ offset: UInt64) -> RecordLocation {
        RecordLocation(segment: segment, blockOffset: offset, index: 0)
    }

    /// A mark every `step` bytes holds the newest receive time before it; a scan starts at the
    /// last mark whose earlier records are all older than `since`.
    @Test func startsAtTheLastMarkWithOnlyOlderRecordsBefore() {
        var m = ScanMarks(step: 100)
        // Blocks every 40 bytes, received at 10, 20, 30, ...; one replica record with an old time.
        for b in 0..<20 {
            m.observe(at(7, UInt64(16 + b * 40)), receivedAt: Int64(10 * (b + 1)))
            if b == 12 { m.observe(at(7, UInt64(16 + b * 40)), receivedAt: 5) }
        }
        #expect(m.marks.map(\.offset) == [136, 256, 376, 496, 616, 736])
        #expect(m.marks.map(\.newestBefore) == [30, 60, 90, 120, 150, 180])
        #expect(m.start(in: 7, since: 10) == nil, "nothing can be skipped")
        #expect(m.start(in: 7, since: 31) == 136)
        #expect(m.start(in: 7, since: 125) == 496)
        #expect(m.start(in: 7, since: 1_000) == 736)
        #expect(m.start(in: 8, since: 1_000) == nil, "marks of another segment")
        // Everything received at or after `since` lies at or after the start.
        for since in stride(from: Int64(0), through: 220, by: 7) {
            let start = m.start(in: 7, since: since) ?? 0
            for b in 0..<20 where Int64(10 * (b + 1)) >= since { #expect(UInt64(16 + b * 40) >= start) }
        }
    }

    /// Receive times out of order (a late replica) hold marks back; a new segment starts afresh.
    @Test func lateRecordsHoldMarksBackAndSegmentsReset() {
        var m = ScanMarks(step: 10)
        m.observe(at(1, 16), receivedAt: 500)
        m.observe(at(1, 40), receivedAt: 100)
        m.observe(at(1, 80), receivedAt: 600)
        #expect(m.marks.map(\.newestBefore) == [500, 500])
        #expect(m.start(in: 1, since: 550) == 80)
        #expect(m.start(in: 1, since: 400) == nil, "the record at 16 (500) must be read")
        m.observe(at(2, 16), receivedAt: 700)
        #expect(m.segment == 2 && m.marks.isEmpty)
        #expect(m.start(in: 1, since: 550) == nil)
    }
}
