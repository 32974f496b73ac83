/// One entry of the append-only log. The log stores records inside blocks (see
/// `StarlingLog.BlockCodec`); this is the record's own layout:
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
/// Records as bytes: the encoding is the record's only storage (`encoded`, one array). A record
/// built from fields is encoded once, on the thread that builds it; one decoded from the network
/// or a block keeps the bytes it was checked from. Appending, forwarding and replicating copy
/// those bytes, and copying a record is one reference count. Fields are read from the bytes when
/// asked for (`sessionID` makes a `String`; `field(_:)`, `jsonCount` and `dedupeKey` do not).
/// Setting a field re-encodes the record (tests and rare paths only). Every `Record` value holds
/// a well-formed encoding: the initialisers build one or check one.
public struct Record: Sendable {
    public enum Kind: UInt8, Sendable { case event = 1, link = 2 }

    /// The seven strings, in their encoding order.
    public enum Field: Int, Sendable, CaseIterable {
        case sessionID = 0, eventID, key, component, via, userID, terminalID
    }

    /// The record's encoding: length, CRC, body.
    public private(set) var encoded: [UInt8]

    /// Length and CRC fields.
    static let headerBytes = 8
    /// Fixed part of the body: kind, flags, reserved, ts, received.
    static let fixedBodyBytes = 1 + 1 + 2 + 8 + 8
    /// Where the first string's length sits.
    static let fieldsStart = headerBytes + fixedBodyBytes

    public init(kind: Kind, isError: Bool = false, ts: Int64, receivedAt: Int64, sessionID: String, eventID: String = "",
                key: String = "", component: String = "", via: String = "", userID: String = "", terminalID: String = "",
                json: [UInt8] = []) {
        self.init(kind: kind, isError: isError, ts: ts, receivedAt: receivedAt, sessionID: sessionID, eventID: eventID,
                  key: key, component: component, via: via, userID: userID, terminalID: terminalID,
                  jsonCapacity: json.count) { $0.append(contentsOf: json) }
    }

    /// Encodes a record in one buffer: `writeJSON` appends the stored JSON (`jsonCapacity`: its
    /// expected size, so the buffer is allocated once).
    @inline(__always)
    public init(kind: Kind, isError: Bool, ts: Int64, receivedAt: Int64, sessionID: String, eventID: String,
                key: String, component: String, via: String, userID: String, terminalID: String,
                jsonCapacity: Int, json writeJSON: (inout [UInt8]) -> Void) {
        var out: [UInt8] = []
        out.reserveCapacity(Self.fieldsStart + 7 * 2 + 4 + jsonCapacity + sessionID.utf8.count + eventID.utf8.count
                            + key.utf8.count + component.utf8.count + via.utf8.count + userID.utf8.count + terminalID.utf8.count)
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
        let jsonAt = out.count
        out.appendLE(UInt32(0))  // json length, patched below
        writeJSON(&out)
        out.overwriteLE(UInt32(out.count - jsonAt - 4), at: jsonAt)
        Record.seal(&out)
        encoded = out
    }

