/// Checks on a record that did not come from this node's own validator: one that arrived from
/// the network (forwarded, replicated, pulled by catch-up) or was read back at recovery. A CRC
/// only says the bytes are what the sender meant; these say the sender meant something the node
/// can store and fold (times in range, bounded strings, a known kind with its required fields).
extension Record {
    /// The latest time a record may carry (`ts`, `received_at`): 9999-12-31T23:59:59.999Z, the
    /// same ceiling as a client's `ts`.
    public static let timeMax: Int64 = EventValidator.tsMax

    /// Bytes of `encode(into:)`'s output, computed without encoding.
    public var encodedCount: Int {
        if let wire { return wire.count }
        return 8 + Self.fixedBodyBytes + 7 * 2 + sessionID.utf8.count + eventID.utf8.count + key.utf8.count
            + component.utf8.count + via.utf8.count + userID.utf8.count + terminalID.utf8.count + 4 + json.count
    }

    /// Why this record must not be stored, or nil when it may be.
    public func problem(limits: Limits) -> String? {
        guard (0...Self.timeMax).contains(ts) else { return "ts \(ts) is outside 0...\(Self.timeMax)" }
        guard (0...Self.timeMax).contains(receivedAt) else { return "received_at \(receivedAt) is outside 0...\(Self.timeMax)" }
        // Field by field, with no table built per record (this runs for every record from a peer).
        func tooLong(_ name: StaticString, _ value: String, _ max: Int) -> String? {
            value.utf8.count > max ? "\(name) is \(value.utf8.count) bytes, the limit is \(max)" : nil
        }
        if let p = tooLong("session_id", sessionID, limits.sessionIDBytesMax)
            ?? tooLong("event_id", eventID, limits.eventIDBytesMax) ?? tooLong("key", key, limits.keyBytesMax)
            ?? tooLong("component", component, limits.identityBytesMax) ?? tooLong("via", via, limits.identityBytesMax)
            ?? tooLong("user_id", userID, limits.identityBytesMax) ?? tooLong("terminal_id", terminalID, limits.identityBytesMax) {
            return p
        }
        let size = encodedCount
        guard size <= limits.recordBytesMax else { return "record is \(size) bytes, the limit is \(limits.recordBytesMax)" }
        switch kind {
        case .event:
            if eventID.isEmpty { return "event record without event_id" }
            if key.isEmpty { return "event record without key" }
            if sessionID.isEmpty && userID.isEmpty && terminalID.isEmpty { return "event record names no session, user or terminal" }
            if json.isEmpty { return "event record without JSON" }
        case .link:
            if sessionID.isEmpty { return "link record without session_id" }
            if userID.isEmpty && terminalID.isEmpty { return "link record names no user or terminal" }
            if !json.isEmpty { return "link record with JSON" }
        }
        return nil
    }
}

extension Record {
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
