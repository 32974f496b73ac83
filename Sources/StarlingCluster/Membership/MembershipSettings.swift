/// Timing and fan-out of the membership protocol. All times are milliseconds on the caller's
/// monotonic clock (passed in as `now:`).
public struct MembershipSettings: Sendable, Equatable {
    /// One probe round per interval: ping one member, wait for its ack until the interval ends.
    public var probeIntervalMs: Int64 = 500
    /// Deadline for the direct ack; after it, `indirectProbes` members are asked to probe.
    public var probeTimeoutMs: Int64 = 250
    public var indirectProbes: Int = 2
    /// suspect -> down. With the defaults a killed node is down everywhere well within 5 s.
    public var suspectTimeoutMs: Int64 = 2_000
    /// Member entries piggybacked per message, the sender's own entry included (clamped to 1...`MembershipLimits.gossipEntriesMax`).
    public var gossipMax: Int = 8
    /// While joining, or while no other member is live: resend `join` to the seeds this often.
    /// Also the period of the reconnect ping sent to one `down` member (so a member wrongly
    /// declared down, or restarted without seeds, finds its way back).
    public var rejoinIntervalMs: Int64 = 1_000

    public init() {}

    /// Positive intervals; programmer error otherwise.
    var isValid: Bool {
        probeIntervalMs > 0 && probeTimeoutMs > 0 && suspectTimeoutMs > 0 && rejoinIntervalMs > 0
            && indirectProbes >= 0 && gossipMax >= 1
    }
}

/// Every bound of the membership protocol, in one place.
public enum MembershipLimits {
    /// Members one node tracks, itself included. Past it, `down`/`left` records are evicted
    /// (oldest change first) to admit a live member; otherwise the newcomer is ignored.
    public static let membersMax = 1024
    public static let memberIDBytesMax = 128
    /// `peer` and `http` addresses.
    public static let addressBytesMax = 255
    /// Entries in one ping/ack/pingReq gossip list accepted by the decoder.
    public static let gossipEntriesMax = 64
    /// Seeds kept from `start(seeds:)`.
    public static let seedsMax = 64
    /// Indirect probes this node runs for others at once; the oldest is dropped past it.
    public static let relaysMax = 64
    /// Helpers asked per indirect probe.
    public static let indirectProbesMax = 8

    /// Largest encoded `MemberInfo`: status, incarnation, three length-prefixed strings.
    public static let memberInfoBytesMax = 1 + 8 + (2 + memberIDBytesMax) + 2 * (2 + addressBytesMax)
    /// Largest encoded `MembershipMessage` (a `joinAck` with `membersMax` entries).
    public static let messageBytesMax = 2 + 2 + membersMax * memberInfoBytesMax
}
