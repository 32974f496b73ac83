import Foundation
import Testing
@testable import StarlingCore
@testable import StarlingLog

/// Incompressible bytes of `n` (a seeded generator, so LZ4 cannot shrink them).
func noise(_ n: Int, seed: UInt64) -> String {
    var rng = SplitMix64(seed: seed)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
}

/// Damaged segment headers and oversized records: the cases that used to lose a whole segment
/// or make a block unreadable.
@Suite struct RecoveryDefectTests {
    /// Writes three segments of 4 records each (a segment rolls once it holds a block).
    func threeSegments(_ dir: String) throws -> Limits {
        var limits = Limits()
        limits.segmentBytesMax = 40
        let (log, _, _) = try recoverAll(dir, limits: limits)
        for s in 0..<3 { _ = try log.append((s * 4..<(s * 4 + 4)).map { rec($0) }, nowMs: day0) }
        log.closeFiles()
        #expect(segmentFiles(dir).count == 3)
        return limits
    }

    func damageHeader(_ file: String) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[2] ^= 0xFF    // magic
        bytes[13] ^= 0xFF   // header CRC
        try bytes.write(to: URL(fileURLWithPath: file))
    }

    @Test func damagedHeaderOfAMiddleSegmentKeepsItsBlocks() throws {
        let dir = TempDir()
        let limits = try threeSegments(dir.path)
        let middle = segmentFiles(dir.path)[1]
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: middle)[.size] as! Int
        try damageHeader(middle)
        let (_, seen, report) = try recoverAll(dir.path, limits: limits)
        #expect(seen.map(\.0) == (0..<12).map { rec($0) })
        #expect(report.corruptHeaders == 1)
        #expect(report.truncatedBytes == 0)
        #expect(try FileManager.default.attributesOfItem(atPath: middle)[.size] as! Int == sizeBefore)
    }

    @Test func damagedHeaderOfTheLastSegmentIsNeitherCutNorWrittenAgain() throws {
        let dir = TempDir()
        let limits = try threeSegments(dir.path)
        let last = segmentFiles(dir.path)[2]
        let before = try Data(contentsOf: URL(fileURLWithPath: last))
        try damageHeader(last)
        let damaged = try Data(contentsOf: URL(fileURLWithPath: last))
        do {
            let (log, seen, report) = try recoverAll(dir.path, limits: limits)
            #expect(seen.map(\.0) == (0..<12).map { rec($0) })
            #expect(report.corruptHeaders == 1 && report.truncatedBytes == 0)
            // The damaged file is kept byte for byte; the next append opens a new segment.
            #expect(try Data(contentsOf: URL(fileURLWithPath: last)) == damaged)
            #expect(damaged.count == before.count)
            let placed = try log.append([rec(12)], nowMs: day0)
            #expect(placed[0].seq == 13)
            #expect(segmentFiles(dir.path).count == 4)
            log.closeFiles()
        }
        let (_, seen, report) = try recoverAll(dir.path, limits: limits)
        #expect(seen.map(\.0) == (0..<13).map { rec($0) })
        #expect(report.corruptHeaders == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: last)) == damaged)
    }

    /// A record above `recordBytesMax` is refused before anything is written; every block the
    /// writer makes is one the reader accepts, even when large records fill it.
    @Test func writerKeepsToTheReadersBlockLimit() throws {
        let dir = TempDir()
        let limits = Limits()
        let (log, _, _) = try recoverAll(dir.path, limits: limits)
        func big(_ i: Int, _ bytes: Int) -> Record {
            Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "s", eventID: "b\(i)", key: "k",
                   json: Array("{\"pad\":\"\(noise(bytes, seed: UInt64(i)))\"}".utf8))
        }
        // Just under the record limit, incompressible: several per group.
        let near = (0..<7).map { big($0, limits.recordBytesMax - 200) }
        #expect(near.allSatisfy { $0.encodedCount <= limits.recordBytesMax })
        _ = try log.append(near, nowMs: day0)
        #expect(throws: RecordTooLarge.self) {
            _ = try log.append([rec(1), big(99, limits.recordBytesMax)], nowMs: day0)
        }
        _ = try log.append([rec(2)], nowMs: day0)
        log.closeFiles()
        let (_, seen, report) = try recoverAll(dir.path, limits: limits)
        #expect(seen.map(\.0) == near + [rec(2)])
        #expect(report.corruptBlocks == 0 && report.truncatedBytes == 0)
    }

    @Test func encodedCountMatchesTheEncoding() {
        for i in 0..<60 {
            var r = rec(i)
            r.userID = String(repeating: "u", count: i)
            r.via = "vïa"
            #expect(r.encodedCount == r.encoded.count)
        }
    }
}
