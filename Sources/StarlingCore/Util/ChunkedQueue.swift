/// A first-in first-out sequence stored in chunks of at most `chunkSize` elements: appending and
/// removing from the front never move more than one chunk, and after a copy of the queue (a
/// checkpoint's snapshot of the index) only the chunk being appended to is copied. A plain
/// array with a moving head would copy O(count) on growth, on compaction and after every copy:
/// the dedupe window holds an hour of event ids, millions of them, so those copies were stalls
/// of the writer (`docs/measurements.md`, "dedupe window without stalls").
public struct ChunkedQueue<Element: Sendable>: Sendable, Sequence {
    public static var chunkSize: Int { 1 << 15 }

    var chunks: [[Element]] = []
    /// Index in `chunks[0]` of the first element.
    var head = 0
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// The element `i` places from the front.
    public subscript(i: Int) -> Element {
        precondition(i >= 0 && i < count, "ChunkedQueue index out of range")
        let at = head + i
        return chunks[at / Self.chunkSize][at % Self.chunkSize]
    }

    public var first: Element? { isEmpty ? nil : self[0] }

    public mutating func append(_ e: Element) {
        if chunks.isEmpty || chunks[chunks.count - 1].count == Self.chunkSize {
            chunks.append([])
        }
        chunks[chunks.count - 1].append(e)
        count += 1
    }

    public mutating func removeFirst() {
        precondition(count > 0, "removeFirst on an empty ChunkedQueue")
        head += 1
        count -= 1
        if count == 0 {
            chunks = []
            head = 0
        } else if head == Self.chunkSize {
            chunks.removeFirst()
            head = 0
        }
    }

    public mutating func reserveCapacity(_ n: Int) {
        guard chunks.isEmpty else { return }
        chunks.reserveCapacity(n / Self.chunkSize + 1)
    }

    public struct Iterator: IteratorProtocol {
        let queue: ChunkedQueue
        var i = 0
        public mutating func next() -> Element? {
            guard i < queue.count else { return nil }
            defer { i += 1 }
            return queue[i]
        }
    }

    public func makeIterator() -> Iterator { Iterator(queue: self) }
}
