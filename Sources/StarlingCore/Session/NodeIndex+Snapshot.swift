/// The in-memory index as bytes, for the checkpoint (`DIR/checkpoint`): everything but the open
/// refs (a snapshot is taken right after they were handed to a sealed segment's index).
///
/// ```
/// u64 last seq, u64 event count
/// u32 n sessions  × { str id, u8 flags (1 state, 2 user, 4 terminal), i64 newest received_at,
///                     [state: i64 first_seen, i64 last_seen, u64 events, i64 short expiry,
///                      i64 long expiry, opt-str via_first, opt-str via_last, opt-str user,
///                      opt-str terminal], [str user], [str terminal] }
/// u32 n users     × { str id, i64 newest, u32 n links × { str session, i64 linked_at } }
/// u32 n terminals × (same)
/// u32 n components × { str name, u64 events, u64 errors, i64 last_seen }
/// i64 dedupe newest, u32 n × { u64 key, u64 seq, i64 arrival, u32 segment, u32 block offset,
///                              u32 index in block }
/// ```
/// str = u32 length + UTF-8; opt-str = u8 present + str. Little-endian. The checkpoint file
/// frames this with a header and CRC (`Checkpoint` in StarlingLog).
extension NodeIndex {
    public func snapshot() -> [UInt8] {
        var w: [UInt8] = []
        w.appendLE(lastSeq)
        w.appendLE(UInt64(eventCount))
        w.appendLE(UInt32(sessions.count))
        for (id, e) in sessions {
            w.put(id)
            let flags: UInt8 = (e.state != nil ? 1 : 0) | (e.userID != nil ? 2 : 0) | (e.terminalID != nil ? 4 : 0)
            w.append(flags)
            w.appendLE(e.newestReceivedAt)
            if let s = e.state {
                for v in [s.firstSeen, s.lastSeen] { w.appendLE(v) }
                w.appendLE(UInt64(s.events))
                for v in [s.shortExpiresAt, s.longExpiresAt] { w.appendLE(v) }
                for o in [s.viaFirst, s.viaLast, s.userID, s.terminalID] { w.putOptional(o) }
            }
            if let u = e.userID { w.put(u) }
            if let t = e.terminalID { w.put(t) }
        }
        for map in [users, terminals] {
            w.appendLE(UInt32(map.count))
            for (id, e) in map {
                w.put(id)
                w.appendLE(e.newestReceivedAt)
                w.appendLE(UInt32(e.links.count))
                for l in e.links {
                    w.put(l.sessionID)
                    w.appendLE(l.linkedAt)
                }
            }
        }
        w.appendLE(UInt32(components.count))
        for (name, c) in components {
            w.put(name)
            w.appendLE(UInt64(c.events))
            w.appendLE(UInt64(c.errors))
            w.appendLE(c.lastSeen)
        }
        dedupe.encode(into: &w)
        return w
    }

    public enum SnapshotError: Error, Equatable { case truncated, trailingBytes }

    /// Reads back `snapshot()` (with the node's current TTL and dedupe window settings).
    public init(snapshot bytes: [UInt8], ttl: TTLSettings, dedupeWindowMs: Int64) throws {
        self.init(ttl: ttl, dedupeWindowMs: dedupeWindowMs)
        let parsed: Bool = bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf)
            guard readBody(&r), r.remaining == 0 else { return false }
            return true
        }
        guard parsed else { throw SnapshotError.truncated }
    }

    mutating func readBody(_ r: inout ByteReader) -> Bool {
        guard let seq = r.u64(), let count = r.u64(), let n = r.u32() else { return false }
        lastSeq = seq
        eventCount = Int(truncatingIfNeeded: count)
        sessions.reserveCapacity(Int(min(n, UInt32(r.remaining / 17))))   // a session takes at least 17 bytes
        for _ in 0..<n {
            guard let id = r.str(), let flags = r.u8(), let newest = r.i64() else { return false }
            var e = SessionEntry()
            e.newestReceivedAt = newest
            if flags & 1 != 0 {
                guard let first = r.i64(), let last = r.i64(), let events = r.u64(), let short = r.i64(), let long = r.i64(),
                      let via1 = r.optStr(), let via2 = r.optStr(), let u = r.optStr(), let t = r.optStr() else { return false }
                var s = SessionState(firstEventAt: first, via: nil, ttl: ttl)
                (s.lastSeen, s.events, s.shortExpiresAt, s.longExpiresAt) = (last, Int(truncatingIfNeeded: events), short, long)
                (s.viaFirst, s.viaLast, s.userID, s.terminalID) = (via1, via2, u, t)
                e.state = s
            }
            if flags & 2 != 0 { guard let u = r.str() else { return false }; e.userID = u }
            if flags & 4 != 0 { guard let t = r.str() else { return false }; e.terminalID = t }
            sessions[id] = e
        }
        for which in 0..<2 {
            guard let n = r.u32() else { return false }
            for _ in 0..<n {
                guard let id = r.str(), let newest = r.i64(), let nl = r.u32() else { return false }
                var e = IdentityEntry()
                e.newestReceivedAt = newest
                for _ in 0..<nl {
                    guard let sid = r.str(), let at = r.i64() else { return false }
                    e.links.append(Link(sessionID: sid, linkedAt: at))
                }
                if which == 0 { users[id] = e } else { terminals[id] = e }
            }
        }
        guard let nc = r.u32() else { return false }
        for _ in 0..<nc {
            guard let name = r.str(), let ev = r.u64(), let er = r.u64(), let last = r.i64() else { return false }
            components[name] = ComponentStats(events: Int(truncatingIfNeeded: ev), errors: Int(truncatingIfNeeded: er), lastSeen: last)
        }
        return dedupe.decode(&r)
    }
}

extension DedupeWindow {
    func encode(into w: inout [UInt8]) {
        w.appendLE(newest)
        w.appendLE(UInt32(count))
        for e in entries {
            w.appendLE(e.key)
            w.appendLE(e.seq)
            w.appendLE(e.at)
            w.appendLE(e.segment)
            w.appendLE(e.blockOffset)
            w.appendLE(e.index)
        }
    }

    /// Restores what `encode` wrote; arrivals outside this node's window are dropped.
    mutating func decode(_ r: inout ByteReader) -> Bool {
        guard let n = r.i64(), let count = r.u32() else { return false }
        newest = n
        let most = Int(min(count, UInt32(r.remaining / 36)))   // an entry takes 36 bytes
        entries.reserveCapacity(most)
        newestOf.reserveCapacity(most)
        for _ in 0..<count {
            guard let key = r.u64(), let seq = r.u64(), let at = r.i64(), let seg = r.u32(), let off = r.u32(),
                  let idx = r.u32() else { return false }
            let ref = EventRef(location: RecordLocation(segment: seg, blockOffset: UInt64(off), index: idx), ts: 0, receivedAt: 0, seq: seq)
            append(key, ref, at: at)
        }
        prune()
        return true
    }
}

extension [UInt8] {
    mutating func put(_ s: String) {
        appendLE(UInt32(s.utf8.count))
        append(contentsOf: s.utf8)
    }

    mutating func putOptional(_ s: String?) {
        if let s {
            append(1)
            put(s)
        } else {
            append(0)
        }
    }
}

extension ByteReader {
    mutating func str() -> String? {
        guard let n = u32(), let count = Int(exactly: n) else { return nil }
        return string(count)
    }

    mutating func optStr() -> String?? {
        guard let p = u8() else { return nil }
        if p == 0 { return .some(nil) }
        guard let s = str() else { return nil }
        return .some(s)
    }
}
