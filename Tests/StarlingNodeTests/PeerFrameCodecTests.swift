import NIOCore
import NIOEmbedded
import NIOTestUtils
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

private func wirePeerFrames() -> [Frame] {
    let batch = EventBatch(events: [
        ForwardedEvent(transport: 1, ip: "10.1.2.3", receivedAt: 1_700_000_000_000,
                       json: Array(String(repeating: #"{"key":"view","component":"ui"}"#, count: 10).utf8)),
    ]).encode()
    return [
        Frame(kind: .hello, clusterID: 9, requestID: 1, sender: "n1",
              body: Hello(nodeID: "n1", peer: "127.0.0.1:7946", http: "127.0.0.1:8080", incarnation: 1).encode()),
        Frame(kind: .helloAck, isResponse: true, clusterID: 9, requestID: 1, sender: "n2", body: []),
        Frame(kind: .forwardEvents, clusterID: 9, requestID: 2, sender: "n1", body: batch),
        Frame(kind: .forwardResult, isResponse: true, clusterID: 9, requestID: 2, sender: "node-2",
              body: ForwardResult(status: 202, code: "", message: "", accepted: 1).encode()),
        Frame(kind: .error, isResponse: true, clusterID: 9, requestID: 3, sender: "n2",
              body: ErrorBody(code: "timeout", message: "slow").encode()),
    ]
}

private func wireBuffer(_ bytes: [UInt8]) -> ByteBuffer {
    var b = ByteBufferAllocator().buffer(capacity: bytes.count)
    b.writeBytes(bytes)
    return b
}

@Suite struct PeerFrameCodecTests {
    @Test func decoderVerifierOverSeveralFrames() throws {
        let frames = wirePeerFrames()
        var pairs: [(ByteBuffer, [Frame])] = []
        for (i, f) in frames.enumerated() {
            pairs.append((wireBuffer(FrameCodec.encode(f, compress: i % 2 == 0)), [f]))
        }
        // Several frames in one input.
        pairs.append((wireBuffer(frames.flatMap { FrameCodec.encode($0, compress: true) }), frames))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs, decoderFactory: { PeerFrameDecoder() })
    }

    @Test func encoderToDecoderRoundTrip() throws {
        for compress in [false, true] {
            let sender = EmbeddedChannel()
            try sender.pipeline.syncOperations.addHandler(MessageToByteHandler(PeerFrameEncoder(compress: compress)))
            let receiver = EmbeddedChannel()
            try receiver.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder()))

            let frames = wirePeerFrames()
            for f in frames { try sender.writeOutbound(f) }
            var wire: [ByteBuffer] = []
            while let chunk = try sender.readOutbound(as: ByteBuffer.self) { wire.append(chunk) }
            #expect(wire.count == frames.count)
            if compress {
                // The large event batch went out compressed.
                #expect(wire[2].getInteger(at: 4, as: UInt8.self).map { $0 & 1 } == 1)
            }
            for chunk in wire { try receiver.writeInbound(chunk) }
            var got: [Frame] = []
            while let f = try receiver.readInbound(as: Frame.self) { got.append(f) }
            #expect(got == frames)
            #expect(try sender.finish().isClean)
            #expect(try receiver.finish().isClean)
        }
    }

    @Test func garbageInputErrorsTheChannel() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
        #expect(throws: FrameError.badMagic) { try channel.writeInbound(wireBuffer(Array("GET / HTTP/1.1\r\n".utf8))) }
        #expect(try channel.readInbound(as: Frame.self) == nil)
        _ = try? channel.finish()

        // A valid header announcing an oversize body: rejected with only the header delivered.
        let limited = EmbeddedChannel()
        let limits = FrameLimits(bodyBytesMax: 16, uncompressedBytesMax: 16)
        try limited.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder(limits: limits)))
        let big = FrameCodec.encode(Frame(kind: .query, clusterID: 1, requestID: 1, sender: "n1",
                                          body: Array(repeating: 7, count: 100)), compress: false)
        #expect(throws: FrameError.bodyTooLarge(100)) { try limited.writeInbound(wireBuffer(Array(big[0..<72]))) }
        _ = try? limited.finish()

        // Random garbage in random chunks never traps; it either errors or waits for more bytes.
        var rng = SplitMix64(seed: 42)
        for _ in 0..<200 {
            let ch = EmbeddedChannel()
            try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
            var bytes = FrameCodec.encode(wirePeerFrames()[Int(rng.next() % 5)], compress: true)
            for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            var failed = false
            var offset = 0
            while offset < bytes.count, !failed {
                let n = min(bytes.count - offset, 1 + Int(rng.next() % 40))
                do {
                    try ch.writeInbound(wireBuffer(Array(bytes[offset..<(offset + n)])))
                } catch {
                    #expect(error is FrameError)
                    failed = true
                }
                offset += n
            }
            _ = try? ch.finish()
        }
    }

    @Test func leftoverBytesAtEOFAreTruncated() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
        let frames = wirePeerFrames()
        let whole = FrameCodec.encode(frames[0], compress: false)
        let partial = Array(FrameCodec.encode(frames[2], compress: false).prefix(100))
        try channel.writeInbound(wireBuffer(whole + partial))
        #expect(try channel.readInbound(as: Frame.self) == frames[0])
        #expect(throws: FrameError.truncated(100)) { _ = try channel.finish() }

        // A clean EOF after whole frames is fine.
        let clean = EmbeddedChannel()
        try clean.pipeline.syncOperations.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
        try clean.writeInbound(wireBuffer(whole))
        #expect(try clean.readInbound(as: Frame.self) == frames[0])
        #expect(try clean.finish().isClean)
    }
}

@Suite struct PeerCompressionTests {
    @Test func autoCompressesOnlyOffLoopback() {
        #expect(!PeerCompression.auto.compresses(host: "127.0.0.1"))
        #expect(!PeerCompression.auto.compresses(host: "::1"))
        #expect(!PeerCompression.auto.compresses(host: "localhost"))
        #expect(PeerCompression.auto.compresses(host: "10.1.2.3"))
        #expect(PeerCompression.auto.compresses(host: "db.example"))
        #expect(PeerCompression.always.compresses(host: "127.0.0.1"))
        #expect(!PeerCompression.never.compresses(host: "10.1.2.3"))
    }
}
