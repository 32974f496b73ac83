import NIOCore
import StarlingCluster

/// Splits a peer connection's byte stream into `Frame`s with `FrameParser`.
///
/// The parser reads the buffer in place (no copy per attempt) and the reader index moves by the
/// bytes a frame used. A malformed frame throws its `FrameError`; `ByteToMessageHandler` then fires
/// it down the pipeline, whose error handler closes the connection. Incomplete bytes at EOF throw
/// `FrameError.truncated(count)`.
public final class PeerFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    private let parser: FrameParser

    public init(limits: FrameLimits = FrameLimits()) {
        parser = FrameParser(limits: limits)
    }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try nextFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while let frame = try nextFrame(&buffer) {
            context.fireChannelRead(Self.wrapInboundOut(frame))
        }
        let left = buffer.readableBytes
        if left > 0 {
            buffer.moveReaderIndex(forwardBy: left)
            throw FrameError.truncated(left)
        }
        return .needMoreData
    }

    /// Parses one frame from the readable bytes and consumes it; nil when more bytes are needed.
    private func nextFrame(_ buffer: inout ByteBuffer) throws -> Frame? {
        let parser = self.parser
        let parsed = try buffer.withUnsafeReadableBytes { bytes throws(FrameError) in try parser.parse(bytes) }
        guard let (frame, consumed) = parsed else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        return frame
    }
}

/// Writes `Frame`s with `FrameCodec.encode`, compressing large bodies when `compress` is true.
public final class PeerFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public let compress: Bool

    public init(compress: Bool) {
        self.compress = compress
    }

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        out.writeBytes(FrameCodec.encode(data, compress: compress))
    }
}
