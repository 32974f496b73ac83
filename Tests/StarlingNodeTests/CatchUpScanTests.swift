import Foundation
import Synchronization
import Testing
@testable import StarlingCluster
@testable import StarlingCore
@testable import StarlingLog
@testable import StarlingNode

/// Catch-up streams the log: links first, then blocks in order, with a cursor that is a
/// position; pages bounded by a scan budget, and damage skipped like recovery skips it.
@Suite struct CatchUpScanTests {
    @Test func positionTokensRoundTripAndUnknownOnesStartOver() {
        for p in [CatchUpPosition.start, .links(hash: .max, skip: 7), .log(segment: 3, offset: 1 << 40, index: 0),
                  .log(segment: .max, offset: 16, index: 2_000)] {
            #expect(CatchUpPosition(token: p.token) == p)
        }
        for bad in ["", "s1", "L1:zz:0", "L1:10", "L1:10:-1", "G1:1:2", "G1:1:2:x", "G2:1:2:3", "G1:-1:2:3", "L1:10:0:0"] {
            #expect(CatchUpPosition(token: bad) == nil, "\(bad)")
        }
    }

    /// Every page of every size, with a scan budget of one block, adds up to one whole read;
    /// pages that found nothing still move the cursor on.
    @Test func scanBudgetPagesCoverEverything() throws {
        let node = try LiveNode(configure: SealedIndexTests.tiny)
        defer { node.stop() }
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"a","user_id":"ua"}"#).status == 204)
        for r in 0..<12 {
            let body = (0..<4).map { #"{"session_id":"\#(["a", "b", "c"][($0 + r) % 3])","key":"k","value":\#(r * 10 + $0)}"# }
            #expect(try node.call("POST", "/v1/events", "[" + body.joined(separator: ",") + "]").status == 202)
        }
        #expect(try node.call("POST", "/v1/events", #"{"user_id":"ub","key":"k","value":"no session"}"#).status == 202)
        let engine = node.server.engine
        engine.waitForIndexes()
        #expect(engine.sealed.sizes.files >= 3)
        let (whole, end) = engine.catchUp(wants: { _ in true }, since: 0, from: nil, maxRecords: 100_000)
        #expect(end == nil)
        #expect(whole.filter { $0.kind == .link }.count == 1 && whole.filter { $0.kind == .event }.count == 49)
        let wanted: (String) -> Bool = { $0 == "b" || $0 == "u:ub" }
        let some = engine.catchUp(wants: wanted, since: 0, from: nil, maxRecords: 100_000).0
        #expect(some.count == 17 && some.allSatisfy { $0.sessionID == "b" || $0.userID == "ub" })
        for (wants, expected) in [({ (_: String) in true }, whole), (wanted, some)] {
            var got: [Record] = []
            var cursor: CatchUpCursor?
            var (pages, empty) = (0, 0)
            repeat {
                let (page, next) = engine.catchUp(wants: wants, since: 0, from: cursor, maxRecords: 3, scanBytesMax: 1)
                if page.isEmpty { empty += 1 }
                got += page
                cursor = next
                pages += 1
            } while cursor != nil && pages < 1_000
            #expect(cursor == nil && got == expected, "\(pages) pages")
            if expected.count < whole.count { #expect(empty > 0, "a selective scan meets blocks with nothing wanted") }
        }
        // A cursor from another release starts over.
        let (again, _) = engine.catchUp(wants: { _ in true }, since: 0, from: CatchUpCursor(key: "b", skip: 2), maxRecords: 100_000)
        #expect(again == whole)
    }

    /// A damaged block in a sealed segment is skipped and counted; the records after it still go.
    @Test func damagedBlockIsSkippedAndCounted() throws {
        let node = try LiveNode(configure: { $0.limits.segmentBytesMax = 4_000 })
        defer { node.stop() }
        for r in 0..<20 {
            #expect(try node.call("POST", "/v1/events", #"{"session_id":"d","key":"k","value":\#(r)}"#).status == 202)
        }
        let engine = node.server.engine
        engine.waitForIndexes()
        let whole = engine.catchUp(wants: { _ in true }, since: 0, from: nil, maxRecords: 100_000).0
        #expect(whole.count == 20)
        // Damage the payload of the third block of the first segment (one event per block here).
        let refs = engine.refs(of: .session("d"), ts: nil, nil).0.sorted { $0.seq < $1.seq }
        let victim = refs[2].location
        #expect(refs[3].location.segment == victim.segment, "the next block is in the same segment")
        let path = try #require(engine.log.segmentNumbers.first.flatMap { n in
            engine.log.shared.withLock { $0.segments[n]?.path }
        })
        #expect(engine.log.segmentNumbers.first == victim.segment)
        let fh = try #require(FileHandle(forUpdatingAtPath: path))
        try fh.seek(toOffset: victim.blockOffset + UInt64(BlockCodec.headerBytes) + 2)
        let old = try #require(try fh.read(upToCount: 1)).first!
        try fh.seek(toOffset: victim.blockOffset + UInt64(BlockCodec.headerBytes) + 2)
        try fh.write(contentsOf: [old ^ 0xFF])
        try fh.close()
        let after = engine.catchUp(wants: { _ in true }, since: 0, from: nil, maxRecords: 100_000).0
        #expect(after.count == 19 && !after.contains { $0.eventID == whole[2].eventID })
        #expect(metricValue(engine.metrics, "starling_catch_up_scan_errors_total") == 1)
    }
}
