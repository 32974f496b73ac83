import Testing
import StarlingCore
@testable import StarlingCluster

private func info(_ id: String, _ n: Int = 1, inc: UInt64 = 0, _ status: MemberStatus = .up) -> MemberInfo {
    MemberInfo(id: id, peer: "10.0.0.\(n):7081", http: "10.0.0.\(n):8081", incarnation: inc, status: status)
}

/// One of every kind, with boundary values.
private func sampleMessages() -> [MembershipMessage] {
    let longest = MemberInfo(
        id: String(repeating: "i", count: MembershipLimits.memberIDBytesMax),
        peer: String(repeating: "p", count: MembershipLimits.addressBytesMax),
        http: String(repeating: "h", count: MembershipLimits.addressBytesMax),
        incarnation: .max, status: .left)
    let bare = MemberInfo(id: "x", peer: "", http: "", incarnation: 0, status: .joining)
    let gossip = MemberStatus.allCases.enumerated().map { info("node-\($0.offset)", $0.offset, inc: UInt64($0.offset), $0.element) }
    return [
        .join(info("a", inc: 3, .joining)),
        .join(longest),
        .joinAck([]),
        .joinAck(gossip + [longest, bare]),
        .ping(seq: 0, gossip: []),
        .ping(seq: .max, gossip: gossip),
        .ack(seq: 42, gossip: [bare]),
        .ack(seq: 1, gossip: gossip),
        .pingReq(seq: 9, target: info("t", 9), gossip: gossip),
        .pingReq(seq: .max, target: longest, gossip: []),
        .leave(info("b", 2, inc: 7, .leaving)),
    ]
}

@Suite struct MembershipMessageTests {
    @Test func roundTripsEveryKind() {
        for m in sampleMessages() {
            #expect(MembershipMessage.decode(m.encode()) == m, "\(m)")
        }
    }

    /// Pins the byte layout (version 1): changing it breaks mixed-version clusters.
    @Test func goldenBytes() {
        let m = MembershipMessage.ping(seq: 7, gossip: [MemberInfo(id: "a", peer: "p:1", http: "h:2", incarnation: 3, status: .up)])
        let expected: [UInt8] = [
            1, 3,                                   // version, kind ping
            7, 0, 0, 0, 0, 0, 0, 0,                 // seq
            1, 0,                                   // one entry
            1,                                      // status up
            3, 0, 0, 0, 0, 0, 0, 0,                 // incarnation
            1, 0, 0x61,                             // id "a"
            3, 0, 0x70, 0x3A, 0x31,                 // peer "p:1"
            3, 0, 0x68, 0x3A, 0x32,                 // http "h:2"
        ]
        #expect(m.encode() == expected)
        #expect(MembershipMessage.leave(info("z")).encode().prefix(3) == [1, 6, 1])
    }

    @Test func largestMessageFitsTheLimit() {
        let longest = (0..<MembershipLimits.membersMax).map { i in
            MemberInfo(id: String(repeating: "i", count: MembershipLimits.memberIDBytesMax - 5) + String(format5(i)),
                       peer: String(repeating: "p", count: MembershipLimits.addressBytesMax),
                       http: String(repeating: "h", count: MembershipLimits.addressBytesMax),
                       incarnation: .max, status: .down)
        }
        let bytes = MembershipMessage.joinAck(longest).encode()
        #expect(bytes.count == MembershipLimits.messageBytesMax)
        #expect(MembershipMessage.decode(bytes) == .joinAck(longest))
        #expect(MembershipMessage.decode(bytes + [0]) == nil)
    }

    @Test func everyTruncationIsRejected() {
        for m in sampleMessages() {
            let bytes = m.encode()
            for n in 0..<bytes.count {
                #expect(MembershipMessage.decode(Array(bytes.prefix(n))) == nil, "\(m) cut to \(n) bytes")
            }
            #expect(MembershipMessage.decode(bytes + [0]) == nil, "trailing byte after \(m)")
        }
    }

