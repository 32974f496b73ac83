import Testing
import StarlingCore
import StarlingCluster

// MARK: - Helpers

private func wireParse(_ bytes: [UInt8], limits: FrameLimits = FrameLimits()) throws -> (frame: Frame, consumed: Int)? {
    try bytes.withUnsafeBytes { try FrameParser(limits: limits).parse($0) }
}

/// Parses a buffer that must hold exactly one complete frame.
private func wireParseWhole(_ bytes: [UInt8]) throws -> Frame? {
    guard let (frame, consumed) = try wireParse(bytes) else { return nil }
    #expect(consumed == bytes.count)
    return frame
}

private func wirePutLE32(_ v: UInt32, into bytes: inout [UInt8], at offset: Int) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
}

/// Recomputes the body CRC (when the body is complete) and the header CRC after a test edits bytes.
private func wireResealed(_ bytes: [UInt8], body: Bool = true) -> [UInt8] {
    var b = bytes
    guard b.count >= 72 else { return b }
    if body {
        let stored = Int(UInt32(b[24]) | UInt32(b[25]) << 8 | UInt32(b[26]) << 16 | UInt32(b[27]) << 24)
        if b.count >= 72 + stored {
            wirePutLE32(CRC32C.checksum(Array(b[72..<(72 + stored)])), into: &b, at: 64)
        }
    }
    wirePutLE32(CRC32C.checksum(Array(b[0..<68])), into: &b, at: 68)
    return b
}

/// A body that LZ4 shrinks.
private func wireCompressibleBody(_ count: Int = 1_000) -> [UInt8] {
    (0..<count).map { UInt8(ascii: "a") &+ UInt8($0 % 7) }
}

private func wireSampleFrame(kind: MessageKind = .forwardEvents, body: [UInt8] = Array("hello, peer".utf8)) -> Frame {
    Frame(kind: kind, isResponse: false, clusterID: 0xC1C2_C3C4_C5C6_C7C8, requestID: 7, sender: "n-1", body: body)
}

// MARK: - Sample bodies

private let wireUnicode = "zürich ☃ 𝄞"

