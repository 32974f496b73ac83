import StarlingCore
import StarlingLZ4

/// Frame layout (all integers little-endian), header of exactly 72 bytes:
///
/// ```
/// off size field
///  0   2   magic "ST" (0x53 0x54)
///  2   1   protocol version (2: query pages and catch-up cursors inside a key)
///  3   1   kind (MessageKind raw value)
///  4   1   flags: bit 0 = body is LZ4-compressed, bit 1 = this frame is a response,
///              bit 2 = the (uncompressed) body starts with trace contexts: u8 count (1...8),
///              then per context trace id 16, parent span id 8, flags 1 (`TraceContext`)
///  5   1   sender id length (1...32)
///  6   2   reserved (0)
///  8   8   cluster id
/// 16   8   request id (a response echoes the request's id)
/// 24   4   body length as sent
/// 28   4   body length uncompressed (equals the previous when not compressed)
/// 32  32   sender node id, UTF-8, zero padded
/// 64   4   CRC32C of the body as sent
/// 68   4   CRC32C of bytes 0..<68
/// 72   …   body
/// ```
public enum FrameCodec {
    public static let headerBytes = 72
    public static let magic: [UInt8] = [0x53, 0x54]
    public static let version: UInt8 = 2
    /// Bodies shorter than this are never compressed.
    public static let compressionThreshold = 256

    static let flagCompressed: UInt8 = 1 << 0
    static let flagResponse: UInt8 = 1 << 1
    static let flagTraces: UInt8 = 1 << 2
    static let flagsKnown: UInt8 = flagCompressed | flagResponse | flagTraces
    static let senderOffset = 32
    static let bodyCRCOffset = 64
    static let headerCRCOffset = 68

    /// Compresses the body with LZ4 when `compress` is true, the body is >= 256 bytes and LZ4 makes it smaller.
    ///
    /// The sender must be a valid id (`Frame.isValidSenderID`); an invalid one is written with a zero
    /// length so that every receiver rejects the frame (`badSenderID`) rather than misattributing it.
    public static func encode(_ frame: Frame, compress: Bool) -> [UInt8] {
        let traces = frame.traces.prefix(Frame.tracesMax)
        var plain = frame.body
        if !traces.isEmpty {
            plain = [UInt8(traces.count)]
            plain.reserveCapacity(1 + traces.count * TraceContext.wireBytes + frame.body.count)
            for t in traces { t.encode(into: &plain) }
            plain.append(contentsOf: frame.body)
        }
        var sent: [UInt8]? = nil
        if compress, plain.count >= compressionThreshold {
            sent = plain.withUnsafeBytes { LZ4.compress($0) }
        }
        let isCompressed = sent != nil
        let wire = sent ?? plain

        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + wire.count)
        out.append(contentsOf: magic)
        out.append(version)
        out.append(frame.kind.rawValue)
        var flags: UInt8 = 0
        if isCompressed { flags |= flagCompressed }
        if frame.isResponse { flags |= flagResponse }
        if !traces.isEmpty { flags |= flagTraces }
        out.append(flags)
        let senderBytes = Array(frame.sender.utf8)
        let senderValid = Frame.isValidSenderID(frame.sender)
        out.append(senderValid ? UInt8(senderBytes.count) : 0)
        out.appendLE(UInt16(0))
        out.appendLE(frame.clusterID)
        out.appendLE(frame.requestID)
        out.appendLE(UInt32(clamping: wire.count))
        out.appendLE(UInt32(clamping: plain.count))
        if senderValid { out.append(contentsOf: senderBytes) }
        out.append(contentsOf: repeatElement(0, count: headerBytes - 8 - out.count))
        out.appendLE(CRC32C.checksum(wire))
        let headerCRC = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<headerCRCOffset])) }
        out.appendLE(headerCRC)
        out.append(contentsOf: wire)
        return out
    }
}
