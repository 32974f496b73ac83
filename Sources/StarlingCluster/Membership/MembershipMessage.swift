import StarlingCore

/// What members say to each other. Carried as the body of one peer-protocol frame.
///
/// By convention the first gossip entry of `ping`, `ack` and `pingReq` is the sender's own
/// record: replies go to its `peer` address, and it spreads every restart and refutation.
public enum MembershipMessage: Sendable, Equatable {
    /// A node asks to (re)join; any `up` member admits it and answers `joinAck`.
    case join(MemberInfo)
    /// The full member list of the admitting member (the newcomer included, as `up`).
    case joinAck([MemberInfo])
    case ping(seq: UInt64, gossip: [MemberInfo])
    case ack(seq: UInt64, gossip: [MemberInfo])
    /// "Probe `target` for me": the receiver pings it and forwards its ack with the same `seq`.
    case pingReq(seq: UInt64, target: MemberInfo, gossip: [MemberInfo])
    /// A member leaves for good (at this incarnation).
    case leave(MemberInfo)
}

// Wire format, little-endian (version 1):
//
//   u8 version (1) | u8 kind | body
//   kind 1 join     body: info
//   kind 2 joinAck  body: list (at most MembershipLimits.membersMax entries)
//   kind 3 ping     body: u64 seq | list (at most gossipEntriesMax)
//   kind 4 ack      body: u64 seq | list (at most gossipEntriesMax)
//   kind 5 pingReq  body: u64 seq | info target | list (at most gossipEntriesMax)
//   kind 6 leave    body: info
//   list: u16 count | count x info
//   info: u8 status | u64 incarnation | str id (1...memberIDBytesMax) | str peer | str http
//   str:  u16 byteCount | bytes, visible ASCII (0x21...0x7E) only; addresses <= addressBytesMax
//
// The message must end exactly where its body ends. Anything else decodes to nil.
extension MembershipMessage {
    static let version: UInt8 = 1

    enum Kind: UInt8 {
        case join = 1, joinAck, ping, ack, pingReq, leave
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [MembershipMessage.version]
        switch self {
        case .join(let info):
            out.append(Kind.join.rawValue)
            Self.put(info, into: &out)
        case .joinAck(let list):
            out.append(Kind.joinAck.rawValue)
            Self.put(list, into: &out)
        case .ping(let seq, let gossip):
            out.append(Kind.ping.rawValue)
            out.appendLE(seq)
            Self.put(gossip, into: &out)
        case .ack(let seq, let gossip):
            out.append(Kind.ack.rawValue)
            out.appendLE(seq)
            Self.put(gossip, into: &out)
        case .pingReq(let seq, let target, let gossip):
            out.append(Kind.pingReq.rawValue)
            out.appendLE(seq)
            Self.put(target, into: &out)
            Self.put(gossip, into: &out)
        case .leave(let info):
            out.append(Kind.leave.rawValue)
            Self.put(info, into: &out)
        }
        return out
    }

    /// nil on any malformed input: unknown version or kind, bad status, a string or list over
    /// its limit, bytes outside visible ASCII, truncation, trailing bytes. Never traps.
    public static func decode(_ bytes: [UInt8]) -> MembershipMessage? {
        guard bytes.count <= MembershipLimits.messageBytesMax else { return nil }
        return bytes.withUnsafeBytes { raw -> MembershipMessage? in
            var r = ByteReader(raw)
            guard r.u8() == version, let kindByte = r.u8(), let kind = Kind(rawValue: kindByte) else { return nil }
            let message: MembershipMessage
            switch kind {
            case .join:
                guard let info = info(&r) else { return nil }
                message = .join(info)
            case .joinAck:
                guard let list = list(&r, max: MembershipLimits.membersMax) else { return nil }
                message = .joinAck(list)
            case .ping:
                guard let seq = r.u64(), let list = list(&r, max: MembershipLimits.gossipEntriesMax) else { return nil }
                message = .ping(seq: seq, gossip: list)
            case .ack:
                guard let seq = r.u64(), let list = list(&r, max: MembershipLimits.gossipEntriesMax) else { return nil }
                message = .ack(seq: seq, gossip: list)
            case .pingReq:
                guard let seq = r.u64(), let target = info(&r),
                      let list = list(&r, max: MembershipLimits.gossipEntriesMax) else { return nil }
                message = .pingReq(seq: seq, target: target, gossip: list)
            case .leave:
                guard let info = info(&r) else { return nil }
                message = .leave(info)
            }
            return r.remaining == 0 ? message : nil
        }
    }

    // MARK: - Encoding pieces

    private static func put(_ s: String, into out: inout [UInt8]) {
        // Oversized strings get a clamped length and so never decode: the limits are far below 0xFFFF.
        out.appendLE(UInt16(clamping: s.utf8.count))
        out.append(contentsOf: s.utf8)
    }

    private static func put(_ info: MemberInfo, into out: inout [UInt8]) {
        out.append(info.status.wireCode)
        out.appendLE(info.incarnation)
        put(info.id, into: &out)
        put(info.peer, into: &out)
        put(info.http, into: &out)
    }

    private static func put(_ list: [MemberInfo], into out: inout [UInt8]) {
        out.appendLE(UInt16(clamping: list.count))
        for info in list { put(info, into: &out) }
    }

    // MARK: - Decoding pieces

    /// Smallest encoded info: status, incarnation, a 1-byte id, two empty addresses.
    private static let infoBytesMin = 1 + 8 + (2 + 1) + 2 + 2

    private static func string(_ r: inout ByteReader, min: Int, max: Int) -> String? {
        guard let raw = r.u16(), let count = Int(exactly: raw), count >= min, count <= max,
              let bytes = r.slice(count) else { return nil }
        for b in bytes where b < 0x21 || b > 0x7E { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func info(_ r: inout ByteReader) -> MemberInfo? {
        guard let code = r.u8(), let status = MemberStatus(wireCode: code), let incarnation = r.u64(),
              let id = string(&r, min: 1, max: MembershipLimits.memberIDBytesMax),
              let peer = string(&r, min: 0, max: MembershipLimits.addressBytesMax),
              let http = string(&r, min: 0, max: MembershipLimits.addressBytesMax) else { return nil }
        return MemberInfo(id: id, peer: peer, http: http, incarnation: incarnation, status: status)
    }

    private static func list(_ r: inout ByteReader, max: Int) -> [MemberInfo]? {
        // Check the count against the limit and the bytes left before reserving anything.
        guard let raw = r.u16(), let count = Int(exactly: raw), count <= max,
              count <= r.remaining / infoBytesMin else { return nil }
        var out: [MemberInfo] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            guard let info = info(&r) else { return nil }
            out.append(info)
        }
        return out
    }
}
