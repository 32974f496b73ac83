/// Where a downstream sink is in this node's log: the next block to read. Stored in
/// `sink.<name>.cursor` after every batch the downstream confirmed, so a restart re-sends at
/// most the batch that was in flight. Text, one line, with a CRC32C so a torn write is seen.
public struct SinkCursor: Sendable, Equatable {
    public var segment: UInt32
    public var offset: UInt64

    public init(segment: UInt32, offset: UInt64) {
        self.segment = segment
        self.offset = offset
    }

    /// `S1 <segment> <offset> <crc32c of "segment offset">\n`
    public var encoded: [UInt8] {
        let body = "\(segment) \(offset)"
        return Array("S1 \(body) \(CRC32C.checksum(Array(body.utf8)))\n".utf8)
    }

    /// nil for anything but a whole, intact line.
    public static func decode(_ bytes: [UInt8]) -> SinkCursor? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasSuffix("\n") else { return nil }
        let parts = text.dropLast().split(separator: " ")
        guard parts.count == 4, parts[0] == "S1", let seg = UInt32(parts[1]), let off = UInt64(parts[2]), let crc = UInt32(parts[3]),
              CRC32C.checksum(Array("\(seg) \(off)".utf8)) == crc else { return nil }
        return SinkCursor(segment: seg, offset: off)
    }
}
