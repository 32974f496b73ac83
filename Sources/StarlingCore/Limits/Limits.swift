/// Every bound Starling enforces, in one place (names carry the qualifier last).
public struct Limits: Sendable, Equatable {
    /// One event as sent (its JSON text, or one NDJSON line). SPEC: 32 KiB, else 413 `event_too_large`.
    public var eventBytesMax = 32 * 1024
    /// One HTTP request body. SPEC: 1 MiB, else 413 `body_too_large`.
    public var bodyBytesMax = 1024 * 1024
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
    /// A log block holds at most this many records / uncompressed bytes.
    public var blockRecordsMax = 512
    public var blockBytesMax = 64 * 1024
    /// A segment file rolls over past this size.
    public var segmentBytesMax = 128 * 1024 * 1024
    /// HTTP header bytes per request.
    public var headerBytesMax = 16 * 1024

    public init() {}
}
