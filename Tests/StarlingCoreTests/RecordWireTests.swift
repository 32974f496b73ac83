import Testing
import StarlingCore

/// Encode once: a record's cached encoding always matches its fields.
@Suite struct RecordWireTests {
    let record = Record(kind: .event, ts: 1_700_000_000_000, receivedAt: 1_700_000_000_123, sessionID: "s1", eventID: "e1",
                        key: "page_view", component: "web", via: "ad", userID: "u1", json: Array(#"{"k":1}"#.utf8))

    @Test func aDecodedRecordKeepsTheBytesItCameFrom() throws {
        let bytes = record.encoded
        let decoded = try #require(Record(encoded: bytes))
        #expect(decoded.wire == bytes)
        #expect(decoded == record)
        var out: [UInt8] = [9]
        decoded.encode(into: &out)
        #expect(out == [9] + bytes)
        #expect(decoded.encodedCount == bytes.count)
    }

    @Test func withWireEncodesOnceAndMatchesAFreshEncoding() {
        let cached = record.withWire()
        #expect(record.wire == nil)
        #expect(cached.wire == record.encoded)
        #expect(cached == record, "the cache does not take part in equality")
    }

    @Test func changingAFieldDropsTheCachedBytes() throws {
        var r = try #require(Record(encoded: record.encoded))
        r.key = "click"
        #expect(r.wire == nil)
        let again = try #require(Record(encoded: r.encoded))
        #expect(again.key == "click")
        var s = record.withWire()
        s.json = Array(#"{"k":2}"#.utf8)
        #expect(s.wire == nil)
        #expect(Record(encoded: s.encoded)?.json == Array(#"{"k":2}"#.utf8))
        var t = record.withWire()
        t.receivedAt += 1
        #expect(t.wire == nil && t.encodedCount == record.encodedCount)
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
