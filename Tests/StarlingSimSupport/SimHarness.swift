import StarlingCore

// The harness both deterministic simulations run on (the membership simulation `SimCluster` and
// the whole-cluster simulation `ClusterSim`): one seed, a simulated clock, and a faulty network of
// byte packets (loss, delay and so reordering, duplication, one-node cut-offs, partitions). Every
// random choice comes from the one seeded generator, in a fixed order, so a seed replays exactly.

/// Something scheduled for a simulated time; ties go in send order, so runs replay exactly.
public protocol SimTimed {
    var deliverAt: Int64 { get }
    var order: UInt64 { get }
}

/// Bytes in flight from one simulated node to another.
public struct SimPacket: SimTimed, Sendable {
    public var deliverAt: Int64
    public var order: UInt64
    public var from: Int
    public var to: Int
    public var bytes: [UInt8]
}

/// A binary min-heap by (deliverAt, order).
public struct SimTimedQueue<P: SimTimed> {
    private var heap: [P] = []
    public var count: Int { heap.count }
    public var first: P? { heap.first }

    public init() {}

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].deliverAt != heap[b].deliverAt ? heap[a].deliverAt < heap[b].deliverAt : heap[a].order < heap[b].order
    }

    public mutating func push(_ p: P) {
        heap.append(p)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    public mutating func pop() -> P? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }

    public mutating func removeAll(where drop: (P) -> Bool) {
        let kept = heap.filter { !drop($0) }
        heap = []
        for p in kept { push(p) }
    }
}

/// What happens next in a simulation: a packet arrives, or the nodes due at a time tick.
public enum SimStep {
    case deliver(SimPacket)
    case tick(Int64)
}

/// The seed, the clock, the network and its faults, the failure list. A simulation subclasses it
/// and adds its nodes: how they start, crash, tick and take a packet, and what it checks.
open class SimHarness {
    public let seed: UInt64
    /// Prefix of every failure message, e.g. "seed 7" (a failure names the seed to replay).
    public let label: String
    public private(set) var now: Int64 = 0
    private var rng: SplitMix64
    private var queue = SimTimedQueue<SimPacket>()
    private var order: UInt64 = 0
    private var cutOffUntil: [Int64]
    private var side: [Int: Int]?

    // Faults, changeable between steps.
    public var lossPerMille = 0
    public var duplicatePerMille = 0
    public var delayMs: ClosedRange<Int64> = 1...50
    /// How often each node ticks (a shell uses a timer of a few tens of ms).
    public var tickMs: Int64 = 20

    public private(set) var delivered = 0
    public private(set) var dropped = 0
    /// FNV-1a over what was delivered: equal runs give equal prints.
    public private(set) var fingerprint = StableHash.offsetBasis
    public private(set) var failures: [String] = []

    public init(seed: UInt64, rngSeed: UInt64, label: String, nodes count: Int) {
        self.seed = seed
        self.label = label
        rng = SplitMix64(seed: rngSeed)
        cutOffUntil = Array(repeating: .min, count: count)
    }

    // MARK: Random choices (all from the one seed)

    public final func random(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(rng.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    public final func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    public final func chance(perMille: Int) -> Bool { perMille > 0 && random(1000) < perMille }
    /// A fresh seed for a generator of the simulation's own (event ids of a node, say).
    public final func nextSeed() -> UInt64 { rng.next() }

    // MARK: Faults

    public final func cutOff(_ i: Int, forMs ms: Int64) { cutOffUntil[i] = now + ms }
    public final func isCutOff(_ i: Int) -> Bool { now < cutOffUntil[i] }
    /// Brings a node back into the network (a restarted node is not cut off).
    public final func reconnect(_ i: Int) { cutOffUntil[i] = .min }

    /// Splits the network: nodes in different groups cannot reach each other until `heal` (a
    /// node in no group reaches no one).
    public final func partition(_ groups: [Int]...) {
        var s: [Int: Int] = [:]
        for (g, members) in groups.enumerated() { for i in members { s[i] = g } }
        side = s
    }

    public final func heal() { side = nil }

    public final func canReach(_ a: Int, _ b: Int) -> Bool {
        guard let side else { return true }
        guard let x = side[a], let y = side[b] else { return false }
        return x == y
    }

    /// Every fault off: no partition, no cut-off, no loss, no duplication.
    open func healAll() {
        heal()
        for i in cutOffUntil.indices { cutOffUntil[i] = .min }
        lossPerMille = 0
        duplicatePerMille = 0
    }

    // MARK: The network

    /// Sends `bytes` (lost, delayed, maybe duplicated, per the faults now).
    public final func transmit(_ bytes: [UInt8], from: Int, to: Int) {
        enqueue(bytes, from: from, to: to)
        if chance(perMille: duplicatePerMille) { enqueue(bytes, from: from, to: to) }
    }

    private func enqueue(_ bytes: [UInt8], from: Int, to: Int) {
        if isCutOff(from) || isCutOff(to) || !canReach(from, to) || chance(perMille: lossPerMille) {
            dropped += 1
            return
        }
        order += 1
        queue.push(SimPacket(deliverAt: now + random(delayMs), order: order, from: from, to: to, bytes: bytes))
    }

    /// A crash: every packet on its way to node `i` is gone.
    public final func dropPackets(to i: Int) { queue.removeAll { $0.to == i } }

    /// The next step before or at `end`: the earliest packet, or the tick at `tickAt` (packets
    /// first on a tie); nil when neither is due by `end`. Moves the clock.
    public final func next(until end: Int64, tickAt: Int64) -> SimStep? {
        if let p = queue.first, p.deliverAt <= tickAt {
            guard p.deliverAt <= end else { return nil }
            now = p.deliverAt
            return .deliver(queue.pop()!)
        }
        guard tickAt <= end else { return nil }
        now = tickAt
        return .tick(tickAt)
    }

    /// The clock after a run to `end` (nothing was due at the end itself).
    public final func settle(at end: Int64) { now = max(now, end) }

    /// Whether packet `p` arrives: its receiver is alive, neither end is cut off, and they can
    /// reach each other. Counted as delivered or dropped.
    public final func arrives(_ p: SimPacket, receiverAlive: Bool) -> Bool {
        guard receiverAlive, !isCutOff(p.to), !isCutOff(p.from), canReach(p.from, p.to) else {
            dropped += 1
            return false
        }
        delivered += 1
        return true
    }

    /// Folds values into the run's fingerprint.
    public final func mix(_ values: [UInt64]) {
        var h = fingerprint
        for v in values { h = (h ^ v) &* StableHash.prime }
        fingerprint = h
    }

    /// Folds bytes into the run's fingerprint.
    public final func mix(bytes: [UInt8]) {
        var h = fingerprint
        for b in bytes { h = (h ^ UInt64(b)) &* StableHash.prime }
        fingerprint = h
    }

    /// Records a broken invariant (the first 20), with the seed and the time.
    public final func fail(_ what: String) {
        if failures.count < 20 { failures.append("\(label) t=\(now)ms: \(what)") }
    }
}
