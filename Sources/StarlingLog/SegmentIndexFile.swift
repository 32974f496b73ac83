#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore

/// An open sealed-segment index (`SegmentIndexCodec`): its header and chunk table in memory
/// (about 0.1 byte per entry), entries read with pread as lookups need them. Any thread.
public final class SegmentIndexFile: @unchecked Sendable {
    public let path: String
    public let header: SegmentIndexCodec.Header
    let chunks: [SegmentIndexCodec.Chunk]
    let fd: Int32

    /// Opens and checks `path` as the index of `segment`, whose file is `segmentBytes` long.
    /// Throws when it is missing, torn, damaged or stale (then it is rebuilt from the segment).
    public init(path: String, segment: UInt32, segmentBytes: Int) throws {
        let fd = try FileIO.openFile(path, flags: O_RDONLY)
        do {
            let size = try FileIO.size(fd, path: path)
            let head = try FileIO.readAll(fd, count: min(size, SegmentIndexCodec.headerBytes), at: 0, path: path)
            let h = try head.withUnsafeBytes { (b) throws in try SegmentIndexCodec.header(b, fileBytes: size) }
            guard h.segment == segment else { throw SegmentIndexCodec.DecodeError.badMagic }
            guard h.segmentBytes == UInt64(segmentBytes) else {
                throw SegmentIndexCodec.DecodeError.badSize(expected: segmentBytes, actual: Int(h.segmentBytes))
            }
            let table = try FileIO.readAll(fd, count: h.chunks * SegmentIndexCodec.chunkRefBytes, at: h.chunkTableOffset, path: path)
            chunks = try table.withUnsafeBytes { (b) throws in try SegmentIndexCodec.chunks(b, header: h) }
            header = h
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    public var segment: UInt32 { header.segment }
    public var entryCount: Int { header.count }
    /// Bytes this object keeps in memory (the chunk table).
    public var residentBytes: Int { chunks.count * 16 }

    /// Entries whose key hash is `key`, in seq order. Throws when a chunk fails its CRC.
    public func lookup(_ key: UInt64) throws -> [IndexEntry] {
        guard let found = try lookup(key, cachedOnly: false) else { throw SegmentIndexCodec.DecodeError.truncated }
        return found
    }

    /// `lookup` if the chunks are in the page cache; nil if reading them would wait for the disk.
    public func lookupIfCached(_ key: UInt64) throws -> [IndexEntry]? {
        try lookup(key, cachedOnly: true)
    }

    func lookup(_ key: UInt64, cachedOnly: Bool) throws -> [IndexEntry]? {
        var out: [IndexEntry] = []
        for c in SegmentIndexCodec.chunkRange(for: key, in: chunks) {
            guard let list = try chunk(c, cachedOnly: cachedOnly) else { return nil }
            out.append(contentsOf: list.lazy.filter { $0.keyHash == key })
        }
        return out
    }

    /// Every entry (for tests and tools), checking each chunk.
    public func all() throws -> [IndexEntry] {
        var out: [IndexEntry] = []
        for c in chunks.indices { out += try chunk(c, cachedOnly: false) ?? [] }
        return out
    }

    /// Chunk `c`'s entries, checked against its CRC; nil when `cachedOnly` and reading would wait.
    func chunk(_ c: Int, cachedOnly: Bool) throws -> [IndexEntry]? {
        let first = c * SegmentIndexCodec.chunkEntries
        let count = min(SegmentIndexCodec.chunkEntries, header.count - first)
        let (n, at) = (count * SegmentIndexCodec.entryBytes, SegmentIndexCodec.headerBytes + first * SegmentIndexCodec.entryBytes)
        let read = cachedOnly ? try FileIO.readCached(fd, count: n, at: at, path: path) : try FileIO.readAll(fd, count: n, at: at, path: path)
        guard let bytes = read else { return nil }
        return try bytes.withUnsafeBytes { (b) throws in try SegmentIndexCodec.entries(b, chunk: c, expected: chunks[c]) }
    }

    /// Writes an index file for `segment` atomically (temporary file, fsync, rename, directory fsync).
    public static func write(_ entries: [IndexEntry], segment: UInt32, segmentBytes: Int, to path: String) throws {
        try FileIO.writeFileAtomically(path, SegmentIndexCodec.encode(entries, segment: segment, segmentBytes: UInt64(segmentBytes)))
    }
}

extension SegmentedLog {
    /// A segment of the log as found on disk.
    public struct SegmentInfo: Sendable, Equatable {
        public var number: UInt32
        public var day: String
        public var path: String
        public var indexPath: String { String(path.dropLast(4)) + ".idx" }
    }

    /// The segments on disk, in order (before `recover`; nothing is opened).
    public func discover() -> [SegmentInfo] {
        var found: [SegmentInfo] = []
        for day in FileIO.list(logDir).sorted() where Timestamps.parseUTCDay(day) != nil {
            for name in FileIO.list("\(logDir)/\(day)") where name.hasSuffix(".seg") {
                guard let n = UInt32(name.dropLast(4)) else { continue }
                found.append(SegmentInfo(number: n, day: day, path: "\(logDir)/\(day)/\(name)"))
            }
        }
        return found.sorted { $0.number < $1.number }
    }

    /// The segment appends go to, if one is open.
    public var activeSegment: UInt32? { active?.number }

    /// Size in bytes and index path of a known segment (nil once retention removed it).
    public func sealedInfo(_ number: UInt32) -> (path: String, bytes: Int)? {
        guard let seg = shared.withLock({ $0.segments[number] }), let size = FileIO.fileSize(seg.path) else { return nil }
        return (String(seg.path.dropLast(4)) + ".idx", size)
    }
}
