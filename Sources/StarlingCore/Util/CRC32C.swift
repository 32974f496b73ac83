import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with the standard initial value and
/// final xor (`checksum("123456789") == 0xE3069283`).
///
/// With the CPU's CRC32C instruction where there is one (`CCRC32C`, x86-64 SSE4.2: eight bytes
/// per instruction); elsewhere table-driven, slicing-by-16 (sixteen 256-entry tables, built once): 16 bytes per step, with the
/// lookups combined as a balanced xor tree so only four of them wait on the running CRC.
///
/// `seed` continues a running checksum: `checksum(b, seed: checksum(a)) == checksum(a + b)`.
public enum CRC32C {
    /// Sixteen 256-entry lookup tables, stored one after the other. Table k advances a byte
    /// through k further zero bytes.
    private static let tables: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78
        var t = [UInt32](repeating: 0, count: 16 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 {
                c = c & 1 != 0 ? (c >> 1) ^ polynomial : c >> 1
            }
            t[i] = c
        }
        for k in 1..<16 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    /// Whether the CPU's CRC32C instruction is used (x86-64 with SSE4.2); decided once.
    public static let usesHardware = starling_crc32c_hw_available() != 0

    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        if usesHardware, let base = bytes.baseAddress {
            return ~starling_crc32c_hw(~seed, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        return softwareChecksum(bytes, seed: seed)
    }

    /// The table-driven computation (CPUs without the instruction; tests compare the two).
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        let n = bytes.count
        guard n > 0 else { return seed }
        var crc = ~seed
        tables.withUnsafeBufferPointer { t in
            /// Four lookups for the bytes of `v` in tables `k+3`, `k+2`, `k+1`, `k`.
            @inline(__always)
            func lookup4(_ v: UInt32, _ k: Int) -> UInt32 {
                (t[(k + 3) &* 256 &+ Int(v & 0xFF)] ^ t[(k + 2) &* 256 &+ Int((v >> 8) & 0xFF)])
                    ^ (t[(k + 1) &* 256 &+ Int((v >> 16) & 0xFF)] ^ t[k &* 256 &+ Int(v >> 24)])
            }
            var i = 0
            while n - i >= 16 {
                let w0 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let w1 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
                let a = UInt32(truncatingIfNeeded: w0) ^ crc
                let rest = lookup4(UInt32(truncatingIfNeeded: w0 >> 32), 8)
                    ^ (lookup4(UInt32(truncatingIfNeeded: w1), 4) ^ lookup4(UInt32(truncatingIfNeeded: w1 >> 32), 0))
                crc = lookup4(a, 12) ^ rest
                i += 16
            }
            if n - i >= 8 {
                let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                crc = lookup4(UInt32(truncatingIfNeeded: w) ^ crc, 4) ^ lookup4(UInt32(truncatingIfNeeded: w >> 32), 0)
                i += 8
            }
            while i < n {
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        return ~crc
    }

    public static func checksum(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, seed: seed) }
    }
}
