/// Requests in flight on one connection, oldest first. Request ids on a connection are
/// consecutive, so an answer that echoes an id (peer) finds its entry by subtraction; an
/// answer without one (HTTP, answered in order) completes the oldest. Entries completed out of
/// order stay until everything before them is done. No allocation once warm.
struct PendingQueue {
    struct Entry {
        var id: UInt64
        /// When the latency clock started: the due time (open loop) or the send time (closed loop).
        var start: UInt64
        var measured: Bool
        var done: Bool
    }

    private(set) var entries: [Entry] = []
    private var head = 0
    /// Id of `entries[0]`.
    private var baseID: UInt64 = 0
    /// Entries not yet done.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(id: UInt64, start: UInt64, measured: Bool) {
        if entries.isEmpty {
            baseID = id
        } else {
            precondition(id == baseID + UInt64(entries.count), "request ids on a connection must be consecutive: \(id) after \(baseID + UInt64(entries.count) - 1)")
        }
        entries.append(Entry(id: id, start: start, measured: measured, done: false))
        count += 1
    }

    /// Completes the entry with `id` (nil: the oldest); nil when there is no such request in flight.
    mutating func complete(id: UInt64?) -> Entry? {
        let index: Int
        if let id {
            guard id >= baseID, let offset = Int(exactly: id - baseID), offset >= head, offset < entries.count,
                  !entries[offset].done else { return nil }
            index = offset
        } else {
            guard head < entries.count else { return nil }
            index = head
        }
        entries[index].done = true
        let e = entries[index]
        count -= 1
        while head < entries.count && entries[head].done { head += 1 }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1_024 && head * 2 >= entries.count {
            entries.removeFirst(head)
            baseID += UInt64(head)
            head = 0
        }
        return e
    }

    /// Everything still in flight (for counting), and empties the queue.
    mutating func drain() -> [Entry] {
        let left = entries[head...].filter { !$0.done }
        entries.removeAll(keepingCapacity: true)
        head = 0
        count = 0
        return left
    }
}
