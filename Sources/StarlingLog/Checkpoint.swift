import StarlingCore

/// The checkpoint file (`DIR/checkpoint`): a snapshot of the node's in-memory index as of the end
/// of a sealed segment, so start-up folds only the segments after it.
///
/// ```
/// off size field
///  0   6   magic "STLCKP"
///  6   2   format version (1)
///  8   4   segment: the snapshot holds every record of segments up to and including this one
/// 12   4   reserved (0)
/// 16   8   the log's next sequence number after that segment
/// 24   8   body length
/// 32   4   CRC32C of the body
/// 36   4   CRC32C of bytes 0..<36
/// 40   …   body (`NodeIndex.snapshot()`)
/// ```
/// Written whole to `checkpoint.tmp`, fsynced, renamed over the previous one.
public struct Checkpoint: Sendable, Equatable {
    public static let magic: [UInt8] = Array("STLCKP".utf8)
    public static let version: UInt16 = 1
    public static let headerBytes = 40

    public var segment: UInt32
    public var nextSeq: UInt64
    public var body: [UInt8]

    public init(segment: UInt32, nextSeq: UInt64, body: [UInt8]) {
        self.segment = segment
        self.nextSeq = nextSeq
        self.body = body
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated, badMagic, badVersion(UInt16), badHeaderChecksum, badLength, badBodyChecksum
    }

    public static func path(in directory: String) -> String { directory + "/checkpoint" }

    public func encoded() -> [UInt8] {
        var h = Self.magic
        h.appendLE(Self.version)
        h.appendLE(segment)
        h.appendLE(UInt32(0))
        h.appendLE(nextSeq)
        h.appendLE(UInt64(body.count))
        h.appendLE(CRC32C.checksum(body))
        h.appendLE(CRC32C.checksum(h))
        return h + body
    }

    public init(decoding bytes: [UInt8]) throws {
        guard bytes.count >= Self.headerBytes else { throw DecodeError.truncated }
        guard Array(bytes[0..<6]) == Self.magic else { throw DecodeError.badMagic }
        let fields: (UInt16, UInt32, UInt64, UInt64, UInt32, UInt32)? = bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf, offset: 6)
            guard let v = r.u16(), let seg = r.u32(), r.u32() != nil, let next = r.u64(), let len = r.u64(),
                  let bodyCRC = r.u32(), let crc = r.u32() else { return nil }
            return (v, seg, next, len, bodyCRC, crc)
        }
        guard let (v, seg, next, len, bodyCRC, crc) = fields else { throw DecodeError.truncated }
        guard v == Self.version else { throw DecodeError.badVersion(v) }
        guard CRC32C.checksum(Array(bytes[0..<36])) == crc else { throw DecodeError.badHeaderChecksum }
        guard UInt64(bytes.count - Self.headerBytes) == len else { throw DecodeError.badLength }
        let body = Array(bytes[Self.headerBytes...])
        guard CRC32C.checksum(body) == bodyCRC else { throw DecodeError.badBodyChecksum }
        self.init(segment: seg, nextSeq: next, body: body)
    }

    /// The directory's checkpoint: nil when there is none, an error when it is damaged.
    public static func read(in directory: String) throws -> Checkpoint? {
        let p = path(in: directory)
        guard FileIO.exists(p) else { return nil }
        guard let bytes = FileIO.readFile(p) else { throw DecodeError.truncated }
        return try Checkpoint(decoding: bytes)
    }

    public func write(in directory: String) throws {
        try FileIO.writeFileAtomically(Self.path(in: directory), encoded())
    }
}
