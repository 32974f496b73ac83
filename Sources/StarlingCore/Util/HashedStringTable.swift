/// A map from strings to values, found by the string's FNV-1a 64 (`StableHash.fnv1a64`), which
/// the caller may already hold: a record's `subjectFNV` is its session id's, read from its bytes.
///
/// Entries sit densely in one array (key, hash, value, and the next entry of the same hash); a
/// `HashedKeyTable` maps each hash to its newest entry. A lookup is one probe there and one entry
/// read; the key is compared only once the 64-bit hash matched, so a miss never touches a key's
/// bytes, and no SipHash runs (the session table's `[String: …]` lookup, with its SipHash, its
/// probe over other keys and their compares, was 5–7 % of a 3-node profile). Removal moves the
/// last entry into the hole (chains are repaired), so the array stays dense.
/// Iteration order is insertion order until the first removal; nothing relies on any order.
public struct HashedStringTable<Value: Sendable>: Sendable {
    struct Entry: Sendable {
        var key: String
        var hash: UInt64
        /// The next (older) entry of the same hash, or -1.
        var next: Int
        var value: Value
    }

    var heads = HashedKeyTable()
    var entries: [Entry] = []

    public init() {}

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    public mutating func reserveCapacity(_ n: Int) {
        entries.reserveCapacity(n)
        heads.reserveCapacity(n)
    }

    @inline(__always)
    public static func hash(_ key: String) -> UInt64 { StableHash.fnv1a64(key) }

    /// The entry of `key` (whose hash is `hash`), if any.
    @inline(__always)
    func index(of key: String, hash: UInt64) -> Int? {
        guard let head = heads[hash] else { return nil }
        var i = Int(head)
        while i >= 0 {
            if entries[i].key == key { return i }
            i = entries[i].next
        }
        return nil
    }

    public func value(of key: String, hash: UInt64) -> Value? {
        index(of: key, hash: hash).map { entries[$0].value }
    }

    /// Runs `body` on the value of `key`, inserting `make()` first when absent.
    @inline(__always)
    public mutating func modify<T>(_ key: String, hash: UInt64, default make: @autoclosure () -> Value,
                                   _ body: (inout Value) -> T) -> T {
        let i: Int
        if let found = index(of: key, hash: hash) {
            i = found
        } else {
            i = entries.count
            let next = heads.exchange(hash, Int64(i)) ?? -1
            entries.append(Entry(key: key, hash: hash, next: Int(next), value: make()))
        }
        return body(&entries[i].value)
    }

    /// Removes `key`; the last entry moves into its place.
    public mutating func remove(_ key: String, hash: UInt64) {
        guard let i = index(of: key, hash: hash) else { return }
        unlink(i)
        let last = entries.count - 1
        if i != last {
            relink(from: last, to: i)
            entries.swapAt(i, last)
        }
        entries.removeLast()
    }

    /// Takes entry `i` out of its hash's chain.
    mutating func unlink(_ i: Int) {
        let e = entries[i]
        let head = Int(heads[e.hash]!)
        if head == i {
            if e.next >= 0 { _ = heads.exchange(e.hash, Int64(e.next)) } else { heads[e.hash] = nil }
            return
        }
        var p = head
        while entries[p].next != i { p = entries[p].next }
        entries[p].next = e.next
    }

    /// Points whatever pointed at entry `from` (its hash's head, or the entry before it in the
    /// chain) at `to`, where it is about to move.
    mutating func relink(from: Int, to: Int) {
        let hash = entries[from].hash
        let head = Int(heads[hash]!)
        if head == from {
            _ = heads.exchange(hash, Int64(to))
            return
        }
        var p = head
        while entries[p].next != from { p = entries[p].next }
        entries[p].next = to
    }

    public subscript(key: String) -> Value? {
        get { value(of: key, hash: Self.hash(key)) }
        set {
            let h = Self.hash(key)
            if let newValue {
                modify(key, hash: h, default: newValue) { $0 = newValue }
            } else {
                remove(key, hash: h)
            }
        }
    }

    public subscript(key: String, default make: @autoclosure () -> Value) -> Value {
        get { self[key] ?? make() }
        set { modify(key, hash: Self.hash(key), default: newValue) { $0 = newValue } }
    }

    public var keys: [String] { entries.map(\.key) }
    public var values: [Value] { entries.map(\.value) }
}

extension HashedStringTable: Sequence {
    public struct Iterator: IteratorProtocol {
        var base: IndexingIterator<[Entry]>
        public mutating func next() -> (key: String, value: Value)? {
            base.next().map { ($0.key, $0.value) }
        }
    }

    public func makeIterator() -> Iterator { Iterator(base: entries.makeIterator()) }
    public var underestimatedCount: Int { entries.count }
}
