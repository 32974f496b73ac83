import StarlingCore

/// One forward queue as data (pure): per owner and kind, pieces of requests wait while a batch is
/// in flight, and leave together in the next batch (fewer, larger frames under load; a second
/// batch may join the one in flight once it is large, up to `forwardBatchesInFlightMax`).
/// Bounded by events and bytes waiting; a batch holds whole pieces up to
/// `forwardBatchEventsMax` events and `frameItemBytesMax` bytes. `Item` is what the shell
/// keeps per piece (its payload and who waits for it).
public struct ForwardBatcher<Item> {
    public struct Piece {
        public var item: Item
        public var count: Int
        public var bytes: Int
    }
    public let limits: Limits
    public private(set) var waiting: [Piece] = []
    public private(set) var queuedEvents = 0
    public private(set) var queuedBytes = 0
    public private(set) var inFlight = 0

    public init(limits: Limits) { self.limits = limits }

    /// Queues a piece; false (refuse with 503) when the queue is full.
    public mutating func enqueue(_ item: Item, count: Int, bytes: Int) -> Bool {
        guard queuedEvents + count <= limits.forwardQueueEventsMax, queuedBytes + bytes <= limits.forwardQueueBytesMax else {
            return false
        }
        waiting.append(Piece(item: item, count: count, bytes: bytes))
        queuedEvents += count
        queuedBytes += bytes
        return true
    }

    /// The next batch to send, when one may leave now (it then counts as in flight): at once when
    /// none is in flight; beside one in flight only when a large batch waits
    /// (`forwardBatchEarlyEvents`), so small frames do not overtake the answer they would join.
    public mutating func nextBatch() -> [Item]? {
        guard inFlight < limits.forwardBatchesInFlightMax, !waiting.isEmpty else { return nil }
        if inFlight > 0 && queuedEvents < limits.forwardBatchEarlyEvents && queuedBytes < limits.frameItemBytesMax / 4 {
            return nil
        }
        var take = 0, events = 0, bytes = 0
        while take < waiting.count {
            let next = waiting[take]
            if take > 0 && (events + next.count > limits.forwardBatchEventsMax || bytes + next.bytes > limits.frameItemBytesMax) { break }
            events += next.count
            bytes += next.bytes
            take += 1
        }
        let batch = waiting[0..<take].map(\.item)
        waiting.removeFirst(take)
        queuedEvents -= events
        queuedBytes -= bytes
        inFlight += 1
        return batch
    }

    /// A batch got its answer (either way).
    public mutating func finished() {
        precondition(inFlight > 0, "a forward batch finished with none in flight (waiting \(waiting.count))")
        inFlight -= 1
    }
}

extension ForwardBatcher: Sendable where Item: Sendable {}
extension ForwardBatcher.Piece: Sendable where Item: Sendable {}
