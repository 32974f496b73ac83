import StarlingCore

/// One record of a sealed segment under one subject (an event is listed under its session and
/// each identity it names). 40 bytes on disk.
public struct IndexEntry: Sendable, Equatable {
    /// FNV-1a 64 of the subject's ring key (`SubjectKey.ringKey`). Different subjects may share
    /// it: readers check the record they read against the subject they asked for.
    public var keyHash: UInt64
    public var ts: Int64
    public var receivedAt: Int64
    public var seq: UInt64
    public var blockOffset: UInt32
    public var index: UInt16

    public init(keyHash: UInt64, ref: EventRef) {
        self.keyHash = keyHash
        ts = ref.ts
        receivedAt = ref.receivedAt
        seq = ref.seq
        blockOffset = UInt32(truncatingIfNeeded: ref.location.blockOffset)
        index = UInt16(truncatingIfNeeded: ref.location.index)
    }

    public init(keyHash: UInt64, ts: Int64, receivedAt: Int64, seq: UInt64, blockOffset: UInt32, index: UInt16) {
        self.keyHash = keyHash
        self.ts = ts
        self.receivedAt = receivedAt
        self.seq = seq
        self.blockOffset = blockOffset
        self.index = index
    }

    public func ref(segment: UInt32) -> EventRef {
        EventRef(location: RecordLocation(segment: segment, blockOffset: UInt64(blockOffset), index: UInt32(index)),
                 ts: ts, receivedAt: receivedAt, seq: seq)
    }

    public static func keyHash(_ subject: SubjectKey) -> UInt64 { StableHash.fnv1a64(subject.ringKey) }

    public static func sortOrder(_ a: IndexEntry, _ b: IndexEntry) -> Bool {
        a.keyHash != b.keyHash ? a.keyHash < b.keyHash : a.seq < b.seq
    }
}

/// The on-disk index of one sealed segment (`<segment>.idx` next to its `.seg`), pure codec.
///
/// ```
/// off size field
///  0   6   magic "STLIDX"
///  6   2   format version (1)
///  8   4   segment number
/// 12   4   entry count n
/// 16   4   entries per chunk (128)
/// 20   4   CRC32C of the chunk table
/// 24   8   size of the segment file it indexes (a different size: stale, rebuilt)
/// 32   8   smallest ts          40 8 largest ts
/// 48   8   smallest received_at 56 8 largest received_at
/// 64   4   CRC32C of bytes 0..<64
/// 68   4   reserved (0)
/// 72   40n entries sorted by (key hash, seq): key hash u64, ts i64, received_at i64, seq u64,
///          block offset u32, index in block u16, reserved u16
/// …    12c chunk table, one per 128 entries: key hash of the chunk's first entry u64, CRC32C of
///          the chunk's entries u32
/// ```
/// Little-endian. Opening reads the header and the chunk table (12 bytes per 128 entries, kept
/// in memory); a lookup reads only the chunks whose key range can hold the key and checks each
/// chunk's CRC. The file is written whole to a temporary name, fsynced and renamed.
public enum SegmentIndexCodec {
    public static let magic: [UInt8] = Array("STLIDX".utf8)
    public static let version: UInt16 = 1
    public static let headerBytes = 72
    public static let entryBytes = 40
    public static let chunkEntries = 128
    public static let chunkRefBytes = 12

    public struct Header: Sendable, Equatable {
        public var segment: UInt32
        public var count: Int
        public var chunkTableCRC: UInt32
        public var segmentBytes: UInt64
        public var minTs: Int64, maxTs: Int64
        public var minReceivedAt: Int64, maxReceivedAt: Int64
        public var chunks: Int { (count + SegmentIndexCodec.chunkEntries - 1) / SegmentIndexCodec.chunkEntries }
        public var chunkTableOffset: Int { SegmentIndexCodec.headerBytes + count * SegmentIndexCodec.entryBytes }
        public var fileBytes: Int { chunkTableOffset + chunks * SegmentIndexCodec.chunkRefBytes }
    }

    public struct Chunk: Sendable, Equatable {
        public var firstKey: UInt64
        public var crc: UInt32
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated, badMagic, badVersion(UInt16), badHeaderChecksum, badSize(expected: Int, actual: Int)
        case badChunkTable, badChunk(Int), notSorted
    }

