import Foundation
import Testing
import StarlingCluster
import StarlingCore
@testable import StarlingNode

/// Live nodes with `rf` copies in one process, each joined to the first, all seeing every member up.
func replicatedNodes(_ ids: [String], rf: Int, configure: @escaping (inout NodeConfig) -> Void = { _ in }) throws -> [LiveNode] {
    var nodes: [LiveNode] = []
    for id in ids {
        let seed = nodes.first.map { HostPort(host: "127.0.0.1", port: $0.server.peerPort!) }
        nodes.append(try LiveNode(id: id) { c in
            c.rf = rf
            if let seed { c.join = [seed] }
            configure(&c)
        })
    }
    #expect(eventually(15) { nodes.allSatisfy { upCount($0) == nodes.count } }, "members did not all come up")
    return nodes
}

func upCount(_ n: LiveNode) -> Int {
    ((try? n.json("GET", "/v1/cluster").1["members"] as? [[String: Any]]) ?? [])?.filter { $0["status"] as? String == "up" }.count ?? 0
}

/// A session id whose replica set (`rf` copies) in the ring of `members` contains every member
/// of `want`; with rf 1 and one member, a session that member owns.
func session(replicatedOn want: Set<String>, ring members: [String], rf: Int, prefix: String) -> String {
    let ring = HashRing(members: members)
    for i in 0..<10_000 {
        let sid = "\(prefix)-\(i)"
        if want.isSubset(of: Set(ring.replicas(of: sid, count: rf))) { return sid }
    }
    return "\(prefix)-none"
}

/// Incompressible text (LZ4 cannot shrink it), seeded.
func noiseText(_ n: Int, seed: UInt64) -> String {
    var rng = SplitMix64(seed: seed)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
}

/// Every frame kind that carries a list is cut to fit the receiver's 4 MiB limit: a write group,
/// a forward batch, a query answer and a catch-up page each hold more than one frame here.
@Suite(.serialized) struct FrameLimitTests {
    /// 200 events of 32 KiB (incompressible) in one session: 6.4 MB, more than a frame.
    static let bigEvents = 200

