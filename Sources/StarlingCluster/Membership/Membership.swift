import StarlingCore

/// What the membership state machine asks its shell to do.
public enum MembershipDirective: Sendable, Equatable {
    /// Send the message over the peer protocol to that address ("host:port").
    case send(toPeer: String, MembershipMessage)
    /// The membership view changed (the shell recomputes the ring). At most one per call, last.
    case changed(epoch: UInt64)
}

/// SWIM-style membership as a value: no I/O, no clock, no unseeded randomness.
///
/// The shell feeds it `start`, `tick` (every few tens of ms), `receive` and `leave`, each with
/// `now` in milliseconds, and carries out the returned directives. The same inputs and seed give
/// the same outputs, which is what the deterministic simulation relies on.
///
/// Protocol summary:
/// - Each probe interval, ping the next member of a seeded shuffle of the live members. No ack by
///   `probeTimeoutMs`: ask `indirectProbes` other members to ping it (`pingReq`). No ack at all by
///   the end of the interval: mark it `suspect`. A suspect not refuted within `suspectTimeoutMs`
///   becomes `down`.
/// - Incarnations: a member hearing itself reported suspect/down/left at an incarnation >= its own
///   raises its incarnation above it (refutation). Higher incarnation wins; at equal incarnation
///   down/left > leaving > suspect > up > joining (`MemberInfo.supersedes`).
/// - Every message carries the sender's own record first, the receiver's record when it is not
///   good news (so the receiver can refute), then recent changes, each sent ~3*log2(N+1) times.
/// - A joining node sends `join` to its seeds until admitted; the admitting member answers
///   `joinAck` with its full list and gossips the newcomer as `up`. When every node is joining
///   (a whole-cluster restart), the smallest id among them founds the cluster after one retry
///   interval without an answer.
/// - Once per `rejoinIntervalMs` a random `down` member is pinged (with its `down` record), so a
///   member wrongly declared down refutes, and a restarted member that no one asked about is found.
/// - `down` and `left` members stay in the list.
public struct Membership: Sendable {
    struct Record: Sendable {
        var info: MemberInfo
        /// When this node started to suspect it (only meaningful while `suspect`).
        var suspectSince: Int64
        /// When this node last changed the record (eviction order).
        var changedAt: Int64
    }

    struct Probe: Sendable {
        var target: String
        var seq: UInt64
        var sentAt: Int64
        var indirectSent: Bool
    }

    /// An indirect probe this node runs for another member.
    struct Relay: Sendable {
        var seq: UInt64          // our ping to the target
        var originSeq: UInt64    // the requester's probe
        var replyTo: String
        var expiresAt: Int64
    }

    public let settings: MembershipSettings
    private let myID: String
    private let myPeer: String
    private var rng: SplitMix64
    private var records: [String: Record] = [:]
    /// Ids of `records` in UTF-8 byte order: every iteration goes through it (dictionary order is
    /// seeded per process, which would break determinism).
    private var ids: [String] = []
    public private(set) var epoch: UInt64 = 0

    private var started = false
    private var seeds: [String] = []
    private var nextSeq: UInt64 = 1
    private var probe: Probe?
    private var nextProbeAt: Int64 = 0
    private var probeOrder: [String] = []
    private var probeIndex = 0
    private var relays: [Relay] = []
    /// Member id -> sends left for its current record.
    private var gossipQueue: [String: Int] = [:]
    private var nextJoinAt: Int64 = 0
    private var nextReconnectAt: Int64 = 0
    private var leftAt: Int64 = 0
    private var joiningSince: Int64 = 0
    /// No suspect times out before this (skips the scan on most ticks).
    private var nextSuspectDeadline: Int64 = .max

    /// `me.status` is ignored (a node is `joining` until `start`); `me.incarnation` must be larger
    /// than any this id used before (the shell stores it and passes stored + 1 on restart).
    public init(me: MemberInfo, settings: MembershipSettings = .init(), seed: UInt64) {
        precondition(me.isValid, "member info outside the wire limits: \(me)")
        precondition(settings.isValid, "membership settings must be positive: \(settings)")
        var mine = me
        mine.status = .joining
        self.settings = settings
        self.myID = me.id
        self.myPeer = me.peer
        self.rng = SplitMix64(seed: seed)
        self.records[me.id] = Record(info: mine, suspectSince: 0, changedAt: 0)
        self.ids = [me.id]
    }

    // MARK: - Views

