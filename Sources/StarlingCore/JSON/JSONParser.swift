/// A strict RFC 8259 JSON parser working directly on bytes.
///
/// - No trailing commas, comments, NaN/Infinity, leading zeros, single quotes or
///   non-standard escapes.
/// - `\uXXXX` escapes are decoded, surrogate pairs combined; a lone surrogate is an error.
/// - Strings must be valid UTF-8 and must not hold raw control characters (< 0x20).
/// - Containers may nest at most `maxDepth` levels (the top-level array or object is level 1).
///   `maxDepth` is capped at `depthCeiling` (1024): values are destroyed, compared and written
///   recursively, so unbounded nesting could exhaust a thread's stack later on.
/// - Numbers are validated and kept as their exact text.
///
/// The parser is iterative (no recursion), so neither deep input nor a large
/// `maxDepth` can exhaust the stack. It never traps on any input.
public enum JSONParser {
    /// The largest nesting depth ever accepted, whatever `maxDepth` says.
    public static let depthCeiling = 1024

    /// Parses exactly one JSON value (surrounding whitespace allowed, anything else after it is an error).
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth)
        scanner.skipWhitespace()
        let value = try scanner.parseValue(baseDepth: 0)
        try scanner.expectEnd()
        return value
    }

    /// Parses exactly one JSON value (surrounding whitespace allowed, anything else after it is an error).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { buffer in
            do throws(JSONParseError) {
                return .success(try parse(buffer, maxDepth: maxDepth))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// For batch bodies: if the top-level value is an array, returns each element with the number of bytes its
    /// text spans in the input (from its first to its last byte, excluding surrounding whitespace/commas);
    /// if it is any other value, returns that single value with its span. Used to enforce a per-event size limit.
    ///
    /// Elements of a top-level array are at depth 2 and below, so `maxDepth` applies to the whole document.
    public static func parseTopLevelElements(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64
    ) throws(JSONParseError) -> (isArray: Bool, elements: [(value: JSONValue, byteCount: Int)]) {
        try topLevel(bytes, maxDepth: maxDepth) { (scanner: inout JSONScanner, baseDepth: Int) throws(JSONParseError) in
            scanner.skipWhitespace()
            let start = scanner.index
            let value = try scanner.parseValue(baseDepth: baseDepth)
            return (value: value, byteCount: scanner.index - start)
        }
    }

    /// The top-level walk both entry points share: the elements of a top-level array, or the
    /// single top-level value, each read by `element` at the given base depth.
    fileprivate static func topLevel<T>(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int,
        _ element: (inout JSONScanner, Int) throws(JSONParseError) -> T
    ) throws(JSONParseError) -> (isArray: Bool, elements: [T]) {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth)
        scanner.skipWhitespace()
        guard scanner.index < scanner.count else { throw scanner.endOfInput() }
        guard bytes[scanner.index] == UInt8(ascii: "[") else {
            let value = try element(&scanner, 0)
            try scanner.expectEnd()
            return (false, [value])
        }
        if maxDepth < 1 { throw scanner.tooDeep(at: scanner.index) }
        scanner.index += 1
        var elements: [T] = []
        scanner.skipWhitespace()
        if scanner.index < scanner.count && bytes[scanner.index] == UInt8(ascii: "]") {
            scanner.index += 1
        } else {
            while true {
                elements.append(try element(&scanner, 1))
                scanner.skipWhitespace()
                guard scanner.index < scanner.count else { throw scanner.endOfInput() }
                let c = bytes[scanner.index]
                if c == UInt8(ascii: ",") {
                    scanner.index += 1
                } else if c == UInt8(ascii: "]") {
                    scanner.index += 1
                    break
                } else {
                    throw scanner.unexpected(expecting: "',' or ']'")
                }
            }
        }
        try scanner.expectEnd()
        return (true, elements)
    }

    /// Same as the buffer variant, for an array of bytes.
    public static func parseTopLevelElements(
        _ bytes: [UInt8], maxDepth: Int = 64
    ) throws(JSONParseError) -> (isArray: Bool, elements: [(value: JSONValue, byteCount: Int)]) {
        typealias Parsed = (isArray: Bool, elements: [(value: JSONValue, byteCount: Int)])
        let result: Result<Parsed, JSONParseError> = bytes.withUnsafeBytes { buffer in
            do throws(JSONParseError) {
                return .success(try parseTopLevelElements(buffer, maxDepth: maxDepth))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

// MARK: - Spans (validate without building values)

/// One member of a scanned object: its key (decoded) and where its text lies in the input.
public struct JSONMemberSpan: Sendable, Equatable {
    public var key: String
    /// Offset of the key's opening quote.
    public var start: Int
    /// Offset of the value's first byte.
    public var valueStart: Int
    /// Offset just after the value's last byte.
    public var end: Int

    public init(key: String, start: Int, valueStart: Int, end: Int) {
        self.key = key
        self.start = start
        self.valueStart = valueStart
        self.end = end
    }
}

/// A scanned value: an object with its members, or anything else, by byte range.
public enum JSONSpan: Sendable, Equatable {
    case object(Range<Int>, members: [JSONMemberSpan])
    case other(Range<Int>)

    public var range: Range<Int> {
        switch self {
        case .object(let r, _), .other(let r): return r
        }
    }
}

extension JSONParser {
    /// The ingest fast path: validates the whole document by exactly the rules (and with the
    /// same error messages) of `parseTopLevelElements`, but builds no values. Each top-level
    /// element (or the single top-level value) comes back as a byte range, and objects with the
    /// ranges of their members, so a caller decodes only the fields it reads and copies the rest
    /// as they were sent.
    public static func scanTopLevelElements(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64
    ) throws(JSONParseError) -> (isArray: Bool, elements: [JSONSpan]) {
        try topLevel(bytes, maxDepth: maxDepth) { (scanner: inout JSONScanner, baseDepth: Int) throws(JSONParseError) in
            try scanner.scanElement(baseDepth: baseDepth)
        }
    }

    /// Validates exactly one value (surrounding whitespace allowed) without building it.
    public static func scan(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONParseError) -> JSONSpan {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth)
        let span = try scanner.scanElement(baseDepth: 0)
        try scanner.expectEnd()
        return span
    }

    /// Decodes the JSON string whose opening quote is at `offset` of text already validated.
    public static func decodeString(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> String? {
        var scanner = JSONScanner(bytes: bytes, maxDepth: 1)
        scanner.index = offset
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\""), let s = try? scanner.parseString() else { return nil }
        return s
    }
}

// MARK: - Scanner

private enum ASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
}

/// One open container while parsing, accumulating its elements.
private struct JSONFrame {
    var isObject: Bool
    var items: [JSONValue] = []
    var fields: [(key: String, value: JSONValue)] = []
    /// For objects: the key whose value is being parsed.
    var key: String = ""
}

fileprivate struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    let count: Int
    let maxDepth: Int
    var index: Int = 0

    /// The containers being parsed, innermost last.
    private var frames: [JSONFrame] = []
    /// Reused buffer for strings that contain escapes.
    private var scratch: [UInt8] = []

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.count = bytes.count
        self.maxDepth = min(maxDepth, JSONParser.depthCeiling)
    }

    // MARK: Errors

    func endOfInput() -> JSONParseError {
        JSONParseError(offset: count, message: "unexpected end of input at byte \(count)")
    }

    func tooDeep(at offset: Int) -> JSONParseError {
        JSONParseError(offset: offset, message: "nesting deeper than \(maxDepth) at byte \(offset)")
    }

    static func describe(_ b: UInt8) -> String {
        if b >= 0x21 && b <= 0x7E { return "character '\(Character(Unicode.Scalar(b)))'" }
        let hex = String(b, radix: 16, uppercase: true)
        return "byte 0x\(hex.count < 2 ? "0" + hex : hex)"
    }

    /// An error for the byte at `index` (or end of input when there is none).
    func unexpected(expecting: String? = nil) -> JSONParseError {
        guard index < count else { return endOfInput() }
        let what = JSONScanner.describe(bytes[index])
        if let expecting {
            return JSONParseError(offset: index, message: "expected \(expecting) but found \(what) at byte \(index)")
        }
        return JSONParseError(offset: index, message: "unexpected \(what) at byte \(index)")
    }

    func fail(_ what: String, at offset: Int) -> JSONParseError {
        JSONParseError(offset: offset, message: "\(what) at byte \(offset)")
    }

    // MARK: Structure

    mutating func skipWhitespace() {
        while index < count {
            let b = bytes[index]
            if b == ASCII.space || b == ASCII.newline || b == ASCII.carriageReturn || b == ASCII.tab {
                index += 1
            } else {
                return
            }
        }
    }

    /// After the value: only whitespace may follow.
    mutating func expectEnd() throws(JSONParseError) {
        skipWhitespace()
        if index < count {
            let what = JSONScanner.describe(bytes[index])
            throw JSONParseError(offset: index, message: "unexpected \(what) after the JSON value at byte \(index)")
        }
    }

    /// Parses one complete value starting at `index` (leading whitespace allowed).
    /// `baseDepth` is the number of containers already open around it.
    ///
    /// Long on purpose: an explicit stack instead of recursion (a hostile body cannot exhaust the
    /// thread's stack), so objects and arrays share one loop and its stack of open containers.
    mutating func parseValue(baseDepth: Int) throws(JSONParseError) -> JSONValue {
        frames.removeAll(keepingCapacity: true)
        var value: JSONValue

        nextValue: while true {
            skipWhitespace()
            guard index < count else { throw endOfInput() }
            let c = bytes[index]
            switch c {
            case ASCII.openBrace:
                if baseDepth + frames.count + 1 > maxDepth { throw tooDeep(at: index) }
                index += 1
                skipWhitespace()
                if index < count && bytes[index] == ASCII.closeBrace {
                    index += 1
                    value = .object(JSONObject())
                } else {
                    let key = try parseKeyAndColon()
                    openFrame(isObject: true, key: key)
                    continue nextValue
                }
            case ASCII.openBracket:
                if baseDepth + frames.count + 1 > maxDepth { throw tooDeep(at: index) }
                index += 1
                skipWhitespace()
                if index < count && bytes[index] == ASCII.closeBracket {
                    index += 1
                    value = .array([])
                } else {
                    openFrame(isObject: false, key: "")
                    continue nextValue
                }
            case ASCII.quote:
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try parseLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try parseLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try parseLiteral("null")
                value = .null
            case ASCII.minus, ASCII.zero...ASCII.nine:
                value = .number(try parseNumber())
            default:
                throw unexpected()
            }

            // A value is complete: hand it to the enclosing container, closing containers as they end.
            while !frames.isEmpty {
                let top = frames.count - 1
                let isObject = frames[top].isObject
                // The first element reserves room for a typical event's worth; larger containers grow by doubling.
                if isObject {
                    if frames[top].fields.isEmpty { frames[top].fields.reserveCapacity(8) }
                    frames[top].fields.append((key: frames[top].key, value: value))
                } else {
                    if frames[top].items.isEmpty { frames[top].items.reserveCapacity(4) }
                    frames[top].items.append(value)
                }
                skipWhitespace()
                guard index < count else { throw endOfInput() }
                let c = bytes[index]
                if c == ASCII.comma {
                    index += 1
                    if isObject {
                        skipWhitespace()
                        frames[top].key = try parseKeyAndColon()
                    }
                    continue nextValue
                }
                if isObject {
                    guard c == ASCII.closeBrace else { throw unexpected(expecting: "',' or '}'") }
                    index += 1
                    value = .object(JSONObject(frames.removeLast().fields))
                } else {
                    guard c == ASCII.closeBracket else { throw unexpected(expecting: "',' or ']'") }
                    index += 1
                    value = .array(frames.removeLast().items)
                }
            }
            return value
        }
    }

    private mutating func openFrame(isObject: Bool, key: String) {
        frames.append(JSONFrame(isObject: isObject, key: key))
    }

    /// Parses `"key"` followed by `:` (whitespace allowed around the colon).
    private mutating func parseKeyAndColon() throws(JSONParseError) -> String {
        guard index < count else { throw endOfInput() }
        guard bytes[index] == ASCII.quote else { throw unexpected(expecting: "a string key") }
        let key = try parseString()
        skipWhitespace()
        guard index < count else { throw endOfInput() }
        guard bytes[index] == ASCII.colon else { throw unexpected(expecting: "':'") }
        index += 1
        return key
    }

    private mutating func parseLiteral(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        let w = word.utf8Start
        for k in 0..<n {
            guard index < count else { throw endOfInput() }
            guard bytes[index] == w[k] else { throw unexpected() }
            index += 1
        }
    }

    // MARK: Validating without building

    /// One value at `index` (leading whitespace allowed); an object's members are recorded.
    mutating func scanElement(baseDepth: Int) throws(JSONParseError) -> JSONSpan {
        skipWhitespace()
        guard index < count else { throw endOfInput() }
        let start = index
        guard bytes[index] == ASCII.openBrace else {
            try skipValue(baseDepth: baseDepth)
            return .other(start..<index)
        }
        if baseDepth + 1 > maxDepth { throw tooDeep(at: index) }
        index += 1
        skipWhitespace()
        var members: [JSONMemberSpan] = []
        if index < count && bytes[index] == ASCII.closeBrace {
            index += 1
            return .object(start..<index, members: members)
        }
        members.reserveCapacity(10)
        while true {
            let keyStart = index
            let key = try parseKeyAndColon()
            skipWhitespace()
            let valueStart = index
            try skipValue(baseDepth: baseDepth + 1)
            members.append(JSONMemberSpan(key: key, start: keyStart, valueStart: valueStart, end: index))
            skipWhitespace()
            guard index < count else { throw endOfInput() }
            let c = bytes[index]
            if c == ASCII.comma {
                index += 1
                skipWhitespace()
                continue
            }
            guard c == ASCII.closeBrace else { throw unexpected(expecting: "',' or '}'") }
            index += 1
            return .object(start..<index, members: members)
        }
    }

    /// `parseValue` without the values: the same checks, the same errors, no allocation for
    /// the first 64 levels of nesting.
    mutating func skipValue(baseDepth: Int) throws(JSONParseError) {
        var depth = 0
        var kinds: UInt64 = 0              // bit d: the container at depth d+1 is an object
        var deeper: [Bool] = []            // kinds beyond 64 levels
        func isObject(_ d: Int) -> Bool { d < 64 ? (kinds >> UInt64(d)) & 1 == 1 : deeper[d - 64] }

        nextValue: while true {
            skipWhitespace()
            guard index < count else { throw endOfInput() }
            let c = bytes[index]
            switch c {
            case ASCII.openBrace, ASCII.openBracket:
                if baseDepth + depth + 1 > maxDepth { throw tooDeep(at: index) }
                let object = c == ASCII.openBrace
                index += 1
                skipWhitespace()
                if index < count && bytes[index] == (object ? ASCII.closeBrace : ASCII.closeBracket) {
                    index += 1
                } else {
                    if object { try skipKeyAndColon() }
                    if depth < 64 {
                        if object { kinds |= 1 << UInt64(depth) } else { kinds &= ~(1 << UInt64(depth)) }
                    } else {
                        deeper.append(object)
                    }
                    depth += 1
                    continue nextValue
                }
            case ASCII.quote:
                try skipString()
            case UInt8(ascii: "t"):
                try parseLiteral("true")
            case UInt8(ascii: "f"):
                try parseLiteral("false")
            case UInt8(ascii: "n"):
                try parseLiteral("null")
            case ASCII.minus, ASCII.zero...ASCII.nine:
                index = try numberEnd()
            default:
                throw unexpected()
            }

            while depth > 0 {
                let object = isObject(depth - 1)
                skipWhitespace()
                guard index < count else { throw endOfInput() }
                let c = bytes[index]
                if c == ASCII.comma {
                    index += 1
                    if object {
                        skipWhitespace()
                        try skipKeyAndColon()
                    }
                    continue nextValue
                }
                if object {
                    guard c == ASCII.closeBrace else { throw unexpected(expecting: "',' or '}'") }
                } else {
                    guard c == ASCII.closeBracket else { throw unexpected(expecting: "',' or ']'") }
                }
                index += 1
                depth -= 1
                if depth >= 64 { deeper.removeLast() }
            }
            return
        }
    }

    private mutating func skipKeyAndColon() throws(JSONParseError) {
        guard index < count else { throw endOfInput() }
        guard bytes[index] == ASCII.quote else { throw unexpected(expecting: "a string key") }
        try skipString()
        skipWhitespace()
        guard index < count else { throw endOfInput() }
        guard bytes[index] == ASCII.colon else { throw unexpected(expecting: "':'") }
        index += 1
    }

    /// `parseString` without the string.
    private mutating func skipString() throws(JSONParseError) {
        _ = try parseString(building: false)
    }

    // MARK: Numbers

    @inline(__always)
    private func isDigit(at i: Int) -> Bool {
        i < count && bytes[i] >= ASCII.zero && bytes[i] <= ASCII.nine
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = index
        index = try numberEnd()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    /// Validates the number at `index` and returns the offset after it (errors move `index` to the fault).
    private mutating func numberEnd() throws(JSONParseError) -> Int {
        let start = index
        var i = index
        if bytes[i] == ASCII.minus { i += 1 }
        guard i < count else { throw endOfInput() }
        let first = bytes[i]
        if first == ASCII.zero {
            i += 1
            if isDigit(at: i) { throw fail("leading zero in number", at: start) }
        } else if first > ASCII.zero && first <= ASCII.nine {
            i += 1
            while isDigit(at: i) { i += 1 }
        } else {
            index = i
            throw unexpected(expecting: "a digit")
        }
        if i < count && bytes[i] == ASCII.dot {
            i += 1
            guard isDigit(at: i) else {
                index = i
                throw unexpected(expecting: "a digit after the decimal point")
            }
            while isDigit(at: i) { i += 1 }
        }
        if i < count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < count && (bytes[i] == ASCII.plus || bytes[i] == ASCII.minus) { i += 1 }
            guard isDigit(at: i) else {
                index = i
                throw unexpected(expecting: "a digit in the exponent")
            }
            while isDigit(at: i) { i += 1 }
        }
        return i
    }

    // MARK: Strings

    /// Parses a string whose opening quote is at `index` (only validates it, returning "",
    /// when not `building`).
    mutating func parseString(building: Bool = true) throws(JSONParseError) -> String {
        let open = index
        let start = index + 1
        var i = start
        while true {
            // Skip eight plain ASCII bytes at a time (no quote, backslash, control or non-ASCII byte).
            while i + 8 <= count {
                let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if JSONScanner.needsAttention(w) { break }
                i += 8
            }
            guard i < count else { throw fail("unterminated string starting", at: open) }
            let b = bytes[i]
            if b == ASCII.quote {
                index = i + 1
                return building ? String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self) : ""
            } else if b == ASCII.backslash {
                return try parseEscapedString(open: open, start: start, firstEscape: i, building: building)
            } else if b < 0x20 {
                throw fail("unescaped control character \(JSONScanner.describe(b)) in string", at: i)
            } else if b < 0x80 {
                i += 1
            } else {
                i = try validateUTF8Sequence(at: i)
            }
        }
    }

    /// True when any byte of `w` is a quote, a backslash, below 0x20 or at least 0x80.
    @inline(__always)
    private static func needsAttention(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = w ^ (ones &* 0x22)
        let backslash = w ^ (ones &* 0x5C)
        let hasQuote = (quote &- ones) & ~quote
        let hasBackslash = (backslash &- ones) & ~backslash
        let hasControl = (w &- ones &* 0x20) & ~w
        return ((hasQuote | hasBackslash | hasControl) & highs) | (w & highs) != 0
    }

    /// The slow path for strings containing escapes: decodes into `scratch` (or only
    /// validates, returning "", when not `building`).
    private mutating func parseEscapedString(open: Int, start: Int, firstEscape: Int, building: Bool) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        if building { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<firstEscape])) }
        var i = firstEscape
        while i < count {
            let b = bytes[i]
            if b == ASCII.quote {
                index = i + 1
                return building ? String(decoding: scratch, as: UTF8.self) : ""
            } else if b == ASCII.backslash {
                guard i + 1 < count else { break }
                let e = bytes[i + 1]
                switch e {
                case ASCII.quote, ASCII.backslash, ASCII.slash, UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    if building { scratch.append(JSONScanner.unescaped(e)) }
                    i += 2
                case UInt8(ascii: "u"):
                    i = try decodeUnicodeEscape(at: i, building: building)
                default:
                    throw fail("invalid escape '\\\(JSONScanner.describe(e))' in string", at: i)
                }
            } else if b < 0x20 {
                throw fail("unescaped control character \(JSONScanner.describe(b)) in string", at: i)
            } else if b < 0x80 {
                if building { scratch.append(b) }
                i += 1
            } else {
                let next = try validateUTF8Sequence(at: i)
                if building { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<next])) }
                i = next
            }
        }
        throw fail("unterminated string starting", at: open)
    }

    /// The byte a one-character escape stands for (`\n` → 0x0A; `\"`, `\\`, `\/` → themselves).
    private static func unescaped(_ e: UInt8) -> UInt8 {
        switch e {
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0C
        case UInt8(ascii: "n"): return 0x0A
        case UInt8(ascii: "r"): return 0x0D
        case UInt8(ascii: "t"): return 0x09
        default: return e
        }
    }

    /// Four hex digits at `i`, or nil.
    private func hex4(at i: Int) -> UInt32? {
        guard i >= 0, i + 4 <= count else { return nil }
        var v: UInt32 = 0
        for k in i..<(i + 4) {
            let b = bytes[k]
            let d: UInt8
            switch b {
            case ASCII.zero...ASCII.nine: d = b - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Decodes `\uXXXX` (or a surrogate pair `\uD83D\uDE00`) at `i` into `scratch`; returns the next index.
    private mutating func decodeUnicodeEscape(at i: Int, building: Bool) throws(JSONParseError) -> Int {
        guard let unit = hex4(at: i + 2) else {
            throw fail("invalid \\u escape (four hex digits required)", at: i)
        }
        var scalar = unit
        var next = i + 6
        if unit >= 0xD800 && unit <= 0xDBFF {
            guard next + 1 < count, bytes[next] == ASCII.backslash, bytes[next + 1] == UInt8(ascii: "u"),
                  let low = hex4(at: next + 2), low >= 0xDC00 && low <= 0xDFFF
            else {
                throw fail("lone high surrogate in \\u escape", at: i)
            }
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            next += 6
        } else if unit >= 0xDC00 && unit <= 0xDFFF {
            throw fail("lone low surrogate in \\u escape", at: i)
        }
        if building { appendUTF8(scalar) }
        return next
    }

    private mutating func appendUTF8(_ v: UInt32) {
        if v < 0x80 {
            scratch.append(UInt8(truncatingIfNeeded: v))
        } else if v < 0x800 {
            scratch.append(UInt8(truncatingIfNeeded: 0xC0 | (v >> 6)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            scratch.append(UInt8(truncatingIfNeeded: 0xE0 | (v >> 12)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | (v & 0x3F)))
        } else {
            scratch.append(UInt8(truncatingIfNeeded: 0xF0 | (v >> 18)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | ((v >> 12) & 0x3F)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(truncatingIfNeeded: 0x80 | (v & 0x3F)))
        }
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates,
    /// nothing above U+10FFFF) whose lead byte (>= 0x80) is at `i`; returns the index after it.
    private func validateUTF8Sequence(at i: Int) throws(JSONParseError) -> Int {
        let lead = bytes[i]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: throw fail("invalid UTF-8 in string", at: i)
        }
        guard i + length <= count else { throw fail("invalid UTF-8 in string", at: i) }
        let second = bytes[i + 1]
        guard second >= low && second <= high else { throw fail("invalid UTF-8 in string", at: i) }
        var k = i + 2
        while k < i + length {
            guard bytes[k] & 0xC0 == 0x80 else { throw fail("invalid UTF-8 in string", at: i) }
            k += 1
        }
        return i + length
    }
}
