import Testing
import StarlingCore

/// A small seeded generator for reproducible fuzzing (SplitMix64).
private struct FuzzRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}

private func parse(_ text: String, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
    try JSONParser.parse(Array(text.utf8), maxDepth: maxDepth)
}

/// The parse error for `text`, or nil when it parsed.
private func parseError(_ text: String, maxDepth: Int = 64) -> JSONParseError? {
    parseError(Array(text.utf8), maxDepth: maxDepth)
}

private func parseError(_ bytes: [UInt8], maxDepth: Int = 64) -> JSONParseError? {
    do {
        _ = try JSONParser.parse(bytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

@Suite struct JSONParserValidTests {
    @Test func literals() throws {
        #expect(try parse("null") == .null)
        #expect(try parse("true") == .bool(true))
        #expect(try parse("false") == .bool(false))
        #expect(try parse(" \t\r\n null \n") == .null)
    }

    @Test func numbersKeepTheirText() throws {
        for text in ["0", "-0", "1", "-1.50e3", "1E+2", "1e-7", "123456789012345678901234567890", "0.000", "-0.5E0"] {
            #expect(try parse(text) == .number(text))
        }
        #expect(try parse("[1,2.5,-3]") == .array([.number("1"), .number("2.5"), .number("-3")]))
    }

    @Test func strings() throws {
        #expect(try parse(#""""#) == .string(""))
        #expect(try parse(#""hello""#) == .string("hello"))
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\u0041\u00e9\u20AC\u0000""#) == .string("Aé€\u{0}"))
        #expect(try parse("\"héllo wörld €𝄞\"") == .string("héllo wörld €𝄞"))
        // Long strings exercise the eight-bytes-at-a-time scan on either side of an escape.
        let long = String(repeating: "abcdefgh", count: 20)
        #expect(try parse("\"\(long)\"") == .string(long))
        #expect(try parse("\"\(long)\\n\(long)\"") == .string(long + "\n" + long))
        #expect(try parse("\"\(long)é\(long)\"") == .string(long + "é" + long))
    }

    @Test func surrogatePairs() throws {
        #expect(try parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try parse(#""x\ud834\udd1ey""#) == .string("x𝄞y"))
        #expect(try parse(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
    }

    @Test func containers() throws {
        #expect(try parse("[]") == .array([]))
        #expect(try parse("{}") == .object(JSONObject()))
        #expect(try parse("[ [ ] , { } ]") == .array([.array([]), .object(JSONObject())]))
        let v = try parse(#" { "a" : 1 , "b" : [ true , null , { "c" : "d" } ] , "e" : { } } "#)
        let expected = JSONValue.object(JSONObject([
            (key: "a", value: .number("1")),
            (key: "b", value: .array([.bool(true), .null, .object(JSONObject([(key: "c", value: .string("d"))]))])),
            (key: "e", value: .object(JSONObject())),
        ]))
        #expect(v == expected)
    }

    @Test func duplicateKeysKeptInOrder() throws {
        guard case .object(let obj) = try parse(#"{"k":1,"x":2,"k":3}"#) else {
            Issue.record("not an object")
            return
        }
        #expect(obj.fields.map(\.key) == ["k", "x", "k"])
        #expect(obj["k"] == .number("1"))
        #expect(obj.count(of: "k") == 2)
        #expect(obj.count(of: "nope") == 0)
        #expect(obj["nope"] == nil)
    }

    @Test func objectEditing() {
        var obj = JSONObject([(key: "a", value: .number("1")), (key: "b", value: .null), (key: "a", value: .number("2"))])
        obj.set("a", .string("x"))
        #expect(obj.fields.map(\.key) == ["a", "b"])
        #expect(obj["a"] == .string("x"))
        obj.set("c", .bool(true))
        #expect(obj.fields.map(\.key) == ["a", "b", "c"])
        obj.remove("b")
        #expect(obj.fields.map(\.key) == ["a", "c"])
        obj.remove("zzz")
        #expect(obj.fields.count == 2)
        // Equality is ordered.
        let ab = JSONObject([(key: "a", value: .null), (key: "b", value: .null)])
        let ba = JSONObject([(key: "b", value: .null), (key: "a", value: .null)])
        #expect(ab != ba)
        #expect(ab == JSONObject([(key: "a", value: .null), (key: "b", value: .null)]))
    }

    @Test func bufferAndArrayEntryPointsAgree() throws {
        let bytes = Array(#"{"a":[1,"b"]}"#.utf8)
        let viaBuffer = try bytes.withUnsafeBytes { buffer in try JSONParser.parse(buffer) }
        #expect(try JSONParser.parse(bytes) == viaBuffer)
    }
}

@Suite struct JSONParserRejectionTests {
    @Test func emptyInput() {
        #expect(parseError("")?.message.contains("unexpected end of input") == true)
        #expect(parseError("   \n") != nil)
    }

    @Test func trailingCommas() {
        #expect(parseError("[1,]") != nil)
        #expect(parseError(#"{"a":1,}"#) != nil)
        #expect(parseError("[,1]") != nil)
        #expect(parseError("[1,,2]") != nil)
    }

    @Test func comments() {
        #expect(parseError("// c\n1") != nil)
        #expect(parseError("[1 /* c */]") != nil)
        #expect(parseError("1 # c") != nil)
    }

    @Test func nonFiniteNumbers() {
        for text in ["NaN", "Infinity", "-Infinity", "nan", "inf"] {
            #expect(parseError(text) != nil, "\(text)")
        }
    }

    @Test func leadingZeros() {
        let e = parseError("01")
        #expect(e?.message.contains("leading zero") == true)
        #expect(e?.offset == 0)
        #expect(parseError("-007") != nil)
        #expect(parseError("[00]") != nil)
    }

    @Test func malformedNumbers() {
        for text in ["-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-a", "0x10", "1_000", "1.5.2", "--1"] {
            #expect(parseError(text) != nil, "\(text)")
        }
    }

    @Test func singleQuotesAndBareWords() {
        #expect(parseError("'a'") != nil)
        #expect(parseError("{'a':1}") != nil)
        #expect(parseError("{a:1}") != nil)
        #expect(parseError("undefined") != nil)
        #expect(parseError("tru") != nil)
        #expect(parseError("nulll") != nil)
        #expect(parseError("True") != nil)
    }

    @Test func invalidEscapes() {
        for text in [#""\x41""#, #""\'""#, #""\a""#, #""\u12""#, #""\u12G4""#, #""\U0041""#, #""\""#, "\"\\\u{e9}\""] {
            #expect(parseError(text) != nil, "\(text)")
        }
        #expect(parseError(#""ab\q""#)?.offset == 3)
    }

    @Test func loneSurrogates() {
        #expect(parseError(#""\uD83D""#)?.message.contains("surrogate") == true)
        #expect(parseError(#""\uD83Dx""#) != nil)
        #expect(parseError(#""\uD83D\u0041""#) != nil)
        #expect(parseError(#""\uD83D\uD83D""#) != nil)
        #expect(parseError(#""\uDE00""#)?.message.contains("surrogate") == true)
        #expect(parseError(#""\uDE00\uD83D""#) != nil)
        #expect(parseError(#""\uD83D\n""#) != nil)
    }

    @Test func rawControlCharacters() {
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            let e = parseError([0x22, 0x61, c, 0x62, 0x22])
            #expect(e?.offset == 2)
            #expect(e?.message.contains("control character") == true)
        }
        // DEL is allowed.
        #expect(parseError([0x22, 0x7F, 0x22]) == nil)
    }

    @Test func invalidUTF8() {
        let bad: [[UInt8]] = [
            [0x80],                   // lone continuation byte
            [0xC0, 0xAF],             // overlong
            [0xC1, 0xBF],             // overlong
            [0xE0, 0x80, 0xAF],       // overlong three-byte
            [0xED, 0xA0, 0x80],       // encoded surrogate U+D800
            [0xF0, 0x80, 0x80, 0xAF], // overlong four-byte
            [0xF4, 0x90, 0x80, 0x80], // above U+10FFFF
            [0xF5, 0x80, 0x80, 0x80], // invalid lead
            [0xFF],
            [0xC3],                   // truncated
            [0xE2, 0x82],             // truncated
            [0xC3, 0x41],             // bad continuation
        ]
        for seq in bad {
            let e = parseError([0x22] + seq + [0x22])
            #expect(e?.message.contains("invalid UTF-8") == true, "\(seq)")
            #expect(e?.offset == 1)
            // Also after an escape (slow path).
            #expect(parseError([0x22, 0x5C, 0x6E] + seq + [0x22]) != nil)
            // Also after eight plain bytes (word-at-a-time scan).
            #expect(parseError([0x22] + Array("abcdefghij".utf8) + seq + [0x22]) != nil)
        }
        // Valid multi-byte sequences at every boundary.
        let good: [UInt8] = [0x22, 0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xED, 0x9F, 0xBF, 0xEE, 0x80, 0x80,
                             0xF0, 0x90, 0x80, 0x80, 0xF4, 0x8F, 0xBF, 0xBF, 0x22]
        #expect(parseError(good) == nil)
        // Invalid UTF-8 outside strings is just an unexpected byte.
        #expect(parseError([0xEF, 0xBB, 0xBF, 0x31]) != nil)
    }

    @Test func unterminated() {
        #expect(parseError(#""abc"#)?.message.contains("unterminated string") == true)
        #expect(parseError(#""abc\"#) != nil)
        #expect(parseError(#""abc\n"#)?.message.contains("unterminated string") == true)
        #expect(parseError("[1, 2") != nil)
        #expect(parseError(#"{"a": 1"#) != nil)
        #expect(parseError(#"{"a""#) != nil)
        #expect(parseError("[") != nil)
    }

    @Test func structuralErrors() {
        #expect(parseError(#"{"a" 1}"#)?.message.contains("expected ':'") == true)
        #expect(parseError(#"{"a":1 "b":2}"#)?.message.contains("expected ',' or '}'") == true)
        #expect(parseError("[1 2]")?.message.contains("expected ',' or ']'") == true)
        #expect(parseError(#"{1:2}"#) != nil)
        #expect(parseError("[1}") != nil)
        #expect(parseError(#"{"a":1]"#) != nil)
        #expect(parseError("]") != nil)
    }

    @Test func trailingData() {
        let e = parseError("1 2")
        #expect(e?.offset == 2)
        #expect(e?.message == "unexpected character '2' after the JSON value at byte 2")
        #expect(parseError("{} {}") != nil)
        #expect(parseError("null x") != nil)
        #expect(parseError("[]]") != nil)
        #expect(parseError("1\u{0}") != nil)
    }

    @Test func messagesNameTheByte() {
        let e = parseError("[1, x]")
        #expect(e?.offset == 4)
        #expect(e?.message == "unexpected character 'x' at byte 4")
        #expect(e?.description == e?.message)
        #expect(parseError([0x5B, 0x01])?.message == "unexpected byte 0x01 at byte 1")
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(parseError(ok) == nil)
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let e = parseError(deep)
        #expect(e?.message == "nesting deeper than 64 at byte 64")
        #expect(e?.offset == 64)
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(parseError(objects)?.message.hasPrefix("nesting deeper than 64") == true)
        // Custom limits.
        #expect(parseError("[[1]]", maxDepth: 2) == nil)
        #expect(parseError("[[1]]", maxDepth: 1) != nil)
        #expect(parseError("1", maxDepth: 0) == nil)
        #expect(parseError("[]", maxDepth: 0) != nil)
        // Siblings do not add up.
        #expect(parseError("[[1],[2],[[3]]]", maxDepth: 3) == nil)
        // Very deep input fails cleanly (no recursion), even with a large limit.
        let huge = String(repeating: "[", count: 100_000)
        #expect(parseError(huge)?.message.hasPrefix("nesting deeper") == true)
        #expect(parseError(huge, maxDepth: 1_000_000)?.message == "nesting deeper than 1024 at byte 1024")
        // Closed deep nesting is refused above the ceiling too (it would be destroyed recursively).
        let closed = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
        #expect(parseError(closed, maxDepth: .max)?.message.hasPrefix("nesting deeper than 1024") == true)
        let atCeiling = String(repeating: "[", count: 1024) + String(repeating: "]", count: 1024)
        #expect(parseError(atCeiling, maxDepth: .max) == nil)
        #expect(JSONParser.depthCeiling == 1024)
    }
}

@Suite struct JSONWriterTests {
    @Test func compactOutput() {
        let v = JSONValue.object(JSONObject([
            (key: "b", value: .array([.number("1"), .number("-2.5e3"), .bool(false), .null])),
            (key: "a", value: .string("x")),
            (key: "b", value: .object(JSONObject())),
        ]))
        #expect(JSONWriter.string(v) == #"{"b":[1,-2.5e3,false,null],"a":"x","b":{}}"#)
        #expect(JSONWriter.string(.array([])) == "[]")
    }

    @Test func escapes() {
        #expect(JSONWriter.string(.string("a\"b\\c/d")) == #""a\"b\\c/d""#)
        #expect(JSONWriter.string(.string("\n\r\t\u{8}\u{c}")) == #""\n\r\t\b\f""#)
        #expect(JSONWriter.string(.string("\u{0}\u{1}\u{1f}\u{7f}")) == "\"\\u0000\\u0001\\u001f\u{7f}\"")
        #expect(JSONWriter.string(.string("x\u{2028}y\u{2029}z")) == #""x\u2028y\u2029z""#)
        #expect(JSONWriter.string(.string("é€😀\u{2027}\u{202A}")) == "\"é€😀\u{2027}\u{202A}\"")
        var out: [UInt8] = Array("prefix:".utf8)
        JSONWriter.writeString("k", into: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"prefix:"k""#)
    }

    @Test func invalidNumberTextIsWrittenAsNull() {
        #expect(JSONWriter.string(.array([.number("NaN"), .number(""), .number("01"), .number("1.")])) == "[null,null,null,null]")
        #expect(JSONWriter.string(.number("-0.0e-0")) == "-0.0e-0")
    }

    @Test func roundTripOfParsedDocument() throws {
        let text = #"{"s":"a\u2028b\ud83d\ude00\n\u0001","n":[0,-1.5E+10,3],"o":{"k":{"k":[]}},"t":true,"z":null}"#
        let v = try parse(text)
        let written = JSONWriter.string(v)
        #expect(try parse(written) == v)
        #expect(JSONWriter.string(try parse(written)) == written)
    }

    @Test func roundTripOfRandomValues() throws {
        var rng = FuzzRNG(seed: 42)
        for _ in 0..<300 {
            let v = randomValue(&rng, depth: 0)
            var out: [UInt8] = []
            JSONWriter.write(v, into: &out)
            #expect(try JSONParser.parse(out) == v)
        }
    }
}

private func randomString(_ rng: inout FuzzRNG) -> String {
    let pool: [Unicode.Scalar] = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é",
                                  "€", "\u{2028}", "\u{2029}", "😀", "\u{10FFFF}", "\u{FFFD}"]
    var s = String.UnicodeScalarView()
    for _ in 0..<rng.below(12) { s.append(pool[rng.below(pool.count)]) }
    return String(s)
}

private func randomValue(_ rng: inout FuzzRNG, depth: Int) -> JSONValue {
    let numbers = ["0", "-0", "1", "-12.5", "3e10", "1E-2", "0.001", "98765432109876543210"]
    switch rng.below(depth > 4 ? 4 : 6) {
    case 0: return .null
    case 1: return .bool(rng.below(2) == 0)
    case 2: return .number(numbers[rng.below(numbers.count)])
    case 3: return .string(randomString(&rng))
    case 4: return .array((0..<rng.below(5)).map { _ in randomValue(&rng, depth: depth + 1) })
    default:
        return .object(JSONObject((0..<rng.below(5)).map { _ in
            (key: randomString(&rng), value: randomValue(&rng, depth: depth + 1))
        }))
    }
}

/// Seeded byte mutations of a JSON document: replaced, inserted, removed, cut or repeated bytes,
/// biased towards bytes that matter to JSON.
private func mutateJSON(_ doc: inout [UInt8], times: Int, using rng: inout FuzzRNG) {
    let interesting: [UInt8] = Array(#"{}[]",:\u0123456789eE+-.tfn"#.utf8) + [0x00, 0x1F, 0x80, 0xBF, 0xC3, 0xED, 0xF4, 0xFF, 0x20]
    for _ in 0..<times {
        let pos = rng.below(doc.count + 1)
        let byte = rng.below(3) == 0 ? UInt8(truncatingIfNeeded: rng.next()) : interesting[rng.below(interesting.count)]
        switch rng.below(5) {
        case 0 where pos < doc.count: doc[pos] = byte
        case 1: doc.insert(byte, at: pos)
        case 2 where pos < doc.count: doc.remove(at: pos)
        case 3: doc.removeSubrange(pos...)
        default: doc.insert(contentsOf: doc[pos...].prefix(rng.below(8)), at: pos)
        }
    }
}

@Suite struct JSONFuzzTests {
    /// Random byte mutations of valid documents must never trap; whatever parses must round-trip.
    @Test func seededMutationsNeverTrap() throws {
        var rng = FuzzRNG(seed: 0x5EED_1234)
        let seeds: [[UInt8]] = [
            #"{"key":"signup","session_id":"s-1","ts":"2026-11-22T10:00:00Z","attrs":{"n":[1,2.5e-3,-0],"ok":true,"x":null}}"#,
            #"[{"a":"\u00e9\ud83d\ude00\n"},{"b":[[],{}]},"plain",12345678901234567890]"#,
            "\"h\u{e9}llo \u{20ac} \u{1F600}\"",
        ].map { Array($0.utf8) }
        var parsedCount = 0
        for _ in 0..<2_000 {
            var doc = seeds[rng.below(seeds.count)]
            mutateJSON(&doc, times: 1 + rng.below(4), using: &rng)
            do {
                let v = try JSONParser.parse(doc, maxDepth: 1 + rng.below(6))
                parsedCount += 1
                #expect(try JSONParser.parse(Array(JSONWriter.string(v).utf8)) == v)
            } catch {
                #expect(error.offset >= 0 && error.offset <= doc.count)
                #expect(!error.message.isEmpty)
            }
            _ = try? JSONParser.parseTopLevelElements(doc)
        }
        #expect(parsedCount > 0)
    }
}

@Suite struct JSONTopLevelElementsTests {
    @Test func arraySpans() throws {
        let text = #"  [ {"a":1} , 2,"xyz"  ,[ 1 , 2 ] ]  "#
        let r = try JSONParser.parseTopLevelElements(Array(text.utf8))
        #expect(r.isArray)
        #expect(r.elements.map(\.byteCount) == [7, 1, 5, 9])
        #expect(r.elements.map(\.value) == [
            .object(JSONObject([(key: "a", value: .number("1"))])), .number("2"), .string("xyz"),
            .array([.number("1"), .number("2")]),
        ])
    }

    @Test func singleValueSpan() throws {
        let r = try JSONParser.parseTopLevelElements(Array("\n {\"k\": \"v\"} \n".utf8))
        #expect(!r.isArray)
        #expect(r.elements.count == 1)
        #expect(r.elements[0].byteCount == 10)
        let s = try JSONParser.parseTopLevelElements(Array("\"abc\"".utf8))
        #expect(!s.isArray)
        #expect(s.elements[0].byteCount == 5)
    }

    @Test func spansCountBytesNotCharacters() throws {
        let r = try JSONParser.parseTopLevelElements(Array("[\"é😀\"]".utf8))
        #expect(r.elements[0].byteCount == 8)
    }

    @Test func emptyArray() throws {
        let r = try JSONParser.parseTopLevelElements(Array(" [ ] ".utf8))
        #expect(r.isArray)
        #expect(r.elements.isEmpty)
    }

    @Test func bufferEntryPoint() throws {
        let bytes = Array("[1,2]".utf8)
        let r = try bytes.withUnsafeBytes { try JSONParser.parseTopLevelElements($0) }
        #expect(r.elements.map(\.byteCount) == [1, 1])
    }

    @Test func errors() {
        for text in ["[1,]", "[1 2]", "[1,2", "[", "", "  ", "[1]]", "[1] x", "[,]", "{\"a\":}"] {
            var failed = false
            do { _ = try JSONParser.parseTopLevelElements(Array(text.utf8)) } catch { failed = true }
            #expect(failed, "\(text)")
        }
    }

    @Test func depthIncludesTheOuterArray() throws {
        #expect(throws: JSONParseError.self) { try JSONParser.parseTopLevelElements(Array("[[1]]".utf8), maxDepth: 1) }
        #expect(throws: JSONParseError.self) { try JSONParser.parseTopLevelElements(Array("[1]".utf8), maxDepth: 0) }
        let r = try JSONParser.parseTopLevelElements(Array("[[1],{}]".utf8), maxDepth: 2)
        #expect(r.elements.count == 2)
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSONParser.parseTopLevelElements(Array(deep.utf8)).elements.count == 1)
        let tooDeep = "[" + deep + "]"
        #expect(throws: JSONParseError.self) { try JSONParser.parseTopLevelElements(Array(tooDeep.utf8)) }
    }
}

@Suite struct JSONScanTests {
    /// The scanner is the ingest path's validator: on every input it must accept exactly what the
    /// tree parser accepts, fail with the same message, and report the same element spans.
    @Test func scannerAgreesWithTheParserUnderMutation() throws {
        var rng = FuzzRNG(seed: 0x5CA1_AB1E)
        let seeds: [[UInt8]] = [
            #"[{"session_id":"s-1","key":"k","value":{"p":[1,2.5e-3,-0,{"q":"\u00e9"}]},"attrs":{"level":"error"}},{"b":[[],{}]},"x",7]"#,
            #"{"key":"signup","session_id":"s-1","ts":"2026-11-22T10:00:00Z","a":{"n":[true,false,null]}}"#,
            #"[{"k\"ey":"v\\","e":"\ud83d\ude00\n\t\/"}, [ [ [ ] ] ] ]"#,
        ].map { Array($0.utf8) }
        var accepted = 0, rejected = 0
        for _ in 0..<4_000 {
            var doc = seeds[rng.below(seeds.count)]
            mutateJSON(&doc, times: rng.below(4), using: &rng)
            let depth = 1 + rng.below(6)
            let parsed: Result<(isArray: Bool, elements: [(value: JSONValue, byteCount: Int)]), JSONParseError> =
                Result { () throws(JSONParseError) in try JSONParser.parseTopLevelElements(doc, maxDepth: depth) }
            let scanned = doc.withUnsafeBytes { buf in
                Result { () throws(JSONParseError) in try JSONParser.scanTopLevelElements(buf, maxDepth: depth) }
            }
            switch (parsed, scanned) {
            case (.success(let p), .success(let s)):
                accepted += 1
                #expect(p.isArray == s.isArray)
                #expect(p.elements.map(\.byteCount) == s.elements.map(\.range.count))
                for (pe, se) in zip(p.elements, s.elements) {
                    // Each member's span re-parses to the member the tree parser saw.
                    if case .object(let obj) = pe.value, case .object(_, let members) = se {
                        #expect(obj.fields.map(\.key) == members.map(\.key))
                        for (field, m) in zip(obj.fields, members) {
                            let v = try JSONParser.parse(Array(doc[m.valueStart..<m.end]), maxDepth: 64)
                            #expect(v == field.value)
                        }
                    } else if case .object = pe.value {
                        Issue.record("the scanner missed an object")
                    }
                }
            case (.failure(let p), .failure(let s)):
                rejected += 1
                #expect(p.message == s.message, "\(String(decoding: doc, as: UTF8.self))")
            default:
                Issue.record("parser and scanner disagree on \(String(decoding: doc, as: UTF8.self))")
            }
        }
        #expect(accepted > 100 && rejected > 100)
    }

    @Test func deepNestingBeyondSixtyFourLevels() throws {
        let deep = "{\"a\":" + String(repeating: "[{\"b\":", count: 70) + "1" + String(repeating: "}]", count: 70) + "}"
        let span = try Array(deep.utf8).withUnsafeBytes { try JSONParser.scan($0, maxDepth: 200) }
        guard case .object(let r, let members) = span else { Issue.record("not an object"); return }
        #expect(r.count == deep.utf8.count)
        #expect(members.map(\.key) == ["a"])
        #expect(throws: JSONParseError.self) { try Array(deep.utf8).withUnsafeBytes { try JSONParser.scan($0, maxDepth: 100) } }
        let unbalanced = "{\"a\":" + String(repeating: "[{\"b\":", count: 70) + "1" + String(repeating: "}]", count: 69) + "}}"
        #expect(throws: JSONParseError.self) { try Array(unbalanced.utf8).withUnsafeBytes { try JSONParser.scan($0, maxDepth: 200) } }
    }

    @Test func decodeStringHandlesEscapes() {
        let text = Array(#"x"a\"b\u00e9\ud83d\ude00""#.utf8)
        #expect(text.withUnsafeBytes { JSONParser.decodeString($0, at: 1) } == "a\"b\u{e9}\u{1F600}")
        #expect(text.withUnsafeBytes { JSONParser.decodeString($0, at: 0) } == nil)
    }
}
