import StarlingCore

/// What a peer frame carries. The raw value is the `kind` byte of the frame header.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    case hello = 1, helloAck = 2, refuse = 3,
         membership = 10,
         forwardEvents = 20, forwardResult = 21, forwardRecords = 22,
         query = 30, queryResult = 31,
         identify = 40, identifyResult = 41,
         resolveIdentity = 42, resolveResult = 43,
         links = 44, linksResult = 45,
         replicate = 50, replicateResult = 51,
         catchUp = 52, catchUpResult = 53,
         error = 255
}

/// Size limits a receiver enforces on incoming frames, checked from the header alone.
public struct FrameLimits: Sendable, Equatable {
    /// Largest body as sent (after compression).
    public var bodyBytesMax = 4 << 20
    /// Largest body after decompression.
    public var uncompressedBytesMax = 16 << 20
    public init() {}
    public init(bodyBytesMax: Int, uncompressedBytesMax: Int) {
        self.bodyBytesMax = bodyBytesMax
        self.uncompressedBytesMax = uncompressedBytesMax
    }
}

/// One peer protocol frame. `body` is always the uncompressed body; compression is a property
/// of the encoding only (see `FrameCodec.encode`).
public struct Frame: Sendable, Equatable {
    public var kind: MessageKind
    public var isResponse: Bool
    public var clusterID: UInt64
    public var requestID: UInt64
    /// The sending node's id; must match `[a-z0-9-]{1,32}` (see `Frame.isValidSenderID`).
    public var sender: String
    public var body: [UInt8]
    /// The traces this frame's work belongs to (a forward or replication batch gathers the
    /// events of several requests), each with the sender's span as the parent. Empty unless
    /// tracing is on; at most `tracesMax`.
    public var traces: [TraceContext]

    public init(kind: MessageKind, isResponse: Bool = false, clusterID: UInt64, requestID: UInt64,
                sender: String, body: [UInt8] = [], traces: [TraceContext] = []) {
        self.kind = kind
        self.isResponse = isResponse
        self.clusterID = clusterID
        self.requestID = requestID
        self.sender = sender
        self.body = body
        self.traces = traces
    }

    /// Most trace contexts one frame carries; a batch of more requests keeps the first ones.
    public static let tracesMax = 8

    /// Largest sender id in bytes.
    public static let senderBytesMax = 32

    /// True when `id` matches `[a-z0-9-]{1,32}`.
    public static func isValidSenderID(_ id: String) -> Bool {
        let u = id.utf8
        guard u.count >= 1, u.count <= senderBytesMax else { return false }
        return u.allSatisfy(isSenderByte)
    }

    @inline(__always)
    static func isSenderByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D
    }
}
