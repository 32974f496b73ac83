import Testing
import StarlingCore

@Suite struct EnrichmentTests {
    let limits = Limits()

    func event(_ json: String) -> IncomingEvent {
        try! Array(json.utf8).withUnsafeBytes { EventValidator.event(fromJSON: $0, limits: limits) }.get()
    }

    /// The stored client fields, parsed back.
    func fields(_ e: IncomingEvent) -> JSONObject? {
        var text = e.prefix
        if text.last == UInt8(ascii: ",") { text.removeLast() }
        guard case .object(let o)? = try? JSONParser.parse(text + Array("}".utf8)) else { return nil }
        return o
    }

    @Test func attrsAreAddedMadeOrLeftAsTheClientSentThem() {
        let geo = JSONObject([("geo", .object(JSONObject([("country", .string("GB"))]))), ("ua", .object(JSONObject([("device", .string("mobile"))])))])
        var plain = event(#"{"session_id":"s","key":"k","value":1}"#)
        #expect(Enrichment.addAttrs(geo, to: &plain) == ["geo", "ua"])
        #expect(fields(plain)?["attrs"] == .object(geo))
        var withAttrs = event(#"{"session_id":"s","key":"k","value":1,"attrs":{"level":"error","n":[1,{"x":"}"}]}}"#)
        Enrichment.addAttrs(geo, to: &withAttrs)
        guard case .object(let a)? = fields(withAttrs)?["attrs"] else { Issue.record("attrs lost"); return }
        #expect(a.fields.map(\.key) == ["level", "n", "geo", "ua"])
        var empty = event(#"{"session_id":"s","key":"k","value":1,"attrs":{}}"#)
        Enrichment.addAttrs(geo, to: &empty)
        #expect(fields(empty)?["attrs"] == .object(geo))
        var own = event(#"{"session_id":"s","key":"k","value":1,"attrs":{"geo":"client's"}}"#)
        #expect(Enrichment.addAttrs(geo, to: &own) == ["ua"], "a client's attrs.geo is kept, ours left out")
        guard case .object(let o)? = fields(own)?["attrs"] else { Issue.record("attrs lost"); return }
        #expect(o["geo"] == .string("client's") && o.count(of: "geo") == 1)
        // Still an event the validator accepts, with the stamped fields after it.
        #expect(fields(withAttrs)?["key"] == .string("k"))
    }

    @Test func aTerminalIdIsGivenOnlyToEventsWithoutOne() {
        var none = event(#"{"session_id":"s","key":"k","value":1}"#)
        Enrichment.setTerminal("abc", on: &none)
        #expect(none.terminalID == "abc" && fields(none)?["terminal_id"] == .string("abc"))
        var own = event(#"{"session_id":"s","terminal_id":"t","key":"k","value":1}"#)
        Enrichment.setTerminal("abc", on: &own)
        #expect(own.terminalID == "t" && fields(own)?["terminal_id"] == .string("t"))
        var blank = event(#"{"session_id":"s","terminal_id":"","key":"k","value":1}"#)
        Enrichment.setTerminal("abc", on: &blank)
        #expect(fields(blank)?.count(of: "terminal_id") == 1, "never a repeated key")
    }

    @Test func userAgentsByTheRuleTable() {
        let cases: [(String, UserAgent?)] = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
             UserAgent(browser: "Chrome", browserVersion: "120", os: "Windows", osVersion: "10", device: "desktop")),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
             UserAgent(browser: "Safari", browserVersion: "17", os: "iOS", osVersion: "17", device: "mobile")),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
             UserAgent(browser: "Edge", browserVersion: "120", os: "macOS", osVersion: "10.15", device: "desktop")),
            ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
             UserAgent(browser: "Samsung Internet", browserVersion: "23", os: "Android", osVersion: "14", device: "tablet")),
            ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
             UserAgent(browser: "Firefox", browserVersion: "121", os: "Linux", osVersion: nil, device: "desktop")),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
             UserAgent(browser: nil, browserVersion: nil, os: nil, osVersion: nil, device: "bot")),
            ("analytics-python/2.4.0", nil),
            ("python-requests/2.31.0", nil),
            ("", nil),
        ]
        for (ua, want) in cases {
            #expect(UserAgent.parse(ua) == want, "\(ua)")
        }
    }
}

@Suite struct SinkCursorTests {
    @Test func roundTripsAndRefusesTornOrAlteredLines() {
        let c = SinkCursor(segment: 7, offset: 123_456)
        #expect(SinkCursor.decode(c.encoded) == c)
        #expect(SinkCursor.decode(Array(c.encoded.dropLast())) == nil, "torn: no newline")
        var altered = c.encoded
        altered[3] = UInt8(ascii: "8")
        #expect(SinkCursor.decode(altered) == nil, "the CRC catches a changed number")
        #expect(SinkCursor.decode(Array("S1 7\n".utf8)) == nil)
    }
}
