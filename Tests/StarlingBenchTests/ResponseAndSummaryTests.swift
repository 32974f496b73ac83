import Foundation
import Histogram
import Testing
@testable import StarlingBench

@Suite struct HTTPResponseParserTests {
    func parse(_ s: String) throws -> HTTPResponseParser.Response? {
        try Array(s.utf8).withUnsafeBytes { raw throws(HTTPResponseParser.Failure) in try HTTPResponseParser.parse(raw) }
    }

    let accepted = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\ncontent-length: 14\r\n\r\n{\"accepted\":1}"

    @Test func aCompleteResponseAndItsLength() throws {
        let r = try #require(try parse(accepted))
        #expect(r.status == 202)
        #expect(r.length == accepted.utf8.count)
        #expect(!r.closes)
    }

    @Test func everyShorterPrefixNeedsMoreBytes() throws {
        let bytes = Array(accepted.utf8)
        for n in 0..<bytes.count {
            let r = try bytes[0..<n].withUnsafeBytes { raw throws(HTTPResponseParser.Failure) in try HTTPResponseParser.parse(raw) }
            #expect(r == nil, "prefix of \(n) bytes")
        }
    }

    @Test func pipelinedResponsesComeOneAtATime() throws {
        let body = "{\"error\":{\"code\":\"overloaded\",\"message\":\"write queue is full; retry\"}}"
        let two = accepted + "HTTP/1.1 503 Service Unavailable\r\nContent-Length: \(body.utf8.count)\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body
        let bytes = Array(two.utf8)
        let first = try #require(try parse(two))
        let rest = Array(bytes[first.length...])
        let second = try #require(try rest.withUnsafeBytes { raw throws(HTTPResponseParser.Failure) in try HTTPResponseParser.parse(raw) })
        #expect(second.status == 503)
        #expect(second.closes)
        #expect(second.length == rest.count)
        let code = rest.withUnsafeBytes { HTTPResponseParser.errorCode(UnsafeRawBufferPointer(rebasing: $0[second.bodyStart...])) }
        #expect(code == "overloaded")
    }

    @Test func pixelErrorsNameTheirCodeInAHeader() throws {
        let r = try #require(try parse("HTTP/1.1 400 Bad Request\r\nX-Starling-Error: missing_field\r\nContent-Length: 0\r\n\r\n"))
        #expect(r.errorHeader == "missing_field")
    }

    @Test func noContentNeedsNoLength() throws {
        #expect(try parse("HTTP/1.1 204 No Content\r\n\r\n")?.status == 204)
        #expect(throws: HTTPResponseParser.Failure.noContentLength) { try parse("HTTP/1.1 200 OK\r\n\r\n") }
    }

    @Test func garbageIsRefusedNotTrapped() {
        #expect(throws: HTTPResponseParser.Failure.badStatusLine) { try parse("SSH-2.0-OpenSSH\r\n") }
        #expect(throws: HTTPResponseParser.Failure.badContentLength) { try parse("HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n") }
        #expect(throws: HTTPResponseParser.Failure.badStatusLine) { try parse("HTTP/1.1 2x2 OK\r\n\r\n") }
        #expect(throws: HTTPResponseParser.Failure.headTooLarge) {
            try parse("HTTP/1.1 200 OK\r\n" + String(repeating: "X-A: b\r\n", count: 3_000))
        }
        var rng = SplitMix(seed: 3)
        for _ in 0..<500 {
            var bytes = Array(accepted.utf8)
            for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? bytes.withUnsafeBytes { raw throws(HTTPResponseParser.Failure) in try HTTPResponseParser.parse(raw) }
        }
    }
}

@Suite struct PendingQueueTests {
    @Test func inOrderAnswersCompleteTheOldest() {
        var q = PendingQueue()
        for id in 1...3 { q.append(id: UInt64(id), start: UInt64(id * 10), measured: true) }
        #expect(q.complete(id: nil)?.start == 10)
        #expect(q.complete(id: nil)?.start == 20)
        #expect(q.count == 1)
        #expect(q.complete(id: nil)?.start == 30)
        #expect(q.complete(id: nil) == nil)
        #expect(q.isEmpty)
    }

