import Foundation
import Logging
import Synchronization
import Testing
@testable import StarlingCore
@testable import StarlingLog
@testable import StarlingNode

/// A metric's value from a node's registry (the `/metrics` text), nil when absent.
func metricValue(_ metrics: NodeMetrics, _ name: String) -> Double? {
    var buf: [UInt8] = []
    metrics.registry.emit(into: &buf)
    for line in String(decoding: buf, as: UTF8.self).split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ")[1])
    }
    return nil
}

/// Sealed segments answer from their on-disk indexes; memory holds only the open segment's refs;
/// a missing, torn or damaged index is rebuilt from the log at start-up and counted.
@Suite struct SealedIndexTests {
    /// Tiny segments: nearly every write group rolls one, so a few requests make many sealed segments.
    static func tiny(_ c: inout NodeConfig) { c.limits.segmentBytesMax = 600 }

    /// Writes `requests` requests to a fresh node (session "s", user "u" on every third event,
    /// other sessions around it), stops it, and returns its directory and every event id of "s".
    func filledDirectory(requests: Int) throws -> (LiveNode, [String]) {
        let node = try LiveNode(configure: Self.tiny)
        for r in 0..<requests {
            let body = (0..<4).map { i -> String in
                let n = r * 4 + i
                let user = n % 3 == 0 ? #","user_id":"u""# : ""
                return #"{"session_id":"s","event_id":"e\#(n)","key":"k","value":1,"ts":\#(10_000 - n)\#(user)},{"session_id":"o\#(n)","key":"k","value":2}"#
            }
            let r = try node.call("POST", "/v1/events", "[" + body.joined(separator: ",") + "]")
            #expect(r.status == 202, "\(r.text)")
        }
        node.server.engine.waitForIndexes()
        let ids = events(try node.json("GET", "/v1/sessions/s?limit=10000").1).compactMap { $0["event_id"] as? String }
        node.stop()
        return (node, ids)
    }

    func indexFiles(_ dir: String) -> [String] {
        let log = dir + "/log"
        return FileIO.list(log).flatMap { day in FileIO.list(log + "/" + day).filter { $0.hasSuffix(".idx") }.map { log + "/" + day + "/" + $0 } }.sorted()
    }

    func openEngine(_ dir: String) throws -> Engine {
        var c = NodeConfig(id: "n1", dataDir: dir, http: HostPort(host: "127.0.0.1", port: 0), peer: HostPort(host: "127.0.0.1", port: 0))
        Self.tiny(&c)
        var logger = Logger(label: "test.sealed")
        logger.logLevel = .critical
        return try Engine(config: c, metrics: NodeMetrics(), logger: logger, clock: StarlingServer.systemMillis)
    }

    @Test func sealedSegmentsAnswerFromTheirIndexesAndSurviveARestart() throws {
        let (node, ids) = try filledDirectory(requests: 12)
        #expect(ids.count == 48)
        #expect(ids == (0..<48).reversed().map { "e\($0)" }, "answers are in ts order")
        let segments = SegmentedLog(directory: node.dir).discover()
        let files = indexFiles(node.dir)
        #expect(segments.count >= 10 && files.count == segments.count - 1, "every sealed segment has an index")
        let restarted = try LiveNode(dir: node.dir, configure: Self.tiny)
        defer { restarted.stop() }
        let engine = restarted.server.engine
        #expect(metricValue(engine.metrics, "starling_index_rebuilt_total") == 0)
        #expect(metricValue(engine.metrics, "starling_index_files_count") == Double(files.count))
        // Only the open segment's refs are in memory.
        #expect(engine.index.withLock { $0.openRefCount } < 10)
        let again = events(try restarted.json("GET", "/v1/sessions/s?limit=10000").1).compactMap { $0["event_id"] as? String }
        #expect(again == ids)
        let user = events(try restarted.json("GET", "/v1/users/u/events?limit=10000").1).compactMap { $0["event_id"] as? String }
        #expect(Set(user) == Set((0..<48).filter { $0 % 3 == 0 }.map { "e\($0)" }))
        // A repeat of an event in a sealed segment, within the dedupe window, is not stored again.
        #expect(try restarted.call("POST", "/v1/events", #"{"session_id":"s","event_id":"e0","key":"k","value":1}"#).status == 202)
        #expect(events(try restarted.json("GET", "/v1/sessions/s?limit=10000").1).count == 48)
        #expect(metricValue(engine.metrics, "starling_events_duplicate_total") == 1)
        // Time filters skip segments by their ts range and still find what is in range.
        let ranged = events(try restarted.json("GET", "/v1/sessions/s?from=9990&to=9995").1).compactMap { $0["event_id"] as? String }
        #expect(ranged == (5...10).reversed().map { "e\($0)" })
    }

