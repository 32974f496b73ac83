import Foundation
import Testing
@testable import StarlingCore
@testable import StarlingLog

/// A fresh directory per test, removed at the end.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "starling-log-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func rec(_ i: Int, session: String = "s") -> Record {
    Record(kind: .event, ts: Int64(i), receivedAt: Int64(i), sessionID: session, eventID: "e\(i)", key: "k",
           json: Array("{\"session_id\":\"\(session)\",\"n\":\(i),\"pad\":\"\(String(repeating: "x", count: i % 50))\"}".utf8))
}

let day0: Int64 = 1_700_000_000_000  // 2023-11-14

func recoverAll(_ dir: String, limits: Limits = Limits()) throws -> (SegmentedLog, [(Record, RecordLocation, UInt64)], RecoveryReport) {
    let log = SegmentedLog(directory: dir, limits: limits)
    var seen: [(Record, RecordLocation, UInt64)] = []
    let report = try log.recover { seen.append(($0, $1, $2)) }
    return (log, seen, report)
}

func segmentFiles(_ dir: String) -> [String] {
    let logDir = dir + "/log"
    var out: [String] = []
    for day in (try? FileManager.default.contentsOfDirectory(atPath: logDir))?.sorted() ?? [] {
        for f in (try? FileManager.default.contentsOfDirectory(atPath: logDir + "/" + day))?.sorted() ?? [] {
            out.append(logDir + "/" + day + "/" + f)
        }
    }
    return out
}

@Suite struct BlockCodecTests {
    @Test func roundTripCompressedAndPinnedHeader() throws {
        var payload: [UInt8] = []
        for i in 0..<100 { rec(i).encode(into: &payload) }
        let block = BlockCodec.encode(records: payload, count: 100, firstSeq: 42)
        #expect(Array(block[0..<4]) == Array("STLB".utf8))
        #expect(block[4] == 1)       // version
        #expect(block[5] == 1)       // compressed: repetitive JSON compresses
        #expect(block.count < payload.count)
        let (h, records) = try block.withUnsafeBytes { try BlockCodec.decode($0, maxPayloadBytes: 1 << 22) }
        #expect(h.firstSeq == 42)
        #expect(h.count == 100)
        #expect(records == (0..<100).map { rec($0) })
    }

    @Test func incompressiblePayloadIsStoredRaw() throws {
        var rng = SplitMix64(seed: 3)
        let noise = (0..<4000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let r = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "s", json: noise)
        let block = BlockCodec.encode(records: r.encoded, count: 1, firstSeq: 1)
        #expect(block[5] == 0)
        let (_, records) = try block.withUnsafeBytes { try BlockCodec.decode($0, maxPayloadBytes: 1 << 22) }
        #expect(records == [r])
    }

    @Test func seededMutationsNeverTrapAndAreRejected() {
        var payload: [UInt8] = []
        for i in 0..<20 { rec(i).encode(into: &payload) }
        let block = BlockCodec.encode(records: payload, count: 20, firstSeq: 1)
        var rng = SplitMix64(seed: 99)
        var rejected = 0
        for _ in 0..<3_000 {
            var b = block
            let flips = 1 + Int(rng.next() % 4)
            for _ in 0..<flips {
                let i = Int(rng.next() % UInt64(b.count))
                b[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
            if rng.next() % 5 == 0 { b.removeLast(Int(rng.next() % UInt64(b.count))) }
            let ok = (try? b.withUnsafeBytes { try BlockCodec.decode($0, maxPayloadBytes: 1 << 22) }) != nil
            if !ok { rejected += 1 }
        }
        #expect(rejected == 3_000, "every mutated block must be rejected by its checksums")
    }

    @Test func oversizeLengthIsRejectedFromTheHeader() {
        let block = BlockCodec.encode(records: rec(1).encoded, count: 1, firstSeq: 1)
        #expect(throws: BlockCodec.DecodeError.badLength) {
            try block.withUnsafeBytes { try BlockCodec.header($0, maxPayloadBytes: 4) }
        }
    }
}

@Suite struct SegmentedLogTests {
    @Test func appendRecoverAndRead() throws {
        let dir = TempDir()
        var placed: [(location: RecordLocation, seq: UInt64)] = []
        do {
            let (log, seen, _) = try recoverAll(dir.path)
            #expect(seen.isEmpty)
            placed += try log.append((0..<10).map { rec($0) }, nowMs: day0)
            placed += try log.append((10..<25).map { rec($0) }, nowMs: day0 + 1)
            try log.sync()
            #expect(placed.map(\.seq) == Array(1...25))
            let block = try log.readBlock(segment: placed[12].location.segment, offset: placed[12].location.blockOffset)
            #expect(block[Int(placed[12].location.index)] == rec(12))
            log.closeFiles()
        }
        let (log2, seen, report) = try recoverAll(dir.path)
        #expect(seen.map(\.0) == (0..<25).map { rec($0) })
        #expect(seen.map(\.2) == Array(1...25))
        #expect(seen.map(\.1) == placed.map(\.location))
        #expect(report.truncatedBytes == 0 && report.corruptBlocks == 0)
        // Appending continues the sequence.
        let more = try log2.append([rec(25)], nowMs: day0 + 2)
        #expect(more[0].seq == 26)
    }

