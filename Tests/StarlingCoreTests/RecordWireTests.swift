import Testing
@testable import StarlingCore

/// Records as bytes: a record's fields are read from its one encoding, which always matches them.
@Suite struct RecordWireTests {
    let record = Record(kind: .event, ts: 1_700_000_000_000, receivedAt: 1_700_000_000_123, sessionID: "s1", eventID: "e1",
                        key: "page_view", component: "web", via: "ad", userID: "u1", json: Array(#"{"k":1}"#.utf8))

    @Test func aDecodedRecordKeepsTheBytesItCameFrom() throws {
        let bytes = record.encoded
        let decoded = try #require(Record(encoded: bytes))
        #expect(decoded.encoded == bytes)
        #expect(decoded == record)
        var out: [UInt8] = [9]
        decoded.encode(into: &out)
        #expect(out == [9] + bytes)
        #expect(decoded.encodedCount == bytes.count)
    }

    @Test func fieldsReadFromTheBytesMatchTheFieldsGiven() {
        #expect(record.kind == .event && !record.isError)
        #expect(record.ts == 1_700_000_000_000 && record.receivedAt == 1_700_000_000_123)
        #expect([record.sessionID, record.eventID, record.key, record.component, record.via, record.userID, record.terminalID]
                == ["s1", "e1", "page_view", "web", "ad", "u1", ""])
        #expect(record.json == Array(#"{"k":1}"#.utf8) && record.jsonCount == 7)
        #expect(record.isEmpty(.terminalID) && !record.isEmpty(.userID))
        #expect(record.withField(.key) { Array($0) } == Array("page_view".utf8))
        let negative = Record(kind: .link, isError: true, ts: -5, receivedAt: .max, sessionID: "s")
        #expect(negative.ts == -5 && negative.receivedAt == .max && negative.isError && negative.kind == .link)
    }

    @Test func changingAFieldReencodesTheRecord() throws {
        var r = try #require(Record(encoded: record.encoded))
        r.key = "click"
        let again = try #require(Record(encoded: r.encoded), "the new bytes carry a matching CRC")
        #expect(again.key == "click" && again.sessionID == "s1" && again.json == record.json)
        var s = record
        s.json = Array(#"{"k":22}"#.utf8)
        #expect(Record(encoded: s.encoded)?.json == Array(#"{"k":22}"#.utf8))
        var t = record
        t.receivedAt += 1
        t.isError = true
        #expect(t.encodedCount == record.encodedCount && t != record)
        #expect(Record(encoded: t.encoded) == t)
        #expect(t.receivedAt == record.receivedAt + 1 && t.isError)
    }

    @Test func hashesFromTheBytesEqualTheStringHashes() {
        let links = [
            record,
            Record(kind: .event, ts: 1, receivedAt: 2, sessionID: "", eventID: "é-1", key: "k", userID: "ü", json: [1]),
            Record(kind: .event, ts: 1, receivedAt: 2, sessionID: "", eventID: "x", key: "k", terminalID: "t9", json: [1]),
        ]
        for r in links {
            // Against the hashes of the spelled-out strings, not the shared helpers.
            let ringKey = SubjectKey(of: r).ringKey
            #expect(r.subjectFNV == StableHash.fnv1a64(ringKey))
            #expect(r.dedupeKey == StableHash.fnv1a64(Array(ringKey.utf8) + [0xFF] + Array(r.eventID.utf8)))
            #expect(r.dedupeKey == DedupeWindow.key(r.eventID, in: SubjectKey(of: r)))
        }
    }

    @Test func malformedBytesAreRefused() {
        var bytes = record.encoded
        #expect(Record(encoded: Array(bytes.dropLast())) == nil)
        bytes[bytes.count - 1] ^= 1
        #expect(Record(encoded: bytes) == nil, "CRC")
        // A string length that runs past the body, with a CRC that matches.
        var long = record.encoded
        long[Record.fieldsStart] = 0xFF
        Record.seal(&long)
        #expect(Record(encoded: long) == nil)
    }

    @Test func invalidUTF8FromAPeerIsRefused() throws {
        var bytes = Record(kind: .event, ts: 1, receivedAt: 2, sessionID: "ab", eventID: "e", key: "k", json: [1]).encoded
        bytes[Record.fieldsStart + 2] = 0xC3   // "ab" -> an unfinished two-byte sequence
        Record.seal(&bytes)
        let r = try #require(Record(encoded: bytes), "well-formed layout")
        #expect(r.problem(limits: Limits())?.contains("UTF-8") == true)
    }

    @Test func decimalsAreSpelledAsStringDoes() {
        for v: Int64 in [0, 7, -7, 10, 1_700_000_000_123, -1_700_000_000_123, .max, .min, 9_999_999_999_999] {
            var out: [UInt8] = [1]
            out.appendDecimal(v)
            #expect(out == [1] + Array(String(v).utf8), "\(v)")
        }
    }

    @Test func loopbackAddresses() {
        #expect(IPAddress("127.0.0.1")?.isLoopback == true)
        #expect(IPAddress("127.9.8.7")?.isLoopback == true)
        #expect(IPAddress("::1")?.isLoopback == true)
        #expect(IPAddress("::ffff:127.0.0.1")?.isLoopback == true)
        #expect(IPAddress("10.0.0.1")?.isLoopback == false)
        #expect(IPAddress("128.0.0.1")?.isLoopback == false)
        #expect(IPAddress("::2")?.isLoopback == false)
        #expect(IPAddress("2001:db8::1")?.isLoopback == false)
    }
}
