/// Every bound Starling enforces, in one place (names carry the qualifier last).
public struct Limits: Sendable, Equatable {
    /// One event as sent (its JSON text, or one NDJSON line). SPEC: 32 KiB, else 413 `event_too_large`.
    public var eventBytesMax = 32 * 1024
    /// One HTTP request body. SPEC: 1 MiB, else 413 `body_too_large`.
    public var bodyBytesMax = 1024 * 1024
    /// Open HTTP connections (main and metrics listeners together); past it a new connection is
    /// closed at accept (`starling_connections_refused_total`).
    public var httpConnectionsMax = 16_384
    /// Open HTTP connections from one address (trusted proxies are exempt: a load balancer
    /// carries everyone's).
    public var httpConnectionsPerIPMax = 512
    /// Open connections on the peer port.
    public var peerConnectionsMax = 4_096
    /// A request's head must be in within this of the connection opening or of the previous
    /// answer (slowloris: a byte a second never trips a read-idle timeout). 60 s, as nginx's
    /// `client_header_timeout`: an idle keep-alive connection waits for its next head this long,
    /// as long as load balancers keep idle upstream connections (a shorter one would race them).
    public var httpHeaderTimeoutMs = 60_000
    /// A request's body must be in within this of its head (1 MiB on a slow mobile link).
    public var httpBodyTimeoutMs = 60_000
    /// A peer connection that sends nothing for this long is closed (members ping every probe
    /// interval; a client reconnects on its next request).
    public var peerIdleTimeoutMs = 300_000
    /// One UDP datagram. SPEC: 8 KiB.
    public var datagramBytesMax = 8 * 1024
    public var sessionIDBytesMax = 128
    public var keyBytesMax = 256
    public var eventIDBytesMax = 64
    public var identityBytesMax = 256
    /// JSON nesting depth accepted in an event.
    public var jsonDepthMax = 64
    /// Events in one request (a 1 MiB body of tiny events stays far below).
    public var requestEventsMax = 100_000
    /// Session query `limit`: default and ceiling (SPEC).
    public var queryEventsDefault = 10_000
    public var queryEventsMax = 100_000
    /// Events waiting for the log writer; beyond this ingest answers 503.
    public var writeQueueEventsMax = 200_000
    public var writeQueueBytesMax = 256 * 1024 * 1024
    /// Events one group commit takes from the write queue (a single job larger than this is
    /// still taken whole).
    public var groupCommitEventsMax = 20_000
    /// Uncompressed blocks the query cache keeps.
    public var blockCacheBlocksMax = 64
    /// Blocks a query reads ahead, several at once (at most 192 KiB each, uncompressed).
    public var queryPrefetchBlocks = 128
    /// Datagrams read per system call (recvmmsg) on the UDP socket; valid ones of one read go to
    /// the writer as one job.
    public var udpReadDatagramsMax = 32
    /// A log block holds at most this many records / uncompressed bytes (a block is closed once
    /// it reaches either; the record that crosses `blockBytesMax` still goes in).
    public var blockRecordsMax = 512
    public var blockBytesMax = 64 * 1024
    /// One record in its log encoding (`Record.encode`). Validated events stay far below it
    /// (32 KiB of JSON, the stamps, seven bounded strings); the writer refuses a larger record
    /// and so does every receiver of records from the network.
    public var recordBytesMax = 64 * 1024
    /// What the reader accepts as one block's payload (stored or uncompressed). The writer never
    /// produces more: it closes a block at `blockBytesMax` and a record is at most
    /// `recordBytesMax`, so a payload is below `blockBytesMax + recordBytesMax`
    /// (`LimitsTests` holds the relation).
    public var blockPayloadBytesMax = 192 * 1024
    /// A segment file rolls over past this size.
    /// 64 MiB: start-up folds up to one segment (about 1.4 M records, ~2.5 s here) and memory holds
    /// its refs; larger segments mean fewer files per query (ARCHITECTURE, "segment size").
    public var segmentBytesMax = 64 * 1024 * 1024
    /// HTTP header bytes per request.
    public var headerBytesMax = 16 * 1024

    // Between nodes.

    /// Bytes of items (records, events, hits) one peer frame may carry. Receivers refuse frames
    /// over 4 MiB as sent (`FrameLimits`); senders split at this budget, which leaves room for the
    /// body's own framing (counts, lengths) and the header. A single item is at most
    /// `recordBytesMax`, far below it.
    public var frameItemBytesMax = 3 * 1024 * 1024
    /// Events and bytes waiting in one forward queue (per owner and kind) beyond what is in
    /// flight; past either, ingest for that owner answers 503.
    public var forwardQueueEventsMax = 50_000
    public var forwardQueueBytesMax = 64 * 1024 * 1024
    /// Forward batches in flight per owner and kind (a second one only early, see
    /// `forwardBatchEarlyEvents`), and events in one batch.
    public var forwardBatchesInFlightMax = 2
    public var forwardBatchEventsMax = 5_000
    /// While a batch is in flight, the next one leaves early (without waiting for that answer)
    /// only once this many events, or a quarter of `frameItemBytesMax`, wait: a frame's cost is
    /// mostly per frame, so frames grow with the load instead of shrinking as nodes are added.
    /// With nothing in flight a batch always leaves at once (no added latency when idle).
    public var forwardBatchEarlyEvents = 1_000
    /// Records in one catch-up page (bytes are bounded by `frameItemBytesMax`).
    public var catchUpPageRecordsMax = 5_000
    /// Catch-up plans waiting while one streams; more are dropped (the anti-entropy pass
    /// covers what they would have pulled).
    public var catchUpPlansQueuedMax = 4
    /// Members a node accepts in one list from a peer (gossip, a catch-up request's rings).
    public var membersMax = 1_024
    /// Outbound peer connections a node keeps (one per member; members beyond are not dialled).
    public var peerClientsMax = 1_024
    /// Requests in flight per peer connection, both ways: a client gets an error at once past it;
    /// a server stops reading the connection until answers drain below it (and until the
    /// socket is writable again).
    public var peerInFlightMax = 4_096

    public init() {}
}
