#if canImport(Glibc)
import Glibc
#endif
import CCrypto
import CLZ4
import CZlib
import CZstd
import StarlingCore
import StarlingLog

/// How an export file is compressed.
public enum ExportCompression: String, Sendable, CaseIterable {
    case none, gzip, lz4, zstd

    var suffix: String {
        switch self {
        case .none: return ""
        case .gzip: return ".gz"
        case .lz4: return ".lz4"
        case .zstd: return ".zst"
        }
    }
}

public struct ExportError: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var description: String
}

/// Streams an export into a file under a temporary name: compressed (gzip through zlib, the LZ4
/// frame format through liblz4, zstd frames through libzstd, so `gunzip`, `lz4 -d` and `zstd -d`
/// read them), hashed with SHA-256 as
/// written, renamed into place by `finish`.
final class ExportFileWriter {
    let path: String
    let tmp: String
    let compression: ExportCompression
    private var fd: Int32
    private var pending: [UInt8] = []
    private var out: [UInt8] = []
    private(set) var bytes = 0
    private let sha: OpaquePointer
    private var zs = z_stream()
    private var lz4: OpaquePointer?
    private var zstd: OpaquePointer?

    init(path: String, compression: ExportCompression) throws {
        self.path = path
        tmp = path + ".tmp"
        self.compression = compression
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError(status: 500, description: "cannot create \(tmp): errno \(errno)") }
        sha = EVP_MD_CTX_new()
        EVP_DigestInit_ex(sha, EVP_sha256(), nil)
        switch compression {
        case .none: break
        case .gzip:
            guard deflateInit2_(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw ExportError(status: 500, description: "zlib could not start")
            }
        case .lz4:
            var ctx: OpaquePointer?
            guard LZ4F_isError(LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))) == 0, let ctx else {
                throw ExportError(status: 500, description: "lz4 could not start")
            }
            lz4 = ctx
            var header = [UInt8](repeating: 0, count: Int(LZ4F_HEADER_SIZE_MAX))
            let n = header.withUnsafeMutableBytes { LZ4F_compressBegin(ctx, $0.baseAddress, $0.count, nil) }
            guard LZ4F_isError(n) == 0 else { throw ExportError(status: 500, description: "lz4 frame header failed") }
            try emit(Array(header[0..<n]))
        case .zstd:
            guard let ctx = ZSTD_createCCtx() else { throw ExportError(status: 500, description: "zstd could not start") }
            zstd = ctx
            // Level 3 (zstd's default): about gzip's ratio at several times its speed.
            guard ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, 3)) == 0,
                  ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1)) == 0 else {
                throw ExportError(status: 500, description: "zstd parameters refused")
            }
        }
    }

    deinit {
        if fd >= 0 { close(fd); unlink(tmp) }
        EVP_MD_CTX_free(sha)
        if compression == .gzip { deflateEnd(&zs) }
        if let lz4 { LZ4F_freeCompressionContext(lz4) }
        if let zstd { ZSTD_freeCCtx(zstd) }
    }

    func write(_ data: [UInt8]) throws {
        pending.append(contentsOf: data)
        if pending.count >= 1 << 20 { try flushPending(final: false) }
    }

    /// Flushes, fsyncs, renames into place; returns the file's size and SHA-256.
    func finish() throws -> (bytes: Int, sha256: String) {
        try flushPending(final: true)
        guard fsync(fd) == 0 else { throw ExportError(status: 500, description: "fsync \(tmp): errno \(errno)") }
        close(fd)
        fd = -1
        guard rename(tmp, path) == 0 else { throw ExportError(status: 500, description: "rename \(tmp): errno \(errno)") }
        var digest = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(sha, &digest, &len)
        return (bytes, digest.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined())
    }

    private func flushPending(final: Bool) throws {
        switch compression {
        case .none:
            try emit(pending)
        case .gzip:
            var chunk = [UInt8](repeating: 0, count: 256 * 1024)
            try pending.withUnsafeMutableBytes { input in
                zs.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                zs.avail_in = uInt(input.count)
                while true {
                    let (status, produced): (Int32, Int) = chunk.withUnsafeMutableBytes { buf in
                        zs.next_out = buf.baseAddress!.assumingMemoryBound(to: Bytef.self)
                        zs.avail_out = uInt(buf.count)
                        let s = deflate(&zs, final ? Z_FINISH : Z_NO_FLUSH)
                        return (s, buf.count - Int(zs.avail_out))
                    }
                    if produced > 0 { try emit(Array(chunk[0..<produced])) }
                    if final ? status == Z_STREAM_END : (zs.avail_in == 0 && produced < chunk.count) { break }
                    guard status == Z_OK || status == Z_BUF_ERROR || status == Z_STREAM_END else {
                        throw ExportError(status: 500, description: "zlib failed: \(status)")
                    }
                }
            }
        case .lz4:
            guard let lz4 else { return }
            if !pending.isEmpty {
                var buf = [UInt8](repeating: 0, count: LZ4F_compressBound(pending.count, nil))
                let n = buf.withUnsafeMutableBytes { o in
                    pending.withUnsafeBytes { i in LZ4F_compressUpdate(lz4, o.baseAddress, o.count, i.baseAddress, i.count, nil) }
                }
                guard LZ4F_isError(n) == 0 else { throw ExportError(status: 500, description: "lz4 failed") }
                try emit(Array(buf[0..<n]))
            }
            if final {
                var buf = [UInt8](repeating: 0, count: LZ4F_compressBound(0, nil) + 16)
                let n = buf.withUnsafeMutableBytes { LZ4F_compressEnd(lz4, $0.baseAddress, $0.count, nil) }
                guard LZ4F_isError(n) == 0 else { throw ExportError(status: 500, description: "lz4 end failed") }
                try emit(Array(buf[0..<n]))
            }
        case .zstd:
            guard let zstd else { return }
            var chunk = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
            try pending.withUnsafeBytes { input in
                var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
                while true {
                    let (left, produced): (Int, Int) = chunk.withUnsafeMutableBytes { buf in
                        var outBuf = ZSTD_outBuffer(dst: buf.baseAddress, size: buf.count, pos: 0)
                        let r = ZSTD_compressStream2(zstd, &outBuf, &inBuf, final ? ZSTD_e_end : ZSTD_e_continue)
                        return (r, outBuf.pos)
                    }
                    guard ZSTD_isError(left) == 0 else {
                        throw ExportError(status: 500, description: "zstd failed: \(String(cString: ZSTD_getErrorName(left)))")
                    }
                    if produced > 0 { try emit(Array(chunk[0..<produced])) }
                    // Done when the input is consumed and (at the end) the frame is complete.
                    if final ? left == 0 : inBuf.pos == inBuf.size { break }
                }
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func emit(_ data: [UInt8]) throws {
        guard !data.isEmpty else { return }
        try data.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ExportError(status: errno == ENOSPC ? 507 : 500, description: "write \(tmp): errno \(errno)")
                }
                off += n
            }
            EVP_DigestUpdate(sha, b.baseAddress, b.count)
        }
        bytes += data.count
    }
}

