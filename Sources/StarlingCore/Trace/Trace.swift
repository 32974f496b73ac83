/// W3C Trace Context (`traceparent`) and the spans a node records, as plain values: no clock,
/// no randomness and no I/O here (the shell gives span ids and times).
///
/// A `TraceContext` names a trace and the span that is the parent of whatever the receiver
/// does next. It travels in `traceparent` headers from clients, and in peer frames between
/// nodes (`Frame.traces`), so one request is one trace across nodes.
public struct TraceContext: Sendable, Hashable {
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64
    public var sampled: Bool

    /// Bytes in a peer frame: trace id 16, span id 8, flags 1.
    public static let wireBytes = 25

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool = true) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
        self.sampled = sampled
    }

    /// The first `max` distinct contexts of `traces`, in order: what one frame carries for a
    /// batch of several requests' work.
    public static func distinct(_ traces: some Sequence<TraceContext>, max: Int) -> [TraceContext] {
        var out: [TraceContext] = []
        for t in traces where !out.contains(t) {
            guard out.count < max else { break }
            out.append(t)
        }
        return out
    }

    /// The same trace, with `spanID` as the parent of what follows.
    public func child(_ spanID: UInt64) -> TraceContext {
        TraceContext(traceHigh: traceHigh, traceLow: traceLow, spanID: spanID, sampled: sampled)
    }

    public var traceIDHex: String { Hex.u64(traceHigh) + Hex.u64(traceLow) }
    public var spanIDHex: String { Hex.u64(spanID) }

    /// `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-\(sampled ? "01" : "00")" }

    /// Parses a `traceparent` header (W3C Trace Context, level 1). Version 00 must be exactly
    /// 55 characters; a later version may append fields after a `-` (they are ignored, as the
    /// recommendation says). Version ff, all-zero ids, upper-case hex and wrong lengths give nil:
    /// the request then starts a new trace, if it is sampled at all.
    public static func parse(traceparent header: some StringProtocol) -> TraceContext? {
        let b = Array(header.utf8)
        guard b.count >= 55, b[2] == 0x2D, b[35] == 0x2D, b[52] == 0x2D else { return nil }
        guard let version = Hex.parse(b[0..<2]), version != 0xFF else { return nil }
        if version == 0 { guard b.count == 55 else { return nil } } else if b.count > 55 { guard b[55] == 0x2D else { return nil } }
        guard let hi = Hex.parse(b[3..<19]), let lo = Hex.parse(b[19..<35]), let span = Hex.parse(b[36..<52]),
              let flags = Hex.parse(b[53..<55]) else { return nil }
        guard hi | lo != 0, span != 0 else { return nil }
        return TraceContext(traceHigh: hi, traceLow: lo, spanID: span, sampled: flags & 1 == 1)
    }

    /// A trace id given as 32 lower-case hex digits (the admin trace lookup).
    public static func parseTraceID(_ s: some StringProtocol) -> (UInt64, UInt64)? {
        let b = Array(s.utf8)
        guard b.count == 32, let hi = Hex.parse(b[0..<16]), let lo = Hex.parse(b[16..<32]), hi | lo != 0 else { return nil }
        return (hi, lo)
    }

    public func encode(into out: inout [UInt8]) {
        out.appendLE(traceHigh)
        out.appendLE(traceLow)
        out.appendLE(spanID)
        out.append(sampled ? 1 : 0)
    }

    /// Reads one context from exactly `wireBytes` bytes; nil for zero ids or unknown flag bits.
    public static func decode(_ b: ArraySlice<UInt8>) -> TraceContext? {
        guard b.count == wireBytes else { return nil }
        let s = b.startIndex
        func u64(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in (0..<8).reversed() { v = v << 8 | UInt64(b[s + at + i]) }
            return v
        }
        let flags = b[s + 24]
        let c = TraceContext(traceHigh: u64(0), traceLow: u64(8), spanID: u64(16), sampled: flags & 1 == 1)
        guard c.traceHigh | c.traceLow != 0, c.spanID != 0, flags & ~1 == 0 else { return nil }
        return c
    }
}

/// One finished unit of work on one node.
public struct Span: Sendable {
    public enum Kind: Int, Sendable { case `internal` = 1, server = 2, client = 3 }
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int64)
    }

    public var name: String
    public var kind: Kind
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64
    /// 0 for a root span (the client sent no `traceparent`).
    public var parentSpanID: UInt64
    public var startNanos: Int64
    public var endNanos: Int64
    public var attributes: [(String, Value)]
    public var error: Bool

    public init(name: String, kind: Kind, context: TraceContext, parentSpanID: UInt64, startNanos: Int64, endNanos: Int64,
                attributes: [(String, Value)] = [], error: Bool = false) {
        self.name = name
        self.kind = kind
        traceHigh = context.traceHigh
        traceLow = context.traceLow
        spanID = context.spanID
        self.parentSpanID = parentSpanID
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.attributes = attributes
        self.error = error
    }

    public var traceIDHex: String { Hex.u64(traceHigh) + Hex.u64(traceLow) }
}

/// OTLP/HTTP with the JSON encoding (`POST /v1/traces`, `Content-Type: application/json`), as the
/// OpenTelemetry protocol specification defines it: ids in lower-case hex, 64-bit integers as
/// strings, span kind and status code as numbers.
public enum OTLPJSON {
    public static func encode(_ spans: [Span], service: String, node: String) -> [UInt8] {
        let resource = JSONValue.object(JSONObject([("attributes", .array([
            attribute("service.name", .string(service)), attribute("service.instance.id", .string(node)),
        ]))]))
        let list = spans.map { s -> JSONValue in
            var fields: [(String, JSONValue)] = [
                ("traceId", .string(s.traceIDHex)), ("spanId", .string(Hex.u64(s.spanID))),
                ("name", .string(s.name)), ("kind", .number(String(s.kind.rawValue))),
                ("startTimeUnixNano", .string(String(s.startNanos))), ("endTimeUnixNano", .string(String(s.endNanos))),
                ("attributes", .array(s.attributes.map { attribute($0.0, $0.1) })),
                ("status", .object(JSONObject([("code", .number(s.error ? "2" : "0"))]))),
            ]
            if s.parentSpanID != 0 { fields.insert(("parentSpanId", .string(Hex.u64(s.parentSpanID))), at: 2) }
            return .object(JSONObject(fields))
        }
        let scope = JSONValue.object(JSONObject([("scope", .object(JSONObject([("name", .string("starling"))]))), ("spans", .array(list))]))
        let root = JSONObject([("resourceSpans", .array([.object(JSONObject([("resource", resource), ("scopeSpans", .array([scope]))]))]))])
        var out: [UInt8] = []
        JSONWriter.write(.object(root), into: &out)
        return out
    }

    static func attribute(_ key: String, _ v: Span.Value) -> JSONValue {
        let value: JSONValue = switch v {
        case .string(let s): .object(JSONObject([("stringValue", .string(s))]))
        case .int(let i): .object(JSONObject([("intValue", .string(String(i)))]))
        }
        return .object(JSONObject([("key", .string(key)), ("value", value)]))
    }
}

/// Lower-case hex of fixed-width integers, and its inverse.
enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    static func u64(_ v: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { out[i] = digits[Int((v >> UInt64(60 - 4 * i)) & 0xF)] }
        return String(decoding: out, as: UTF8.self)
    }

    /// Up to 16 lower-case hex digits; nil for anything else.
    static func parse(_ b: ArraySlice<UInt8>) -> UInt64? {
        guard !b.isEmpty, b.count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in b {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }
}
