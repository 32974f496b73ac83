/// Little-endian binary encoding helpers over `[UInt8]`, used by the record and block codecs.
public extension Array where Element == UInt8 {
    mutating func appendLE(_ v: UInt16) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: Int64) { appendLE(UInt64(bitPattern: v)) }
    /// The decimal digits of `v` (as `String(v)` spells them), written without a string: the
    /// digits are formed right to left in a stack buffer, then appended at once.
    mutating func appendDecimal(_ v: Int64) {
        var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: a sign and up to 19 digits
        Swift.withUnsafeMutableBytes(of: &buf) { d in
            var m = v.magnitude
            var i = d.count
            repeat {
                i -= 1
                d[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: m % 10)
                m /= 10
            } while m > 0
            if v < 0 {
                i -= 1
                d[i] = UInt8(ascii: "-")
            }
            append(contentsOf: UnsafeRawBufferPointer(rebasing: d[i...]))
        }
    }
    mutating func overwriteLE(_ v: UInt32, at offset: Int) {
        var x = v.littleEndian
        Swift.withUnsafeBytes(of: &x) { src in
            for i in 0..<4 { self[offset + i] = src[i] }
        }
    }
}

/// A bounds-checked little-endian reader. Every read returns nil past the end: never traps on input.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }
    public mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian
    }
    public mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
    }
    public mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian
    }
    public mutating func i64() -> Int64? { u64().map { Int64(bitPattern: $0) } }

    public mutating func slice(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
    public mutating func string(_ count: Int) -> String? {
        guard let s = slice(count) else { return nil }
        return String(decoding: s, as: UTF8.self)
    }
}