private let wireSampleHits = [
    QueryHit(eventID: "01HZX3", ts: 1_700_000_000_000, receivedAt: 1_700_000_000_123, json: Array(#"{"a":1}"#.utf8)),
    QueryHit(eventID: "", ts: .min, receivedAt: .max, json: []),
]

private let wireSampleEvents = [
    ForwardedEvent(transport: 1, ip: "10.0.0.7", receivedAt: 1_700_000_000_000, json: Array(#"{"k":"v"}"#.utf8)),
    ForwardedEvent(transport: 2, ip: "::1", receivedAt: -1, json: Array(wireUnicode.utf8)),
    ForwardedEvent(transport: 0, ip: "", receivedAt: 0, json: []),
]

/// One encoder and decoder per body type, with sample values covering empty and edge cases.
struct WireBodyCase: Sendable, CustomStringConvertible {
    let description: String
    let samples: [[UInt8]]
    /// Decodes and re-encodes; throws on malformed input.
    let decodeAndEncode: @Sendable ([UInt8]) throws -> [UInt8]
}

func wireBodyCase<T: Sendable & Equatable>(
    _ name: String, _ values: [T], encode: @escaping @Sendable (T) -> [UInt8],
    decode: @escaping @Sendable ([UInt8]) throws -> T
) -> WireBodyCase {
    WireBodyCase(description: name, samples: values.map(encode), decodeAndEncode: { try encode(decode($0)) })
}

let wireBodyCases: [WireBodyCase] = [
    wireBodyCase("Hello", [
        Hello(nodeID: "n1", peer: "10.0.0.1:7946", http: "10.0.0.1:8080", incarnation: 3),
        Hello(nodeID: "", peer: "", http: "", incarnation: .max),
    ], encode: { $0.encode() }, decode: { try Hello.decode($0) }),
    wireBodyCase("Refuse", [Refuse(reason: "cluster id mismatch"), Refuse(reason: wireUnicode), Refuse(reason: "")],
             encode: { $0.encode() }, decode: { try Refuse.decode($0) }),
    wireBodyCase("ForwardedEvent", wireSampleEvents, encode: { $0.encode() }, decode: { try ForwardedEvent.decode($0) }),
    wireBodyCase("EventBatch", [EventBatch(events: wireSampleEvents), EventBatch(events: [])],
             encode: { $0.encode() }, decode: { try EventBatch.decode($0) }),
    wireBodyCase("RecordBatch", [
        RecordBatch(items: [RecordBatch.Item(transport: 0, clientID: false, record: [1, 2, 3]),
                            RecordBatch.Item(transport: 3, clientID: true, record: [])]),
        RecordBatch(items: []),
    ], encode: { $0.encode() }, decode: { try RecordBatch.decode($0) }),
    wireBodyCase("ForwardResult", [
        ForwardResult(status: 202, code: "", message: "", accepted: 12, index: -1),
        ForwardResult(status: 400, code: "invalid_event", message: "ts: \(wireUnicode)", accepted: 3, index: 3),
        ForwardResult(status: .max, code: "x", message: "y", accepted: .max, index: .min),
    ], encode: { $0.encode() }, decode: { try ForwardResult.decode($0) }),
    wireBodyCase("QueryRequest", [
        QueryRequest(scope: 0, id: "s-1", limit: 100),
        QueryRequest(scope: 2, id: wireUnicode, from: .min, to: .max, key: "click", component: "ui", limit: .max,
                     wantState: true),
        QueryRequest(scope: 1, id: "", from: 0, to: nil, key: nil, component: "", limit: 0, wantState: false),
    ], encode: { $0.encode() }, decode: { try QueryRequest.decode($0) }),
    wireBodyCase("QueryHit", wireSampleHits, encode: { $0.encode() }, decode: { try QueryHit.decode($0) }),
    wireBodyCase("QueryResult", [
        QueryResult(hits: wireSampleHits, truncated: true, state: Array(#"{"events":2}"#.utf8), error: nil),
        QueryResult(hits: [], truncated: false, state: nil, error: "owner unavailable"),
        QueryResult(hits: [], truncated: false, state: [], error: ""),
    ], encode: { $0.encode() }, decode: { try QueryResult.decode($0) }),
    wireBodyCase("IdentifyRequest", [
        IdentifyRequest(sessionID: "s", userID: "u", terminalID: "t"),
        IdentifyRequest(sessionID: "", userID: nil, terminalID: nil),
        IdentifyRequest(sessionID: wireUnicode, userID: nil, terminalID: "t"),
    ], encode: { $0.encode() }, decode: { try IdentifyRequest.decode($0) }),
    wireBodyCase("IdentifyResult", [
        IdentifyResult(status: 200, code: "", message: ""),
        IdentifyResult(status: 409, code: "conflict", message: wireUnicode),
    ], encode: { $0.encode() }, decode: { try IdentifyResult.decode($0) }),
    wireBodyCase("ResolveIdentity", [
        ResolveIdentity(userID: "u", terminalID: nil), ResolveIdentity(userID: nil, terminalID: "t"),
        ResolveIdentity(userID: nil, terminalID: nil), ResolveIdentity(userID: "", terminalID: ""),
    ], encode: { $0.encode() }, decode: { try ResolveIdentity.decode($0) }),
    wireBodyCase("ResolveResult", [ResolveResult(sessionID: nil), ResolveResult(sessionID: "s-9")],
             encode: { $0.encode() }, decode: { try ResolveResult.decode($0) }),
    wireBodyCase("ErrorBody", [ErrorBody(code: "timeout", message: "no answer in 2s"), ErrorBody(code: "", message: "")],
             encode: { $0.encode() }, decode: { try ErrorBody.decode($0) }),
]

@Suite struct WireCodecTests {

    // MARK: - Header layout

    @Test func headerIsSeventyTwoBytes() {
        #expect(FrameCodec.headerBytes == 72)
        #expect(FrameCodec.encode(wireSampleFrame(body: []), compress: false).count == 72)
        #expect(FrameCodec.encode(wireSampleFrame(body: [1, 2, 3]), compress: true).count == 75)
    }

    @Test func goldenHeaderBytes() throws {
        let frame = Frame(kind: .hello, isResponse: true, clusterID: 0x0102_0304_0506_0708, requestID: 42,
                          sender: "node-1", body: Array("hi".utf8))
        let bytes = FrameCodec.encode(frame, compress: true)
        let golden: [UInt8] = [
            0x53, 0x54, 0x02, 0x01, 0x02, 0x06, 0x00, 0x00,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
            0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
            0x6E, 0x6F, 0x64, 0x65, 0x2D, 0x31, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xC2, 0xD9, 0x9D, 0xF5, 0xFB, 0x09, 0x83, 0x87,
        ]
        #expect(Array(bytes[0..<72]) == golden)
        #expect(Array(bytes[72...]) == Array("hi".utf8))
        #expect(try wireParseWhole(bytes) == frame)
    }

    // MARK: - Round trips

    @Test(arguments: MessageKind.allCases)
    func roundTripEveryKind(kind: MessageKind) throws {
        let bodies: [[UInt8]] = [[], [0x42], wireCompressibleBody(), (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }]
        for body in bodies {
            for isResponse in [false, true] {
                let frame = Frame(kind: kind, isResponse: isResponse, clusterID: .max, requestID: UInt64(kind.rawValue) << 40,
                                  sender: "node-\(kind.rawValue)", body: body)
                for compress in [false, true] {
                    let bytes = FrameCodec.encode(frame, compress: compress)
                    #expect(bytes[3] == kind.rawValue)
                    #expect(bytes[4] & 2 == (isResponse ? 2 : 0))
                    #expect(try wireParseWhole(bytes) == frame)
                }
            }
        }
    }

    @Test func compressionOnlyWhenItHelps() throws {
        let big = wireSampleFrame(body: wireCompressibleBody())
        let compressed = FrameCodec.encode(big, compress: true)
        #expect(compressed[4] & 1 == 1)
        #expect(compressed.count < 72 + big.body.count)
        #expect(try wireParseWhole(compressed) == big)

        // Not asked to compress.
        #expect(FrameCodec.encode(big, compress: false)[4] & 1 == 0)
        // Below the 256-byte threshold.
        let small = wireSampleFrame(body: wireCompressibleBody(255))
        let smallBytes = FrameCodec.encode(small, compress: true)
        #expect(smallBytes[4] & 1 == 0)
        #expect(smallBytes.count == 72 + 255)
        // Incompressible.
        var rng = SplitMix64(seed: 99)
        let noise = wireSampleFrame(body: (0..<1_024).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let noiseBytes = FrameCodec.encode(noise, compress: true)
        #expect(noiseBytes[4] & 1 == 0)
        #expect(try wireParseWhole(noiseBytes) == noise)
    }

    @Test func backToBackFramesParseOneAtATime() throws {
        let a = wireSampleFrame(kind: .query, body: Array("first".utf8))
        let b = wireSampleFrame(kind: .queryResult, body: wireCompressibleBody())
        let stream = FrameCodec.encode(a, compress: true) + FrameCodec.encode(b, compress: true)
        let first = try #require(try wireParse(stream))
        #expect(first.frame == a)
        let rest = Array(stream[first.consumed...])
        let second = try #require(try wireParse(rest))
        #expect(second.frame == b)
        #expect(second.consumed == rest.count)
    }

    @Test func byteByByteFeedingReturnsNilUntilComplete() throws {
        for frame in [wireSampleFrame(body: []), wireSampleFrame(body: wireCompressibleBody(400))] {
            for compress in [false, true] {
                let bytes = FrameCodec.encode(frame, compress: compress)
                for n in 0..<bytes.count {
                    #expect(try wireParse(Array(bytes[0..<n])) == nil)
                }
                #expect(try wireParseWhole(bytes) == frame)
            }
        }
    }

    @Test func senderValidation() {
        #expect(Frame.isValidSenderID("a"))
        #expect(Frame.isValidSenderID("node-01"))
        #expect(Frame.isValidSenderID(String(repeating: "z", count: 32)))
        #expect(!Frame.isValidSenderID(""))
        #expect(!Frame.isValidSenderID(String(repeating: "z", count: 33)))
        #expect(!Frame.isValidSenderID("Node"))
        #expect(!Frame.isValidSenderID("n_1"))
        #expect(!Frame.isValidSenderID("né"))
    }

    // MARK: - Rejections

    @Test func rejectsBadMagic() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[1] = 0x55
        #expect(throws: FrameError.badMagic) { try wireParse(wireResealed(bytes)) }
        // Garbage is rejected as soon as the first byte arrives.
        #expect(throws: FrameError.badMagic) { try wireParse([0x47]) }
        #expect(throws: FrameError.badMagic) { try wireParse([0x53, 0x00]) }
    }

    @Test func rejectsUnsupportedVersion() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[2] = 1   // version 1 bodies lack query pages and catch-up cursors
        #expect(throws: FrameError.unsupportedVersion(1)) { try wireParse(wireResealed(bytes)) }
        bytes[2] = 3
        #expect(throws: FrameError.unsupportedVersion(3)) { try wireParse(wireResealed(bytes)) }
    }

    @Test func rejectsBadHeaderChecksum() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[16] ^= 0x01  // request id, without resealing
        #expect(throws: FrameError.badHeaderChecksum) { try wireParse(bytes) }
        var crcOnly = FrameCodec.encode(wireSampleFrame(), compress: false)
        crcOnly[71] ^= 0x80
        #expect(throws: FrameError.badHeaderChecksum) { try wireParse(crcOnly) }
    }

    @Test func rejectsReservedBits() {
        let base = FrameCodec.encode(wireSampleFrame(), compress: false)
        for flagBit in 3..<8 {
            var bytes = base
            bytes[4] |= UInt8(1) << UInt8(flagBit)
            #expect(throws: FrameError.reservedBitsSet) { try wireParse(wireResealed(bytes)) }
        }
        for offset in [6, 7] {
            var bytes = base
            bytes[offset] = 1
            #expect(throws: FrameError.reservedBitsSet) { try wireParse(wireResealed(bytes)) }
        }
    }

    @Test func traceContextsTravelInTheBody() throws {
        let t1 = TraceContext(traceHigh: 0x0af7651916cd43dd, traceLow: 0x8448eb211c80319c, spanID: 0xb7ad6b7169203331)
        let t2 = TraceContext(traceHigh: 1, traceLow: 2, spanID: 3, sampled: false)
        var frame = wireSampleFrame()
        frame.traces = [t1, t2]
        for compress in [false, true] {
            var f = frame
            if compress { f.body = Array(repeating: 0x61, count: 4000) }
            let bytes = FrameCodec.encode(f, compress: compress)
            #expect(bytes[4] & 0b100 != 0)
            #expect(try wireParseWhole(bytes) == f)
        }
        // No traces: the flag is clear and the body is as before.
        let plain = FrameCodec.encode(wireSampleFrame(), compress: false)
        #expect(plain[4] & 0b100 == 0)
        #expect(try wireParseWhole(plain)?.traces == [])
        // More than tracesMax: the first ones are kept.
        frame.traces = (1...12).map { TraceContext(traceHigh: 0, traceLow: UInt64($0), spanID: UInt64($0)) }
        #expect(try wireParseWhole(FrameCodec.encode(frame, compress: false))?.traces == Array(frame.traces.prefix(Frame.tracesMax)))
    }

    @Test func badTraceSectionsAreBodyErrors() throws {
        var frame = wireSampleFrame(body: [])
        frame.traces = [TraceContext(traceHigh: 1, traceLow: 2, spanID: 3)]
        let good = FrameCodec.encode(frame, compress: false)
        // Count 0, a count past the body, a zero span id, unknown flag bits.
        for (offset, value) in [(72, UInt8(0)), (72, 2), (72, 9), (72 + 17, 0), (72 + 25, 0x80)] {
            var b = good
            b[offset] = value
            if offset == 72 + 17 { for i in 72 + 17..<72 + 25 { b[i] = 0 } }
            #expect(throws: FrameError.self) { try wireParse(wireResealed(b)) }
        }
    }

    @Test func rejectsUnknownKind() {
        let known = Set(MessageKind.allCases.map(\.rawValue))
        let base = FrameCodec.encode(wireSampleFrame(), compress: false)
        for raw in UInt8.min...UInt8.max where !known.contains(raw) {
            var bytes = base
            bytes[3] = raw
            #expect(throws: FrameError.unknownKind(raw)) { try wireParse(wireResealed(bytes)) }
        }
    }

    @Test func rejectsEmptySender() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[5] = 0
        for i in 32..<64 { bytes[i] = 0 }
        #expect(throws: FrameError.badSenderID) { try wireParse(wireResealed(bytes)) }
        // The encoder marks an invalid sender with length 0, so receivers reject it.
        let invalid = Frame(kind: .hello, clusterID: 1, requestID: 1, sender: "", body: [])
        #expect(throws: FrameError.badSenderID) { try wireParse(FrameCodec.encode(invalid, compress: false)) }
    }

    @Test func rejectsTooLongSender() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[5] = 33
        #expect(throws: FrameError.badSenderID) { try wireParse(wireResealed(bytes)) }
        let invalid = Frame(kind: .hello, clusterID: 1, requestID: 1, sender: String(repeating: "a", count: 33), body: [])
        #expect(throws: FrameError.badSenderID) { try wireParse(FrameCodec.encode(invalid, compress: false)) }
    }

    @Test func rejectsSenderOutsideAlphabet() {
        let base = FrameCodec.encode(wireSampleFrame(), compress: false)  // sender "n-1" at 32..<35
        for bad in [UInt8(ascii: "N"), UInt8(ascii: "_"), UInt8(ascii: " "), UInt8(ascii: "."), 0x00, 0xC3, 0x7F] {
            var bytes = base
            bytes[33] = bad
            #expect(throws: FrameError.badSenderID) { try wireParse(wireResealed(bytes)) }
        }
        // Non-zero padding after the id.
        var padded = base
        padded[40] = UInt8(ascii: "x")
        #expect(throws: FrameError.badSenderID) { try wireParse(wireResealed(padded)) }
        let invalid = Frame(kind: .hello, clusterID: 1, requestID: 1, sender: "Node-1", body: [])
        #expect(throws: FrameError.badSenderID) { try wireParse(FrameCodec.encode(invalid, compress: false)) }
    }

    @Test func rejectsOversizeLengthFromHeaderAlone() {
        let limits = FrameLimits()
        var bytes = FrameCodec.encode(wireSampleFrame(body: []), compress: false)
        let tooBig = UInt32(limits.bodyBytesMax + 1)
        wirePutLE32(tooBig, into: &bytes, at: 24)
        wirePutLE32(tooBig, into: &bytes, at: 28)
        let header = wireResealed(bytes, body: false)
        #expect(header.count == 72)
        #expect(throws: FrameError.bodyTooLarge(limits.bodyBytesMax + 1)) { try wireParse(header) }
        // The largest u32 length, too.
        wirePutLE32(.max, into: &bytes, at: 24)
        wirePutLE32(.max, into: &bytes, at: 28)
        #expect(throws: FrameError.bodyTooLarge(Int(UInt32.max))) { try wireParse(wireResealed(bytes, body: false)) }
        // A stored length within limits but an uncompressed length above them.
        var compressed = FrameCodec.encode(wireSampleFrame(body: []), compress: false)
        compressed[4] |= 1
        wirePutLE32(100, into: &compressed, at: 24)
        wirePutLE32(UInt32(limits.uncompressedBytesMax + 1), into: &compressed, at: 28)
        #expect(throws: FrameError.bodyTooLarge(limits.uncompressedBytesMax + 1)) {
            try wireParse(wireResealed(compressed, body: false))
        }
        // Custom limits.
        let small = FrameLimits(bodyBytesMax: 10, uncompressedBytesMax: 20)
        #expect(throws: FrameError.bodyTooLarge(11)) {
            try wireParse(FrameCodec.encode(wireSampleFrame(body: Array(repeating: 1, count: 11)), compress: false), limits: small)
        }
    }

    @Test func rejectsBadBodyChecksum() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[72] ^= 0x20
        #expect(throws: FrameError.badBodyChecksum) { try wireParse(bytes) }
        var compressed = FrameCodec.encode(wireSampleFrame(body: wireCompressibleBody()), compress: true)
        compressed[64] ^= 0x01
        #expect(throws: FrameError.badBodyChecksum) { try wireParse(wireResealed(compressed, body: false)) }
    }

    @Test func rejectsBadCompression() throws {
        let base = FrameCodec.encode(wireSampleFrame(body: wireCompressibleBody()), compress: true)
        #expect(base[4] & 1 == 1)
        // Corrupt compressed bytes (with valid checksums): a literal-length token that overruns.
        var corrupt = base
        corrupt[72] = 0xFF
        for i in 73..<min(corrupt.count, 90) { corrupt[i] = 0xFF }
        #expect(throws: FrameError.badCompression) { try wireParse(wireResealed(corrupt)) }
        // Uncompressed length one more or one less than what the data decodes to.
        for delta in [1, -1] {
            var bytes = base
            wirePutLE32(UInt32(1_000 + delta), into: &bytes, at: 28)
            #expect(throws: FrameError.badCompression) { try wireParse(wireResealed(bytes)) }
        }
        // The compressed flag on an empty body.
        var empty = FrameCodec.encode(wireSampleFrame(body: []), compress: false)
        empty[4] |= 1
        #expect(throws: FrameError.badCompression) { try wireParse(wireResealed(empty)) }
        // The compressed flag on plain bytes.
        var plain = FrameCodec.encode(wireSampleFrame(body: Array(repeating: 0xFF, count: 40)), compress: false)
        plain[4] |= 1
        wirePutLE32(4_000, into: &plain, at: 28)
        #expect(throws: FrameError.badCompression) { try wireParse(wireResealed(plain)) }
    }

    @Test func rejectsUncompressedLengthMismatch() {
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        wirePutLE32(UInt32(wireSampleFrame().body.count + 1), into: &bytes, at: 28)
        #expect(throws: FrameError.badCompression) { try wireParse(wireResealed(bytes)) }
    }

    @Test func headerChecksComeInTheDocumentedOrder() {
        // Bad version and unknown kind together: version is reported first.
        var bytes = FrameCodec.encode(wireSampleFrame(), compress: false)
        bytes[2] = 9
        bytes[3] = 99
        #expect(throws: FrameError.unsupportedVersion(9)) { try wireParse(wireResealed(bytes)) }
        // Header CRC is checked before the version.
        #expect(throws: FrameError.badHeaderChecksum) { try wireParse(bytes) }
        // Reserved bits before kind, kind before sender, sender before sizes.
        var b2 = FrameCodec.encode(wireSampleFrame(), compress: false)
        b2[4] |= 0x80
        b2[3] = 99
        #expect(throws: FrameError.reservedBitsSet) { try wireParse(wireResealed(b2)) }
        b2[4] &= 0x7F
        b2[5] = 0
        #expect(throws: FrameError.unknownKind(99)) { try wireParse(wireResealed(b2)) }
        b2[3] = MessageKind.query.rawValue
        wirePutLE32(.max, into: &b2, at: 24)
        #expect(throws: FrameError.badSenderID) { try wireParse(wireResealed(b2, body: false)) }
    }

    // MARK: - Message bodies

    @Test func everyBodyTypeRoundTrips() throws {
        let hello = Hello(nodeID: "n1", peer: "10.0.0.1:7946", http: "10.0.0.1:8080", incarnation: 3)
        #expect(try Hello.decode(hello.encode()) == hello)
        let refuse = Refuse(reason: wireUnicode)
        #expect(try Refuse.decode(refuse.encode()) == refuse)
        let batch = EventBatch(events: wireSampleEvents)
        #expect(try EventBatch.decode(batch.encode()) == batch)
        #expect(try ForwardedEvent.decode(wireSampleEvents[1].encode()) == wireSampleEvents[1])
        let fr = ForwardResult(status: 400, code: "invalid_event", message: "bad ts", accepted: 3, index: 3)
        #expect(try ForwardResult.decode(fr.encode()) == fr)
        let q = QueryRequest(scope: 2, id: "t-1", from: 5, to: nil, key: "k", component: nil, limit: 50, wantState: true)
        #expect(try QueryRequest.decode(q.encode()) == q)
        #expect(try QueryHit.decode(wireSampleHits[0].encode()) == wireSampleHits[0])
        let qr = QueryResult(hits: wireSampleHits, truncated: true, state: Array("{}".utf8), error: "partial")
        #expect(try QueryResult.decode(qr.encode()) == qr)
        let ir = IdentifyRequest(sessionID: "s", userID: nil, terminalID: "t")
        #expect(try IdentifyRequest.decode(ir.encode()) == ir)
        let ires = IdentifyResult(status: 202, code: "", message: "")
        #expect(try IdentifyResult.decode(ires.encode()) == ires)
        let ri = ResolveIdentity(userID: "u", terminalID: nil)
        #expect(try ResolveIdentity.decode(ri.encode()) == ri)
        let rr = ResolveResult(sessionID: "s")
        #expect(try ResolveResult.decode(rr.encode()) == rr)
        let eb = ErrorBody(code: "timeout", message: "m")
        #expect(try ErrorBody.decode(eb.encode()) == eb)

        // Every sample of every type, and inside a compressed frame.
        for c in wireBodyCases {
            for sample in c.samples {
                #expect(try c.decodeAndEncode(sample) == sample, "\(c)")
                let frame = wireSampleFrame(kind: .queryResult, body: sample)
                #expect(try wireParseWhole(FrameCodec.encode(frame, compress: true)) == frame)
            }
        }
    }

    @Test func bodyByteLayout() {
        // Hello: u16 len + "n1", u16 len + "p", u16 len + "h", u64 incarnation.
        let hello = Hello(nodeID: "n1", peer: "p", http: "h", incarnation: 0x0102).encode()
        #expect(hello == [2, 0, 0x6E, 0x31, 1, 0, 0x70, 1, 0, 0x68, 2, 1, 0, 0, 0, 0, 0, 0])
        // ResolveResult: presence byte.
        #expect(ResolveResult(sessionID: nil).encode() == [0])
        #expect(ResolveResult(sessionID: "s").encode() == [1, 1, 0, 0x73])
        // ForwardResult index -1 as i32.
        let fr = ForwardResult(status: 202, code: "", message: "", accepted: 1, index: -1).encode()
        #expect(fr == [202, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func longStringsAreCutAtACharacterBoundary() throws {
        // 65,534 ASCII bytes then a 4-byte character: the cut must drop the whole character.
        let s = String(repeating: "a", count: 65_534) + "𝄞"
        let decoded = try Refuse.decode(Refuse(reason: s).encode())
        #expect(decoded.reason == String(repeating: "a", count: 65_534))
    }

    @Test(arguments: wireBodyCases)
    func truncatedBodiesThrow(_ c: WireBodyCase) {
        for sample in c.samples {
            for n in 0..<sample.count {
                let prefix = Array(sample[0..<n])
                #expect(throws: FrameError.self, "\(c) truncated to \(n)") { try c.decodeAndEncode(prefix) }
            }
            #expect(throws: FrameError.self, "\(c) trailing byte") { try c.decodeAndEncode(sample + [0]) }
        }
    }

    @Test func malformedBodiesThrow() {
        // A count that cannot fit in the body is rejected before allocation.
        #expect(throws: FrameError.badBody("eventBatch.count")) { try EventBatch.decode([0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: FrameError.badBody("queryResult.count")) { try QueryResult.decode([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0]) }
        #expect(throws: FrameError.self) { try EventBatch.decode([2, 0, 0, 0] + wireSampleEvents[0].encode()) }
        // Record flags other than bit 0 are reserved.
        #expect(throws: FrameError.self) { try RecordBatch.decode([1, 0, 0, 0, 0, 2, 0, 0, 0, 0]) }
        // A blob length past the end.
        #expect(throws: FrameError.self) { try ForwardedEvent.decode([1, 0, 0] + Array(repeating: 0, count: 8) + [0xFF, 0xFF, 0xFF, 0xFF]) }
        // Presence and boolean bytes other than 0 and 1.
        #expect(throws: FrameError.badBody("resolveResult.sessionID")) { try ResolveResult.decode([2]) }
        var q = QueryRequest(scope: 0, id: "s", limit: 1, wantState: true).encode()
        q[q.count - 5] = 7   // wantState, before the u32 offset
        #expect(throws: FrameError.badBody("query.wantState")) { try QueryRequest.decode(q) }
        // Scope out of range.
        #expect(throws: FrameError.badBody("query.scope")) {
            try QueryRequest.decode(QueryRequest(scope: 3, id: "s", limit: 1).encode())
        }
        // Invalid UTF-8 (a lone continuation byte, an overlong form, a truncated 4-byte sequence).
        for bad: [UInt8] in [[0x80], [0xC0, 0xAF], [0xF0, 0x90, 0x80], [0xED, 0xA0, 0x80]] {
            #expect(throws: FrameError.badBody("refuse.reason")) { try Refuse.decode([UInt8(bad.count), 0] + bad) }
        }
    }

    // MARK: - Mutation

    @Test func seededMutationNeverTraps() throws {
        var rng = SplitMix64(seed: 0x5354_4152_4C49_4E47)
        var bases: [[UInt8]] = []
        for (i, kind) in MessageKind.allCases.enumerated() {
            let body: [UInt8]
            switch i % 4 {
            case 0: body = []
            case 1: body = wireBodyCases[i % wireBodyCases.count].samples[0]
            case 2: body = wireCompressibleBody(300 + i * 17)
            default: body = EventBatch(events: wireSampleEvents + wireSampleEvents).encode()
            }
            let frame = Frame(kind: kind, isResponse: i % 2 == 0, clusterID: UInt64(i), requestID: rng.next(),
                              sender: "node-\(i)", body: body)
            bases.append(FrameCodec.encode(frame, compress: i % 3 != 0))
        }
        let limits = FrameLimits(bodyBytesMax: 64 << 10, uncompressedBytesMax: 256 << 10)
        var outcomes = [String: Int]()

        for iteration in 0..<6_000 {
            var bytes = bases[Int(rng.next() % UInt64(bases.count))]
            for _ in 0..<(1 + rng.next() % 4) {
                let roll = rng.next() % 10
                let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
                switch roll {
                case 0...3 where !bytes.isEmpty: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                case 4...5 where !bytes.isEmpty: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 6: bytes.removeLast(min(bytes.count, Int(rng.next() % 64)))
                case 7: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 8 where !bytes.isEmpty: bytes.remove(at: at)
                default:
                    // Rewrite a length field with an extreme value.
                    if bytes.count >= 32 {
                        let v: [UInt32] = [0, 1, .max, .max - 71, 1 << 31, UInt32(limits.bodyBytesMax)]
                        wirePutLE32(v[Int(rng.next() % UInt64(v.count))], into: &bytes, at: rng.next() % 2 == 0 ? 24 : 28)
                    }
                }
            }
            // Half the time fix the checksums so the deeper checks (sender, sizes, LZ4, bodies) are reached.
            if iteration % 2 == 0 { bytes = wireResealed(bytes) }
            do {
                if let (frame, consumed) = try wireParse(bytes, limits: limits) {
                    #expect(consumed >= 72 && consumed <= bytes.count)
                    #expect(frame.body.count <= limits.uncompressedBytesMax)
                    outcomes["frame", default: 0] += 1
                    // Every body decoder must cope with whatever body came out.
                    for c in wireBodyCases { _ = try? c.decodeAndEncode(frame.body) }
                } else {
                    outcomes["needMore", default: 0] += 1
                }
            } catch let error as FrameError {
                outcomes["\(error)".prefix(while: { $0 != "(" }).description, default: 0] += 1
            }
        }
        // Mutated bodies straight into the body decoders.
        for _ in 0..<6_000 {
            let c = wireBodyCases[Int(rng.next() % UInt64(wireBodyCases.count))]
            var body = c.samples[Int(rng.next() % UInt64(c.samples.count))]
            for _ in 0..<(1 + rng.next() % 3) {
                if !body.isEmpty, rng.next() % 3 != 0 {
                    body[Int(rng.next() % UInt64(body.count))] = UInt8(truncatingIfNeeded: rng.next())
                } else {
                    body.insert(UInt8(truncatingIfNeeded: rng.next()), at: body.isEmpty ? 0 : Int(rng.next() % UInt64(body.count)))
                }
            }
            do {
                let again = try c.decodeAndEncode(body)
                // Whatever decodes must encode back to the same bytes (the encoding is canonical).
                #expect(again == body, "\(c)")
            } catch {
                #expect(error is FrameError)
            }
        }
        // The mutations must reach several distinct outcomes, including deep ones.
        #expect(outcomes["frame", default: 0] > 0)
        #expect(outcomes["badHeaderChecksum", default: 0] > 0)
        #expect(outcomes["badBodyChecksum", default: 0] > 0 || outcomes["badCompression", default: 0] > 0)
        #expect(outcomes.count >= 6, "\(outcomes)")
    }
}
