import StarlingCore

/// When a node pulls records from its peers, and what (pure). ARCHITECTURE "Catch-up":
/// - the first time the node is in a ring with others: everything since a little before its
///   newest record (a restart), or everything (a new node: the handoff of its share);
/// - after every later ring change: only the keys the new ring made it responsible for (the
///   plan carries the previous ring, so peers send only those);
/// - every anti-entropy interval: the copies of the last window that peers hold as stand-ins;
/// - one catch-up streams at a time; plans that arrive meanwhile wait, a few at most (the next
///   anti-entropy pass covers what is dropped).
public struct CatchUpPlanner: Sendable {
    public struct Plan: Sendable, Equatable {
        public var since: Int64
        public var previousMembers: [String]
        public var mode: CatchUpRequest.Mode
        /// The ring the plan pulls for (handoff plans).
        public var ring: [String]
        public init(since: Int64, previousMembers: [String], mode: CatchUpRequest.Mode, ring: [String] = []) {
            self.since = since
            self.previousMembers = previousMembers
            self.mode = mode
            self.ring = ring
        }
    }

    /// A restart pulls from this long before its newest record.
    public var restartMarginMs: Int64 = 120_000
    /// Anti-entropy pulls what arrived within this window.
    public var antiEntropyWindowMs: Int64 = 120_000
    public var queuedMax: Int
    /// false (a deliberate bug, for the simulation): any previous ring is a base, caught up or not.
    public var requireCaughtUpBase = true

    public private(set) var started = false
    public private(set) var previousRing: [String] = []
    /// The last ring whose handoff finished with every peer answering: the node held what it
    /// replicates there. The next ring change pulls only what the new ring adds to it, if it
    /// changes straight from that ring; from any other ring (a pull that failed somewhere, a
    /// transient view such as this node alone) it pulls everything it replicates.
    public private(set) var caughtUpRing: [String]?
    public private(set) var running = false
    public private(set) var queued: [Plan] = []

    public init(queuedMax: Int) { self.queuedMax = queuedMax }

    /// The ring changed to `members` (sorted): the plan to run once the view has settled, if any.
    /// `newestReceivedAt` is the receive time of the newest record this node holds (0: none).
    public mutating func ringChanged(to members: [String], me: String, newestReceivedAt: Int64) -> Plan? {
        defer { previousRing = members }
        guard members.contains(me), members.count > 1 else { return nil }
        if !started {
            started = true
            let since = newestReceivedAt == 0 ? 0 : TimeMath.subtract(newestReceivedAt, restartMarginMs)
            return Plan(since: since, previousMembers: [], mode: .handoff, ring: members)
        }
        guard previousRing != members else { return nil }
        // The previous ring is a base only if this node caught up in it in full; otherwise pull
        // everything it replicates in the new ring (every holder sends, the store dedupes).
        let base = caughtUpRing == previousRing || !requireCaughtUpBase ? previousRing : []
        return Plan(since: 0, previousMembers: base, mode: .handoff, ring: members)
    }

    /// The running plan's pull finished with every peer answering.
    public mutating func completed(_ plan: Plan) {
        if plan.mode == .handoff && !plan.ring.isEmpty { caughtUpRing = plan.ring }
    }

    /// The periodic pass, when this node replicates (rf > 1) in a ring with others.
    public func antiEntropy(now: Int64, ring members: [String], me: String, rf: Int) -> Plan? {
        guard rf > 1, members.contains(me), members.count > 1 else { return nil }
        return Plan(since: TimeMath.subtract(now, antiEntropyWindowMs), previousMembers: [], mode: .standIn)
    }

    /// A plan wants to run: true to start it now; otherwise it waits (or is dropped past the bound).
    public mutating func request(_ plan: Plan) -> Bool {
        if running {
            // A newer plan of the same mode supersedes the queued one: a handoff for a ring that
            // is gone pulls nothing the new ring's plan does not (its base is the previous ring
            // only when that ring was caught up in full), and dropping the newest plan instead
            // (the bound, under a flapping view) left a node without the keys of its real ring.
            queued.removeAll { $0.mode == plan.mode }
            if queued.count < queuedMax { queued.append(plan) }
            return false
        }
        running = true
        return true
    }

    /// The running catch-up finished (whatever its outcome): the next plan to start, if any.
    public mutating func finished() -> Plan? {
        precondition(running, "a catch-up finished while none was running (\(queued.count) queued)")
        guard !queued.isEmpty else {
            running = false
            return nil
        }
        return queued.removeFirst()
    }
}
