/// The least a load generator needs of an HTTP/1.1 response: the status, where it ends
/// (`Content-Length`), whether the server will close, and for errors a short code. Works on
/// whatever bytes have arrived; never traps on bad input.
public enum HTTPResponseParser {
    public struct Response: Sendable, Equatable {
        public var status: Int
        /// Bytes of the whole response (head + body).
        public var length: Int
        public var bodyStart: Int
        /// `Connection: close` was sent.
        public var closes: Bool
        /// `X-Starling-Error` header (pixel errors), if any.
        public var errorHeader: String?
    }

    public enum Failure: Error, Sendable, Equatable {
        case badStatusLine
        case headTooLarge
        case badContentLength
        case noContentLength
        case bodyTooLarge(Int)
    }

    public static let headBytesMax = 16 * 1024
    static let statusPrefix: [UInt8] = Array("HTTP/1.".utf8)
    public static let bodyBytesMax = 16 << 20

    /// A complete response at the start of `bytes`, nil when more bytes are needed.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Response? {
        // Status line: "HTTP/1.x SSS".
        let n = bytes.count
        let prefix = Self.statusPrefix
        for i in 0..<min(n, prefix.count) where bytes[i] != prefix[i] { throw .badStatusLine }
        guard let headEnd = headEnd(bytes) else {
            if n > headBytesMax { throw .headTooLarge }
            return nil
        }
        guard headEnd >= 12, bytes[8] == 0x20, let status = digits(bytes, 9, 3), status >= 100 else { throw .badStatusLine }
        // Header lines.
        var contentLength: Int?
        var closes = false
        var errorHeader: String?
        var line = lineEnd(bytes, from: 0, limit: headEnd)! + 2
        while line < headEnd - 2 {
            guard let end = lineEnd(bytes, from: line, limit: headEnd) else { break }
            if let v = value(bytes, line, end, "content-length") {
                guard let cl = digits(bytes, v, end - v), v < end else { throw .badContentLength }
                contentLength = cl
            } else if let v = value(bytes, line, end, "connection") {
                closes = contains(bytes, v, end, "close")
            } else if status >= 300, let v = value(bytes, line, end, "x-starling-error") {
                errorHeader = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[v..<end]), as: UTF8.self)
            }
            line = end + 2
        }
        let noBody = status == 204 || status == 304 || status < 200
        guard let body = contentLength ?? (noBody ? 0 : nil) else { throw .noContentLength }
        guard body <= bodyBytesMax else { throw .bodyTooLarge(body) }
        guard n >= headEnd + body else { return nil }
        return Response(status: status, length: headEnd + body, bodyStart: headEnd, closes: closes, errorHeader: errorHeader)
    }

    /// The `"code":"…"` of a Starling error body (`{"error":{"code":…}}`), if there is one.
    public static func errorCode(_ body: UnsafeRawBufferPointer) -> String? {
        let key = Array("\"code\":\"".utf8)
        guard body.count > key.count else { return nil }
        var i = 0
        while i + key.count <= body.count {
            var match = true
            for j in 0..<key.count where body[i + j] != key[j] { match = false; break }
            if match {
                let s = i + key.count
                var e = s
                while e < body.count && body[e] != 0x22 && e - s < 64 { e += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: body[s..<e]), as: UTF8.self)
            }
            i += 1
        }
        return nil
    }

    /// Offset just past "\r\n\r\n", if present within the head limit.
    static func headEnd(_ b: UnsafeRawBufferPointer) -> Int? {
        let n = min(b.count, headBytesMax)
        guard n >= 4 else { return nil }
        var i = 3
        while i < n {
            if b[i] == 0x0A && b[i - 1] == 0x0D && b[i - 2] == 0x0A && b[i - 3] == 0x0D { return i + 1 }
            i += 1
        }
        return nil
    }

    /// Offset of the "\r\n" ending the line that starts at `from`.
    static func lineEnd(_ b: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int? {
        var i = from
        while i + 1 < limit {
            if b[i] == 0x0D && b[i + 1] == 0x0A { return i }
            i += 1
        }
        return nil
    }

    /// When the line [start, end) is header `name` (case-insensitive), the offset of its value
    /// with leading spaces skipped.
    static func value(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ name: StaticString) -> Int? {
        let count = name.utf8CodeUnitCount
        guard end - start > count, b[start + count] == 0x3A else { return nil }
        let p = name.utf8Start
        for i in 0..<count where b[start + i] | 0x20 != p[i] { return nil }
        var v = start + count + 1
        while v < end && (b[v] == 0x20 || b[v] == 0x09) { v += 1 }
        return v
    }

    static func digits(_ b: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> Int? {
        guard count >= 1, count <= 12, start + count <= b.count else { return nil }
        var v = 0
        for i in start..<(start + count) {
            var c = b[i]
            if c == 0x20 || c == 0x09 {   // trailing spaces after a Content-Length value
                for j in i..<(start + count) { c = b[j]; guard c == 0x20 || c == 0x09 else { return nil } }
                return i > start ? v : nil
            }
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }

    static func contains(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, _ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        let p = word.utf8Start
        var i = start
        while i + count <= end {
            var match = true
            for j in 0..<count where b[i + j] | 0x20 != p[j] { match = false; break }
            if match { return true }
            i += 1
        }
        return false
    }
}
