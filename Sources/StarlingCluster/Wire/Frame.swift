import StarlingCore
import StarlingLZ4

/// What a peer frame carries. The raw value is the `kind` byte of the frame header.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    case hello = 1, helloAck = 2, refuse = 3,
         membership = 10,
         forwardEvents = 20, forwardResult = 21, forwardRecords = 22,
         query = 30, queryResult = 31,
         identify = 40, identifyResult = 41,
         resolveIdentity = 42, resolveResult = 43,
         links = 44, linksResult = 45,
         replicate = 50, replicateResult = 51,
         catchUp = 52, catchUpResult = 53,
         error = 255
}

/// Size limits a receiver enforces on incoming frames, checked from the header alone.
public struct FrameLimits: Sendable, Equatable {
    /// Largest body as sent (after compression).
    public var bodyBytesMax = 4 << 20
    /// Largest body after decompression.
    public var uncompressedBytesMax = 16 << 20
    public init() {}
    public init(bodyBytesMax: Int, uncompressedBytesMax: Int) {
        self.bodyBytesMax = bodyBytesMax
        self.uncompressedBytesMax = uncompressedBytesMax
    }
}

/// One peer protocol frame. `body` is always the uncompressed body; compression is a property
/// of the encoding only (see `FrameCodec.encode`).
public struct Frame: Sendable, Equatable {
    public var kind: MessageKind
    public var isResponse: Bool
    public var clusterID: UInt64
    public var requestID: UInt64
    /// The sending node's id; must match `[a-z0-9-]{1,32}` (see `Frame.isValidSenderID`).
    public var sender: String
    public var body: [UInt8]

    public init(kind: MessageKind, isResponse: Bool = false, clusterID: UInt64, requestID: UInt64,
                sender: String, body: [UInt8] = []) {
        self.kind = kind
        self.isResponse = isResponse
        self.clusterID = clusterID
        self.requestID = requestID
        self.sender = sender
        self.body = body
    }

    /// Largest sender id in bytes.
    public static let senderBytesMax = 32

    /// True when `id` matches `[a-z0-9-]{1,32}`.
    public static func isValidSenderID(_ id: String) -> Bool {
        let u = id.utf8
        guard u.count >= 1, u.count <= senderBytesMax else { return false }
        return u.allSatisfy(isSenderByte)
    }

    @inline(__always)
    static func isSenderByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D
    }
}

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
    /// Reserved header bytes or flag bits 2–7 are not zero.
    case reservedBitsSet
    /// A message body is malformed (truncated, a count that cannot fit, bad UTF-8, trailing bytes...).
    case badBody(String)
    /// The stream ended with this many bytes of an incomplete frame left over.
    case truncated(Int)
}

/// Frame layout (all integers little-endian), header of exactly 72 bytes:
///
/// ```
/// off size field
///  0   2   magic "ST" (0x53 0x54)
///  2   1   protocol version (2: query pages and catch-up cursors inside a key)
///  3   1   kind (MessageKind raw value)
///  4   1   flags: bit 0 = body is LZ4-compressed, bit 1 = this frame is a response
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
    static let flagsKnown: UInt8 = flagCompressed | flagResponse
    static let senderOffset = 32
    static let bodyCRCOffset = 64
    static let headerCRCOffset = 68

    /// Compresses the body with LZ4 when `compress` is true, the body is >= 256 bytes and LZ4 makes it smaller.
    ///
    /// The sender must be a valid id (`Frame.isValidSenderID`); an invalid one is written with a zero
    /// length so that every receiver rejects the frame (`badSenderID`) rather than misattributing it.
    public static func encode(_ frame: Frame, compress: Bool) -> [UInt8] {
        var sent: [UInt8]? = nil
        if compress, frame.body.count >= compressionThreshold {
            sent = frame.body.withUnsafeBytes { LZ4.compress($0) }
        }
        let isCompressed = sent != nil
        let wire = sent ?? frame.body

        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + wire.count)
        out.append(contentsOf: magic)
        out.append(version)
        out.append(frame.kind.rawValue)
        var flags: UInt8 = 0
        if isCompressed { flags |= flagCompressed }
        if frame.isResponse { flags |= flagResponse }
        out.append(flags)
        let senderBytes = Array(frame.sender.utf8)
        let senderValid = Frame.isValidSenderID(frame.sender)
        out.append(senderValid ? UInt8(senderBytes.count) : 0)
        out.appendLE(UInt16(0))
        out.appendLE(frame.clusterID)
        out.appendLE(frame.requestID)
        out.appendLE(UInt32(clamping: wire.count))
        out.appendLE(UInt32(clamping: frame.body.count))
        if senderValid { out.append(contentsOf: senderBytes) }
        out.append(contentsOf: repeatElement(0, count: headerBytes - 8 - out.count))
        out.appendLE(CRC32C.checksum(wire))
        let headerCRC = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<headerCRCOffset])) }
        out.appendLE(headerCRC)
        out.append(contentsOf: wire)
        return out
    }
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
        let body: [UInt8]
        if header.isCompressed {
            guard let plain = LZ4.decompress(stored, originalCount: header.uncompressedCount),
                  plain.count == header.uncompressedCount else { throw .badCompression }
            body = plain
        } else {
            body = Array(stored)
        }
        let frame = Frame(kind: header.kind, isResponse: header.isResponse, clusterID: header.clusterID,
                          requestID: header.requestID, sender: header.sender, body: body)
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
                      clusterID: clusterID, requestID: requestID, storedCount: stored,
                      uncompressedCount: uncompressed, sender: sender, bodyCRC: bodyCRC)
    }
}
