/// One entry of the append-only log, as plain values. The log stores records
/// inside blocks (see `StarlingLog.BlockCodec`); this is the record's own layout:
///
/// ```
/// u32  length      bytes that follow this field (crc + body)
/// u32  crc32c      CRC32C of body
/// body:
///   u8   kind      1 = event, 2 = identity link
///   u8   flags     bit 0: counts as error (component stats)
///   u16  reserved  0
///   i64  ts        event time, epoch ms (link: linked_at)
///   i64  received  server receive time, epoch ms
///   7 × (u16 length + UTF-8 bytes): session_id, event_id, key, component, via, user_id, terminal_id
///   u32  json length + JSON bytes   the stored event as returned to clients (empty for links)
/// ```
/// All integers little-endian. Absent strings are stored empty.
///
/// Encode once: a record knows its encoding (`wire`) when it was decoded from bytes (forwarded,
/// replicated, pulled by catch-up) or encoded on purpose (`withWire()`, on the I/O thread that built
/// it). Appending, forwarding and replicating then copy those bytes instead of encoding again.
/// Changing any field drops the cached bytes, so they always match the fields.
public struct Record: Sendable {
    public enum Kind: UInt8, Sendable { case event = 1, link = 2 }

    public var kind: Kind { didSet { wire = nil } }
    public var isError: Bool { didSet { wire = nil } }
    public var ts: Int64 { didSet { wire = nil } }
    public var receivedAt: Int64 { didSet { wire = nil } }
    public var sessionID: String { didSet { wire = nil } }
    public var eventID: String { didSet { wire = nil } }
    public var key: String { didSet { wire = nil } }
    public var component: String { didSet { wire = nil } }
    public var via: String { didSet { wire = nil } }
    public var userID: String { didSet { wire = nil } }
    public var terminalID: String { didSet { wire = nil } }
    public var json: [UInt8] { didSet { wire = nil } }
    /// The record's encoding, when known (see above).
    public private(set) var wire: [UInt8]?

    public init(kind: Kind, isError: Bool = false, ts: Int64, receivedAt: Int64, sessionID: String, eventID: String = "",
                key: String = "", component: String = "", via: String = "", userID: String = "", terminalID: String = "",
                json: [UInt8] = []) {
        self.kind = kind
        self.isError = isError
        self.ts = ts
        self.receivedAt = receivedAt
        self.sessionID = sessionID
        self.eventID = eventID
        self.key = key
        self.component = component
        self.via = via
        self.userID = userID
        self.terminalID = terminalID
        self.json = json
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated(offset: Int)
        case badChecksum(offset: Int)
        case badKind(UInt8, offset: Int)
        case badLength(offset: Int)
    }

    /// Fixed part of the body: kind, flags, reserved, ts, received.
    static let fixedBodyBytes = 1 + 1 + 2 + 8 + 8

    public func encode(into out: inout [UInt8]) {
        if let wire {
            out.append(contentsOf: wire)
            return
        }
        let start = out.count
        out.appendLE(UInt32(0))  // length, patched below
        out.appendLE(UInt32(0))  // crc, patched below
        out.append(kind.rawValue)
        out.append(isError ? 1 : 0)
        out.appendLE(UInt16(0))
        out.appendLE(ts)
        out.appendLE(receivedAt)
        Record.appendField(sessionID, to: &out)
        Record.appendField(eventID, to: &out)
        Record.appendField(key, to: &out)
        Record.appendField(component, to: &out)
        Record.appendField(via, to: &out)
        Record.appendField(userID, to: &out)
        Record.appendField(terminalID, to: &out)
        out.appendLE(UInt32(json.count))
        out.append(contentsOf: json)
        let bodyStart = start + 8
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[bodyStart...])) }
        out.overwriteLE(UInt32(out.count - start - 4), at: start)
        out.overwriteLE(crc, at: start + 4)
    }

    /// u16 length + UTF-8 bytes. Validation bounds every string far below 64 KiB; clip
    /// defensively rather than corrupt.
    @inline(__always)
    static func appendField(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { u in
            let n = min(u.count, Int(UInt16.max))
            out.appendLE(UInt16(n))
            out.append(contentsOf: UnsafeBufferPointer(rebasing: u[0..<n]))
        }
    }

    public var encoded: [UInt8] {
        if let wire { return wire }
        var out: [UInt8] = []
        out.reserveCapacity(encodedCount)   // one allocation, no growth steps
        encode(into: &out)
        return out
    }

    /// The same record carrying its encoding, so later appends and sends copy bytes.
    public func withWire() -> Record {
        guard wire == nil else { return self }
        var r = self
        r.wire = encoded
        return r
    }

    /// Decodes one record that fills `bytes` exactly (as sent by replication); nil when malformed
    /// or its CRC does not match.
    public init?(encoded bytes: [UInt8]) {
        let decoded: Record? = bytes.withUnsafeBytes { buf in
            var reader = ByteReader(buf)
            guard let r = try? Record.decode(&reader), reader.remaining == 0 else { return nil }
            return r
        }
        guard var decoded else { return nil }
        decoded.wire = bytes
        self = decoded
    }

    /// Decodes the record at the reader's offset and advances past it. Verifies the CRC.
    public static func decode(_ reader: inout ByteReader) throws(DecodeError) -> Record {
        let at = reader.offset
        guard let length = reader.u32(), let crc = reader.u32() else { throw .truncated(offset: at) }
        guard let len = Int(exactly: length), len >= 4 + fixedBodyBytes else { throw .badLength(offset: at) }
        guard let body = reader.slice(len - 4) else { throw .truncated(offset: at) }
        guard CRC32C.checksum(body) == crc else { throw .badChecksum(offset: at) }
        var r = ByteReader(body)
        guard let kindByte = r.u8(), let flags = r.u8(), r.u16() != nil, let ts = r.i64(), let rcv = r.i64() else {
            throw .truncated(offset: at)
        }
        guard let kind = Kind(rawValue: kindByte) else { throw .badKind(kindByte, offset: at) }
        // The seven strings read in order into locals (no array per record: this runs for every
        // forwarded, replicated, pulled and read-back record).
        func field() throws(DecodeError) -> String {
            guard let n = r.u16(), let s = r.string(Int(n)) else { throw .truncated(offset: at) }
            return s
        }
        let sessionID = try field(), eventID = try field(), key = try field(), component = try field()
        let via = try field(), userID = try field(), terminalID = try field()
        guard let jn = r.u32(), let jlen = Int(exactly: jn), let json = r.slice(jlen), r.remaining == 0 else {
            throw .badLength(offset: at)
        }
        return Record(kind: kind, isError: flags & 1 != 0, ts: ts, receivedAt: rcv, sessionID: sessionID,
                      eventID: eventID, key: key, component: component, via: via,
                      userID: userID, terminalID: terminalID, json: Array(json))
    }
}

extension Record: Equatable {
    /// Equal fields (whether the encoding is cached does not matter).
    public static func == (a: Record, b: Record) -> Bool {
        a.kind == b.kind && a.isError == b.isError && a.ts == b.ts && a.receivedAt == b.receivedAt && a.sessionID == b.sessionID
            && a.eventID == b.eventID && a.key == b.key && a.component == b.component && a.via == b.via && a.userID == b.userID
            && a.terminalID == b.terminalID && a.json == b.json
    }
}
