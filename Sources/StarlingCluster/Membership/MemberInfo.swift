/// A member's state as one node sees it.
///
/// `joining` is only ever a node's view of itself before it is admitted; `leaving` is only a
/// node's view of itself while it says goodbye. Other members record them as `up` and `left`.
public enum MemberStatus: String, Sendable, CaseIterable {
    case joining, up, suspect, down, leaving, left

    /// Which report wins at equal incarnation: down/left > leaving > suspect > up > joining.
    /// `left` is final for its incarnation: nothing at that incarnation beats it.
    var precedence: Int {
        switch self {
        case .joining: 0
        case .up: 1
        case .suspect: 2
        case .leaving: 3
        case .down: 4
        case .left: 5
        }
    }

    /// Counts for the ring and is probed: `up`, and `suspect` until it is declared down.
    public var isLive: Bool { self == .up || self == .suspect }

    /// A report that, about oneself at one's own incarnation, must be refuted.
    var isAccusation: Bool { self == .suspect || self == .down || self == .leaving || self == .left }

    /// One byte on the wire (stable; never reorder).
    var wireCode: UInt8 {
        switch self {
        case .joining: 0
        case .up: 1
        case .suspect: 2
        case .down: 3
        case .leaving: 4
        case .left: 5
        }
    }

    init?(wireCode: UInt8) {
        switch wireCode {
        case 0: self = .joining
        case 1: self = .up
        case 2: self = .suspect
        case 3: self = .down
        case 4: self = .leaving
        case 5: self = .left
        default: return nil
        }
    }
}

public struct MemberInfo: Sendable, Equatable {
    /// Stable node id: 1...`MembershipLimits.memberIDBytesMax` bytes of visible ASCII.
    public var id: String
    /// Peer-protocol address, `"host:port"`.
    public var peer: String
    /// HTTP address, `"host:port"`.
    public var http: String
    /// Raised by the member itself: to refute suspicion, and by one on every restart.
    public var incarnation: UInt64
    public var status: MemberStatus

    public init(id: String, peer: String, http: String, incarnation: UInt64 = 0, status: MemberStatus = .joining) {
        self.id = id
        self.peer = peer
        self.http = http
        self.incarnation = incarnation
        self.status = status
    }

    /// True when this report about a member should replace `other` (the same member's record):
    /// a higher incarnation wins; at equal incarnation the status with higher precedence wins.
    /// Equal incarnation and status: the record stands (addresses only change with an incarnation).
    public func supersedes(_ other: MemberInfo) -> Bool {
        if incarnation != other.incarnation { return incarnation > other.incarnation }
        return status.precedence > other.status.precedence
    }

    /// Fits the wire limits: id non-empty, every field visible ASCII within its byte limit.
    public var isValid: Bool {
        !id.isEmpty
            && MemberInfo.isToken(id, max: MembershipLimits.memberIDBytesMax)
            && MemberInfo.isToken(peer, max: MembershipLimits.addressBytesMax)
            && MemberInfo.isToken(http, max: MembershipLimits.addressBytesMax)
    }

    static func isToken(_ s: String, max: Int) -> Bool {
        var n = 0
        for b in s.utf8 {
            guard b >= 0x21 && b <= 0x7E else { return false }
            n += 1
            if n > max { return false }
        }
        return true
    }
}