    @Test func rejectsBadHeaders() {
        let ok = MembershipMessage.ping(seq: 1, gossip: [info("a")]).encode()
        var badVersion = ok; badVersion[0] = 2
        #expect(MembershipMessage.decode(badVersion) == nil)
        for kind: UInt8 in [0, 7, 0xFF] {
            var badKind = ok; badKind[1] = kind
            #expect(MembershipMessage.decode(badKind) == nil)
        }
        var badStatus = ok; badStatus[12] = 6
        #expect(MembershipMessage.decode(badStatus) == nil)
        #expect(MembershipMessage.decode([]) == nil)
        #expect(MembershipMessage.decode([1]) == nil)
    }

    @Test func rejectsStringsOutsideTheLimits() {
        let cases: [MemberInfo] = [
            MemberInfo(id: "", peer: "p", http: "h"),
            MemberInfo(id: String(repeating: "i", count: MembershipLimits.memberIDBytesMax + 1), peer: "p", http: "h"),
            MemberInfo(id: "a", peer: String(repeating: "p", count: MembershipLimits.addressBytesMax + 1), http: "h"),
            MemberInfo(id: "a", peer: "p", http: String(repeating: "h", count: MembershipLimits.addressBytesMax + 1)),
            MemberInfo(id: "a b", peer: "p", http: "h"),
            MemberInfo(id: "é", peer: "p", http: "h"),
            MemberInfo(id: "a", peer: "p\n", http: "h"),
            MemberInfo(id: "a", peer: "p", http: String(repeating: "h", count: 70_000)),
        ]
        for bad in cases {
            #expect(!bad.isValid)
            #expect(MembershipMessage.decode(MembershipMessage.join(bad).encode()) == nil, "\(bad)")
            #expect(MembershipMessage.decode(MembershipMessage.ping(seq: 1, gossip: [info("a"), bad]).encode()) == nil)
        }
    }

    @Test func rejectsListsOverTheLimits() {
        let gossip = (0...MembershipLimits.gossipEntriesMax).map { info("n\($0)", $0) }
        #expect(MembershipMessage.decode(MembershipMessage.ping(seq: 1, gossip: gossip).encode()) == nil)
        #expect(MembershipMessage.decode(MembershipMessage.ping(seq: 1, gossip: Array(gossip.dropLast())).encode()) != nil)
        let members = (0...MembershipLimits.membersMax).map { info("n\($0)", $0) }
        #expect(MembershipMessage.decode(MembershipMessage.joinAck(members).encode()) == nil)
        #expect(MembershipMessage.decode(MembershipMessage.joinAck(Array(members.dropLast())).encode()) != nil)
        // A count promising more entries than there are bytes is refused before any work.
        #expect(MembershipMessage.decode([1, 2, 0xFF, 0x03]) == nil)
        #expect(MembershipMessage.decode([1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0]) == nil)
    }

    /// Seeded mutations of valid messages never trap, and whatever still decodes re-encodes to the
    /// same bytes (the encoding is canonical).
    @Test func seededMutationsNeverTrap() {
        var rng = SplitMix64(seed: 0xBADC0DE)
        let originals = sampleMessages().map { $0.encode() }
        var decoded = 0
        for round in 0..<20_000 {
            var bytes = originals[Int(rng.next() % UInt64(originals.count))]
            for _ in 0...(rng.next() % 3) {
                let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 6 {
                case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                case 1 where !bytes.isEmpty: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 3 where !bytes.isEmpty: bytes.remove(at: at)
                case 4: bytes = Array(bytes.prefix(at))
                default:
                    // Lengths and counts are the interesting bytes: set a u16 to an extreme.
                    if at + 1 < bytes.count { bytes[at] = 0xFF; bytes[at + 1] = rng.next() % 2 == 0 ? 0xFF : 0 }
                }
            }
            if let m = MembershipMessage.decode(bytes) {
                decoded += 1
                #expect(m.encode() == bytes, "round \(round): decoded bytes do not re-encode identically")
            }
        }
        #expect(decoded > 0)  // the mutations are not all rejected at the first byte
    }

    @Test func seededGarbageNeverTraps() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 300)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if count >= 2 && rng.next() % 2 == 0 {
                bytes[0] = 1
                bytes[1] = UInt8(1 + rng.next() % 6)
            }
            _ = MembershipMessage.decode(bytes)
        }
    }
}

/// Five decimal digits, zero-padded, without Foundation.
private func format5(_ n: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 5 - s.count)) + s
}
