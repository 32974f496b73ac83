import Foundation
import Testing
@testable import StarlingCore
@testable import StarlingLog

/// The sealed-segment index file: codec, lookups across chunks, and every way it can be damaged.
@Suite struct SegmentIndexTests {
    func entries(keys: Int, perKey: (Int) -> Int) -> [IndexEntry] {
        var out: [IndexEntry] = []
        var seq: UInt64 = 1
        for k in 0..<keys {
            for i in 0..<perKey(k) {
                out.append(IndexEntry(keyHash: UInt64(k) &* 0x9E37_79B9_7F4A_7C15, ts: Int64(i * 10), receivedAt: Int64(1_000 + k),
                                      seq: seq, blockOffset: UInt32(16 + k * 100), index: UInt16(i % 512)))
                seq += 1
            }
        }
        return out.shuffled()
    }

    func tempFile() -> String { NSTemporaryDirectory() + "starling-idx-" + UUID().uuidString + ".idx" }

    @Test func lookupsFindEveryRunAcrossChunkBoundaries() throws {
        // Key 3 spans several chunks (300 entries); others are small; 1 key has none.
        let list = entries(keys: 40, perKey: { $0 == 3 ? 300 : $0 % 5 })
        let path = tempFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SegmentIndexFile.write(list, segment: 7, segmentBytes: 12_345, to: path)
        let f = try SegmentIndexFile(path: path, segment: 7, segmentBytes: 12_345)
        #expect(f.entryCount == list.count && f.header.minReceivedAt == 1_001 && f.header.maxReceivedAt == 1_039)
        #expect(try f.all() == list.sorted(by: IndexEntry.sortOrder))
        for k in 0..<41 {
            let key = UInt64(k) &* 0x9E37_79B9_7F4A_7C15
            let want = list.filter { $0.keyHash == key }.sorted { $0.seq < $1.seq }
            #expect(try f.lookup(key) == want, "key \(k)")
        }
        #expect(try f.lookup(UInt64.max).isEmpty && (try f.lookup(0)).count == 0)   // key 0 has 0 entries (0 % 5)
        #expect(f.residentBytes < list.count)
    }

    @Test func anEmptyIndexOpensAndFindsNothing() throws {
        let path = tempFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SegmentIndexFile.write([], segment: 1, segmentBytes: 16, to: path)
        let f = try SegmentIndexFile(path: path, segment: 1, segmentBytes: 16)
        #expect(try f.lookup(42).isEmpty && f.entryCount == 0)
    }

    /// A torn file (cut at any byte) never opens, and a stale one (its segment has another size,
    /// or it names another segment) neither: each is rebuilt from the segment.
    @Test func aTornOrStaleFileNeverOpens() throws {
        let list = entries(keys: 5, perKey: { $0 + 30 })
        let bytes = SegmentIndexCodec.encode(list, segment: 3, segmentBytes: 999)
        let path = tempFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        for cut in 0..<bytes.count {
            try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
            #expect(throws: (any Error).self, "cut at \(cut)") { try SegmentIndexFile(path: path, segment: 3, segmentBytes: 999) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try SegmentIndexFile(path: path, segment: 3, segmentBytes: 1_000) }
        #expect(throws: (any Error).self) { try SegmentIndexFile(path: path, segment: 4, segmentBytes: 999) }
        _ = try SegmentIndexFile(path: path, segment: 3, segmentBytes: 999)
    }

    /// A flipped byte anywhere is caught: in the header or chunk table when the file opens, in
    /// the entries by the chunk's CRC when a lookup reads them.
    @Test func aFlippedByteAnywhereIsCaught() throws {
        let list = entries(keys: 3, perKey: { _ in 50 })
        let bytes = SegmentIndexCodec.encode(list, segment: 2, segmentBytes: 500)
        let path = tempFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let h = try bytes.withUnsafeBytes { try SegmentIndexCodec.header($0, fileBytes: bytes.count) }
        for i in 0..<bytes.count where !(68..<72).contains(i) {   // 68..<72 is reserved
            var b = bytes
            b[i] ^= 0x40
            try Data(b).write(to: URL(fileURLWithPath: path))
            guard let f = try? SegmentIndexFile(path: path, segment: 2, segmentBytes: 500) else { continue }
            #expect(i >= SegmentIndexCodec.headerBytes && i < h.chunkTableOffset, "byte \(i) passed the open checks")
            #expect(throws: (any Error).self, "byte \(i)") { _ = try f.all() }
        }
    }

    /// The read that never waits: the bytes when the page cache has them, nil once the file's
    /// pages are dropped (queries then hand the read to the I/O threads).
    @Test func aCachedReadSaysWhenItWouldWait() throws {
        let path = tempFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = try FileIO.openFile(path, flags: O_RDONLY)
        defer { close(fd) }
        _ = try FileIO.readAll(fd, count: bytes.count, at: 0, path: path)
        #expect(try FileIO.readCached(fd, count: 4096, at: 8192, path: path) == Array(bytes[8192..<12288]))
        #expect(try FileIO.readCached(fd, count: 4096, at: bytes.count, path: path) == nil, "past the end: a blocking read decides")
        _ = fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        let cold = try FileIO.readCached(fd, count: 4096, at: 128 * 1024, path: path)
        #expect(cold == nil || cold == Array(bytes[(128 * 1024)..<(132 * 1024)]), "either it would wait, or the bytes are right")
        #expect(try FileIO.readAll(fd, count: 4096, at: 128 * 1024, path: path) == Array(bytes[(128 * 1024)..<(132 * 1024)]))
    }
}