    /// The crash test of the index file kind: an index cut at every byte offset (what a crash
    /// could leave if a write were torn; the rename makes it unlikely, not impossible on every
    /// file system) is detected, rebuilt whole from the segment, counted, and no answer changes.
    @Test func anIndexCutAtEveryOffsetIsRebuiltAndCounted() throws {
        let (node, ids) = try filledDirectory(requests: 3)
        let victim = try #require(indexFiles(node.dir).first)
        let whole = try #require(FileIO.readFile(victim))
        for cut in 0..<whole.count {
            try Data(whole[0..<cut]).write(to: URL(fileURLWithPath: victim))
            let engine = try openEngine(node.dir)
            #expect(metricValue(engine.metrics, "starling_index_damaged_total") == 1, "cut at \(cut)")
            #expect(metricValue(engine.metrics, "starling_index_rebuilt_total") == 1, "cut at \(cut)")
            #expect(engine.session("s", query: EventQuery(limit: 10_000)).0.records.map(\.eventID) == ids, "cut at \(cut)")
            engine.shutdown()
            #expect(FileIO.readFile(victim) == whole, "cut at \(cut): rebuilt byte for byte")
        }
        // A missing index (a crash after the segment rolled, before its index was written) is
        // rebuilt too, but is not damage.
        try FileManager.default.removeItem(atPath: victim)
        let engine = try openEngine(node.dir)
        #expect(metricValue(engine.metrics, "starling_index_damaged_total") == 0)
        #expect(metricValue(engine.metrics, "starling_index_rebuilt_total") == 1)
        engine.shutdown()
        #expect(FileIO.readFile(victim) == whole)
    }

    /// A chunk damaged after start-up fails its CRC at query time: the answer says `partial`
    /// and the failure is counted, nothing traps.
    @Test func aDamagedChunkMakesTheAnswerPartial() throws {
        let (node, _) = try filledDirectory(requests: 3)
        let victim = try #require(indexFiles(node.dir).first)
        let engine = try openEngine(node.dir)
        defer { engine.shutdown() }
        var bytes = try #require(FileIO.readFile(victim))
        bytes[SegmentIndexCodec.headerBytes + 3] ^= 0xFF
        let fd = open(victim, O_WRONLY)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        close(fd)
        let answer = engine.session("s", query: EventQuery(limit: 10_000)).0
        #expect(answer.partial)
        #expect(metricValue(engine.metrics, "starling_index_read_errors_total") == 1)
    }

    /// What start-up rebuilt, to compare a checkpointed start with a whole fold.
    func summary(_ e: Engine) -> String {
        let stats = e.componentStats().map { "\($0.0)=\($0.1.events)/\($0.1.errors)" }
        return "\(e.state(ofSession: "s").map { "\($0.events) \($0.firstSeen) \($0.lastSeen) \($0.userID ?? "-")" } ?? "none") "
            + "\(e.eventCount) \(stats) \(e.sessions(ofUser: "u").map(\.sessionID)) "
            + "\(e.session("s", query: EventQuery(limit: 10_000)).0.records.map(\.eventID))"
    }

    /// With a checkpoint, start-up folds only the segments it does not cover; the result is what
    /// folding the whole log gives. Seals write the checkpoint only once the log sealed since
    /// the last one is four times its size, so with these tiny segments most seals skip it.
    @Test func aRestartFoldsOnlyWhatTheCheckpointDoesNotCover() throws {
        let (node, _) = try filledDirectory(requests: 12)
        let segments = SegmentedLog(directory: node.dir).discover()
        let written = try #require(try Checkpoint.read(in: node.dir))
        #expect(written.segment >= 1 && Int(written.segment) < segments.count - 1, "covers some, not all, sealed segments")
        let quick = try openEngine(node.dir)
        #expect(quick.recovery.skippedSegments == Int(written.segment) && quick.recovery.segments == segments.count - Int(written.segment))
        #expect(quick.state(ofSession: "s")?.events == 48 && quick.eventCount == 96)
        let fromCheckpoint = summary(quick)
        quick.shutdown()
        try FileManager.default.removeItem(atPath: Checkpoint.path(in: node.dir))
        let slow = try openEngine(node.dir)
        #expect(slow.recovery.skippedSegments == 0 && slow.recovery.segments == segments.count)
        #expect(summary(slow) == fromCheckpoint)
        slow.shutdown()
    }