    func postBigSession(_ sid: String, to node: LiveNode) throws -> [String] {
        var ids: [String] = []
        var batch: [String] = []
        func flush() throws {
            guard !batch.isEmpty else { return }
            let r = try node.call("POST", "/v1/events", "[" + batch.joined(separator: ",") + "]")
            #expect(r.status == 202, "posting big events: \(r.status) \(r.text)")
            batch = []
        }
        for i in 0..<Self.bigEvents {
            let id = "\(sid)-e\(i)"
            ids.append(id)
            let pad = noiseText(32 * 1024 - 120, seed: UInt64(i + 1))
            batch.append(#"{"session_id":"\#(sid)","key":"big","event_id":"\#(id)","value":"\#(pad)"}"#)
            if batch.count == 28 { try flush() }
        }
        try flush()
        return ids
    }

    func localIDs(_ node: LiveNode, _ sid: String) -> [String] {
        node.server.engine.session(sid, query: EventQuery(limit: 100_000)).0.records.map(\.eventID)
    }

    /// Written through the node that does not own the session (forwarded, replicated), read
    /// from both (the other node's answer crosses the peer port), then pulled by a third node
    /// that joins and becomes one of the session's replicas.
    @Test func aSessionLargerThanAFrameIsWrittenReadAndCaughtUp() throws {
        let nodes = try replicatedNodes(["a", "b"], rf: 2)
        defer { nodes.forEach { $0.stop() } }
        let (a, b) = (nodes[0], nodes[1])
        let sid = session(replicatedOn: ["b", "c"], ring: ["a", "b", "c"], rf: 2, prefix: "big")
        let owner2 = HashRing(members: ["a", "b"]).owner(of: sid)
        let ids = try postBigSession(sid, to: owner2 == "a" ? b : a)
        for node in [a, b] {
            #expect(Set(localIDs(node, sid)) == Set(ids), "own copy on \(node.server.config.id)")
            let (status, q) = try node.json("GET", "/v1/sessions/\(sid)?limit=100000")
            #expect(status == 200)
            #expect(q["partial"] as? Bool == false, "a member's answer did not come")
            #expect(events(q).compactMap { $0["event_id"] as? String }.sorted() == ids.sorted())
        }
        // A small limit is honoured across pages, with `truncated`.
        let (_, limited) = try a.json("GET", "/v1/sessions/\(sid)?limit=150")
        #expect(events(limited).count == 150 && limited["truncated"] as? Bool == true)
        let c = try LiveNode(id: "c") { $0.rf = 2; $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)] }
        defer { c.stop() }
        #expect(eventually(30) { Set(localIDs(c, sid)) == Set(ids) }, "c caught up \(localIDs(c, sid).count) of \(ids.count)")
        let metrics = try a.call("GET", "/metrics").text + (try b.call("GET", "/metrics").text)
        #expect(!metrics.contains("starling_peer_protocol_errors_total 1"), "a frame was refused")
    }

    /// Bodies of 28 incompressible 32 KiB events each (about 900 KB).
    static func bigBodies(_ count: Int, sid: String) -> [String] {
        (0..<count).map { r in
            "[" + (0..<28).map { i in
                #"{"session_id":"\#(sid)","key":"big","event_id":"r\#(r)-\#(i)","value":"\#(noiseText(32 * 1024 - 120, seed: UInt64(r * 100 + i)))"}"#
            }.joined(separator: ",") + "]"
        }
    }

    /// Posts `bodies` at once, one connection each; returns the statuses.
    static func postConcurrently(_ bodies: [String], port: Int) -> [Int] {
        let statuses = Mutex_<[Int]>([])
        let group = DispatchGroup()
        for body in bodies {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                let status = (try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events",
                                                            body: Array(body.utf8), timeoutSeconds: 30).status) ?? -1
                statuses.lock.withLock { statuses.value.append(status) }
            }
        }
        group.wait()
        return statuses.get()
    }

    /// Holds `held`'s log writer while `count` 900 KB requests go to `target`, lets it go once
    /// `queued` holds, and returns whether it held and every request's status.
    func whileWriterHeld(_ held: LiveNode, post count: Int, sid: String, to target: LiveNode,
                         queued: () -> Bool) -> (queued: Bool, statuses: [Int]) {
        // Built before the writer is held: the window must stay inside the forward timeout.
        let bodies = Self.bigBodies(count, sid: sid)
        let gate = DispatchSemaphore(value: 0)
        held.server.engine.exclusive { gate.wait() }
        let done = DispatchSemaphore(value: 0)
        let statuses = Mutex_<[Int]>([])
        let port = target.port
        DispatchQueue.global().async {
            statuses.set(Self.postConcurrently(bodies, port: port))
            done.signal()
        }
        let didQueue = eventually(20, queued)
        gate.signal()
        _ = done.wait(timeout: .now() + 60)
        return (didQueue, statuses.get())
    }

    /// The owner's writer is held while six 900 KB requests queue, so they commit as one write
    /// group of 5.4 MB of incompressible records: its replication must go in several frames.
    @Test func aWriteGroupLargerThanAFrameIsReplicated() throws {
        let nodes = try replicatedNodes(["a", "b"], rf: 2)
        defer { nodes.forEach { $0.stop() } }
        let (a, b) = (nodes[0], nodes[1])
        let sid = session(replicatedOn: ["a"], ring: ["a", "b"], rf: 1, prefix: "group")   // owned by a
        let run = whileWriterHeld(a, post: 6, sid: sid, to: a) { a.server.engine.pending.withLock { $0.jobs.count } == 6 }
        #expect(run.queued, "the six requests did not queue")
        #expect(run.statuses == Array(repeating: 202, count: 6), "\(run.statuses)")
        #expect(eventually(10) { localIDs(b, sid).count == 6 * 28 }, "b holds \(localIDs(b, sid).count) of \(6 * 28)")
    }

    /// The owner's writer is held, so the forwarding node's queue fills with 900 KB requests
    /// behind the two batches in flight; they leave together (over 4 MiB), and must leave in
    /// several frames.
    @Test func aForwardBatchLargerThanAFrameIsSplit() throws {
        // Filling the queue takes seconds of a debug build's parsing: the forwards waiting on the
        // held owner must not time out meanwhile (this tests frame splitting, not timeouts).
        let nodes = try replicatedNodes(["a", "b"], rf: 1) { $0.forwardTimeoutMs = 30_000 }
        defer { nodes.forEach { $0.stop() } }
        let (a, b) = (nodes[0], nodes[1])
        let sid = session(replicatedOn: ["b"], ring: ["a", "b"], rf: 1, prefix: "fwd")   // owned by b
        func queued() -> Int {
            a.server.api.cluster.node.withLock { $0.forwardPiecesWaiting }
        }
        // Two batches in flight hold at most 6 requests (3 MiB each): at least 6 wait, over 4 MiB.
        let run = whileWriterHeld(b, post: 12, sid: sid, to: a) { queued() >= 5 }
        #expect(run.queued, "requests did not queue behind the two in flight")
        #expect(run.statuses == Array(repeating: 202, count: 12), "\(run.statuses)")
        #expect(localIDs(b, sid).count == 12 * 28)
    }
}

