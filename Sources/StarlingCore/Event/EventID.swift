/// Server-assigned event ids: 26 characters of Crockford base32 holding
/// 48 bits of epoch milliseconds then 80 random bits (ULID layout), so ids sort by
/// receive time. Randomness is injected, so tests are deterministic.
public enum EventID {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(nowMs: Int64, using rng: inout some RandomNumberGenerator) -> String {
        let time = UInt64(max(0, nowMs)) & 0xFFFF_FFFF_FFFF
        let r = rng.next() as UInt64
        let r2 = rng.next() as UInt64
        // 130 bits as 26 base32 digits: 2 zero bits, 48 bits of time, 80 random bits.
        let hi = time << 16 | (r2 & 0xFFFF)         // bits 127...64 (time then 16 random)
        let lo = r                                  // bits 63...0
        return String(unsafeUninitializedCapacity: 26) { chars in
            for i in 0..<26 {
                let shift = 125 - 5 * i                 // position of this digit's lowest bit
                let v: UInt64
                if shift >= 64 {
                    v = (hi >> UInt64(shift - 64)) & 31
                } else if shift > 59 {
                    // straddles: low bits from lo, high bits from hi
                    let fromLo = lo >> UInt64(shift)
                    let fromHi = hi << UInt64(64 - shift)
                    v = (fromLo | fromHi) & 31
                } else {
                    v = (lo >> UInt64(shift)) & 31
                }
                chars[i] = alphabet[Int(v)]
            }
            return 26
        }
    }
}

/// A small seeded generator (SplitMix64) for deterministic ids in tests and simulations.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
