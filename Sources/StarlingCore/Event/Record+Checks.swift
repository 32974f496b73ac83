/// Checks on a record that did not come from this node's own validator: one that arrived from
/// the network (forwarded, replicated, pulled by catch-up) or was read back at recovery. A CRC
/// only says the bytes are what the sender meant; these say the sender meant something the node
/// can store and fold (times in range, bounded strings, a known kind with its required fields).
extension Record {
    /// The latest time a record may carry (`ts`, `received_at`): 9999-12-31T23:59:59.999Z, the
    /// same ceiling as a client's `ts`.
    public static let timeMax: Int64 = EventValidator.tsMax

    /// Why this record must not be stored, or nil when it may be.
    public func problem(limits: Limits) -> String? {
        guard (0...Self.timeMax).contains(ts) else { return "ts \(ts) is outside 0...\(Self.timeMax)" }
        guard (0...Self.timeMax).contains(receivedAt) else { return "received_at \(receivedAt) is outside 0...\(Self.timeMax)" }
        // Field by field, from the bytes, with no string or table built per record (this runs
        // for every record from a peer). Invalid UTF-8 is refused: fields are hashed as bytes
        // (`dedupeKey`), which must agree with the strings read from them.
        func bad(_ f: Field, _ name: StaticString, _ max: Int) -> String? {
            withField(f) { b in
                if b.count > max { return "\(name) is \(b.count) bytes, the limit is \(max)" }
                return Record.isValidUTF8(b) ? nil : "\(name) is not valid UTF-8"
            }
        }
        if let p = bad(.sessionID, "session_id", limits.sessionIDBytesMax)
            ?? bad(.eventID, "event_id", limits.eventIDBytesMax) ?? bad(.key, "key", limits.keyBytesMax)
            ?? bad(.component, "component", limits.identityBytesMax) ?? bad(.via, "via", limits.identityBytesMax)
            ?? bad(.userID, "user_id", limits.identityBytesMax) ?? bad(.terminalID, "terminal_id", limits.identityBytesMax) {
            return p
        }
        let size = encodedCount
        guard size <= limits.recordBytesMax else { return "record is \(size) bytes, the limit is \(limits.recordBytesMax)" }
        switch kind {
        case .event:
            if isEmpty(.eventID) { return "event record without event_id" }
            if isEmpty(.key) { return "event record without key" }
            if isEmpty(.sessionID) && isEmpty(.userID) && isEmpty(.terminalID) {
                return "event record names no session, user or terminal"
            }
            if jsonCount == 0 { return "event record without JSON" }
        case .link:
            if isEmpty(.sessionID) { return "link record without session_id" }
            if isEmpty(.userID) && isEmpty(.terminalID) { return "link record names no user or terminal" }
            if jsonCount != 0 { return "link record with JSON" }
        }
        return nil
    }
}

extension Record {
    /// Whether `bytes` are well-formed UTF-8 (ASCII checked first, the common case).
    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        var it = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&it) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// Decodes a record that arrived from the network and checks it: its CRC, then every field
    /// (`problem(limits:)`). The failure says why, for the refusal and the log.
    public static func checked(encoded bytes: [UInt8], limits: Limits) -> Result<Record, RecordRefusal> {
        guard let r = Record(encoded: bytes) else { return .failure(RecordRefusal(reason: "malformed or fails its CRC")) }
        if let problem = r.problem(limits: limits) { return .failure(RecordRefusal(reason: problem)) }
        return .success(r)
    }
}

/// Why a record from the network was refused.
public struct RecordRefusal: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