    public var me: MemberInfo { records[myID]!.info }

    /// Every known member, this node included, sorted by id.
    public var members: [MemberInfo] { ids.map { records[$0]!.info } }

    public func member(_ id: String) -> MemberInfo? { records[id]?.info }

    /// Members that count for the ring and for rf: `up`, and `suspect` until declared down. Sorted.
    public var ringMembers: [String] { ids.filter { records[$0]!.info.status.isLive } }

    // MARK: - Inputs

    /// Seeds are peer addresses of existing members (this node's own is ignored). With none, this
    /// node starts a new cluster and is `up` at once; otherwise it sends `join` to every seed.
    public mutating func start(seeds: [String], now: Int64) -> [MembershipDirective] {
        guard !started else { return [] }
        started = true
        let epochBefore = epoch
        var out: [MembershipDirective] = []
        var kept: [String] = []
        for s in seeds where s != myPeer && MemberInfo.isToken(s, max: MembershipLimits.addressBytesMax)
            && !s.isEmpty && !kept.contains(s) && kept.count < MembershipLimits.seedsMax {
            kept.append(s)
        }
        self.seeds = kept
        joiningSince = now
        nextProbeAt = after(now, Int64(rng.next() % UInt64(settings.probeIntervalMs)))  // desynchronise nodes
        nextReconnectAt = after(now, settings.rejoinIntervalMs)
        if kept.isEmpty {
            updateMe { $0.status = .up }
        } else {
            sendJoin(&out, now: now)
        }
        return finish(out, since: epochBefore)
    }

    public mutating func tick(now: Int64) -> [MembershipDirective] {
        guard started else { return [] }
        let epochBefore = epoch
        var out: [MembershipDirective] = []
        switch me.status {
        case .left:
            return []
        case .leaving:
            if now >= leftAt { updateMe { $0.status = .left } }
            return finish(out, since: epochBefore)
        case .joining:
            if now >= nextJoinAt { sendJoin(&out, now: now) }
        case .up, .suspect, .down:
            runProbe(&out, now: now)
            reconnect(&out, now: now)
            if now >= nextJoinAt {
                // Alone (every other member down or gone): knock on the seeds again.
                if !seeds.isEmpty && !hasLiveOthers { sendJoin(&out, now: now) } else { nextJoinAt = after(now, settings.rejoinIntervalMs) }
            }
        }
        if now >= nextSuspectDeadline { expireSuspects(now: now) }
        if !relays.isEmpty { relays.removeAll { now >= $0.expiresAt } }
        return finish(out, since: epochBefore)
    }

    /// `fromPeer` is the transport's idea of the sender; replies go to the sender's advertised
    /// address (its own record, first in the gossip) and fall back to `fromPeer`.
    public mutating func receive(_ m: MembershipMessage, fromPeer: String, now: Int64) -> [MembershipDirective] {
        guard started, me.status != .left else { return [] }
        let epochBefore = epoch
        var out: [MembershipDirective] = []
        switch m {
        case .join(let info):
            guard info.id != myID, info.isValid else { break }
            if me.status == .joining {
                // Nobody answered our joins for a full retry interval, and another node asks us:
                // the whole cluster is (re)starting. The smallest id among the joining nodes that
                // hear each other founds it; the others are admitted by it. (Any later contact with
                // other members merges the views: gossip adds every member it names.)
                guard now >= after(joiningSince, settings.rejoinIntervalMs),
                      myID.utf8.lexicographicallyPrecedes(info.id.utf8) else { break }
                updateMe { $0.status = .up }
            }
            guard me.status == .up else { break }
            var admitted = info
            admitted.status = .up
            merge(admitted, now: now)
            let replyTo = info.peer.isEmpty ? fromPeer : info.peer
            send(&out, to: replyTo, .joinAck(members))
        case .joinAck(let list):
            for info in list { merge(info, now: now) }
            if me.status == .joining { updateMe { $0.status = .up } }
        case .ping(let seq, let gossip):
            for info in gossip { merge(info, now: now) }
            let sender = gossip.first
            send(&out, to: replyAddress(sender, fromPeer), .ack(seq: seq, gossip: makeGossip(for: sender?.id)))
        case .ack(let seq, let gossip):
            for info in gossip { merge(info, now: now) }
            if probe?.seq == seq { probe = nil }
            if let i = relays.firstIndex(where: { $0.seq == seq }) {
                let relay = relays.remove(at: i)
                send(&out, to: relay.replyTo, .ack(seq: relay.originSeq, gossip: makeGossip(for: nil)))
            }
        case .pingReq(let seq, let target, let gossip):
            for info in gossip { merge(info, now: now) }
            let sender = gossip.first
            let replyTo = replyAddress(sender, fromPeer)
            if target.id == myID {
                send(&out, to: replyTo, .ack(seq: seq, gossip: makeGossip(for: sender?.id)))
            } else {
                let address = records[target.id]?.info.peer ?? target.peer
                let local = takeSeq()
                if relays.count >= MembershipLimits.relaysMax { relays.removeFirst() }
                relays.append(Relay(seq: local, originSeq: seq, replyTo: replyTo,
                                    expiresAt: after(now, settings.probeIntervalMs)))
                send(&out, to: address, .ping(seq: local, gossip: makeGossip(for: target.id)))
            }
        case .leave(let info):
            var gone = info
            if gone.status != .left { gone.status = .left }
            merge(gone, now: now)
        }
        return finish(out, since: epochBefore)
    }

