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
        // One pass over the seven strings, from the bytes, with no string or table built per record
        // (this runs for every record from a peer). Invalid UTF-8 is refused: fields are hashed as
        // bytes (`dedupeKey`), which must agree with the strings read from them. The layout was
        // checked when the record was decoded (`check`), so every length stays in the buffer.
        var empty: UInt8 = 0          // bit f: field f is empty
        let fieldProblem: String? = encoded.withUnsafeBytes { buf in
            var at = Record.fieldsStart
            for f in Field.allCases {
                let n = Int(Record.u16(at, in: buf))
                let max = switch f {
                case .sessionID: limits.sessionIDBytesMax
                case .eventID: limits.eventIDBytesMax
                case .key: limits.keyBytesMax
                case .component, .via, .userID, .terminalID: limits.identityBytesMax
                }
                if n > max { return "\(f.name) is \(n) bytes, the limit is \(max)" }
                if n == 0 { empty |= 1 << UInt8(f.rawValue) }
                if !Record.isValidUTF8(UnsafeRawBufferPointer(rebasing: buf[(at + 2)..<(at + 2 + n)])) { return "\(f.name) is not valid UTF-8" }
                at += 2 + n
            }
            return nil
        }
        if let fieldProblem { return fieldProblem }
        func isEmpty(_ f: Field) -> Bool { empty & (1 << UInt8(f.rawValue)) != 0 }
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

extension Record.Field {
    /// The field's name as events spell it (in refusals).
    public var name: String {
        switch self {
        case .sessionID: "session_id"
        case .eventID: "event_id"
        case .key: "key"
        case .component: "component"
        case .via: "via"
        case .userID: "user_id"
        case .terminalID: "terminal_id"
        }
    }
}

extension Record {
    /// Whether `bytes` are well-formed UTF-8 (ASCII checked first, the common case).
    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // ASCII eight bytes at a time, then the tail byte by byte.
        var i = 0
        var high: UInt64 = 0
        while i + 8 <= bytes.count {
            high |= bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < bytes.count {
            high |= UInt64(bytes[i])
            i += 1
        }
        if high & 0x8080_8080_8080_8080 == 0 { return true }
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