extension Engine {
    /// Writes the events of a sealed `day` that `owns` assigns to this node, each once (by routing
    /// key and event id), as `<outDir>/<day>/<node>.<format>[.gz|.lz4]` plus its manifest, both
    /// under temporary names first. Reads the day's segments in order, one block at a time.
    public func export(day: String, format: ExportFormat, compression: ExportCompression, extraColumns: [String],
                       outDir: String, owns: (Record) -> Bool) throws -> ExportManifest {
        guard Timestamps.parseUTCDay(day) != nil else { throw ExportError(status: 400, description: "invalid day '\(day)': expected YYYY-MM-DD") }
        guard day < Timestamps.utcDay(clock()) else {
            throw ExportError(status: 409, description: "day \(day) is not sealed yet: events may still arrive (export days before \(Timestamps.utcDay(clock())))")
        }
        let started = clock()
        let dir = "\(outDir)/\(day)"
        do { try FileIO.mkdirs(dir) } catch { throw ExportError(status: 500, description: "cannot create \(dir): \(error)") }
        let name = "\(config.id).\(format.fileExtension)\(compression.suffix)"
        let manifestPath = "\(dir)/\(name).manifest.json"
        // A manifest says its file is complete: none may stand while the file is rewritten.
        unlink(manifestPath)
        let writer = try ExportFileWriter(path: "\(dir)/\(name)", compression: compression)
        let columns = ExportFormat.columns(extra: extraColumns)
        let paths = ExportFormat.paths(columns)
        try writer.write(format.header(columns: columns))
        var seen = Set<UInt64>()
        var events = 0, notOwned = 0, repeats = 0, unreadable = 0
        for segment in log.segmentNumbers where log.segmentDay(segment) == day {
            guard let end = log.segmentBytes(segment) else { continue }
            var offset = UInt64(SegmentedLog.segmentHeaderBytes)
            while offset < UInt64(end) {
                let block: (records: [Record], next: UInt64)
                do {
                    block = try log.readBlockForScan(segment: segment, offset: offset)
                } catch {
                    unreadable += 1
                    metrics.exportErrors.increment()
                    logger.warning("export \(day): unreadable block in segment \(segment) at offset \(offset): \(error)")
                    guard let next = try? log.nextValidBlock(segment: segment, after: offset, end: end) else { break }
                    offset = next
                    continue
                }
                for r in block.records where r.kind == .event {
                    guard owns(r) else { notOwned += 1; continue }
                    let routing = r.sessionID.isEmpty ? (NodeIndex.subjects(listing: r).first?.ringKey ?? "") : r.sessionID
                    guard seen.insert(StableHash.fnv1a64(routing + "\u{0}" + r.eventID)).inserted else { repeats += 1; continue }
                    guard let row = format.row(r.json, paths: paths) else {
                        metrics.exportErrors.increment()
                        continue
                    }
                    try writer.write(row)
                    events += 1
                }
                offset = block.next
            }
        }
        let (bytes, sha) = try writer.finish()
        let manifest = ExportManifest(day: day, node: config.id, format: format.rawValue, compression: compression.rawValue,
                                      columns: format == .ndjson ? [] : columns, file: name, events: events, bytes: bytes, sha256: sha,
                                      skippedNotOwned: notOwned, skippedRepeats: repeats, unreadableBlocks: unreadable,
                                      startedAt: started, finishedAt: clock())
        var text: [UInt8] = []
        JSONWriter.write(manifest.json, into: &text)
        text.append(UInt8(ascii: "\n"))
        do {
            try FileIO.writeFileAtomically(manifestPath, text)
        } catch {
            throw ExportError(status: 500, description: "cannot write the manifest: \(error)")
        }
        metrics.exportedEvents.increment(by: Int64(events))
        return manifest
    }
}
