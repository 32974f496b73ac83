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
        l.forwardBatchEarlyEvents = 25
        l.frameItemBytesMax = 3_000
        return l
    }

    /// Queues pieces of `count` events and `bytes` bytes; returns whether each was taken.
    func enqueue(_ b: inout ForwardBatcher<Int>, _ items: [Int], count: Int, bytes: Int) -> [Bool] {
        items.map { b.enqueue($0, count: count, bytes: bytes) }
    }

    @Test func piecesWaitWhileABatchIsInFlightAndLeaveTogether() {
        var b = ForwardBatcher<Int>(limits: limits)
        var sent: [[Int]?] = []
        #expect(enqueue(&b, [1], count: 10, bytes: 100) == [true])
        sent.append(b.nextBatch())          // nothing in flight: leaves at once
        #expect(enqueue(&b, [2], count: 10, bytes: 100) == [true])
        sent.append(b.nextBatch())          // one in flight, 10 events wait: a small frame would overtake its answer
        #expect(enqueue(&b, [3, 4], count: 5, bytes: 100) == [true, true])
        sent.append(b.nextBatch())          // 20 events wait, still under the 25 that may leave early
        b.finished()
        sent.append(b.nextBatch())          // the answer came: everything waiting leaves together
        #expect(sent == [[1], nil, nil, [2, 3, 4]])
        #expect(b.queuedEvents == 0 && b.queuedBytes == 0 && b.inFlight == 1)
    }

    @Test func aLargeBatchJoinsTheOneInFlightUpToTheBound() {
        var b = ForwardBatcher<Int>(limits: limits)
        #expect(enqueue(&b, [1], count: 10, bytes: 100) == [true])
        #expect(b.nextBatch() == [1])
        #expect(enqueue(&b, [2, 3], count: 13, bytes: 100) == [true, true])
        #expect(b.nextBatch() == [2, 3], "26 events waiting may leave beside the batch in flight")
        #expect(enqueue(&b, [4, 5], count: 13, bytes: 100) == [true, true])
        #expect(b.nextBatch() == nil, "two batches in flight is the bound")
        b.finished()
        #expect(b.nextBatch() == [4, 5])
        // Bytes count as well: a quarter of the frame budget (750 here) waiting may leave early.
        #expect(enqueue(&b, [6], count: 1, bytes: 800) == [true])
        #expect(b.nextBatch() == nil, "two in flight")
        b.finished()
        #expect(b.nextBatch() == [6], "one in flight and 800 bytes waiting")
        #expect(b.inFlight == 2)
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
