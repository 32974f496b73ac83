import Testing
import StarlingCore
@testable import StarlingCluster

@Suite struct CatchUpPlannerTests {
    typealias Plan = CatchUpPlanner.Plan

    @Test func firstRingWithOthersPullsFromBeforeTheNewestRecordOrEverything() {
        var restarted = CatchUpPlanner(queuedMax: 4)
        let alone = restarted.ringChanged(to: ["a"], me: "a", newestReceivedAt: 500_000)
        let together = restarted.ringChanged(to: ["a", "b"], me: "a", newestReceivedAt: 500_000)
        #expect(alone == nil, "alone: nothing to pull")
        #expect(together == Plan(since: 500_000 - 120_000, previousMembers: [], mode: .handoff, ring: ["a", "b"]))
        var fresh = CatchUpPlanner(queuedMax: 4)
        let joined = fresh.ringChanged(to: ["a", "b", "c"], me: "c", newestReceivedAt: 0)
        #expect(joined == Plan(since: 0, previousMembers: [], mode: .handoff, ring: ["a", "b", "c"]))
        fresh.completed(joined!)
        // Later changes pull only what the new ring added to the last ring caught up in full.
        let same = fresh.ringChanged(to: ["a", "b", "c"], me: "c", newestReceivedAt: 9)
        let shrunk = fresh.ringChanged(to: ["a", "c"], me: "c", newestReceivedAt: 9)
        let outside = fresh.ringChanged(to: ["a", "b"], me: "c", newestReceivedAt: 9)
        #expect(same == nil, "same ring")
        #expect(shrunk == Plan(since: 0, previousMembers: ["a", "b", "c"], mode: .handoff, ring: ["a", "c"]))
        #expect(outside == nil, "not in the ring")
        #expect(fresh.previousRing == ["a", "b"])
    }

    /// The previous ring is a base only when this node caught up in it in full; otherwise the
    /// plan pulls everything (no previous ring). Found by the cluster simulation: a node that saw
    /// itself alone for a moment, or came back to a ring it had caught up in long before, claimed
    /// to hold keys it had missed meanwhile, so nothing was handed to it.
    @Test func onlyAPreviousRingCaughtUpInFullIsABase() {
        var p = CatchUpPlanner(queuedMax: 4)
        let first = p.ringChanged(to: ["a", "b", "c"], me: "c", newestReceivedAt: 0)!
        p.completed(first)
        #expect(p.ringChanged(to: ["c"], me: "c", newestReceivedAt: 9) == nil, "alone: nothing to pull")
        let back = p.ringChanged(to: ["a", "c"], me: "c", newestReceivedAt: 9)
        #expect(back == Plan(since: 0, previousMembers: [], mode: .handoff, ring: ["a", "c"]), "after the lone view: everything")
        p.completed(back!)
        let grown = p.ringChanged(to: ["a", "b", "c"], me: "c", newestReceivedAt: 9)
        #expect(grown?.previousMembers == ["a", "c"], "straight from a ring caught up in full: only what it adds")
        // `grown` never completes (a peer failed): the next change pulls everything.
        #expect(p.ringChanged(to: ["a", "c"], me: "c", newestReceivedAt: 9)?.previousMembers == [],
                "back to a ring caught up long ago is not a base either")
    }

    @Test func antiEntropyOnlyWhenReplicatingWithOthers() {
        let p = CatchUpPlanner(queuedMax: 4)
        #expect(p.antiEntropy(now: 1_000_000, ring: ["a", "b"], me: "a", rf: 2) == Plan(since: 880_000, previousMembers: [], mode: .standIn))
        #expect(p.antiEntropy(now: 1_000_000, ring: ["a", "b"], me: "a", rf: 1) == nil)
        #expect(p.antiEntropy(now: 1_000_000, ring: ["a"], me: "a", rf: 2) == nil)
        #expect(p.antiEntropy(now: .min, ring: ["a", "b"], me: "a", rf: 2)?.since == .min, "clamped, never traps")
    }

    @Test func oneAtATimeAndTheNewestPlanOfAModeWins() {
        var p = CatchUpPlanner(queuedMax: 2)
        let plans = (0..<5).map { Plan(since: Int64($0), previousMembers: [], mode: .handoff) }
        let standIn = Plan(since: 9, previousMembers: [], mode: .standIn)
        var started: [Bool] = []
        for plan in plans { started.append(p.request(plan)) }
        started.append(p.request(standIn))
        #expect(started == [true, false, false, false, false, false])
        #expect(p.queued == [plans[4], standIn], "the newest handoff supersedes the queued ones; one stand-in pass waits too")
        var next: [Plan?] = [p.finished()]
        #expect(p.running)
        next.append(p.finished())
        next.append(p.finished())
        #expect(next == [plans[4], standIn, nil] && !p.running)
        let again = p.request(plans[0])
        #expect(again)
    }
}