    /// Announces leaving to every live member; this node is `leaving` (out of the ring, still
    /// answering pings) for one probe interval, then `left` and silent.
    public mutating func leave(now: Int64) -> [MembershipDirective] {
        guard started, me.status == .up || me.status == .joining else { return [] }
        let epochBefore = epoch
        var out: [MembershipDirective] = []
        updateMe { $0.status = .leaving }
        leftAt = after(now, settings.probeIntervalMs)
        probe = nil
        let goodbye = me
        for id in ids where id != myID && records[id]!.info.status.isLive {
            send(&out, to: records[id]!.info.peer, .leave(goodbye))
        }
        return finish(out, since: epochBefore)
    }

    /// Why an operator's `remove` was not done.
    public enum RemoveRefusal: Error, Equatable, Sendable {
        case unknown
        case isMe
        case notDown(MemberStatus)
    }

    /// An operator removes a member that is `down` for good: it is recorded `left` (at its
    /// incarnation, which nothing at that incarnation beats) and every live member is told. A
    /// `left` member is in no ring and asked nothing; if the process comes back, its restart's
    /// higher incarnation lets it join again. A live member is never removed this way (it
    /// leaves itself: `leave`).
    public mutating func remove(_ id: String, now: Int64) -> Result<[MembershipDirective], RemoveRefusal> {
        guard id != myID else { return .failure(.isMe) }
        guard let r = records[id] else { return .failure(.unknown) }
        guard r.info.status == .down else { return .failure(.notDown(r.info.status)) }
        let epochBefore = epoch
        var out: [MembershipDirective] = []
        var gone = r.info
        gone.status = .left
        merge(gone, now: now)
        for other in ids where other != myID && records[other]!.info.status.isLive {
            send(&out, to: records[other]!.info.peer, .leave(gone))
        }
        return .success(finish(out, since: epochBefore))
    }

    // MARK: - Probing

    private mutating func runProbe(_ out: inout [MembershipDirective], now: Int64) {
        if var p = probe {
            if !(records[p.target]?.info.status.isLive ?? false) {
                probe = nil
            } else {
                if !p.indirectSent && now >= after(p.sentAt, settings.probeTimeoutMs) {
                    p.indirectSent = true
                    probe = p
                    sendIndirect(&out, for: p)
                }
                if now >= after(p.sentAt, settings.probeIntervalMs) {
                    probe = nil
                    suspect(p.target, now: now)
                }
            }
        }
        guard probe == nil, now >= nextProbeAt else { return }
        nextProbeAt = after(now, settings.probeIntervalMs)
        guard let target = nextProbeTarget() else { return }
        let seq = takeSeq()
        probe = Probe(target: target, seq: seq, sentAt: now, indirectSent: false)
        send(&out, to: records[target]!.info.peer, .ping(seq: seq, gossip: makeGossip(for: target)))
    }

    private mutating func sendIndirect(_ out: inout [MembershipDirective], for p: Probe) {
        guard let target = records[p.target]?.info else { return }
        var helpers = ids.filter { $0 != myID && $0 != p.target && records[$0]!.info.status == .up }
        shuffle(&helpers)
        let count = min(helpers.count, min(settings.indirectProbes, MembershipLimits.indirectProbesMax))
        for helper in helpers.prefix(count) {
            send(&out, to: records[helper]!.info.peer,
                 .pingReq(seq: p.seq, target: target, gossip: makeGossip(for: helper)))
        }
    }

