/// Server-assigned event ids: 26 characters of Crockford base32 holding
/// 48 bits of epoch milliseconds then 80 random bits (ULID layout), so ids sort by
/// receive time. Randomness is injected, so tests are deterministic.
public enum EventID {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(nowMs: Int64, using rng: inout some RandomNumberGenerator) -> String {
        let time = UInt64(max(0, nowMs)) & 0xFFFF_FFFF_FFFF
        let hi = UInt64(rng.next() as UInt16)       // 16 random bits
        let lo = rng.next() as UInt64               // 64 random bits
        // 128 bits = time(48) | hi(16) | lo(64); emit 26 chars of 5 bits (130 bits, top 2 zero).
        let top = (time << 16) | hi                 // bits 127...64
        var chars = [UInt8](repeating: 0, count: 26)
        for i in 0..<26 {
            let shift = 125 - 5 * i                 // bit position of this char's lowest bit within 130
            var v: UInt64 = 0
            for b in 0..<5 {
                let bit = shift + b
                let set: Bool
                if bit >= 128 { set = false }
                else if bit >= 64 { set = (top >> UInt64(bit - 64)) & 1 == 1 }
                else { set = (lo >> UInt64(bit)) & 1 == 1 }
                if set { v |= 1 << UInt64(b) }
            }
            chars[i] = alphabet[Int(v)]
        }
        return String(decoding: chars, as: UTF8.self)
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
