import Foundation
import Testing
import StarlingNode

/// kill -9 aimed at the moments a segment seals: while its index file or the checkpoint is being
/// written (their temporary files exist), and otherwise at whatever point the load has reached.
/// Every acknowledged event must be there, once, after each restart.
@Suite(.serialized) struct SealCrashProcessTests {
    /// Temporary files in the data directory (an index or the checkpoint being written).
    static func temporaryFiles(_ dir: String) -> Set<String> {
        Set((FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".tmp") })
    }

    @Test func killNineWhileSegmentsSealLosesNothing() throws {
        guard let bin = starlingBinary() else {
            Issue.record("starling binary not found: run `swift build --build-tests` first")
            return
        }
        let data = NSTemporaryDirectory() + "starling-seal-kill-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: data) }
        let acks = AckLog()
        var hits = 0
        for round in 0..<3 {
            let node = try NodeProcess(binary: bin, id: "k1", data: data, extra: ["--segment-mb", "1"])
            defer { if node.process.isRunning { node.kill9() } }
            // Start-up removes what an earlier kill left half-written.
            #expect(Self.temporaryFiles(data).isEmpty, "round \(round): temporary files survived a start-up")
            let group = DispatchGroup()
            let stop = Flag()
            let stopAt = Date().addingTimeInterval(20)   // hard bound on the load loop
            for w in 0..<3 {
                group.enter()
                DispatchQueue.global().async {
                    defer { group.leave() }
                    var n = 0
                    while n < 4_000 && Date() < stopAt && !stop.value {
                        let sid = "r\(round)w\(w)-s\(n % 11)"
                        var ids: [String] = [], parts: [String] = []
                        for b in 0..<5 {
                            let id = "r\(round)-w\(w)-\(n)-\(b)"
                            ids.append(id)
                            // Values that LZ4 cannot squeeze, so a 1 MiB segment fills in a few seconds.
                            let value = (0..<6).map { _ in UUID().uuidString }.joined()
                            parts.append(#"{"session_id":"\#(sid)","key":"k","value":"\#(value)","event_id":"\#(id)","user_id":"u\#(w)"}"#)
                        }
                        if node.post("[" + parts.joined(separator: ",") + "]") == 202 { acks.add(sid, ids) }
                        n += 1
                    }
                }
            }
            // Wait for an index or checkpoint write to be under way, then kill at once.
            let deadline = Date().addingTimeInterval(12)
            var hit = false
            while Date() < deadline {
                if !Self.temporaryFiles(data).isEmpty {
                    hit = true
                    break
                }
                usleep(200)
            }
            node.kill9()
            stop.set()
            group.wait()
            if hit { hits += 1 }
        }
        let restarted = try NodeProcess(binary: bin, id: "k1", data: data, extra: ["--segment-mb", "1"])
        defer { if restarted.process.isRunning { restarted.kill9() } }
        var lost = 0, duplicated = 0
        for (sid, ids) in acks.acked {
            let counts = Dictionary(try restarted.sessionEventIDs(sid).map { ($0, 1) }, uniquingKeysWith: +)
            lost += ids.filter { counts[$0] == nil }.count
            duplicated += counts.values.filter { $0 > 1 }.count
        }
        let total = acks.acked.values.reduce(0) { $0 + $1.count }
        let indexes = (FileManager.default.enumerator(atPath: data)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".idx") }
        #expect(indexes.count >= 3, "the load sealed too few segments to test anything (\(indexes.count) index files)")
        #expect(total >= 3_000, "the load did not get going (\(total) acknowledged)")
        #expect(lost == 0, "\(lost) of \(total) acknowledged events lost (kills during a seal's writes: \(hits) of 3)")
        #expect(duplicated == 0)
        // The user's events are read through the same indexes (its key, not the session's): every
        // acknowledged one is there (a request in flight at a kill may be stored unanswered).
        let user = (try restarted.getJSON("/v1/users/u0/events?limit=100000")["events"] as? [[String: Any]] ?? []).compactMap { $0["event_id"] as? String }
        let ackedW0 = acks.acked.filter { $0.key.contains("w0-") }.values.flatMap { $0 }
        #expect(Set(ackedW0).isSubset(of: Set(user)) && Set(user).count == user.count)
        print("seal crash test: \(hits) of 3 kills landed while an index file or the checkpoint was being written; \(indexes.count) index files")
        #expect(restarted.terminate() == 0)
    }
}