    /// Round-robin over a seeded shuffle of the live members. The order is kept from round to round
    /// (members that become live are inserted at a random place; others are dropped when reached):
    /// so each live member is probed once every round, at most N-1 intervals apart. Reshuffling
    /// every round, as SWIM's paper does, would let that gap reach 2N-3 intervals and push the
    /// detection of a crash past the 5 s promise in small clusters.
    private mutating func nextProbeTarget() -> String? {
        if probeOrder.isEmpty {
            var order = ids.filter { $0 != myID && records[$0]!.info.status.isLive }
            shuffle(&order)
            probeOrder = order
            probeIndex = 0
        }
        while !probeOrder.isEmpty {
            if probeIndex >= probeOrder.count { probeIndex = 0 }
            let id = probeOrder[probeIndex]
            if id != myID, records[id]?.info.status.isLive ?? false {
                probeIndex += 1
                return id
            }
            probeOrder.remove(at: probeIndex)
        }
        return nil
    }

    /// A member that became live joins the order at a random place (unless still in it).
    private mutating func addToProbeOrder(_ id: String) {
        guard id != myID, !probeOrder.contains(id) else { return }
        let at = Int(rng.next() % UInt64(probeOrder.count + 1))
        probeOrder.insert(id, at: at)
        if at < probeIndex { probeIndex += 1 }
    }

    private mutating func suspect(_ id: String, now: Int64) {
        guard var r = records[id], r.info.status == .up else { return }
        r.info.status = .suspect
        r.suspectSince = now
        r.changedAt = now
        records[id] = r
        noteSuspect(since: now)
        noteChange(of: id)
    }

    private mutating func noteSuspect(since: Int64) {
        nextSuspectDeadline = min(nextSuspectDeadline, after(since, settings.suspectTimeoutMs))
    }

    private mutating func expireSuspects(now: Int64) {
        nextSuspectDeadline = .max
        for id in ids {
            guard var r = records[id], r.info.status == .suspect else { continue }
            let deadline = after(r.suspectSince, settings.suspectTimeoutMs)
            guard now >= deadline else {
                nextSuspectDeadline = min(nextSuspectDeadline, deadline)
                continue
            }
            r.info.status = .down
            r.changedAt = now
            records[id] = r
            noteChange(of: id)
        }
    }

    /// One ping per `rejoinIntervalMs` to a random `down` member, carrying its `down` record.
    private mutating func reconnect(_ out: inout [MembershipDirective], now: Int64) {
        guard now >= nextReconnectAt else { return }
        nextReconnectAt = after(now, settings.rejoinIntervalMs)
        let down = ids.filter { $0 != myID && records[$0]!.info.status == .down }
        guard !down.isEmpty else { return }
        let target = down[Int(rng.next() % UInt64(down.count))]
        send(&out, to: records[target]!.info.peer, .ping(seq: takeSeq(), gossip: makeGossip(for: target)))
    }

    private mutating func sendJoin(_ out: inout [MembershipDirective], now: Int64) {
        nextJoinAt = after(now, settings.rejoinIntervalMs)
        let hello = me
        for s in seeds { send(&out, to: s, .join(hello)) }
    }

    private var hasLiveOthers: Bool {
        ids.contains { $0 != myID && records[$0]!.info.status.isLive }
    }

    // MARK: - Merging reports

    /// Applies one report about any member (this node included).
    private mutating func merge(_ report: MemberInfo, now: Int64) {
        guard report.isValid else { return }
        if report.id == myID {
            mergeAboutMe(report)
            return
        }
        var info = report
        // Only a node itself is `joining` or `leaving`; everyone else records `up` / `left`.
        if info.status == .joining { info.status = .up }
        if info.status == .leaving { info.status = .left }
        if var r = records[info.id] {
            guard info.supersedes(r.info) else { return }
            let wasLive = r.info.status.isLive
            r.info = info
            r.changedAt = now
            if info.status == .suspect {
                r.suspectSince = now
                noteSuspect(since: now)
            }
            records[info.id] = r
            noteChange(of: info.id)
            if !wasLive && info.status.isLive { addToProbeOrder(info.id) }
        } else {
            guard records.count < MembershipLimits.membersMax || (info.status.isLive && evictOne()) else { return }
            records[info.id] = Record(info: info, suspectSince: now, changedAt: now)
            if info.status == .suspect { noteSuspect(since: now) }
            ids.insert(info.id, at: insertionIndex(info.id))
            noteChange(of: info.id)
            if info.status.isLive { addToProbeOrder(info.id) }
        }
    }