    /// The crash test of the checkpoint file kind: cut at every byte offset, it is detected,
    /// counted, and start-up folds the whole log instead, to the same state.
    @Test func aCheckpointCutAtEveryOffsetFallsBackToTheWholeLog() throws {
        let (node, _) = try filledDirectory(requests: 3)
        let path = Checkpoint.path(in: node.dir)
        let whole = try #require(FileIO.readFile(path))
        let good = try openEngine(node.dir)
        let expected = summary(good)
        #expect(good.recovery.skippedSegments > 0)
        good.shutdown()
        for cut in 0..<whole.count {
            try Data(whole[0..<cut]).write(to: URL(fileURLWithPath: path))
            let engine = try openEngine(node.dir)
            #expect(metricValue(engine.metrics, "starling_checkpoint_damaged_total") == 1, "cut at \(cut)")
            #expect(engine.recovery.skippedSegments == 0, "cut at \(cut)")
            #expect(summary(engine) == expected, "cut at \(cut)")
            engine.shutdown()
        }
    }

    /// Session state outlives the days retention deleted, across a restart: the checkpoint holds
    /// it (a whole fold of what is left would have lost it).
    @Test func stateOutlivesRetentionAndARestart() throws {
        let day: Int64 = 86_400_000
        let now = Mutex<Int64>(1_700_000_000_000)
        let clock: @Sendable () -> Int64 = { now.withLock { $0 } }
        let node = try LiveNode(configure: { $0.retentionDays = 3 }, clock: clock)
        for i in 0..<5 {
            #expect(try node.call("POST", "/v1/events", #"{"session_id":"s","key":"k","value":\#(i),"via":"ad"}"#).status == 202)
        }
        now.withLock { $0 += 10 * day }   // a new day: the segment rolls and is sealed, the checkpoint written
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"other","key":"k","value":1}"#).status == 202)
        node.server.engine.applyRetentionNow()
        node.server.engine.waitForIndexes()
        #expect(SegmentedLog(directory: node.dir).discover().count == 1, "the first day was deleted")
        node.stop()
        let restarted = try LiveNode(dir: node.dir, configure: { $0.retentionDays = 3 }, clock: clock)
        let (status, obj) = try restarted.json("GET", "/v1/sessions/s/state")
        #expect(status == 200 && obj["events"] as? Int == 5 && obj["via_first"] as? String == "ad", "\(obj)")
        #expect(events(try restarted.json("GET", "/v1/sessions/s").1).isEmpty, "the events went with their day")
        restarted.stop()
        // The control: without the checkpoint, a fold of what is left knows nothing of "s".
        try FileManager.default.removeItem(atPath: Checkpoint.path(in: node.dir))
        let bare = try LiveNode(dir: node.dir, configure: { $0.retentionDays = 3 }, clock: clock)
        defer { bare.stop() }
        #expect(try bare.call("GET", "/v1/sessions/s/state").status == 404)
    }

    /// Catch-up streams sealed and open segments alike; a window that starts after every sealed
    /// record skips the sealed segments (their index headers say so) and finds the same.
    @Test func catchUpReadsSealedAndOpenRecords() throws {
        let now = Mutex<Int64>(1_700_000_000_000)
        let node = try LiveNode(configure: Self.tiny, clock: { now.withLock { $0 } })
        defer { node.stop() }
        func post(_ sid: String, _ n: Int) throws {
            let body = (0..<n).map { #"{"session_id":"\#(sid)","key":"k","value":\#($0)}"# }.joined(separator: ",")
            #expect(try node.call("POST", "/v1/events", "[" + body + "]").status == 202)
        }
        for i in 0..<6 { try post("old\(i % 2)", 5) }           // sealed as later requests roll segments
        now.withLock { $0 += 60_000 }
        try post("new", 3)                                        // the open segment
        let engine = node.server.engine
        engine.waitForIndexes()
        #expect(engine.sealed.sizes.files >= 3)
        let everything = engine.catchUp(wants: { _ in true }, since: 0, from: nil, maxRecords: 10_000).0
        #expect(everything.count == 33 && Set(everything.map(\.sessionID)) == ["old0", "old1", "new"])
        let since = now.withLock { $0 } - 1_000
        #expect(engine.sealed.headers.values.allSatisfy { $0.maxReceivedAt < since })
        let recent = engine.catchUp(wants: { _ in true }, since: since, from: nil, maxRecords: 10_000).0
        #expect(recent.map(\.sessionID) == ["new", "new", "new"])
        let some = engine.catchUp(wants: { $0 == "old1" }, since: 0, from: nil, maxRecords: 10_000).0
        #expect(some.count == 15 && some.allSatisfy { $0.sessionID == "old1" })
    }

    static let day: Int64 = 86_400_000
    static let t0: Int64 = 1_700_000_000_000 - 1_700_000_000_000 % day + 3_600_000

    /// Tiny segments, two days of retention, a one-day long TTL, on the test's clock.
    static func retentionNode(clock: @escaping @Sendable () -> Int64) throws -> LiveNode {
        try LiveNode(configure: { c in
            tiny(&c)
            c.retentionDays = 2
            c.ttl = TTLSettings(shortMs: 60_000, longMs: day)
        }, clock: clock)
    }

    /// A copy of an event of `session` that a peer sends now, with its old receive time `t0`.
    static func storeOldCopy(_ engine: Engine, session: String, id: String) {
        let copy = Record(kind: .event, ts: t0, receivedAt: t0, sessionID: session, eventID: id, key: "k",
                          json: Array(#"{"session_id":"\#(session)","key":"k","value":1,"event_id":"\#(id)"}"#.utf8))
        let done = DispatchSemaphore(value: 0)
        engine.submitReplica([copy]) { _ in done.signal() }
        done.wait()
    }

    /// Retention bounds state memory: an expired session whose events retention deleted is
    /// forgotten; one whose events survive in a newer segment (a replica record keeps its old
    /// receive time) is kept, as is one whose state has not expired.
    @Test func expiredSessionsWithNoEventLeftAreForgotten() throws {
        let (day, t0) = (Self.day, Self.t0)
        let now = Mutex<Int64>(t0)
        let node = try Self.retentionNode { now.withLock { $0 } }
        defer { node.stop() }
        func post(_ sid: String) throws {
            #expect(try node.call("POST", "/v1/events", #"{"session_id":"\#(sid)","key":"k","value":1}"#).status == 202)
        }
        try post("gone")
        try post("replica")
        now.withLock { $0 += 3 * day }
        // A copy of an event of "replica" arrives from a peer now, with its old receive time.
        let engine = node.server.engine
        Self.storeOldCopy(engine, session: "replica", id: "copy-1")
        now.withLock { $0 += day }
        try post("fresh")                                      // rolls: the replica's segment is sealed
        engine.waitForIndexes()
        engine.applyRetentionNow()                            // deletes day t0, then forgets
        #expect(metricValue(engine.metrics, "starling_sessions_evicted_total") == 1)
        #expect(engine.index.withLock { Set($0.sessions.keys) } == ["replica", "fresh"])
        #expect(engine.session("replica", query: EventQuery()).0.records.map(\.eventID) == ["copy-1"])
    }

    /// Identities are bounded too: once retention deleted their events and their sessions were
    /// forgotten, a user or terminal is forgotten; one linked to a session still held is kept.
    @Test func identitiesAreForgottenWithTheirSessions() throws {
        let (day, t0) = (Self.day, Self.t0)
        let now = Mutex<Int64>(t0)
        let node = try Self.retentionNode { now.withLock { $0 } }
        defer { node.stop() }
        func post(_ body: String) throws { #expect(try node.call("POST", "/v1/events", body).status == 202) }
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"old","user_id":"u-old"}"#).status == 204)
        #expect(try node.call("POST", "/v1/identify", #"{"session_id":"replica","user_id":"u-rep"}"#).status == 204)
        try post(#"{"session_id":"old","user_id":"u-old","key":"k","value":1}"#)
        try post(#"{"terminal_id":"t-old","key":"k","value":2}"#)
        try post(#"{"session_id":"replica","key":"k","value":3}"#)
        let engine = node.server.engine
        #expect(engine.index.withLock { Set($0.users.keys) == ["u-old", "u-rep"] && Set($0.terminals.keys) == ["t-old"] })
        now.withLock { $0 += 3 * day }
        Self.storeOldCopy(engine, session: "replica", id: "copy-2")
        now.withLock { $0 += day }
        try post(#"{"session_id":"fresh","key":"k","value":4}"#)
        engine.waitForIndexes()
        engine.applyRetentionNow()
        #expect(engine.index.withLock { Set($0.sessions.keys) } == ["replica", "fresh"])
        #expect(engine.index.withLock { Set($0.users.keys) } == ["u-rep"], "u-rep links a session still held")
        #expect(engine.index.withLock { $0.terminals.isEmpty })
        #expect(metricValue(engine.metrics, "starling_identities_evicted_total") == 2)
        #expect(metricValue(engine.metrics, "starling_identities_count") == 1)
    }
}