    @Test func blocksRespectRecordLimit() throws {
        let dir = TempDir()
        var limits = Limits()
        limits.blockRecordsMax = 7
        let (log, _, _) = try recoverAll(dir.path, limits: limits)
        let placed = try log.append((0..<20).map { rec($0) }, nowMs: day0)
        #expect(Set(placed.map(\.location.blockOffset)).count == 3)
        #expect(placed.map(\.location.index).max() == 6)
    }

    @Test func segmentsRollBySizeAndDay() throws {
        let dir = TempDir()
        var limits = Limits()
        limits.segmentBytesMax = 300
        let (log, _, _) = try recoverAll(dir.path, limits: limits)
        for i in 0..<6 { _ = try log.append([rec(i)], nowMs: day0) }
        _ = try log.append([rec(6)], nowMs: day0 + 86_400_000)
        let files = segmentFiles(dir.path)
        #expect(files.count >= 3)
        #expect(files.contains { $0.contains("2023-11-14") } && files.contains { $0.contains("2023-11-15") })
        log.closeFiles()
        let (_, seen, _) = try recoverAll(dir.path, limits: limits)
        #expect(seen.map(\.0) == (0..<7).map { rec($0) })
    }

    /// A crash between write and fsync can leave any prefix of the last block: every
    /// truncation point must recover exactly the earlier blocks, cut the tail, and accept appends.
    @Test func tornTailAtEveryByteOffset() throws {
        let base = TempDir()
        let (log, _, _) = try recoverAll(base.path)
        _ = try log.append((0..<5).map { rec($0) }, nowMs: day0)
        let last = try log.append((5..<9).map { rec($0) }, nowMs: day0)
        log.closeFiles()
        let file = segmentFiles(base.path)[0]
        let full = try Data(contentsOf: URL(fileURLWithPath: file))
        let lastStart = Int(last[0].location.blockOffset)
        for cut in lastStart..<full.count {
            let dir = TempDir()
            let day = dir.path + "/log/2023-11-14"
            try FileManager.default.createDirectory(atPath: day, withIntermediateDirectories: true)
            try full.prefix(cut).write(to: URL(fileURLWithPath: day + "/" + (file as NSString).lastPathComponent))
            let (log, seen, report) = try recoverAll(dir.path)
            #expect(seen.map(\.0) == (0..<5).map { rec($0) }, "cut at \(cut)")
            #expect(report.truncatedBytes == cut - lastStart, "cut at \(cut)")
            let again = try log.append([rec(100)], nowMs: day0)
            #expect(again[0].seq == 6)
            log.closeFiles()
            let (_, seen2, report2) = try recoverAll(dir.path)
            #expect(seen2.map(\.0) == (0..<5).map { rec($0) } + [rec(100)])
            #expect(report2.truncatedBytes == 0)
        }
    }

