/// What `starling bench` sends, to where, how fast and for how long. A plain value: the
/// command builds it from flags, tests build it directly.
///
/// Units: `rate` is requests per second over all connections (a request is one HTTP
/// request, one datagram or one peer frame; batch and peer requests carry `batch` events
/// each). `rate == 0` is closed loop: every connection keeps `pipeline` requests in flight.
public enum BenchMode: String, Sendable, CaseIterable, Codable {
    /// `POST /v1/events`, one JSON event per request, keep-alive.
    case http
    /// `POST /v1/events`, a JSON array of `batch` events per request.
    case batch
    /// `GET /t.gif?sid=..&k=..&v=..`, one event per request.
    case pixel
    /// One JSON event per datagram to the node's UDP port (fire-and-forget).
    case udp
    /// The binary peer protocol: `hello`, then `forwardEvents` frames of `batch` events.
    case peer

    /// Whether requests get an answer (latency is measured only for those).
    public var isAnswered: Bool { self != .udp }
}

public struct BenchConfig: Sendable {
    public var mode: BenchMode
    public var host: String
    public var port: Int
    /// TCP connections (or UDP sockets).
    public var connections = 8
    /// Requests in flight per connection (closed loop), and the most an open-loop connection
    /// lets out before it queues (the queue time is part of the latency).
    public var pipeline = 1
    /// Requests per second over all connections; 0 = closed loop.
    public var rate: Double = 0
    /// Measured seconds (after the warm-up). nil: 10 s, or 60 s as a safety cap with `requests`.
    public var duration: Double?
    /// Measured requests over all connections (split evenly); nil: bounded by time only.
    public var requests: Int?
    /// Seconds of load before measuring starts (sent, answered, not counted).
    public var warmup: Double = 0
    /// Event-loop threads of the generator.
    public var threads = 1
    /// Distinct session ids; event n goes to session n mod `sessions`.
    public var sessions = 1_000
    /// Approximate size of one event as JSON, in bytes (the `value` is padded to reach it).
    public var eventBytes = 200
    /// Events per request for `batch` and `peer` (1 for the other modes).
    public var batch = 1
    /// Session ids are `<prefix><zero-padded number>`; `[A-Za-z0-9._-]`, so they need no escaping.
    public var sessionPrefix = "bench-"
    /// The id a peer-mode client says in its `hello` and frames (`[a-z0-9-]{1,32}`); must not be a member's id.
    public var clientID = "bench-client"
    /// After the last send, how long to wait for answers still in flight.
    public var drainTimeout = 5.0
    public var connectTimeout = 2.0
    /// Ring routing (`--route ring`): each connection goes straight to a session owner and writes
    /// only that owner's sessions (`BenchRouting`); empty: every connection to `host:port`.
    public var routes: [BenchRoute] = []

    public init(mode: BenchMode, host: String, port: Int) {
        self.mode = mode
        self.host = host
        self.port = port
    }

    /// Default measured time when none is given.
    public static let defaultDuration = 10.0
    /// Time cap when only `requests` bounds the run (a slow server must not make it endless).
    public static let requestsOnlyTimeCap = 60.0
    /// Longest accepted `duration` and `warmup`.
    public static let secondsMax = 3_600.0
    public static let connectionsMax = 4_096
    public static let pipelineMax = 1_024
    public static let batchMax = 10_000
    /// Events must stay under the server's 32 KiB limit (and 8 KiB for datagrams).
    public static let eventBytesMax = 30_000
    public static let udpEventBytesMax = 8_000

    /// The measured time limit actually used.
    public var timeLimit: Double {
        duration ?? (requests != nil ? Self.requestsOnlyTimeCap : Self.defaultDuration)
    }

    /// Events in one request.
    public var eventsPerRequest: Int { mode == .batch || mode == .peer ? batch : 1 }

    public var isOpenLoop: Bool { rate > 0 }

    /// The first problem with the settings, worded for the user; nil when usable.
    public func problem() -> String? {
        if host.isEmpty { return "the target host is empty" }
        if !routes.isEmpty && !(mode == .http || mode == .batch || mode == .pixel) { return "--route ring applies to http, batch and pixel" }
        if routes.contains(where: { $0.sessions.isEmpty || $0.sessions.contains { !(0..<sessions).contains($0) } }) {
            return "a route holds no session or one outside 0..<sessions"
        }
        if !(1...65535).contains(port) { return "the target port \(port) is not 1...65535" }
        if !(1...Self.connectionsMax).contains(connections) { return "--connections must be 1...\(Self.connectionsMax)" }
        if !(1...Self.pipelineMax).contains(pipeline) { return "--pipeline must be 1...\(Self.pipelineMax)" }
        if !(rate >= 0 && rate <= 10_000_000) { return "--rate must be 0 (closed loop) ... 10,000,000 requests/s" }
        if let d = duration, !(d > 0 && d <= Self.secondsMax) { return "--duration must be > 0 and at most \(Int(Self.secondsMax)) s" }
        if let r = requests, r < 1 { return "--requests must be at least 1" }
        if !(warmup >= 0 && warmup <= Self.secondsMax) { return "--warmup must be 0...\(Int(Self.secondsMax)) s" }
        if !(1...64).contains(threads) { return "--threads must be 1...64" }
        if !(1...100_000_000).contains(sessions) { return "--sessions must be 1...100,000,000" }
        let maxBytes = mode == .udp ? Self.udpEventBytesMax : Self.eventBytesMax
        if !(1...maxBytes).contains(eventBytes) { return "--event-bytes must be 1...\(maxBytes) for \(mode.rawValue)" }
        if !(1...Self.batchMax).contains(batch) { return "--batch must be 1...\(Self.batchMax)" }
        if batch > 1 && !(mode == .batch || mode == .peer) { return "--batch applies to --mode batch and peer only" }
        if eventsPerRequest * (eventBytes + 64) > (mode == .peer ? 4 << 20 : 1 << 20) - 4_096 {
            return "--batch \(batch) × --event-bytes \(eventBytes) exceeds the request size limit (1 MiB HTTP, 4 MiB peer frame)"
        }
        if sessionPrefix.isEmpty || sessionPrefix.utf8.count > 64
            || !sessionPrefix.utf8.allSatisfy({ Self.isPlainByte($0) }) {
            return "the session prefix must be 1...64 of [A-Za-z0-9._-]"
        }
        let cid = clientID.utf8
        if cid.isEmpty || cid.count > 32 || !cid.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) {
            return "the client id must be 1...32 of [a-z0-9-]"
        }
        if !(drainTimeout >= 0 && drainTimeout <= 600) { return "--drain-timeout must be 0...600 s" }
        if !(connectTimeout > 0 && connectTimeout <= 60) { return "--connect-timeout must be > 0 and at most 60 s" }
        return nil
    }

    static func isPlainByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F
    }

    /// Measured requests for connection `index`: `requests` split as evenly as possible.
    public func quota(connection index: Int) -> Int? {
        guard let requests else { return nil }
        return requests / connections + (index < requests % connections ? 1 : 0)
    }
}
