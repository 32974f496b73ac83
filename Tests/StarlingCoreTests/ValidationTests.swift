import Testing
@testable import StarlingCore

func validate(_ text: String, limits: Limits = Limits()) -> Result<IncomingEvent, IngestError> {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { buf in
        switch EventValidator.events(fromBody: buf, format: .json, limits: limits) {
        case .success(let list): return .success(list[0])
        case .failure(let e): return .failure(e)
        }
    }
}

func body(_ text: String, format: EventValidator.BodyFormat = .json, limits: Limits = Limits()) -> Result<[IncomingEvent], IngestError> {
    Array(text.utf8).withUnsafeBytes { EventValidator.events(fromBody: $0, format: format, limits: limits) }
}

func errorCode<T>(_ r: Result<T, IngestError>) -> String? {
    if case .failure(let e) = r { return e.code }
    return nil
}

@Suite struct ValidationTests {
    @Test func minimalEventIsAccepted() throws {
        let e = try validate(#"{"session_id":"s1","key":"page_view","value":"/home"}"#).get()
        #expect(e.sessionID == "s1")
        #expect(e.key == "page_view")
        #expect(e.ts == nil)
        #expect(e.eventID == nil)
        #expect(e.fields["value"] == .string("/home"))
    }

    @Test func allFieldsAreRead() throws {
        let e = try validate(#"{"session_id":"s","key":"k","value":{"a":[1,2]},"ts":1700000000123,"event_id":"e1","user_id":"u","terminal_id":"t","account_id":"a","component":"api","via":"mail","attrs":{"level":"error"},"extra":true}"#).get()
        #expect(e.ts == 1_700_000_000_123)
        #expect(e.eventID == "e1")
        #expect(e.userID == "u")
        #expect(e.terminalID == "t")
        #expect(e.accountID == "a")
        #expect(e.component == "api")
        #expect(e.via == "mail")
        #expect(e.isError)
        #expect(e.fields["extra"] == .bool(true))
    }

    @Test func rfc3339TimestampsBecomeEpochMillis() throws {
        let e = try validate(#"{"session_id":"s","key":"k","value":1,"ts":"2023-11-14T22:13:20.5Z"}"#).get()
        #expect(e.ts == 1_700_000_000_500)
        let f = try validate(#"{"session_id":"s","key":"k","value":1,"ts":"2023-11-15T07:13:20+09:00"}"#).get()
        #expect(f.ts == 1_700_000_000_000)
    }

    @Test func nullValueIsAllowedWhenPresent() throws {
        #expect(try validate(#"{"session_id":"s","key":"k","value":null}"#).get().fields["value"] == .null)
        #expect(errorCode(validate(#"{"session_id":"s","key":"k"}"#)) == "missing_field")
    }

    @Test(arguments: [
        (#"{"key":"k","value":1}"#, "missing_field"),                                   // no routing key
        (#"{"session_id":"s","value":1}"#, "missing_field"),                            // no key
        (#"{"session_id":"","key":"k","value":1}"#, "invalid_field"),                   // empty session
        (#"{"session_id":5,"key":"k","value":1}"#, "invalid_field"),                    // session not a string
        (#"{"session_id":"s","key":"","value":1}"#, "invalid_field"),                   // empty key
        (#"{"session_id":"s","key":7,"value":1}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"ts":"yesterday"}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"ts":1.5}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"ts":-1}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"ts":true}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"event_id":""}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"user_id":3}"#, "invalid_field"),
        (#"{"session_id":"s","key":"k","value":1,"attrs":[1]}"#, "invalid_field"),
        (#"{"session_id":"s","session_id":"t","key":"k","value":1}"#, "invalid_field"),  // ambiguous duplicate
        (#"[1]"#, "invalid_event"),
        (#""text""#, "invalid_event"),
        (#"{"session_id":"s","key":"k","value":1"#, "invalid_json"),
        (#"{"session_id":"s",}"#, "invalid_json"),
        (#"[]"#, "empty_batch"),
        ("   ", "empty_body"),
    ])
    func rejections(input: String, code: String) {
        #expect(errorCode(validate(input)) == code, "input: \(input)")
    }

    @Test func fieldLengthLimits() {
        let long129 = String(repeating: "s", count: 129)
        #expect(errorCode(validate(#"{"session_id":"\#(long129)","key":"k","value":1}"#)) == "invalid_field")
        let s128 = String(repeating: "s", count: 128)
        #expect((try? validate(#"{"session_id":"\#(s128)","key":"k","value":1}"#).get()) != nil)
        let k257 = String(repeating: "k", count: 257)
        #expect(errorCode(validate(#"{"session_id":"s","key":"\#(k257)","value":1}"#)) == "invalid_field")
        let e65 = String(repeating: "e", count: 65)
        #expect(errorCode(validate(#"{"session_id":"s","key":"k","value":1,"event_id":"\#(e65)"}"#)) == "invalid_field")
        let v257 = String(repeating: "v", count: 257)
        #expect(errorCode(validate(#"{"session_id":"s","key":"k","value":1,"via":"\#(v257)"}"#)) == "invalid_field")
    }

    @Test func oversizeEventIs413() {
        let big = String(repeating: "x", count: 33 * 1024)
        let r = validate(#"{"session_id":"s","key":"k","value":"\#(big)"}"#)
        guard case .failure(let e) = r else { Issue.record("accepted an oversize event"); return }
        #expect(e.status == 413)
        #expect(e.code == "event_too_large")
    }

    @Test func oversizeBodyIs413() {
        var limits = Limits()
        limits.bodyBytesMax = 100
        let r = body(String(repeating: " ", count: 101), limits: limits)
        guard case .failure(let e) = r else { Issue.record("accepted"); return }
        #expect(e.status == 413)
        #expect(e.code == "body_too_large")
    }

    @Test func batchErrorCarriesIndex() {
        let r = body(#"[{"session_id":"s","key":"k","value":1},{"session_id":"s","value":1}]"#)
        guard case .failure(let e) = r else { Issue.record("accepted"); return }
        #expect(e.index == 1)
        #expect(e.code == "missing_field")
    }

    @Test func batchOfThree() throws {
        let list = try body(#"[{"session_id":"a","key":"k","value":1},{"session_id":"b","key":"k","value":2},{"user_id":"u","key":"k","value":3}]"#).get()
        #expect(list.map(\.sessionID) == ["a", "b", nil])
        #expect(list[2].userID == "u")
    }

    @Test func ndjsonBody() throws {
        let text = "{\"session_id\":\"a\",\"key\":\"k\",\"value\":1}\n\n{\"session_id\":\"b\",\"key\":\"k\",\"value\":2}\n"
        let list = try body(text, format: .ndjson).get()
        #expect(list.count == 2)
        let bad = body("{\"session_id\":\"a\",\"key\":\"k\",\"value\":1}\nnot json\n", format: .ndjson)
        guard case .failure(let e) = bad else { Issue.record("accepted"); return }
        #expect(e.index == 1)
        #expect(e.code == "invalid_json")
        #expect(EventValidator.format(contentType: "application/x-ndjson") == .ndjson)
        #expect(EventValidator.format(contentType: "application/json; charset=utf-8") == .json)
    }

    @Test func oversizeEventInsideBatchNamesItsIndex() {
        let big = String(repeating: "x", count: 33 * 1024)
        let r = body(#"[{"session_id":"s","key":"k","value":1},{"session_id":"s","key":"k","value":"\#(big)"}]"#)
        guard case .failure(let e) = r else { Issue.record("accepted"); return }
        #expect(e.code == "event_too_large")
        #expect(e.index == 1)
    }

    @Test func pixel() throws {
        let e = try EventValidator.event(fromPixel: ["sid": "s1", "k": "view", "v": "/p", "uid": "u", "via": "ad", "ts": "1700000000000", "eid": "x"], limits: Limits()).get()
        #expect(e.sessionID == "s1")
        #expect(e.key == "view")
        #expect(e.fields["value"] == .string("/p"))
        #expect(e.ts == 1_700_000_000_000)
        #expect(e.eventID == "x")
        #expect(e.via == "ad")
        #expect(errorCode(EventValidator.event(fromPixel: ["sid": "s", "v": "1"], limits: Limits())) == "missing_field")
        #expect(errorCode(EventValidator.event(fromPixel: ["sid": "s", "k": "x"], limits: Limits())) == "missing_field")
        #expect(errorCode(EventValidator.event(fromPixel: ["sid": "s", "k": "x", "v": "1", "ts": "soon"], limits: Limits())) == "invalid_field")
        #expect(errorCode(EventValidator.event(fromPixel: ["k": "x", "v": "1"], limits: Limits())) == "missing_field")
    }

    @Test func datagram() {
        let ok = Array(#"{"session_id":"s","key":"k","value":1}"#.utf8).withUnsafeBytes { EventValidator.event(fromDatagram: $0, limits: Limits()) }
        #expect((try? ok.get()) != nil)
        let big = [UInt8](repeating: 0x20, count: 8 * 1024 + 1)
        #expect(errorCode(big.withUnsafeBytes { EventValidator.event(fromDatagram: $0, limits: Limits()) }) == "datagram_too_large")
        #expect(errorCode(Array("garbage".utf8).withUnsafeBytes { EventValidator.event(fromDatagram: $0, limits: Limits()) }) == "invalid_json")
    }

    @Test func storedEventStampsServerFields() throws {
        let e = try validate(#"{"session_id":"s","key":"k","value":1,"ts":"2023-11-14T22:13:20Z","node":"forged","x":1}"#).get()
        let json = StoredEvent.json(of: e, sessionID: "s", eventID: "E", ts: 1_700_000_000_000, receivedAt: 42, node: "n1", ip: "10.0.0.9")
        guard case .object(let o) = try JSONParser.parse(json) else { Issue.record("not an object"); return }
        #expect(o["ts"] == .number("1700000000000"))
        #expect(o["event_id"] == .string("E"))
        #expect(o["received_at"] == .number("42"))
        #expect(o["node"] == .string("n1"))
        #expect(o["ip"] == .string("10.0.0.9"))
        #expect(o["x"] == .number("1"))
        #expect(o.count(of: "node") == 1)
    }

    @Test func identityOnlyEventGetsResolvedSession() throws {
        let e = try validate(#"{"user_id":"u1","key":"k","value":1}"#).get()
        let json = StoredEvent.json(of: e, sessionID: "s9", eventID: "E", ts: 1, receivedAt: 1, node: "n", ip: "::1")
        guard case .object(let o) = try JSONParser.parse(json) else { Issue.record("not an object"); return }
        #expect(o["session_id"] == .string("s9"))
    }
}

@Suite struct StoredPrefixTests {
    @Test func clientMembersAreCopiedAsSentMinusStampedOnes() throws {
        let text = #"{ "session_id" : "s", "key":"k", "value": {"a" : [1, 2.50]}, "ts":1, "event_id":"e1", "ip":"1.2.3.4", "x":"\u00e9" }"#
        let e = try validate(text).get()
        #expect(String(decoding: e.prefix, as: UTF8.self) == #"{"session_id" : "s","key":"k","value": {"a" : [1, 2.50]},"x":"\u00e9","#)
        #expect(e.ts == 1)
        #expect(e.eventID == "e1")
    }

    @Test func escapedKeysAreRecognised() throws {
        let e = try validate(#"{"session\u005fid":"s","k\u0065y":"k","value":1,"t\u0073":5}"#).get()
        #expect(e.sessionID == "s")
        #expect(e.key == "k")
        #expect(e.ts == 5)
        #expect(!String(decoding: e.prefix, as: UTF8.self).contains("t\\u0073"))
        #expect(errorCode(validate(#"{"session_id":"s","ke\u0079":"k","key":"j","value":1}"#)) == "invalid_field")
    }

    @Test func clientJSONRevalidatesToTheSameEvent() throws {
        for text in [#"{"session_id":"s","key":"k","value":[1,{"b":null}],"ts":"2023-11-14T22:13:20Z","event_id":"E1","via":"mail","attrs":{"level":"fatal"}}"#,
                     #"{"user_id":"u","key":"k","value":1}"#] {
            let e = try validate(text).get()
            let again = try e.clientJSON().withUnsafeBytes { EventValidator.event(fromJSON: $0, limits: Limits()) }.get()
            #expect(again == e)
        }
        var e = try validate(#"{"user_id":"u","key":"k","value":1}"#).get()
        e.resolve(sessionID: "s7")
        let again = try e.clientJSON().withUnsafeBytes { EventValidator.event(fromJSON: $0, limits: Limits()) }.get()
        #expect(again.sessionID == "s7")
        #expect(again.fields["session_id"] == .string("s7"))
    }

    @Test func attrsLevelIsReadFromTheFirstLevelMember() throws {
        #expect(try validate(#"{"session_id":"s","key":"k","value":1,"attrs":{"level":"ERROR","level":"info"}}"#).get().isError)
        #expect(try !validate(#"{"session_id":"s","key":"k","value":1,"attrs":{"level":3}}"#).get().isError)
        #expect(errorCode(validate(#"{"session_id":"s","key":"k","value":1,"attrs":[1]}"#)) == "invalid_field")
    }

    /// The member-name dispatch finds each known field by its slot and nothing else, including
    /// names of the same length and names that differ only in case or by a non-ASCII letter.
    @Test func knownFieldNamesMapToTheirSlotsOnly() {
        for (slot, name) in EventValidator.knownFields.enumerated() {
            #expect(EventValidator.knownSlot(name) == slot, "\(name)")
        }
        for other in ["", "t", "tz", "kez", "vie", "values", "attr", "Value", "user_iD", "eventid_", "Component", "session_ix",
                      "account-id", "terminal_iD", "sessión_id", "received_at", "node", "ip", "session_id "] {
            #expect(EventValidator.knownSlot(other) == -1, "\(other)")
        }
    }
}
