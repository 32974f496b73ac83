import Testing
import StarlingCore
@testable import StarlingCluster

@Suite struct ForwardBatcherTests {
    var limits: Limits {
        var l = Limits()
        l.forwardQueueEventsMax = 100
        l.forwardQueueBytesMax = 10_000
        l.forwardBatchesInFlightMax = 2
        l.forwardBatchEventsMax = 30
        l.frameItemBytesMax = 3_000
        return l
    }

    /// Queues pieces of `count` events and `bytes` bytes; returns whether each was taken.
    func enqueue(_ b: inout ForwardBatcher<Int>, _ items: [Int], count: Int, bytes: Int) -> [Bool] {
        items.map { b.enqueue($0, count: count, bytes: bytes) }
    }

    @Test func piecesWaitWhileBatchesAreInFlightAndLeaveTogether() {
        var b = ForwardBatcher<Int>(limits: limits)
        var sent: [[Int]?] = []
        #expect(enqueue(&b, [1], count: 10, bytes: 100) == [true])
        sent.append(b.nextBatch())
        #expect(enqueue(&b, [2], count: 10, bytes: 100) == [true])
        sent.append(b.nextBatch())
        // Two in flight: the rest waits, and leaves together when one finishes.
        #expect(enqueue(&b, [3, 4, 5], count: 5, bytes: 100) == [true, true, true])
        sent.append(b.nextBatch())
        b.finished()
        sent.append(b.nextBatch())
        #expect(sent == [[1], [2], nil, [3, 4, 5]])
        #expect(b.queuedEvents == 0 && b.queuedBytes == 0 && b.inFlight == 2)
    }

    @Test func batchesStopAtTheEventAndByteBoundsAndTheQueueIsBounded() {
        var b = ForwardBatcher<Int>(limits: limits)
        #expect(enqueue(&b, Array(0..<8), count: 10, bytes: 1_000).allSatisfy { $0 })   // 80 events, 8,000 bytes
        #expect(enqueue(&b, [99], count: 30, bytes: 10) == [false], "past 100 events the queue refuses")
        #expect(enqueue(&b, [98], count: 1, bytes: 2_001) == [false], "past 10,000 bytes the queue refuses")
        var sent: [[Int]?] = [b.nextBatch(), b.nextBatch()]
        #expect(sent == [[0, 1, 2], [3, 4, 5]], "3,000 bytes is the frame budget")
        b.finished()
        b.finished()
        #expect(enqueue(&b, [8], count: 25, bytes: 10) == [true])
        // Pieces 6 and 7 (10 events each) and 8 (25) do not fit one batch of 30 events.
        sent = [b.nextBatch(), b.nextBatch(), b.nextBatch()]
        #expect(sent == [[6, 7], [8], nil])
    }
}