    /// Patches the length and CRC fields of an encoding whose body is complete.
    static func seal(_ out: inout [UInt8]) {
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[Self.headerBytes...])) }
        out.overwriteLE(UInt32(out.count - 4), at: 0)
        out.overwriteLE(crc, at: 4)
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

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated(offset: Int)
        case badChecksum(offset: Int)
        case badKind(UInt8, offset: Int)
        case badLength(offset: Int)
    }

    public func encode(into out: inout [UInt8]) {
        out.append(contentsOf: encoded)
    }

    /// Bytes of the encoding.
    public var encodedCount: Int { encoded.count }

    /// Takes `bytes` as one record's encoding when they fill it exactly (as sent by replication);
    /// nil when malformed or its CRC does not match. Nothing is copied.
    public init?(encoded bytes: [UInt8]) {
        let ok = bytes.withUnsafeBytes { buf in (try? Record.check(buf, at: 0)) == buf.count }
        guard ok else { return nil }
        encoded = bytes
    }

    /// Decodes the record at the reader's offset and advances past it. Verifies the CRC and the
    /// layout; the record's bytes are copied once, into its own array.
    public static func decode(_ reader: inout ByteReader) throws(DecodeError) -> Record {
        let at = reader.offset
        let end = try check(reader.bytes, at: at)
        _ = reader.slice(end - at)
        return Record(checked: Array(UnsafeRawBufferPointer(rebasing: reader.bytes[at..<end])))
    }

    private init(checked bytes: [UInt8]) { encoded = bytes }

    /// Checks the record that starts at `at` in `buf` (length, CRC, kind, every string's
    /// length, the JSON's length filling the body exactly); returns the offset after it.
    static func check(_ buf: UnsafeRawBufferPointer, at: Int) throws(DecodeError) -> Int {
        var reader = ByteReader(buf, offset: at)
        guard let length = reader.u32(), let crc = reader.u32() else { throw .truncated(offset: at) }
        guard let len = Int(exactly: length), len >= 4 + fixedBodyBytes + 7 * 2 + 4 else { throw .badLength(offset: at) }
        guard let body = reader.slice(len - 4) else { throw .truncated(offset: at) }
        guard CRC32C.checksum(body) == crc else { throw .badChecksum(offset: at) }
        var r = ByteReader(body)
        guard let kindByte = r.u8(), r.u8() != nil, r.u16() != nil, r.i64() != nil, r.i64() != nil else {
            throw .truncated(offset: at)
        }
        guard Kind(rawValue: kindByte) != nil else { throw .badKind(kindByte, offset: at) }
        for _ in 0..<7 {
            guard let n = r.u16(), r.slice(Int(n)) != nil else { throw .truncated(offset: at) }
        }
        guard let jn = r.u32(), let jlen = Int(exactly: jn), r.slice(jlen) != nil, r.remaining == 0 else {
            throw .badLength(offset: at)
        }
        return reader.offset
    }
}

// MARK: - Reading fields from the bytes

extension Record {
    public var kind: Kind {
        get { Kind(rawValue: encoded[Self.headerBytes])! }
        set { encoded[Self.headerBytes] = newValue.rawValue; Record.seal(&encoded) }
    }

    public var isError: Bool {
        get { encoded[Self.headerBytes + 1] & 1 != 0 }
        set { encoded[Self.headerBytes + 1] = newValue ? 1 : 0; Record.seal(&encoded) }
    }

    public var ts: Int64 {
        get { int64(at: Self.headerBytes + 4) }
        set { setInt64(newValue, at: Self.headerBytes + 4) }
    }

    public var receivedAt: Int64 {
        get { int64(at: Self.headerBytes + 12) }
        set { setInt64(newValue, at: Self.headerBytes + 12) }
    }

    public var sessionID: String { get { string(.sessionID) } set { set(.sessionID, newValue) } }
    public var eventID: String { get { string(.eventID) } set { set(.eventID, newValue) } }
    public var key: String { get { string(.key) } set { set(.key, newValue) } }
    public var component: String { get { string(.component) } set { set(.component, newValue) } }
    public var via: String { get { string(.via) } set { set(.via, newValue) } }
    public var userID: String { get { string(.userID) } set { set(.userID, newValue) } }
    public var terminalID: String { get { string(.terminalID) } set { set(.terminalID, newValue) } }

    /// The stored JSON (a copy; `withJSON` reads it in place).
    public var json: [UInt8] {
        get { withJSON { Array($0) } }
        set { self = rebuilt(json: newValue) }
    }

    /// Bytes of the stored JSON.
    public var jsonCount: Int { encoded.withUnsafeBytes { Int(Record.u32(jsonAt(in: $0), in: $0)) } }

