import CZlib
import StarlingCore

/// Request bodies sent with `Content-Encoding: gzip` (or `deflate`), inflated with zlib under a
/// limit on the *inflated* size, so a small bomb costs at most `limit` bytes and is refused
/// with the same 413 as a large plain body.
enum Gzip {
    enum Failure: Error, Equatable {
        /// More than `limit` bytes once inflated.
        case tooLarge
        /// Not a gzip/zlib stream, or a damaged or truncated one.
        case corrupt(String)
    }

    /// Inflates a gzip or zlib stream (zlib detects which from the header). Trailing bytes after
    /// the end of the stream are refused: a body is one stream.
    static func inflate(_ input: UnsafeRawBufferPointer, limit: Int) -> Result<[UInt8], Failure> {
        var stream = z_stream()
        // 15 window bits + 32: detect gzip or zlib headers.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return .failure(.corrupt("zlib could not start"))
        }
        defer { inflateEnd(&stream) }
        guard let base = input.baseAddress, !input.isEmpty else { return .failure(.corrupt("empty body")) }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let (status, produced): (Int32, Int) = chunk.withUnsafeMutableBytes { buf in
                stream.next_out = buf.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(buf.count)
                let s = CZlib.inflate(&stream, Z_NO_FLUSH)
                return (s, buf.count - Int(stream.avail_out))
            }
            if out.count + produced > limit { return .failure(.tooLarge) }
            out.append(contentsOf: chunk[0..<produced])
            switch status {
            case Z_STREAM_END:
                guard stream.avail_in == 0 else { return .failure(.corrupt("bytes after the end of the compressed stream")) }
                return .success(out)
            case Z_OK:
                continue
            case Z_BUF_ERROR where stream.avail_in == 0:
                return .failure(.corrupt("the compressed stream is truncated"))
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                return .failure(.corrupt("not a valid gzip or deflate stream (\(why))"))
            }
        }
    }

    /// Compresses as gzip (tests and the SDK fixtures).
    static func compress(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return [] }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let written: Int = input.withUnsafeMutableBytes { inBuf in
            out.withUnsafeMutableBytes { outBuf in
                stream.next_in = inBuf.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(outBuf.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { return 0 }
                return outBuf.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<written])
    }
}
