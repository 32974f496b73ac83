/// A map from 64-bit keys that are already hashes (the dedupe window's FNV-1a of scope and id)
/// to non-negative `Int64` values. Open addressing with linear probing over a power-of-two
/// table, the slot picked by the high bits of `key × 2^64/φ` (so every bit of the key counts,
/// unlike FNV's low bits), and backward-shift deletion (no tombstones: a table that sees as many
/// removals as inserts, as the window does, never degrades).
///
/// It replaces a `[UInt64: Int64]`, whose per-operation SipHash seeding and finalisation was
/// a measured share of the writer (`docs/measurements.md`, "one entry per session"). Pure value
/// type: copy on write like the standard collections.
public struct HashedKeyTable: Sendable {
    struct Slot: Sendable {
        var key: UInt64
        /// -1: empty.
        var value: Int64
    }

    var slots: [Slot]
    var shift: UInt64
    public private(set) var count = 0

    public init(capacity: Int = 0) {
        var size = 16
        while size / 2 < capacity { size *= 2 }
        slots = Array(repeating: Slot(key: 0, value: -1), count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always)
    func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// The value of `key`, nil when absent. Setting nil removes it; values must be ≥ 0.
    public subscript(key: UInt64) -> Int64? {
        get {
            let mask = slots.count - 1
            var i = home(key)
            while true {
                let s = slots[i]
                if s.value < 0 { return nil }
                if s.key == key { return s.value }
                i = (i + 1) & mask
            }
        }
        set {
            if let v = newValue {
                insert(key, v)
            } else {
                remove(key)
            }
        }
    }

    mutating func insert(_ key: UInt64, _ value: Int64) { _ = exchange(key, value) }

    /// Sets `key` to `value` (≥ 0) and returns its previous value: one probe for both.
    public mutating func exchange(_ key: UInt64, _ value: Int64) -> Int64? {
        precondition(value >= 0, "HashedKeyTable values are non-negative")
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var i = home(key)
        while slots[i].value >= 0 {
            if slots[i].key == key {
                defer { slots[i].value = value }
                return slots[i].value
            }
            i = (i + 1) & mask
        }
        slots[i] = Slot(key: key, value: value)
        count += 1
        return nil
    }

    mutating func remove(_ key: UInt64) {
        let mask = slots.count - 1
        var i = home(key)
        while true {
            if slots[i].value < 0 { return }
            if slots[i].key == key { break }
            i = (i + 1) & mask
        }
        // Backward shift: pull later entries of the run into the hole when their home allows.
        var hole = i
        var j = (i + 1) & mask
        while slots[j].value >= 0 {
            let h = home(slots[j].key)
            // Movable when its home is not in (hole, j] (cyclically).
            let between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j)
            if !between {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        slots[hole].value = -1
        count -= 1
    }

    public mutating func reserveCapacity(_ n: Int) {
        guard n * 2 > slots.count else { return }
        rehash(into: HashedKeyTable(capacity: n))
    }

    mutating func grow() { rehash(into: HashedKeyTable(capacity: slots.count)) }

    mutating func rehash(into table: HashedKeyTable) {
        var t = table
        for s in slots where s.value >= 0 { t.insert(s.key, s.value) }
        self = t
    }

    public mutating func removeAll() { self = HashedKeyTable() }
}