    @Test func answersByIdMayComeInAnyOrder() {
        var q = PendingQueue()
        for id in 5...2_004 { q.append(id: UInt64(id), start: UInt64(id), measured: id % 2 == 0) }
        #expect(q.complete(id: 7)?.start == 7)
        #expect(q.complete(id: 7) == nil, "answered twice")
        #expect(q.complete(id: 4) == nil, "never sent")
        #expect(q.complete(id: 2_005) == nil, "not sent yet")
        var rng = SplitMix(seed: 5)
        var ids = (5...2_004).filter { $0 != 7 }
        for i in stride(from: ids.count - 1, to: 0, by: -1) { ids.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        for id in ids { #expect(q.complete(id: UInt64(id))?.start == UInt64(id)) }
        #expect(q.isEmpty)
        q.append(id: 9_000, start: 1, measured: true)   // a new connection numbers afresh
        #expect(q.drain().count == 1)
    }
}

@Suite struct SummaryTests {
    func stats(latenciesMicros: [UInt64]) -> LoadStats {
        var s = LoadStats()
        for us in latenciesMicros {
            s.sent += 1
            s.sentEvents += 2
            s.answered += 1
            s.ok += 1
            s.okEvents += 2
            s.recordLatency(nanos: us * 1_000)
        }
        return s
    }

    @Test func percentilesComeFromTheHistogramInMicroseconds() {
        let s = stats(latenciesMicros: Array(1...1_000))
        var c = BenchConfig(mode: .batch, host: "127.0.0.1", port: 8081)
        c.batch = 2
        let sum = BenchSummary(config: c, stats: s, seconds: 2)
        let l = try! #require(sum.latencyMicros)
        #expect(l.count == 1_000)
        #expect(l.p50 == 500)
        #expect(l.p90 == 900)
        #expect(l.p99 == 990)
        #expect(l.p999 == 999)
        #expect(l.max == 1_000)
        #expect(sum.requestsPerSecond == 500)
        #expect(sum.eventsPerSecond == 1_000)
        #expect(sum.openLoop == nil)
        #expect(sum.text().contains("p50 500 µs"))
    }

    @Test func mergingPerLoopStatsAddsEverything() {
        var a = stats(latenciesMicros: [100, 200])
        var b = stats(latenciesMicros: [300])
        b.error("HTTP 503 overloaded", count: 2)
        b.recordLag(nanos: 5_000_000)
        b.lastActivity = 77
        a.error("HTTP 503 overloaded")
        a.merge(b)
        #expect(a.ok == 3 && a.okEvents == 6 && a.latency.totalCount == 3)
        #expect(a.errors == ["HTTP 503 overloaded": 3])
        #expect(a.late == 1 && a.maxLagNanos == 5_000_000 && a.lastActivity == 77)
        // A latency beyond the histogram's range is kept as its maximum, not dropped.
        a.recordLatency(nanos: UInt64.max / 2)
        #expect(a.latency.totalCount == 4)
    }

    @Test func openLoopReportsTargetAchievedLateAndMissed() throws {
        var s = stats(latenciesMicros: [1_000, 2_000])
        s.scheduled = 5
        s.late = 1
        s.maxLagNanos = 3_000_000
        var c = BenchConfig(mode: .http, host: "h", port: 1)
        c.rate = 5
        let sum = BenchSummary(config: c, stats: s, seconds: 1)
        let o = try #require(sum.openLoop)
        #expect(o.targetRate == 5 && o.achievedRate == 2 && o.missed == 3 && o.late == 1 && o.maxLagMicros == 3_000)
        #expect(sum.text().contains("never sent 3"))
        #expect(sum.text().contains("3 requests due in the window were never sent"))
        let back = try JSONDecoder().decode(BenchSummary.self, from: sum.json())
        #expect(back == sum)
    }

    @Test func udpHasNoLatencyAndCountsSent() {
        var s = LoadStats()
        s.sent = 10
        s.sentEvents = 10
        let sum = BenchSummary(config: BenchConfig(mode: .udp, host: "h", port: 1), stats: s, seconds: 2)
        #expect(sum.latencyMicros == nil)
        #expect(sum.requestsPerSecond == 5)
        #expect(sum.text().contains("10 datagrams"))
    }

    @Test func numbersAreFormattedForPeople() {
        #expect(BenchSummary.group(1_234_567) == "1,234,567")
        #expect(BenchSummary.group(-1_000) == "-1,000")
        #expect(BenchSummary.group(999) == "999")
        #expect(BenchSummary.micros(812) == "812 µs")
        #expect(BenchSummary.micros(12_345) == "12.3 ms")
        #expect(BenchSummary.micros(2_100_000) == "2.10 s")
        #expect(BenchSummary.fmt(2.25) == "2.3" || BenchSummary.fmt(2.25) == "2.2")
        #expect(BenchSummary.fmt(150.4) == "150")
    }

    @Test func metricsTextSumsTheMatchingSamples() {
        let text = """
        # HELP starling_events_ingested_total Events stored, by transport
        # TYPE starling_events_ingested_total counter
        starling_events_ingested_total{transport="http"} 12
        starling_events_ingested_total{transport="udp"} 7
        starling_events_ingested_totally{transport="udp"} 100
        starling_events_rejected_total{transport="udp",reason="invalid_json"} 3
        """
        #expect(MetricsText.sum("starling_events_ingested_total", labels: ["transport": "udp"], in: text) == 7)
        #expect(MetricsText.sum("starling_events_ingested_total", labels: [:], in: text) == 19)
        #expect(MetricsText.sum("starling_events_rejected_total", labels: ["reason": "invalid_json"], in: text) == 3)
        #expect(MetricsText.sum("starling_events_ingested_total", labels: ["transport": "peer"], in: text) == nil)
    }
}