    @Test func flippedByteInTheMiddleSkipsOnlyThatBlock() throws {
        let dir = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        _ = try log.append((0..<5).map { rec($0) }, nowMs: day0)
        let mid = try log.append((5..<10).map { rec($0) }, nowMs: day0)
        _ = try log.append((10..<15).map { rec($0) }, nowMs: day0)
        log.closeFiles()
        let file = segmentFiles(dir.path)[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[Int(mid[0].location.blockOffset) + 40] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: file))
        let (_, seen, report) = try recoverAll(dir.path)
        #expect(seen.map(\.0) == (0..<5).map { rec($0) } + (10..<15).map { rec($0) })
        #expect(report.corruptBlocks == 1)
        #expect(report.truncatedBytes == 0)
        // The file is kept whole: the good block after the damage is still there.
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)).count == bytes.count)
    }

    @Test func corruptHeaderOfABlockInTheMiddleResyncs() throws {
        let dir = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        _ = try log.append((0..<3).map { rec($0) }, nowMs: day0)
        let mid = try log.append((3..<6).map { rec($0) }, nowMs: day0)
        _ = try log.append((6..<9).map { rec($0) }, nowMs: day0)
        log.closeFiles()
        let file = segmentFiles(dir.path)[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[Int(mid[0].location.blockOffset) + 1] ^= 0xFF    // magic
        bytes[Int(mid[0].location.blockOffset) + 20] ^= 0xFF   // length
        try bytes.write(to: URL(fileURLWithPath: file))
        let (_, seen, report) = try recoverAll(dir.path)
        #expect(seen.map(\.0) == (0..<3).map { rec($0) } + (6..<9).map { rec($0) })
        #expect(report.corruptBlocks == 1)
    }

    @Test func garbageAppendedAfterTheLastBlockIsCut() throws {
        let dir = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        _ = try log.append((0..<3).map { rec($0) }, nowMs: day0)
        log.closeFiles()
        let file = segmentFiles(dir.path)[0]
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        h.seekToEndOfFile()
        h.write(Data("STLB garbage that looks like a header".utf8))
        try h.close()
        let (_, seen, report) = try recoverAll(dir.path)
        #expect(seen.count == 3)
        #expect(report.truncatedBytes == 37)
    }

    @Test func retentionDeletesOldDaysButNeverTheActiveOne() throws {
        let dir = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        let dayMs: Int64 = 86_400_000
        let first = try log.append([rec(1)], nowMs: day0)
        _ = try log.append([rec(2)], nowMs: day0 + 5 * dayMs)
        _ = try log.append([rec(3)], nowMs: day0 + 20 * dayMs)
        let (days, segments, _) = try log.applyRetention(keepDays: 15, nowMs: day0 + 20 * dayMs, archive: nil)
        #expect(days == ["2023-11-14"])
        #expect(segments == [first[0].location.segment])
        #expect(segmentFiles(dir.path).count == 2)
        #expect(throws: (any Error).self) { try log.readBlock(segment: first[0].location.segment, offset: first[0].location.blockOffset) }
        // The active day survives even when it is old.
        let (days2, _, _) = try log.applyRetention(keepDays: 1, nowMs: day0 + 400 * dayMs, archive: nil)
        #expect(days2 == ["2023-11-19"])
        #expect(segmentFiles(dir.path).count == 1)
    }

    /// A day with a segment the checkpoint does not cover yet waits (and says so); the days
    /// before it go.
    @Test func retentionWaitsForDaysBeyondTheCheckpoint() throws {
        let dir = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        let dayMs: Int64 = 86_400_000
        let first = try log.append([rec(1)], nowMs: day0)
        let second = try log.append([rec(2)], nowMs: day0 + 5 * dayMs)
        _ = try log.append([rec(3)], nowMs: day0 + 20 * dayMs)
        let covered = first[0].location.segment
        #expect(second[0].location.segment > covered)
        let (days, segments, waiting) = try log.applyRetention(keepDays: 1, nowMs: day0 + 20 * dayMs, archive: nil, throughSegment: covered)
        #expect(days == ["2023-11-14"] && segments == [covered] && waiting)
        #expect(segmentFiles(dir.path).count == 2)
        let (later, _, still) = try log.applyRetention(keepDays: 1, nowMs: day0 + 20 * dayMs, archive: nil,
                                                       throughSegment: second[0].location.segment)
        #expect(later == ["2023-11-19"] && !still)
    }

    @Test func retentionCanArchive() throws {
        let dir = TempDir()
        let archive = TempDir()
        let (log, _, _) = try recoverAll(dir.path)
        _ = try log.append([rec(1)], nowMs: day0)
        _ = try log.append([rec(2)], nowMs: day0 + 30 * 86_400_000)
        let (days, _, _) = try log.applyRetention(keepDays: 15, nowMs: day0 + 30 * 86_400_000, archive: archive.path)
        #expect(days == ["2023-11-14"])
        let archived = try FileManager.default.contentsOfDirectory(atPath: archive.path + "/2023-11-14")
        #expect(archived.count == 1)
    }
}

@Suite struct BackgroundSyncTests {
    /// `--fsync interval` syncs a duplicate descriptor off the writer thread: a handle only when
    /// something was written since the last one, and a rotation cannot close it under the syncer.
    @Test func syncHandleOnlyWhenDirtyAndSurvivesRotation() throws {
        let tmp = TempDir()
        var limits = Limits()
        limits.segmentBytesMax = 4096
        let (log, _, _) = try recoverAll(tmp.path, limits: limits)
        #expect(log.takeSyncHandle() == nil, "nothing written yet")
        _ = try log.append([rec(1)], nowMs: day0)
        let handle = try #require(log.takeSyncHandle())
        #expect(log.takeSyncHandle() == nil, "already taken: not dirty")
        // Enough appends to rotate to new segments while the handle is out.
        for i in 0..<200 { _ = try log.append([rec(i)], nowMs: day0) }
        #expect(segmentFiles(tmp.path).count > 1)
        try SegmentedLog.syncAndClose(handle)
        let again = try #require(log.takeSyncHandle(), "written since the last handle")
        try SegmentedLog.syncAndClose(again)
        log.closeFiles()
        let (_, seen, _) = try recoverAll(tmp.path, limits: limits)
        #expect(seen.count == 201)
    }
}
