import Testing
@testable import StarlingCore

/// Records from the network are checked field by field, and no time sum can trap.
@Suite struct RecordChecksTests {
    let limits = Limits()
    func event() -> Record {
        Record(kind: .event, ts: 1_700_000_000_000, receivedAt: 1_700_000_000_001, sessionID: "s", eventID: "e", key: "k",
               json: Array(#"{"session_id":"s","key":"k","value":1}"#.utf8))
    }

    @Test func aGoodRecordPasses() {
        #expect(event().problem(limits: limits) == nil)
        let link = Record(kind: .link, ts: 5, receivedAt: 5, sessionID: "s", userID: "u")
        #expect(link.problem(limits: limits) == nil)
    }

    @Test func timesOutOfRangeAreRefused() {
        for bad in [Int64.max, Int64.max - 1, Record.timeMax + 1, -1, Int64.min] {
            var r = event()
            r.receivedAt = bad
            #expect(r.problem(limits: limits)?.contains("received_at") == true, "received_at \(bad)")
            r = event()
            r.ts = bad
            #expect(r.problem(limits: limits)?.contains("ts") == true, "ts \(bad)")
        }
    }

    @Test func lengthsKindsAndRequiredFieldsAreChecked() {
        var r = event()
        r.sessionID = String(repeating: "s", count: limits.sessionIDBytesMax + 1)
        #expect(r.problem(limits: limits)?.contains("session_id") == true)
        r = event()
        r.via = String(repeating: "v", count: limits.identityBytesMax + 1)
        #expect(r.problem(limits: limits)?.contains("via") == true)
        r = event()
        r.json = Array(repeating: 0x20, count: limits.recordBytesMax)
        #expect(r.problem(limits: limits)?.contains("record is") == true)
        r = event()
        r.eventID = ""
        #expect(r.problem(limits: limits) != nil)
        r = event()
        r.sessionID = ""
        #expect(r.problem(limits: limits)?.contains("names no") == true)
        let link = Record(kind: .link, ts: 5, receivedAt: 5, sessionID: "s")
        #expect(link.problem(limits: limits) != nil)
        // `checked` refuses a bad CRC and a bad field, with the reason.
        var bytes = event().encoded
        bytes[bytes.count - 1] ^= 1
        if case .failure(let why) = Record.checked(encoded: bytes, limits: limits) {
            #expect(why.reason.contains("CRC"))
        } else {
            Issue.record("a record with a bad CRC was accepted")
        }
        r = event()
        r.receivedAt = .max
        if case .success = Record.checked(encoded: r.encoded, limits: limits) { Issue.record("received_at near Int64.max was accepted") }
    }

    /// The UTF-8 check reads ASCII eight bytes at a time: a non-ASCII byte at any position of
    /// any length (word and tail) is seen, and its verdict is the standard decoder's.
    @Test func utf8CheckAgreesWithTheDecoderAtEveryPosition() {
        func decoderSays(_ b: [UInt8]) -> Bool { String(validating: b, as: UTF8.self) != nil }
        for length in 0...20 {
            let ascii = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            #expect(ascii.withUnsafeBytes { Record.isValidUTF8($0) })
            for at in 0..<length {
                for bad: [UInt8] in [[0x80], [0xFF], [0xC3], [0xE2, 0x82]] where at + bad.count <= length {
                    var b = ascii
                    b.replaceSubrange(at..<(at + bad.count), with: bad)
                    #expect(b.withUnsafeBytes { Record.isValidUTF8($0) } == decoderSays(b), "\(b)")
                    #expect(!decoderSays(b))
                }
                for good: [UInt8] in [[0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80]] where at + good.count <= length {
                    var b = ascii
                    b.replaceSubrange(at..<(at + good.count), with: good)
                    #expect(b.withUnsafeBytes { Record.isValidUTF8($0) }, "\(b)")
                }
            }
        }
    }

    /// The fold of a record whose time is near Int64.max clamps instead of trapping (it used to
    /// trap on `+` in `SessionState`, and again on every start, since recovery replays it).
    @Test func foldingExtremeTimesNeverTraps() {
        var idx = NodeIndex(ttl: TTLSettings())
        var seq: UInt64 = 0
        for t in [Int64.max, Int64.max - 1, Int64.min, 0, Int64.max] {
            var r = event()
            r.receivedAt = t
            r.eventID = "e\(seq)"
            seq += 1
            idx.apply(r, at: RecordLocation(segment: 1, blockOffset: 0, index: UInt32(seq)), seq: seq)
        }
        let s = idx.sessions["s"]?.state
        #expect(s?.longExpiresAt == .max && s?.shortExpiresAt == .max)
        #expect(TimeMath.add(.max, 1) == .max && TimeMath.add(.min, -1) == .min && TimeMath.add(2, 3) == 5)
        #expect(TimeMath.subtract(.min, 1) == .min && TimeMath.subtract(.max, -1) == .max && TimeMath.subtract(5, 3) == 2)
    }

    /// A repeat finds the stored copy (what the owner ships to its followers again).
    @Test func storedRefFindsTheFirstCopy() {
        var log = FoldedLog()
        for i in 1...50 {
            var r = event()
            r.eventID = "e\(i)"
            log.apply(r, at: RecordLocation(segment: 1, blockOffset: UInt64(i * 100), index: 0), seq: UInt64(i * 2))
        }
        let ref = log.index.storedCopy(eventID: "e17", in: .session("s"), stored: log.stored)
        #expect(ref?.seq == 34 && ref?.location.blockOffset == 1_700)
        #expect(!log.has("nope", in: .session("s")))
        // Retention deleted its segment: nothing left to copy or confirm against.
        log.index.forget(segments: [1])
        #expect(!log.has("e17", in: .session("s")))
        #expect(log.index.openRefCount == 0 && log.index.openSubjects.isEmpty && log.index.dedupe.count == 0)
    }
}
