import StarlingCore
import StarlingLZ4

/// The log block: a group of records written (and fsynced) together, LZ4-compressed.
///
/// ```
/// off size field
///  0   4   magic "STLB"
///  4   1   format version (1)
///  5   1   flags: bit 0 = payload is LZ4-compressed
///  6   2   reserved (0)
///  8   8   seq of the first record (records are numbered consecutively)
/// 16   4   record count
/// 20   4   payload length uncompressed
/// 24   4   payload length as stored
/// 28   4   CRC32C of the stored payload
/// 32   4   CRC32C of bytes 0..<32
/// 36   …   payload: the records, back to back (`Record` layout)
/// ```
/// Little-endian. A block is valid only if both checksums, the decompression, the record
/// count and every record checksum agree.
public enum BlockCodec {
    public static let magic: [UInt8] = Array("STLB".utf8)
    public static let version: UInt8 = 1
    public static let headerBytes = 36

    public struct Header: Sendable, Equatable {
        public var compressed: Bool
        public var firstSeq: UInt64
        public var count: Int
        public var rawBytes: Int
        public var storedBytes: Int
        public var payloadCRC: UInt32
        public var totalBytes: Int { BlockCodec.headerBytes + storedBytes }
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated
        case badMagic
        case badVersion(UInt8)
        case badHeaderChecksum
        case badLength
        case badPayloadChecksum
        case badCompression
        case badRecord(Record.DecodeError)
        case countMismatch
    }

    /// Encodes already-encoded records (`Record.encode`) as one block.
    public static func encode(records payload: [UInt8], count: Int, firstSeq: UInt64) -> [UInt8] {
        let stored: [UInt8]
        let compressed: Bool
        if let c = payload.withUnsafeBytes({ LZ4.compress($0) }) {
            stored = c
            compressed = true
        } else {
            stored = payload
            compressed = false
        }
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + stored.count)
        out.append(contentsOf: magic)
        out.append(version)
        out.append(compressed ? 1 : 0)
        out.appendLE(UInt16(0))
        out.appendLE(firstSeq)
        out.appendLE(UInt32(count))
        out.appendLE(UInt32(payload.count))
        out.appendLE(UInt32(stored.count))
        out.appendLE(CRC32C.checksum(stored))
        let hcrc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
        out.appendLE(hcrc)
        out.append(contentsOf: stored)
        return out
    }

    /// Parses and checks a header. `maxPayloadBytes` bounds the payload, stored and uncompressed,
    /// before anything is read (`Limits.blockPayloadBytesMax`, which the writer keeps to).
    public static func header(_ bytes: UnsafeRawBufferPointer, maxPayloadBytes: Int) throws -> Header {
        guard bytes.count >= headerBytes else { throw DecodeError.truncated }
        guard bytes[0] == magic[0], bytes[1] == magic[1], bytes[2] == magic[2], bytes[3] == magic[3] else { throw DecodeError.badMagic }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<headerBytes]), offset: 4)
        guard let v = r.u8(), let flags = r.u8(), r.u16() != nil, let seq = r.u64(), let count = r.u32(),
              let raw = r.u32(), let stored = r.u32(), let pcrc = r.u32(), let hcrc = r.u32() else { throw DecodeError.truncated }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<32])) == hcrc else { throw DecodeError.badHeaderChecksum }
        guard v == version else { throw DecodeError.badVersion(v) }
        guard let storedN = Int(exactly: stored), let rawN = Int(exactly: raw), let countN = Int(exactly: count),
              storedN <= maxPayloadBytes, rawN <= maxPayloadBytes, countN <= rawN else { throw DecodeError.badLength }
        return Header(compressed: flags & 1 != 0, firstSeq: seq, count: countN, rawBytes: rawN,
                      storedBytes: storedN, payloadCRC: pcrc)
    }

    /// Verifies and decompresses a payload, then decodes its records.
    public static func records(header h: Header, payload: UnsafeRawBufferPointer) throws -> [Record] {
        guard payload.count == h.storedBytes else { throw DecodeError.truncated }
        guard CRC32C.checksum(payload) == h.payloadCRC else { throw DecodeError.badPayloadChecksum }
        let raw: [UInt8]
        if h.compressed {
            guard let d = LZ4.decompress(payload, originalCount: h.rawBytes) else { throw DecodeError.badCompression }
            raw = d
        } else {
            guard h.rawBytes == h.storedBytes else { throw DecodeError.badLength }
            raw = Array(payload)
        }
        return try raw.withUnsafeBytes { (buf) throws -> [Record] in
            var reader = ByteReader(buf)
            var out: [Record] = []
            out.reserveCapacity(h.count)
            while reader.remaining > 0 {
                do {
                    out.append(try Record.decode(&reader))
                } catch let e as Record.DecodeError {
                    throw DecodeError.badRecord(e)
                }
            }
            guard out.count == h.count else { throw DecodeError.countMismatch }
            return out
        }
    }

    /// Verifies and decompresses a payload without decoding its records.
    public static func rawPayload(header h: Header, payload: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard payload.count == h.storedBytes else { throw DecodeError.truncated }
        guard CRC32C.checksum(payload) == h.payloadCRC else { throw DecodeError.badPayloadChecksum }
        if h.compressed {
            guard let d = LZ4.decompress(payload, originalCount: h.rawBytes) else { throw DecodeError.badCompression }
            return d
        }
        guard h.rawBytes == h.storedBytes else { throw DecodeError.badLength }
        return Array(payload)
    }

    /// Decodes only the records at `indexes` (ascending) of an uncompressed payload, skipping
    /// the others by their length fields. Each decoded record's CRC is verified.
    public static func records(at indexes: [Int], inRaw raw: [UInt8]) throws -> [Int: Record] {
        var out: [Int: Record] = [:]
        guard let last = indexes.max() else { return out }
        let wanted = Set(indexes)
        try raw.withUnsafeBytes { buf in
            var reader = ByteReader(buf)
            var i = 0
            while i <= last {
                if wanted.contains(i) {
                    do {
                        out[i] = try Record.decode(&reader)
                    } catch let e as Record.DecodeError {
                        throw DecodeError.badRecord(e)
                    }
                } else {
                    guard let len = reader.u32(), let n = Int(exactly: len), reader.slice(n) != nil else {
                        throw DecodeError.truncated
                    }
                }
                i += 1
            }
        }
        return out
    }

    /// Decodes a complete block (header + payload) held in memory.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPayloadBytes: Int) throws -> (Header, [Record]) {
        let h = try header(bytes, maxPayloadBytes: maxPayloadBytes)
        guard bytes.count >= h.totalBytes else { throw DecodeError.truncated }
        let recs = try records(header: h, payload: UnsafeRawBufferPointer(rebasing: bytes[headerBytes..<h.totalBytes]))
        return (h, recs)
    }
}
