/// A map from 64-bit keys that are already hashes (the dedupe window's FNV-1a of scope and id)
/// to non-negative `Int64` values.
///
/// Open addressing with linear probing and backward-shift deletion (no tombstones: a table that
/// sees as many removals as inserts, as the window does, never degrades), in 64 parts chosen by
/// the top bits of `key × 2^64/φ` (so every bit of the key counts, unlike FNV's low bits), each
/// part a power-of-two table of its own. Parts grow one at a time, so a growth rehashes 1/64 of
/// the entries, and after a copy (a checkpoint's snapshot of the index) each part is copied when
/// it is next written, not the whole table at once: the writer never stalls for O(window) work
/// (`docs/measurements.md`, "dedupe window without stalls").
///
/// It replaces a `[UInt64: Int64]`, whose per-operation SipHash seeding and finalisation was
/// a measured share of the writer. Pure value type.
public struct HashedKeyTable: Sendable {
    static let partBits = 6

    struct Slot: Sendable {
        var key: UInt64
        /// -1: empty.
        var value: Int64
    }

    /// One open-addressing table; `mixed` is the multiplied key, whose top `partBits` chose it.
    struct Part: Sendable {
        var slots: [Slot]
        var shift: UInt64
        var count = 0

        init(capacity: Int) {
            var size = 16
            while size / 2 < capacity { size *= 2 }
            slots = Array(repeating: Slot(key: 0, value: -1), count: size)
            shift = UInt64(64 - size.trailingZeroBitCount)
        }

        @inline(__always)
        func home(_ mixed: UInt64) -> Int { Int(truncatingIfNeeded: (mixed << UInt64(HashedKeyTable.partBits)) >> shift) }

        func find(_ key: UInt64, _ mixed: UInt64) -> Int64? {
            let mask = slots.count - 1
            var i = home(mixed)
            while true {
                let s = slots[i]
                if s.value < 0 { return nil }
                if s.key == key { return s.value }
                i = (i + 1) & mask
            }
        }

        mutating func exchange(_ key: UInt64, _ mixed: UInt64, _ value: Int64) -> Int64? {
            if (count + 1) * 2 > slots.count { grow() }
            let mask = slots.count - 1
            var i = home(mixed)
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

        mutating func remove(_ key: UInt64, _ mixed: UInt64) {
            let mask = slots.count - 1
            var i = home(mixed)
            while true {
                if slots[i].value < 0 { return }
                if slots[i].key == key { break }
                i = (i + 1) & mask
            }
            // Backward shift: pull later entries of the run into the hole when their home allows.
            var hole = i
            var j = (i + 1) & mask
            while slots[j].value >= 0 {
                let h = home(HashedKeyTable.mix(slots[j].key))
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

        mutating func grow() { rehash(capacity: slots.count) }

        mutating func rehash(capacity: Int) {
            var t = Part(capacity: capacity)
            for s in slots where s.value >= 0 { _ = t.exchange(s.key, HashedKeyTable.mix(s.key), s.value) }
            self = t
        }
    }

    var parts: [Part]

    public init(capacity: Int = 0) {
        parts = Array(repeating: Part(capacity: capacity >> Self.partBits), count: 1 << Self.partBits)
    }

    @inline(__always)
    static func mix(_ key: UInt64) -> UInt64 { key &* 0x9E37_79B9_7F4A_7C15 }

    @inline(__always)
    static func part(_ mixed: UInt64) -> Int { Int(truncatingIfNeeded: mixed >> UInt64(64 - partBits)) }

    public var count: Int { parts.reduce(0) { $0 + $1.count } }

    /// The value of `key`, nil when absent. Setting nil removes it; values must be ≥ 0.
    public subscript(key: UInt64) -> Int64? {
        get {
            let m = Self.mix(key)
            return parts[Self.part(m)].find(key, m)
        }
        set {
            if let v = newValue {
                _ = exchange(key, v)
            } else {
                let m = Self.mix(key)
                parts[Self.part(m)].remove(key, m)
            }
        }
    }

    /// Sets `key` to `value` (≥ 0) and returns its previous value: one probe for both.
    public mutating func exchange(_ key: UInt64, _ value: Int64) -> Int64? {
        precondition(value >= 0, "HashedKeyTable values are non-negative")
        let m = Self.mix(key)
        return parts[Self.part(m)].exchange(key, m, value)
    }

    public mutating func reserveCapacity(_ n: Int) {
        let each = n >> Self.partBits + 1
        for i in parts.indices where each * 2 > parts[i].slots.count { parts[i].rehash(capacity: each) }
    }

}
