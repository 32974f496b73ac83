/// Writes `JSONValue`s as compact JSON (no whitespace), object keys in stored order.
///
/// Strings escape `"`, `\`, control characters (`\n`, `\r`, `\t`, `\b`, `\f`, others as
/// `\u00XX`) and U+2028/U+2029 (as `\u2028`/`\u2029`, so the output is safe to embed in
/// JavaScript). Numbers are written as their raw text; a `.number` whose text is not a valid
/// JSON number (possible only for values built by hand) is written as `null` so the output
/// is always valid JSON. `JSONParser.parse(write(v)) == v` for every parsed value `v`.
public enum JSONWriter {
    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null:
            out.append(contentsOf: nullBytes)
        case .bool(let b):
            out.append(contentsOf: b ? trueBytes : falseBytes)
        case .number(let text):
            var text = text
            text.withUTF8 { utf8 in
                if isValidNumber(utf8) {
                    out.append(contentsOf: utf8)
                } else {
                    out.append(contentsOf: nullBytes)
                }
            }
        case .string(let s):
            writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            var first = true
            for item in items {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            var first = true
            for field in object.fields {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(field.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(field.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `s` quoted and escaped.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { utf8 in
            out.append(UInt8(ascii: "\""))
            var runStart = 0
            var i = 0
            let n = utf8.count
            while i < n {
                // Skip eight bytes at a time while none needs a look.
                while n - i >= 8 {
                    let w = UnsafeRawBufferPointer(utf8).loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    if mayNeedEscape(w) { break }
                    i += 8
                }
                guard i < n else { break }
                let b = utf8[i]
                var escape: UInt8 = 0        // single-letter escape, or 0
                var unicode: UInt16 = 0xFFFF // \uXXXX escape, or 0xFFFF
                var length = 1
                switch b {
                case UInt8(ascii: "\""): escape = UInt8(ascii: "\"")
                case UInt8(ascii: "\\"): escape = UInt8(ascii: "\\")
                case 0x0A: escape = UInt8(ascii: "n")
                case 0x0D: escape = UInt8(ascii: "r")
                case 0x09: escape = UInt8(ascii: "t")
                case 0x08: escape = UInt8(ascii: "b")
                case 0x0C: escape = UInt8(ascii: "f")
                case 0x00..<0x20: unicode = UInt16(b)
                case 0xE2:
                    // U+2028 is E2 80 A8, U+2029 is E2 80 A9.
                    if i + 2 < n && utf8[i + 1] == 0x80 && (utf8[i + 2] == 0xA8 || utf8[i + 2] == 0xA9) {
                        unicode = utf8[i + 2] == 0xA8 ? 0x2028 : 0x2029
                        length = 3
                    }
                default:
                    break
                }
                if escape == 0 && unicode == 0xFFFF {
                    i += 1
                    continue
                }
                if runStart < i {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
                }
                out.append(UInt8(ascii: "\\"))
                if escape != 0 {
                    out.append(escape)
                } else {
                    out.append(UInt8(ascii: "u"))
                    out.append(hexDigit(unicode >> 12))
                    out.append(hexDigit(unicode >> 8))
                    out.append(hexDigit(unicode >> 4))
                    out.append(hexDigit(unicode))
                }
                i += length
                runStart = i
            }
            if runStart < n {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<n]))
            }
            out.append(UInt8(ascii: "\""))
        }
    }

    /// The compact JSON text of `value`.
    public static func string(_ value: JSONValue) -> String {
        var out: [UInt8] = []
        write(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Helpers

    private static let nullBytes: [UInt8] = Array("null".utf8)
    private static let trueBytes: [UInt8] = Array("true".utf8)
    private static let falseBytes: [UInt8] = Array("false".utf8)

    @inline(__always)
    private static func hexDigit(_ v: UInt16) -> UInt8 {
        let d = UInt8(truncatingIfNeeded: v & 0xF)
        return d < 10 ? d + UInt8(ascii: "0") : d - 10 + UInt8(ascii: "a")
    }

    /// True when any byte of `w` is a quote, a backslash, below 0x20 or 0xE2 (a possible U+2028/U+2029 lead).
    @inline(__always)
    private static func mayNeedEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let backslash = w ^ (ones &* 0x5C)
        let e2 = w ^ (ones &* 0xE2)
        let hasQuote = (quote &- ones) & ~quote
        let hasBackslash = (backslash &- ones) & ~backslash
        let hasE2 = (e2 &- ones) & ~e2
        let hasControl = (w &- ones &* 0x20) & ~w
        return (hasQuote | hasBackslash | hasE2 | hasControl) & highs != 0
    }

    /// Whether `text` matches the RFC 8259 number grammar.
    static func isValidNumber(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        let end = text.count
        var i = 0
        func digit(_ i: Int) -> Bool {
            i < end && text[i] >= UInt8(ascii: "0") && text[i] <= UInt8(ascii: "9")
        }
        if i < end && text[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return false }
        if text[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(i) { i += 1 }
        }
        if i < end && text[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        if i < end && (text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-")) { i += 1 }
            guard digit(i) else { return false }
            while digit(i) { i += 1 }
        }
        return i == end
    }
}