@Suite struct FrameBudgetTests {
    @Test func runsCoverEveryItemWithinTheBounds() {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<200 {
            let sizes = (0..<Int(rng.next() % 300)).map { _ in Int(rng.next() % 5_000) + 1 }
            let maxBytes = Int(rng.next() % 20_000) + 1
            let maxCount = Int(rng.next() % 50) + 1
            let runs = FrameBudget.runs(sizes: sizes, maxBytes: maxBytes, maxCount: maxCount)
            #expect(runs.flatMap { Array($0) } == Array(sizes.indices))
            for r in runs {
                #expect(!r.isEmpty && r.count <= maxCount)
                let bytes = sizes[r].reduce(0, +)
                #expect(bytes <= maxBytes || r.count == 1, "run \(r) holds \(bytes) > \(maxBytes)")
            }
        }
        #expect(FrameBudget.runs(sizes: [], maxBytes: 10).isEmpty)
        #expect(FrameBudget.runs(sizes: [50, 1, 1], maxBytes: 10) == [0..<1, 1..<3])
    }

    /// The budget leaves room for a body's own framing: a run of records at the budget encodes
    /// within the frame limit, for every list-carrying body.
    @Test func aFullRunFitsAFrame() throws {
        let limits = Limits()
        let record = [UInt8](repeating: 7, count: limits.recordBytesMax)
        let sizes = Array(repeating: record.count + FrameBudget.itemOverhead, count: 200)
        let run = FrameBudget.runs(sizes: sizes, maxBytes: limits.frameItemBytesMax)[0]
        let recs = Array(repeating: record, count: run.count)
        let frameMax = FrameLimits().bodyBytesMax
        #expect(ReplicateBatch(records: recs).encode().count <= frameMax)
        #expect(CatchUpResult(records: recs, nextKey: "k", nextSkip: 3).encode().count <= frameMax)
        #expect(RecordBatch(items: recs.map { RecordBatch.Item(transport: 0, clientID: true, record: $0) }).encode().count <= frameMax)
        let hits = recs.map { QueryHit(eventID: String(repeating: "e", count: 64), ts: 1, receivedAt: 2, json: $0) }
        #expect(QueryResult(hits: hits, truncated: true, state: Array(repeating: 1, count: 512), error: nil, nextOffset: 9).encode().count <= frameMax)
        // One more item would not fit the budget.
        #expect((run.count + 1) * sizes[0] > limits.frameItemBytesMax)
    }
}

/// The engine's pages: walking a query or a catch-up page by page, at any budget, yields the
/// whole answer once, in order.
@Suite struct EnginePagingTests {
    @Test func queryPagesAddUpToTheWholeAnswer() throws {
        let node = try LiveNode()
        defer { node.stop() }
        let body = (0..<120).map { #"{"session_id":"p","key":"k\#($0 % 3)","value":"\#(String(repeating: "v", count: $0 * 7))","ts":\#(1_000 + $0 * 13 % 50)}"# }
        #expect(try node.call("POST", "/v1/events", "[" + body.joined(separator: ",") + "]").status == 202)
        let engine = node.server.engine
        for query in [EventQuery(limit: 100_000), EventQuery(key: "k1", limit: 100_000), EventQuery(limit: 33)] {
            let whole = engine.session("p", query: query).0
            for budget in [1, 500, 4_000, 1 << 20] {
                var got: [Record] = []
                var offset = 0
                var truncated = false
                var pages = 0
                while true {
                    var q = query
                    q.limit = query.limit - got.count
                    let page = engine.session("p", query: q, offset: offset, byteBudget: budget).0
                    got += page.records
                    truncated = truncated || page.truncated
                    pages += 1
                    guard let next = page.nextOffset, q.limit > page.records.count else { break }
                    #expect(next > offset)
                    offset = next
                }
                #expect(got == whole.records, "budget \(budget), \(pages) pages")
                #expect(truncated == whole.truncated)
                if budget == 1 { #expect(pages >= whole.records.count) }
            }
        }
    }

    @Test func catchUpPagesSplitOneKeyAndCoverEverything() throws {
        let node = try LiveNode()
        defer { node.stop() }
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"c1","user_id":"cu"}"#).status == 204)
        for s in ["c1", "c2"] {
            let body = (0..<60).map { #"{"session_id":"\#(s)","key":"k","value":"\#(String(repeating: "x", count: $0 * 11))"}"# }
            #expect(try node.call("POST", "/v1/events", "[" + body.joined(separator: ",") + "]").status == 202)
        }
        let engine = node.server.engine
        let (whole, end) = engine.catchUp(wants: { _ in true }, since: 0, from: nil, maxRecords: 100_000)
        #expect(end == nil && whole.count == 121)   // 120 events and the link (under u:cu)
        for (budget, maxRecords) in [(1, 100_000), (700, 100_000), (5_000, 7), (1 << 20, 100_000)] {
            var got: [Record] = []
            var cursor: CatchUpCursor?
            var pages = 0
            repeat {
                let (page, next) = engine.catchUp(wants: { _ in true }, since: 0, from: cursor, maxRecords: maxRecords, maxBytes: budget)
                #expect(!page.isEmpty)
                #expect(page.count <= maxRecords || page.count == 1)
                got += page
                cursor = next
                pages += 1
            } while cursor != nil && pages < 1_000
            #expect(got == whole, "budget \(budget), max \(maxRecords): \(pages) pages")
        }
    }
}
