import StarlingCore

/// One answer from the members' answers to a query (pure): every member holds some of the
/// events (replicas hold copies), so hits are deduped by event id, ordered by `ts`, then
/// `received_at`, then event id, and cut at the limit.
public enum QueryMerge {
    public struct Merged: Sendable, Equatable {
        public var hits: [QueryHit]
        /// More hits than the limit exist (some member said so, or the merge cut).
        public var truncated: Bool
        /// Some data may be missing: members that did not answer may hold all copies of some of
        /// it (`mayMiss`, `Placement.mayMiss`), or a member could not read some blocks.
        public var partial: Bool
        /// The most complete session state among the answers.
        public var state: [UInt8]?
    }

    /// `answers` has one entry per asked member, nil where none came in time; `mayMiss`: those
    /// members may hold every copy of some of the data (decided by the caller, who knows the ring).
    public static func merge(_ answers: [QueryResult?], limit: Int, mayMiss: Bool) -> Merged {
        var hits: [QueryHit] = []
        var partial = mayMiss
        var truncated = false
        var state: [UInt8]?
        var best: (events: Int64, lastSeen: Int64) = (-1, -1)
        for answer in answers {
            guard let r = answer else { continue }
            if r.error != nil { partial = true }
            truncated = truncated || r.truncated
            // Every replica folds the session's events into a state; the most complete one (most
            // events, then latest) wins. This reads through to the previous owner while a new
            // owner is still catching up.
            if let s = r.state, let rank = rank(ofState: s), rank > best {
                best = rank
                state = s
            }
            hits.append(contentsOf: r.hits)
        }
        hits.sort { a, b in a.ts != b.ts ? a.ts < b.ts : (a.receivedAt != b.receivedAt ? a.receivedAt < b.receivedAt : a.eventID < b.eventID) }
        var seen = Set<String>()
        var out: [QueryHit] = []
        for h in hits where seen.insert(h.eventID).inserted {
            if out.count == limit {
                truncated = true
                break
            }
            out.append(h)
        }
        return Merged(hits: out, truncated: truncated, partial: partial, state: state)
    }

    /// (events, last_seen) of a state's JSON; nil when it is not a state.
    static func rank(ofState json: [UInt8]) -> (Int64, Int64)? {
        guard let v = try? JSONParser.parse(json), case .object(let o) = v,
              case .number(let ev)? = o["events"], case .number(let ls)? = o["last_seen"],
              let events = Int64(ev), let last = Int64(ls) else { return nil }
        return (events, last)
    }
}