    /// Encodes entries (sorted here) as a whole index file.
    public static func encode(_ unsorted: [IndexEntry], segment: UInt32, segmentBytes: UInt64) -> [UInt8] {
        let entries = unsorted.sorted(by: IndexEntry.sortOrder)
        var body: [UInt8] = []
        body.reserveCapacity(entries.count * entryBytes)
        var table: [UInt8] = []
        var chunkStart = 0
        for (i, e) in entries.enumerated() {
            if i % chunkEntries == 0 {
                if i > 0 { appendChunk(&table, body, from: chunkStart, firstKey: entries[i - chunkEntries].keyHash) }
                chunkStart = body.count
            }
            body.appendLE(e.keyHash)
            body.appendLE(e.ts)
            body.appendLE(e.receivedAt)
            body.appendLE(e.seq)
            body.appendLE(e.blockOffset)
            body.appendLE(e.index)
            body.appendLE(UInt16(0))
        }
        if !entries.isEmpty {
            appendChunk(&table, body, from: chunkStart, firstKey: entries[(entries.count - 1) / chunkEntries * chunkEntries].keyHash)
        }
        var h = magic
        h.appendLE(version)
        h.appendLE(segment)
        h.appendLE(UInt32(entries.count))
        h.appendLE(UInt32(chunkEntries))
        h.appendLE(CRC32C.checksum(table))
        h.appendLE(segmentBytes)
        h.appendLE(entries.map(\.ts).min() ?? 0)
        h.appendLE(entries.map(\.ts).max() ?? 0)
        h.appendLE(entries.map(\.receivedAt).min() ?? 0)
        h.appendLE(entries.map(\.receivedAt).max() ?? 0)
        h.appendLE(CRC32C.checksum(h))
        h.appendLE(UInt32(0))
        return h + body + table
    }

    static func appendChunk(_ table: inout [UInt8], _ body: [UInt8], from start: Int, firstKey: UInt64) {
        table.appendLE(firstKey)
        table.appendLE(body.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start...])) })
    }

    /// Reads and checks the header; `fileBytes` is the file's size, which must match it exactly.
    public static func header(_ bytes: UnsafeRawBufferPointer, fileBytes: Int) throws -> Header {
        guard bytes.count >= headerBytes else { throw DecodeError.truncated }
        for i in 0..<magic.count where bytes[i] != magic[i] { throw DecodeError.badMagic }
        var r = ByteReader(bytes, offset: magic.count)
        guard let v = r.u16(), let seg = r.u32(), let n = r.u32(), let per = r.u32(), let tableCRC = r.u32(),
              let segBytes = r.u64(), let minTs = r.i64(), let maxTs = r.i64(), let minRx = r.i64(), let maxRx = r.i64(),
              let crc = r.u32() else { throw DecodeError.truncated }
        guard v == version else { throw DecodeError.badVersion(v) }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<64])) == crc else { throw DecodeError.badHeaderChecksum }
        guard per == UInt32(chunkEntries) else { throw DecodeError.badHeaderChecksum }
        let h = Header(segment: seg, count: Int(n), chunkTableCRC: tableCRC, segmentBytes: segBytes,
                       minTs: minTs, maxTs: maxTs, minReceivedAt: minRx, maxReceivedAt: maxRx)
        guard h.fileBytes == fileBytes else { throw DecodeError.badSize(expected: h.fileBytes, actual: fileBytes) }
        return h
    }

    /// Decodes and checks the chunk table (its CRC, and first keys in ascending order).
    public static func chunks(_ bytes: UnsafeRawBufferPointer, header h: Header) throws -> [Chunk] {
        guard bytes.count == h.chunks * chunkRefBytes else { throw DecodeError.truncated }
        guard CRC32C.checksum(bytes) == h.chunkTableCRC else { throw DecodeError.badChunkTable }
        var r = ByteReader(bytes)
        var out: [Chunk] = []
        out.reserveCapacity(h.chunks)
        for _ in 0..<h.chunks {
            guard let k = r.u64(), let c = r.u32() else { throw DecodeError.truncated }
            if let last = out.last, last.firstKey > k { throw DecodeError.notSorted }
            out.append(Chunk(firstKey: k, crc: c))
        }
        return out
    }

    /// The chunks that may hold `key`: from the last chunk starting before it (a key's run may
    /// begin in the chunk before the first one that starts with it) to the last starting at it.
    public static func chunkRange(for key: UInt64, in chunks: [Chunk]) -> Range<Int> {
        var lo = 0, hi = chunks.count
        while lo < hi {   // first chunk whose first key >= key
            let mid = (lo + hi) / 2
            if chunks[mid].firstKey < key { lo = mid + 1 } else { hi = mid }
        }
        let start = max(0, lo - 1)
        var end = lo
        while end < chunks.count && chunks[end].firstKey == key { end += 1 }
        return start..<max(start + (chunks.isEmpty ? 0 : 1), end)
    }

    /// Decodes one chunk's entries after checking its CRC.
    public static func entries(_ bytes: UnsafeRawBufferPointer, chunk: Int, expected: Chunk) throws -> [IndexEntry] {
        guard bytes.count % entryBytes == 0, bytes.count > 0 else { throw DecodeError.badChunk(chunk) }
        guard CRC32C.checksum(bytes) == expected.crc else { throw DecodeError.badChunk(chunk) }
        var r = ByteReader(bytes)
        var out: [IndexEntry] = []
        out.reserveCapacity(bytes.count / entryBytes)
        while let k = r.u64() {
            guard let ts = r.i64(), let rx = r.i64(), let seq = r.u64(), let off = r.u32(), let i = r.u16(), r.u16() != nil else {
                throw DecodeError.badChunk(chunk)
            }
            out.append(IndexEntry(keyHash: k, ts: ts, receivedAt: rx, seq: seq, blockOffset: off, index: i))
        }
        return out
    }
}
