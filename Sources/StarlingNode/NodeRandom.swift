import StarlingCore
import Synchronization

/// The node's one source of randomness: a SplitMix64 stream seeded once (`NodeConfig.seed`, or
/// one system random number when none is given), safe to draw from on any thread. Everything
/// random in the node (membership's probe order, event ids, a new cluster's id) derives from it,
/// so a run with a fixed seed draws the same numbers; ids need uniqueness, not secrecy.
public final class NodeRandom: Sendable {
    let state: Atomic<UInt64>

    public init(seed: UInt64) { state = Atomic(seed) }

    /// The next number of the stream (SplitMix64 over an atomically advanced counter).
    public func next() -> UInt64 {
        let s = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator for one request or one subsystem (one draw from the stream).
    public func generator() -> SplitMix64 { SplitMix64(seed: next()) }

    /// A non-zero number (cluster ids, where 0 means "not known yet").
    public func nonZero() -> UInt64 {
        while true {
            let v = next()
            if v != 0 { return v }
        }
    }
}