    /// Reports about this node: refute accusations and stale records by raising the incarnation
    /// above the report; accept being admitted (`up` at our incarnation) while joining.
    private mutating func mergeAboutMe(_ report: MemberInfo) {
        let mine = me
        guard mine.status != .leaving && mine.status != .left else { return }
        let stale = report.incarnation > mine.incarnation
            || (report.incarnation == mine.incarnation
                && (report.status.isAccusation || report.peer != mine.peer || report.http != mine.http))
        if stale {
            let raised = report.incarnation == .max ? UInt64.max : report.incarnation + 1
            if raised != mine.incarnation { updateMe { $0.incarnation = raised } }
        } else if report.incarnation == mine.incarnation && report.status == .up && mine.status == .joining {
            updateMe { $0.status = .up }
        }
    }

    /// Frees one slot by dropping the `down`/`left` record changed longest ago.
    private mutating func evictOne() -> Bool {
        var victim: String?
        var oldest = Int64.max
        for id in ids where id != myID {
            let r = records[id]!
            if !r.info.status.isLive && r.info.status != .joining && r.changedAt < oldest {
                oldest = r.changedAt
                victim = id
            }
        }
        guard let id = victim else { return false }
        records[id] = nil
        gossipQueue[id] = nil
        ids.removeAll { $0 == id }
        if probe?.target == id { probe = nil }
        return true
    }

    private mutating func updateMe(_ change: (inout MemberInfo) -> Void) {
        var r = records[myID]!
        change(&r.info)
        records[myID] = r
        epoch += 1
    }

    private mutating func noteChange(of id: String) {
        epoch += 1
        gossipQueue[id] = retransmitLimit
        if probe?.target == id, !(records[id]?.info.status.isLive ?? false) { probe = nil }
    }

    /// ~3 * log2(N + 1) sends per change, N the live members.
    private var retransmitLimit: Int {
        let live = max(1, ids.reduce(0) { $0 + (records[$1]!.info.status.isLive ? 1 : 0) })
        let log2Ceil = Int.bitWidth - live.leadingZeroBitCount  // ceil(log2(live + 1))
        return 3 * log2Ceil
    }

    // MARK: - Sending

    /// This node's record, the destination's record when it is not good news, then the freshest
    /// queued changes; at most `gossipMax` entries.
    private mutating func makeGossip(for destination: String?) -> [MemberInfo] {
        let cap = min(max(settings.gossipMax, 1), MembershipLimits.gossipEntriesMax)
        var out = [me]
        var skip = myID
        if let d = destination, d != myID, let r = records[d], !r.info.status.isLive, out.count < cap {
            out.append(r.info)
            skip = d
        }
        guard out.count < cap, !gossipQueue.isEmpty else { return out }
        let queued = gossipQueue.sorted {
            $0.value != $1.value ? $0.value > $1.value : $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)
        }
        for (id, left) in queued where out.count < cap && id != myID && id != skip {
            guard let r = records[id] else { gossipQueue[id] = nil; continue }
            out.append(r.info)
            gossipQueue[id] = left > 1 ? left - 1 : nil
        }
        return out
    }

    private func send(_ out: inout [MembershipDirective], to peer: String, _ m: MembershipMessage) {
        guard !peer.isEmpty, peer != myPeer else { return }
        out.append(.send(toPeer: peer, m))
    }

    private func replyAddress(_ sender: MemberInfo?, _ fromPeer: String) -> String {
        if let s = sender, !s.peer.isEmpty { return s.peer }
        return fromPeer
    }

    private func finish(_ out: [MembershipDirective], since epochBefore: UInt64) -> [MembershipDirective] {
        epoch == epochBefore ? out : out + [.changed(epoch: epoch)]
    }

    // MARK: - Small helpers

    private mutating func takeSeq() -> UInt64 {
        defer { nextSeq &+= 1 }
        return nextSeq
    }

    private mutating func shuffle(_ a: inout [String]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
    }

    private func insertionIndex(_ id: String) -> Int {
        var lo = 0
        var hi = ids.count
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if ids[mid].utf8.lexicographicallyPrecedes(id.utf8) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private func after(_ t: Int64, _ d: Int64) -> Int64 {
        let (sum, overflow) = t.addingReportingOverflow(d)
        return overflow ? .max : sum
    }
}