    public func withJSON<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try encoded.withUnsafeBytes { buf in
            let at = jsonAt(in: buf)
            let n = Int(Record.u32(at, in: buf))
            return try body(UnsafeRawBufferPointer(rebasing: buf[(at + 4)..<(at + 4 + n)]))
        }
    }

    /// A string field's UTF-8 bytes, read in place.
    @inline(__always)
    public func withField<T>(_ f: Field, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try encoded.withUnsafeBytes { buf in
            let at = Record.fieldAt(f.rawValue, in: buf)
            let n = Int(Record.u16(at, in: buf))
            return try body(UnsafeRawBufferPointer(rebasing: buf[(at + 2)..<(at + 2 + n)]))
        }
    }

    /// Whether a string field is empty (absent), without making a `String`.
    @inline(__always)
    public func isEmpty(_ f: Field) -> Bool {
        encoded.withUnsafeBytes { Record.u16(Record.fieldAt(f.rawValue, in: $0), in: $0) == 0 }
    }

    @inline(__always)
    func string(_ f: Field) -> String {
        withField(f) { String(decoding: $0, as: UTF8.self) }
    }

    @inline(__always)
    static func u16(_ at: Int, in buf: UnsafeRawBufferPointer) -> UInt16 {
        UInt16(buf[at]) | UInt16(buf[at + 1]) << 8
    }

    @inline(__always)
    static func u32(_ at: Int, in buf: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(u16(at, in: buf)) | UInt32(u16(at + 2, in: buf)) << 16
    }

    /// Where string field `index`'s length sits: past the strings before it.
    @inline(__always)
    static func fieldAt(_ index: Int, in buf: UnsafeRawBufferPointer) -> Int {
        var at = fieldsStart
        for _ in 0..<index { at += 2 + Int(u16(at, in: buf)) }
        return at
    }

    func jsonAt(in buf: UnsafeRawBufferPointer) -> Int { Record.fieldAt(7, in: buf) }

    func int64(at offset: Int) -> Int64 {
        encoded.withUnsafeBytes { buf in
            Int64(bitPattern: UInt64(Record.u32(offset, in: buf)) | UInt64(Record.u32(offset + 4, in: buf)) << 32)
        }
    }

    mutating func setInt64(_ v: Int64, at offset: Int) {
        let u = UInt64(bitPattern: v)
        for i in 0..<8 { encoded[offset + i] = UInt8(truncatingIfNeeded: u >> (8 * UInt64(i))) }
        Record.seal(&encoded)
    }

    mutating func set(_ f: Field, _ value: String) {
        var strings = Field.allCases.map { string($0) }
        strings[f.rawValue] = value
        self = rebuilt(strings: strings)
    }

    /// This record encoded again with some parts replaced (the field setters).
    func rebuilt(strings: [String]? = nil, json: [UInt8]? = nil) -> Record {
        let s = strings ?? Field.allCases.map { string($0) }
        return Record(kind: kind, isError: isError, ts: ts, receivedAt: receivedAt, sessionID: s[0], eventID: s[1],
                      key: s[2], component: s[3], via: s[4], userID: s[5], terminalID: s[6], json: json ?? self.json)
    }

    /// `DedupeWindow.key(eventID, in: SubjectKey(of: self))`, hashed from the bytes (no strings).
    public var dedupeKey: UInt64 { dedupeKey(subjectFNV: subjectFNV) }

    /// The same, given this record's `subjectFNV` (a caller that needs both hashes it once).
    @inline(__always)
    public func dedupeKey(subjectFNV: UInt64) -> UInt64 {
        withField(.eventID) { DedupeWindow.key(scopeFNV: subjectFNV, eventID: $0) }
    }

    /// `SubjectKey(of: self).ringKeyFNV`, hashed from the bytes: the session id, else the user
    /// id, else the terminal id.
    public var subjectFNV: UInt64 {
        if !isEmpty(.sessionID) { return withField(.sessionID) { SubjectKey.ringKeyFNV(prefix: nil, id: $0) } }
        if !isEmpty(.userID) { return withField(.userID) { SubjectKey.ringKeyFNV(prefix: SubjectKey.userPrefix, id: $0) } }
        return withField(.terminalID) { SubjectKey.ringKeyFNV(prefix: SubjectKey.terminalPrefix, id: $0) }
    }
}

extension Record: Equatable {
    /// Equal fields. Equal fields encode to equal bytes, except strings a peer sent as invalid
    /// UTF-8 (read back repaired), so the fields are compared when the bytes differ.
    public static func == (a: Record, b: Record) -> Bool {
        if a.encoded == b.encoded { return true }
        return a.kind == b.kind && a.isError == b.isError && a.ts == b.ts && a.receivedAt == b.receivedAt
            && Field.allCases.allSatisfy { a.string($0) == b.string($0) } && a.withJSON { x in b.withJSON { x.elementsEqual($0) } }
    }
}
