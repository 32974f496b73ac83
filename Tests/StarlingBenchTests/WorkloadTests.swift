import Foundation
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingBench

@Suite struct WorkloadTests {
    /// Splits an HTTP request into head lines and body.
    func split(_ bytes: [UInt8]) -> (head: [String], body: [UInt8]) {
        let text = bytes
        for i in 0..<(text.count - 3) where text[i] == 13 && text[i + 1] == 10 && text[i + 2] == 13 && text[i + 3] == 10 {
            let head = String(decoding: text[0..<i], as: UTF8.self).components(separatedBy: "\r\n")
            return (head, Array(text[(i + 4)...]))
        }
        Issue.record("no end of head")
        return ([], [])
    }

    func object(_ bytes: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    @Test func sessionNumbersAreZeroPaddedToAFixedWidth() {
        #expect(Workload.width(sessions: 1) == 1)
        #expect(Workload.width(sessions: 10) == 1)
        #expect(Workload.width(sessions: 11) == 2)
        #expect(Workload.width(sessions: 1_000) == 3)
        #expect(Workload.width(sessions: 1_001) == 4)
        #expect(Workload.sessionID(prefix: "p-", n: 7, sessions: 1_000) == "p-007")
    }

    @Test func singleEventPostIsAValidRequestWithTheRightLengthAndSession() throws {
        let t = Workload.httpPost(host: "127.0.0.1", port: 8081, prefix: "b-", sessions: 100, eventBytes: 200, events: 1, batch: false)
        let (head, body) = split(t.rendered(firstEvent: 42, sessions: 100))
        #expect(head[0] == "POST /v1/events HTTP/1.1")
        #expect(head.contains("Host: 127.0.0.1:8081"))
        #expect(head.contains("Content-Type: application/json"))
        #expect(head.contains("Content-Length: \(body.count)"))
        #expect(body.count == 200)
        let o = object(body)
        #expect(o["session_id"] as? String == "b-42")
        #expect(o["key"] as? String == "bench")
        #expect((o["value"] as? String)?.allSatisfy { $0 == "x" } == true)
        // The server's own validator accepts it.
        let parsed = body.withUnsafeBytes { EventValidator.events(fromBody: $0, format: .json, limits: Limits()) }
        #expect((try? parsed.get())?.first?.sessionID == "b-42")
    }

    @Test func batchBodyIsAnArrayOfConsecutiveSessionsThatWraps() throws {
        let t = Workload.httpPost(host: "h", port: 1, prefix: "s", sessions: 5, eventBytes: 100, events: 7, batch: true)
        let (head, body) = split(t.rendered(firstEvent: 3, sessions: 5))
        #expect(head.contains("Content-Length: \(body.count)"))
        let array = (try JSONSerialization.jsonObject(with: Data(body))) as? [[String: Any]] ?? []
        #expect(array.map { $0["session_id"] as? String } == ["s3", "s4", "s0", "s1", "s2", "s3", "s4"])
        let parsed = body.withUnsafeBytes { EventValidator.events(fromBody: $0, format: .json, limits: Limits()) }
        #expect((try? parsed.get())?.count == 7)
    }

    @Test func pixelRequestCarriesSessionKeyAndValueInTheQuery() {
        let t = Workload.pixel(host: "127.0.0.1", port: 9, prefix: "px-", sessions: 20, eventBytes: 120)
        let (head, body) = split(t.rendered(firstEvent: 45, sessions: 20))
        #expect(body.isEmpty)
        let line = head[0]
        #expect(line.hasPrefix("GET /t.gif?sid=px-05&k=bench&c=bench&v=x"))
        #expect(line.hasSuffix(" HTTP/1.1"))
        let target = String(line.dropFirst(4).dropLast(9))
        let (_, query) = URLQuery.splitTarget(target)!
        let q = URLQuery.parse(query)
        #expect(q["sid"] == "px-05")
        #expect(EventValidator.event(fromPixel: q, limits: Limits()).isSuccess)
    }

    @Test func datagramIsOneEventOfTheAskedSize() {
        let t = Workload.datagram(prefix: "u-", sessions: 3, eventBytes: 300)
        let d = t.rendered(firstEvent: 4, sessions: 3)
        #expect(d.count == 300)
        #expect(object(d)["session_id"] as? String == "u-1")
        #expect(d.withUnsafeBytes { EventValidator.event(fromDatagram: $0, limits: Limits()) }.isSuccess)
    }

    @Test func peerBodyIsAnEventBatchTheClusterCodecDecodes() throws {
        let t = Workload.peerBatch(prefix: "pp-", sessions: 1_000, eventBytes: 150, events: 4)
        let body = t.rendered(firstEvent: 998, sessions: 1_000)
        let batch = try EventBatch.decode(body)
        #expect(batch.events.count == 4)
        #expect(batch.events.allSatisfy { $0.transport == 3 && $0.ip.isEmpty })
        #expect(batch.events.map { object($0.json)["session_id"] as? String } == ["pp-998", "pp-999", "pp-000", "pp-001"])
        // And it travels in a frame that the frame parser takes back.
        let wire = FrameCodec.encode(Frame(kind: .forwardEvents, clusterID: 0, requestID: 9, sender: "bench-x", body: body), compress: false)
        let parsed = try wire.withUnsafeBytes { raw throws(FrameError) in try FrameParser().parse(raw) }
        #expect(parsed?.frame.body == body)
        #expect(parsed?.frame.requestID == 9)
    }

    @Test func requestsOfAllConnectionsInterleaveSoSessionsTakeTurns() {
        // 3 connections, 2 events per request: requests g = seq*3 + c cover events 2g, 2g+1.
        var seen: [Int] = []
        for seq in 0..<2 {
            for c in 0..<3 {
                let f = Workload.firstEvent(connection: c, connections: 3, seq: seq, eventsPerRequest: 2)
                seen += [f, f + 1]
            }
        }
        #expect(seen.sorted() == Array(0..<12))
    }

    @Test func settingsAreCheckedWithWordsForTheUser() {
        var c = BenchConfig(mode: .http, host: "127.0.0.1", port: 8081)
        #expect(c.problem() == nil)
        c.batch = 10
        #expect(c.problem()?.contains("--batch applies") == true)
        c.mode = .batch
        #expect(c.problem() == nil)
        c.batch = 10_000
        c.eventBytes = 1_000
        #expect(c.problem()?.contains("exceeds the request size limit") == true)
        c = BenchConfig(mode: .udp, host: "h", port: 1)
        c.eventBytes = 9_000
        #expect(c.problem()?.contains("--event-bytes") == true)
        c = BenchConfig(mode: .http, host: "h", port: 1)
        c.sessionPrefix = "a b"
        #expect(c.problem() != nil)
        c = BenchConfig(mode: .http, host: "h", port: 1)
        c.requests = 10
        #expect(c.timeLimit == BenchConfig.requestsOnlyTimeCap)
        c.duration = 2
        #expect(c.timeLimit == 2)
        c.connections = 3
        #expect((0..<3).map { c.quota(connection: $0)! } == [4, 3, 3])
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}
