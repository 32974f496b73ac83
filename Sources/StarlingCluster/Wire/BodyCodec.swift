import StarlingCore

// Message bodies carried in frames. All integers little-endian. Strings are a u16 byte length plus
// UTF-8 (a string longer than 65,535 bytes is cut at the last whole character that fits); byte blobs
// (`json`, `state`) are a u32 length plus bytes. Optionals are a presence byte (0 absent, 1 present)
// followed by the value; booleans are one byte, 0 or 1. Counts are u32 and are checked against the
// bytes left in the body before anything is allocated. Decoding rejects trailing bytes, invalid UTF-8
// and out-of-range enum bytes with `FrameError.badBody`.

// MARK: - Encoding helpers

struct BodyWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.appendLE(v) }
    mutating func u32(_ v: UInt32) { bytes.appendLE(v) }
    mutating func u64(_ v: UInt64) { bytes.appendLE(v) }
    mutating func i64(_ v: Int64) { bytes.appendLE(v) }
    mutating func i32(_ v: Int32) { bytes.appendLE(UInt32(bitPattern: v)) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    /// u16 length + UTF-8, cut at a character boundary when longer than 65,535 bytes.
    mutating func string(_ s: String) {
        let u = s.utf8
        var n = min(u.count, Int(UInt16.max))
        if n < u.count {
            // Back off over continuation bytes so the cut falls on a scalar boundary.
            let all = Array(u)
            while n > 0, all[n] & 0xC0 == 0x80 { n -= 1 }
        }
        bytes.appendLE(UInt16(n))
        bytes.append(contentsOf: u.prefix(n))
    }

    /// u32 length + bytes.
    mutating func blob(_ b: [UInt8]) {
        bytes.appendLE(UInt32(clamping: b.count))
        bytes.append(contentsOf: b.prefix(Int(UInt32.max)))
    }

    mutating func optionalString(_ s: String?) {
        if let s { u8(1); string(s) } else { u8(0) }
    }
    mutating func optionalBlob(_ b: [UInt8]?) {
        if let b { u8(1); blob(b) } else { u8(0) }
    }
    mutating func optionalI64(_ v: Int64?) {
        if let v { u8(1); i64(v) } else { u8(0) }
    }
}

// MARK: - Decoding helpers

/// Throwing, bounds-checked reader over a message body; wraps `ByteReader`.
struct BodyReader {
    var reader: ByteReader
    let what: String

    init(_ raw: UnsafeRawBufferPointer, what: String) {
        reader = ByteReader(raw)
        self.what = what
    }

    var remaining: Int { reader.remaining }

    func fail(_ field: String) -> FrameError { .badBody("\(what).\(field)") }

    mutating func u8(_ field: String) throws(FrameError) -> UInt8 {
        guard let v = reader.u8() else { throw fail(field) }
        return v
    }
    mutating func u16(_ field: String) throws(FrameError) -> UInt16 {
        guard let v = reader.u16() else { throw fail(field) }
        return v
    }
    mutating func u32(_ field: String) throws(FrameError) -> UInt32 {
        guard let v = reader.u32() else { throw fail(field) }
        return v
    }
    mutating func u64(_ field: String) throws(FrameError) -> UInt64 {
        guard let v = reader.u64() else { throw fail(field) }
        return v
    }
    mutating func i64(_ field: String) throws(FrameError) -> Int64 {
        guard let v = reader.i64() else { throw fail(field) }
        return v
    }
    mutating func i32(_ field: String) throws(FrameError) -> Int32 {
        Int32(bitPattern: try u32(field))
    }
    mutating func bool(_ field: String) throws(FrameError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        default: throw fail(field)
        }
    }

    /// Reads `count` bytes as strictly valid UTF-8.
    mutating func utf8(_ count: Int, _ field: String) throws(FrameError) -> String {
        guard let raw = reader.slice(count) else { throw fail(field) }
        let s = String(decoding: raw, as: UTF8.self)
        // Decoding repairs invalid sequences; any repair changes the bytes.
        guard s.utf8.elementsEqual(raw) else { throw fail(field) }
        return s
    }
    mutating func string(_ field: String) throws(FrameError) -> String {
        let n = try u16(field)
        return try utf8(Int(n), field)
    }
    mutating func blob(_ field: String) throws(FrameError) -> [UInt8] {
        let n = try u32(field)
        guard let count = Int(exactly: n), let raw = reader.slice(count) else { throw fail(field) }
        return Array(raw)
    }
    mutating func present(_ field: String) throws(FrameError) -> Bool {
        try bool(field)
    }
    mutating func optionalString(_ field: String) throws(FrameError) -> String? {
        try present(field) ? try string(field) : nil
    }
    mutating func optionalBlob(_ field: String) throws(FrameError) -> [UInt8]? {
        try present(field) ? try blob(field) : nil
    }
    mutating func optionalI64(_ field: String) throws(FrameError) -> Int64? {
        try present(field) ? try i64(field) : nil
    }

    /// A u32 element count, rejected when that many elements of at least `minimumBytes` each
    /// cannot fit in what remains of the body.
    mutating func count(_ field: String, minimumBytes: Int) throws(FrameError) -> Int {
        let n = try u32(field)
        guard let count = Int(exactly: n), count <= remaining / max(minimumBytes, 1) else { throw fail(field) }
        return count
    }

    func finish() throws(FrameError) {
        guard remaining == 0 else { throw .badBody("\(what): trailing bytes") }
    }
}

/// Runs `read` over `body` and requires it to use every byte.
func decodeBody<T>(_ body: [UInt8], _ what: String,
                   _ read: (inout BodyReader) throws(FrameError) -> T) throws(FrameError) -> T {
    let result: Result<T, FrameError> = body.withUnsafeBytes { raw in
        var r = BodyReader(raw, what: what)
        return Result { () throws(FrameError) -> T in
            let value = try read(&r)
            try r.finish()
            return value
        }
    }
    return try result.get()
}
