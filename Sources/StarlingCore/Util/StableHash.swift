/// FNV-1a 64-bit hashing (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
///
/// Unlike `Hasher`/`hashValue`, which are randomly seeded per process, these values are
/// stable across processes, machines and releases: safe to persist or use for partitioning.
/// Not a cryptographic hash; do not use it where an adversary benefits from collisions.
public enum StableHash {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// FNV-1a 64 of the bytes.
    public static func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = offsetBasis
        for b in bytes {
            h = (h ^ UInt64(b)) &* prime
        }
        return h
    }

    /// FNV-1a 64 of the string's UTF-8 bytes.
    public static func fnv1a64(_ s: String) -> UInt64 {
        fnv1a64(continuing: offsetBasis, s)
    }

    /// Continues an FNV-1a 64 state `h` over the string's UTF-8 bytes (read in place).
    public static func fnv1a64(continuing h: UInt64, _ s: String) -> UInt64 {
        var h = h
        var s = s
        s.withUTF8 { for b in $0 { h = (h ^ UInt64(b)) &* prime } }
        return h
    }

    /// Continues an FNV-1a 64 state `h` over raw bytes.
    @inline(__always)
    public static func fnv1a64(continuing h: UInt64, bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = h
        for b in bytes { h = (h ^ UInt64(b)) &* prime }
        return h
    }

    /// Continues an FNV-1a 64 state `h` over one byte.
    @inline(__always)
    public static func fnv1a64(continuing h: UInt64, byte: UInt8) -> UInt64 {
        (h ^ UInt64(byte)) &* prime
    }
}
