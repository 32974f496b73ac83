import StarlingCore
import StarlingLog
import Synchronization

/// Where the refs of sealed segments are: their index files on disk, and refs being written to
/// one (still in memory until the file is in place). Lookups copy what they need under the lock
/// and read files without it.
final class SealedIndexes: Sendable {
    struct State {
        var files: [UInt32: SegmentIndexFile] = [:]
        /// Seal number → refs taken from the open index, until their files are written.
        var pending: [UInt64: [SubjectKey: [EventRef]]] = [:]
        var nextSeal: UInt64 = 1
        /// Entries of segments whose index file could not be written (sorted as in a file), kept
        /// in memory until a restart writes the file.
        var unwritten: [UInt32: [IndexEntry]] = [:]
    }
    let state = Mutex(State())

    struct Found {
        var refs: [EventRef] = []
        /// Segments whose index could not be read (a damaged chunk): the answer may miss records.
        var failed: [(segment: UInt32, error: any Error)] = []
    }

    /// Refs of `subject` in sealed segments, from the files whose header passes `file`, that
    /// pass `keep`.
    /// `concurrently(n, body)` runs body(0..<n), possibly at once (lookups in different files
    /// read different places of a cold disk); by default one after another.
    func refs(of subject: SubjectKey, file: (SegmentIndexCodec.Header) -> Bool = { _ in true },
              keep: (EventRef) -> Bool = { _ in true },
              concurrently: (Int, @escaping @Sendable (Int) -> Void) -> Void = { n, body in for i in 0..<n { body(i) } }) -> Found {
        let (files, pending, unwritten) = state.withLock { s in (Array(s.files.values), Array(s.pending.values), s.unwritten) }
        var found = Found()
        for p in pending {
            found.refs += (p[subject] ?? []).filter(keep)
        }
        let key = IndexEntry.keyHash(subject)
        for (segment, entries) in unwritten {
            found.refs += Self.run(of: key, in: entries).map { $0.ref(segment: segment) }.filter(keep)
        }
        let chosen = files.filter { file($0.header) }
        // Chunks in the page cache are read here; lookups that would wait for the disk go to
        // `concurrently`, all at once.
        var first = [Result<[EventRef], any Error>?](repeating: nil, count: chosen.count)
        var cold: [Int] = []
        for (i, f) in chosen.enumerated() {
            do {
                if let hit = try f.lookupIfCached(key) { first[i] = .success(hit.map { $0.ref(segment: f.segment) }) } else { cold.append(i) }
            } catch {
                first[i] = .failure(error)
            }
        }
        let results = Mutex(first)
        let waiting = cold
        concurrently(waiting.count) { j in
            let i = waiting[j]
            let f = chosen[i]
            let r = Result { try f.lookup(key).map { $0.ref(segment: f.segment) } }
            results.withLock { $0[i] = r }
        }
        for (i, r) in results.withLock({ $0 }).enumerated() {
            switch r {
            case .success(let refs): found.refs += refs.filter(keep)
            case .failure(let error): found.failed.append((chosen[i].segment, error))
            case nil: break
            }
        }
        return found
    }

    /// Holds refs taken from the open index until `complete` (call under the index lock, so no
    /// reader sees them in neither place).
    func addPending(_ refs: [SubjectKey: [EventRef]]) -> UInt64 {
        state.withLock { s in
            let id = s.nextSeal
            s.nextSeal += 1
            s.pending[id] = refs
            return id
        }
    }

    /// A seal is done: lookups read its files, and the entries of segments whose file could not
    /// be written from memory.
    func complete(_ id: UInt64, files: [SegmentIndexFile], unwritten: [UInt32: [IndexEntry]]) {
        let sorted = unwritten.mapValues { $0.sorted(by: IndexEntry.sortOrder) }
        state.withLock { s in
            for f in files { s.files[f.segment] = f }
            s.unwritten.merge(sorted) { $0 + $1 }
            s.pending[id] = nil
        }
    }

    /// The headers of the index files in place, by segment (a catch-up scan skips a segment
    /// whose newest `received_at` is older than it asks for).
    var headers: [UInt32: SegmentIndexCodec.Header] {
        state.withLock { s in s.files.mapValues(\.header) }
    }

    func add(_ file: SegmentIndexFile) { state.withLock { $0.files[file.segment] = file } }

    func addUnwritten(_ segment: UInt32, _ entries: [IndexEntry]) {
        let sorted = entries.sorted(by: IndexEntry.sortOrder)
        state.withLock { $0.unwritten[segment] = sorted }
    }

    /// The entries of `key` in entries sorted by (key, seq).
    static func run(of key: UInt64, in entries: [IndexEntry]) -> ArraySlice<IndexEntry> {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].keyHash < key { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        while end < entries.count && entries[end].keyHash == key { end += 1 }
        return entries[lo..<end]
    }

    /// Retention deleted these segments (their index files went with their day directory).
    func remove(segments: Set<UInt32>) {
        state.withLock { s in
            for n in segments {
                s.files[n] = nil
                s.unwritten[n] = nil
            }
            s.pending = s.pending.compactMapValues { refs in
                let kept = refs.compactMapValues { list in
                    let k = list.filter { !segments.contains($0.location.segment) }
                    return k.isEmpty ? nil : k
                }
                return kept.isEmpty ? nil : kept
            }
        }
    }

    /// Index files open, entries in them, and the bytes kept in memory for them (chunk tables,
    /// plus refs still waiting for their file).
    var sizes: (files: Int, entries: Int, residentBytes: Int) {
        state.withLock { s in
            let pendingRefs = s.pending.values.reduce(0) { acc, p in acc + p.values.reduce(0) { $0 + $1.count } }
            let unwritten = s.unwritten.values.reduce(0) { $0 + $1.count }
            return (s.files.count, s.files.values.reduce(0) { $0 + $1.entryCount },
                    s.files.values.reduce(0) { $0 + $1.residentBytes } + pendingRefs * MemoryLayout<EventRef>.stride
                        + unwritten * MemoryLayout<IndexEntry>.stride)
        }
    }

    /// Index entries of refs taken from the open index, per segment.
    static func entries(of refs: [SubjectKey: [EventRef]]) -> [UInt32: [IndexEntry]] {
        var out: [UInt32: [IndexEntry]] = [:]
        for (subject, list) in refs {
            let key = IndexEntry.keyHash(subject)
            for r in list { out[r.location.segment, default: []].append(IndexEntry(keyHash: key, ref: r)) }
        }
        return out
    }

    /// Index entries of one record (recovery rebuilding a segment's index).
    static func entries(of r: Record, ref: EventRef) -> [IndexEntry] {
        NodeIndex.subjects(listing: r).map { IndexEntry(keyHash: IndexEntry.keyHash($0), ref: ref) }
    }
}
