import FuzzSupport
import StarlingCore
import StarlingLog

/// What start-up and queries read back from disk: log blocks (checksums, LZ4, records), single
/// records, index files (header, chunk table, chunks), the checkpoint and the state snapshot
/// inside it. Byte 0 picks the decoder.
@_cdecl("FuzzLog_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let limits = Limits()
    let ttl = TTLSettings(shortMs: 1_800_000, longMs: 2_592_000_000)
    return runFuzzer(argc, argv, seeds: seeds) { b in
        guard let (selector, rest) = split(b) else { return }
        switch selector % 5 {
        case 0:
            _ = rest.withUnsafeBytes { try? BlockCodec.decode($0, maxPayloadBytes: limits.blockPayloadBytesMax) }
            if let (h, _) = rest.withUnsafeBytes({ try? BlockCodec.decode($0, maxPayloadBytes: limits.blockPayloadBytesMax) }) {
                let payload = Array(rest.dropFirst(BlockCodec.headerBytes).prefix(h.storedBytes))
                if let raw = payload.withUnsafeBytes({ try? BlockCodec.rawPayload(header: h, payload: $0) }) {
                    _ = try? BlockCodec.records(at: Array(0..<min(h.count, 8)), inRaw: raw)
                }
            }
        case 1:
            _ = Record.checked(encoded: rest, limits: limits)
        case 2:
            rest.withUnsafeBytes { raw in
                guard let h = try? SegmentIndexCodec.header(raw, fileBytes: raw.count),
                      let chunks = try? SegmentIndexCodec.chunks(raw, header: h) else { return }
                for (c, chunk) in chunks.enumerated().prefix(16) {
                    let start = SegmentIndexCodec.headerBytes + c * SegmentIndexCodec.chunkEntries * SegmentIndexCodec.entryBytes
                    guard start <= raw.count else { break }
                    _ = try? SegmentIndexCodec.entries(UnsafeRawBufferPointer(rebasing: raw[start...]), chunk: c, expected: chunk)
                }
            }
        case 3:
            _ = try? Checkpoint(decoding: rest)
        default:
            _ = try? NodeIndex(snapshot: rest, ttl: ttl, dedupeWindowMs: 3_600_000)
        }
    }
}

func seeds() -> [[UInt8]] {
    var records: [Record] = []
    for i in 0..<5 {
        let t: Int64 = 1_700_000_000_000 + Int64(i)
        let json: [UInt8] = Array("{\"session_id\":\"s\",\"key\":\"k\",\"value\":\(i)}".utf8)
        let r = Record(kind: i == 4 ? .link : .event, isError: i == 2, ts: t, receivedAt: t, sessionID: "s\(i % 2)",
                       eventID: "e\(i)", key: "k", component: "api", via: i == 1 ? "ad" : "", userID: i == 3 ? "u1" : "", json: json)
        records.append(r)
    }
    var payload: [UInt8] = []
    for r in records { r.encode(into: &payload) }
    let block = BlockCodec.encode(records: payload, count: records.count, firstSeq: 7)
    var index = NodeIndex(ttl: TTLSettings(shortMs: 1_800_000, longMs: 2_592_000_000))
    for (i, r) in records.enumerated() { index.apply(r, at: RecordLocation(segment: 1, blockOffset: 16, index: UInt32(i)), seq: UInt64(7 + i)) }
    var entries: [IndexEntry] = []
    for i in 0..<300 {
        let n = Int64(i)
        entries.append(IndexEntry(keyHash: UInt64(i) &* 7919, ts: n, receivedAt: n, seq: UInt64(i), blockOffset: 16, index: UInt16(i % 5)))
    }
    let snapshot = index.snapshot()
    return [
        [0] + block,
        [1] + records[0].encoded,
        [1] + records[4].encoded,
        [2] + SegmentIndexCodec.encode(entries, segment: 3, segmentBytes: 4_096),
        [3] + Checkpoint(segment: 2, nextSeq: 12, body: snapshot).encoded(),
        [4] + snapshot,
    ]
}
