import StarlingCore
import StarlingLZ4

/// Why a frame or a message body was rejected. Any of these ends the peer connection.
public enum FrameError: Error, Sendable, Equatable {
    case badMagic
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case badHeaderChecksum
    case badSenderID
    /// The declared body length (as sent, or uncompressed) exceeds the receiver's limits.
    case bodyTooLarge(Int)
    case badBodyChecksum
    /// The compressed body does not decompress to the declared length, or the lengths are inconsistent.
    case badCompression
    /// Reserved header bytes or flag bits 3–7 are not zero.
    case reservedBitsSet
    /// A message body is malformed (truncated, a count that cannot fit, bad UTF-8, trailing bytes...).
    case badBody(String)
    /// The stream ended with this many bytes of an incomplete frame left over.
    case truncated(Int)
}

/// Incremental parser: feed it whatever bytes have arrived.
public struct FrameParser: Sendable {
    public var limits: FrameLimits

    public init(limits: FrameLimits = FrameLimits()) {
        self.limits = limits
    }

    /// The fields of a header that passed every check.
    struct Header {
        var kind: MessageKind
        var isCompressed: Bool
        var isResponse: Bool
        var hasTraces: Bool
        var clusterID: UInt64
        var requestID: UInt64
        var storedCount: Int
        var uncompressedCount: Int
        var sender: String
        var bodyCRC: UInt32
    }

    /// Returns a frame and the bytes it used, nil when more bytes are needed. Checks the header
    /// (magic, version, header CRC, sender, kind, size limits) as soon as 72 bytes are there — an
    /// oversize length is rejected before any body byte is buffered. Then body CRC and decompression.
    ///
    /// The magic is checked on whatever prefix of it has arrived, so garbage is rejected early.
    public func parse(_ bytes: UnsafeRawBufferPointer) throws(FrameError) -> (frame: Frame, consumed: Int)? {
        let prefix = min(bytes.count, FrameCodec.magic.count)
        for i in 0..<prefix where bytes[i] != FrameCodec.magic[i] { throw .badMagic }
        guard bytes.count >= FrameCodec.headerBytes else { return nil }
        let header = try parseHeader(UnsafeRawBufferPointer(rebasing: bytes[0..<FrameCodec.headerBytes]))
        let (total, overflow) = FrameCodec.headerBytes.addingReportingOverflow(header.storedCount)
        guard !overflow else { throw .bodyTooLarge(header.storedCount) }
        guard bytes.count >= total else { return nil }
        let stored = UnsafeRawBufferPointer(rebasing: bytes[FrameCodec.headerBytes..<total])
        guard CRC32C.checksum(stored) == header.bodyCRC else { throw .badBodyChecksum }
        var body: [UInt8]
        if header.isCompressed {
            guard let plain = LZ4.decompress(stored, originalCount: header.uncompressedCount),
                  plain.count == header.uncompressedCount else { throw .badCompression }
            body = plain
        } else {
            body = Array(stored)
        }
        var traces: [TraceContext] = []
        if header.hasTraces {
            guard let n = body.first.map(Int.init), n >= 1, n <= Frame.tracesMax, body.count >= 1 + n * TraceContext.wireBytes else {
                throw .badBody("trace contexts: bad count or truncated")
            }
            for i in 0..<n {
                let at = 1 + i * TraceContext.wireBytes
                guard let t = TraceContext.decode(body[at..<at + TraceContext.wireBytes]) else { throw .badBody("trace context \(i) is invalid") }
                traces.append(t)
            }
            body.removeFirst(1 + n * TraceContext.wireBytes)
        }
        let frame = Frame(kind: header.kind, isResponse: header.isResponse, clusterID: header.clusterID,
                          requestID: header.requestID, sender: header.sender, body: body, traces: traces)
        return (frame, total)
    }

    /// Validates exactly `FrameCodec.headerBytes` bytes, in the documented order.
    func parseHeader(_ h: UnsafeRawBufferPointer) throws(FrameError) -> Header {
        var r = ByteReader(h)
        guard let m0 = r.u8(), let m1 = r.u8(), let version = r.u8(), let kindByte = r.u8(),
              let flags = r.u8(), let senderLength = r.u8(), let reserved = r.u16(),
              let clusterID = r.u64(), let requestID = r.u64(),
              let storedLength = r.u32(), let uncompressedLength = r.u32(),
              let senderField = r.slice(Frame.senderBytesMax),
              let bodyCRC = r.u32(), let headerCRC = r.u32() else {
            // Unreachable with 72 bytes; reported as a header fault rather than trapping.
            throw .badHeaderChecksum
        }
        // 1. magic
        guard m0 == FrameCodec.magic[0], m1 == FrameCodec.magic[1] else { throw .badMagic }
        // 2. header CRC
        let crcRange = UnsafeRawBufferPointer(rebasing: h[0..<FrameCodec.headerCRCOffset])
        guard CRC32C.checksum(crcRange) == headerCRC else { throw .badHeaderChecksum }
        // 3. version
        guard version == FrameCodec.version else { throw .unsupportedVersion(version) }
        // 4. reserved bytes and flag bits
        guard reserved == 0, flags & ~FrameCodec.flagsKnown == 0 else { throw .reservedBitsSet }
        // 5. kind
        guard let kind = MessageKind(rawValue: kindByte) else { throw .unknownKind(kindByte) }
        // 6. sender: length, allowed bytes, zero padding
        let senderCount = Int(senderLength)
        guard senderCount >= 1, senderCount <= Frame.senderBytesMax else { throw .badSenderID }
        for i in 0..<Frame.senderBytesMax {
            let b = senderField[i]
            if i < senderCount {
                guard Frame.isSenderByte(b) else { throw .badSenderID }
            } else {
                guard b == 0 else { throw .badSenderID }
            }
        }
        let sender = String(decoding: UnsafeRawBufferPointer(rebasing: senderField[0..<senderCount]), as: UTF8.self)
        // 7. sizes
        guard let stored = Int(exactly: storedLength) else { throw .bodyTooLarge(Int.max) }
        guard let uncompressed = Int(exactly: uncompressedLength) else { throw .bodyTooLarge(Int.max) }
        guard stored <= limits.bodyBytesMax else { throw .bodyTooLarge(stored) }
        guard uncompressed <= limits.uncompressedBytesMax else { throw .bodyTooLarge(uncompressed) }
        let isCompressed = flags & FrameCodec.flagCompressed != 0
        if isCompressed {
            // The encoder only compresses non-empty bodies.
            guard stored > 0, uncompressed > 0 else { throw .badCompression }
        } else {
            guard uncompressed == stored else { throw .badCompression }
        }
        return Header(kind: kind, isCompressed: isCompressed, isResponse: flags & FrameCodec.flagResponse != 0,
                      hasTraces: flags & FrameCodec.flagTraces != 0,
                      clusterID: clusterID, requestID: requestID, storedCount: stored,
                      uncompressedCount: uncompressed, sender: sender, bodyCRC: bodyCRC)
    }
}
