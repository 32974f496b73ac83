import StarlingCore

/// One part of an ingest request: the events of one owner, as the shell prepared them on its I/O
/// thread (validated; stamped and encoded when their session is known).
public enum IngestPart: Sendable {
    /// Events this node owns: appended by this node's storage (`.appendIncoming`).
    case own([IncomingEvent], bytes: Int)
    /// Events of known sessions stamped for `owner` (`node` = the owner), in their log encoding:
    /// the owner appends them without parsing (`forwardRecords`).
    case records(owner: String, [RecordBatch.Item])
    /// Identity-only events, whose session the owner of their identity resolves (`forwardEvents`).
    case events(owner: String, [ForwardedEvent])
}

/// The sending side of forwarding: an ingest request is split by owner; this node's part goes to
/// its storage, the others wait in per-owner queues (`ForwardBatcher`) and leave in batches, so
/// frames grow with load. The request is answered (`.ingested`) once every part is stored on `rf`
/// nodes, or with the first failure.
extension ClusterNode {
    /// A request whose parts are still out.
    struct PendingIngest: Sendable {
        var parts: Int
        var stored = 0
        var error: IngestError?
    }

    /// Forward queues are per owner and per kind: stamped records and JSON events travel in
    /// different frames.
    struct ForwardKey: Hashable, Sendable {
        var owner: String
        var json: Bool
    }

    /// One request's piece for one owner (it fits a frame), waiting in that owner's queue.
    struct ForwardPiece: Sendable {
        enum Payload: Sendable {
            case records([RecordBatch.Item])
            case events([ForwardedEvent])
        }
        /// The part's ticket (`Waiting.ingestPart`).
        var part: UInt64
        var payload: Payload
        /// The request's trace, carried by the frame that takes this piece.
        var trace: TraceContext? = nil
    }

    /// An item's bytes in a frame body (what `Limits.frameItemBytesMax` bounds).
    static func size(_ r: RecordBatch.Item) -> Int { r.record.count + FrameBudget.itemOverhead }
    static func size(_ e: ForwardedEvent) -> Int { e.json.count + e.ip.utf8.count + FrameBudget.itemOverhead }

    /// Stores a validated request: `parts` as `IngestRoute` grouped it. `.ingested(ticket:)` answers
    /// with the number of events stored once every part is on `rf` nodes, or the first failure.
    /// `trace`: the request's trace (its span on this node as the parent), which the frames that
    /// carry its parts and their replicas carry on.
    public mutating func ingest(_ parts: [IngestPart], ip: String, transport: UInt8, ticket: UInt64, now: Int64,
                                trace: TraceContext? = nil) -> [ClusterDirective] {
        if let reason = unavailableReason() {
            out.append(.ingested(ticket: ticket, result: .failure(reason)))
            return take()
        }
        // A part's share can exceed one frame (1 MiB of tiny events makes several MiB of records):
        // it goes in pieces that each fit, and the queue packs whole pieces into frames.
        var pieces: [(key: ForwardKey, payload: ForwardPiece.Payload, count: Int, bytes: Int)] = []
        var own: [(events: [IncomingEvent], bytes: Int)] = []
        for part in parts {
            switch part {
            case .own(let events, let bytes):
                own.append((events, bytes))
            case .records(let owner, let items):
                let sizes = items.map(Self.size)
                for run in runs(sizes) {
                    pieces.append((ForwardKey(owner: owner, json: false), .records(Array(items[run])), run.count, sizes[run].reduce(0, +)))
                }
            case .events(let owner, let events):
                let sizes = events.map(Self.size)
                for run in runs(sizes) {
                    pieces.append((ForwardKey(owner: owner, json: true), .events(Array(events[run])), run.count, sizes[run].reduce(0, +)))
                }
            }
        }
        guard !own.isEmpty || !pieces.isEmpty else {
            out.append(.ingested(ticket: ticket, result: .success(0)))
            return take()
        }
        // Registered before any part can finish (a full queue answers at once).
        precondition(ingests[ticket] == nil, "ingest ticket \(ticket) is already pending (\(ingests.count) requests in progress)")
        ingests[ticket] = PendingIngest(parts: own.count + pieces.count)
        for o in own {
            let t = newTicket(.ingestPart(request: ticket, count: o.events.count))
            out.append(.appendIncoming(o.events, ip: ip, transport: transport, bytes: o.bytes, ticket: t, traces: trace.map { [$0] } ?? []))
        }
        let forwarded = pieces.reduce(0) { $0 + $1.count }
        if forwarded > 0 { out.append(.count(.forwardedEvents(forwarded))) }
        for p in pieces {
            let t = newTicket(.ingestPart(request: ticket, count: p.count))
            enqueueForward(ForwardPiece(part: t, payload: p.payload, trace: trace), to: p.key, count: p.count, bytes: p.bytes, now: now)
        }
        return take()
    }

    func runs(_ sizes: [Int]) -> [Range<Int>] {
        FrameBudget.runs(sizes: sizes, maxBytes: settings.limits.frameItemBytesMax, maxCount: settings.limits.forwardBatchEventsMax)
    }

    /// One part of request `request` is stored (nil) or failed; the request is answered with the
    /// last part.
    mutating func partDone(request: UInt64, count: Int, error: IngestError?) {
        guard var p = ingests[request] else { return }
        p.parts -= 1
        if let error {
            if p.error == nil { p.error = error }
        } else {
            p.stored += count
        }
        guard p.parts == 0 else {
            ingests[request] = p
            return
        }
        ingests[request] = nil
        out.append(.ingested(ticket: request, result: p.error.map { .failure($0) } ?? .success(p.stored)))
    }

    /// A piece's forward is over (nil: stored by the owner and its replicas).
    mutating func pieceDone(part: UInt64, error: IngestError?) {
        guard case .ingestPart(let request, let count)? = tickets.removeValue(forKey: part) else { return }
        partDone(request: request, count: count, error: error)
    }

    mutating func enqueueForward(_ piece: ForwardPiece, to key: ForwardKey, count: Int, bytes: Int, now: Int64) {
        guard peerAddress(of: key.owner) != nil else {
            return pieceDone(part: piece.part, error: IngestError(status: 503, code: "owner_unavailable", message: "owner \(key.owner) has no known address"))
        }
        var queue = forwardQueues[key] ?? ForwardBatcher(limits: settings.limits)
        guard queue.enqueue(piece, count: count, bytes: bytes) else {
            out.append(.count(.forwardQueueFull(count)))
            return pieceDone(part: piece.part, error: IngestError(status: 503, code: "overloaded", message: "forward queue to \(key.owner) is full; retry later"))
        }
        forwardQueues[key] = queue
        pumpForwards(key, now: now)
    }

    /// Sends the batches that may leave now for `key`.
    mutating func pumpForwards(_ key: ForwardKey, now: Int64) {
        while var queue = forwardQueues[key], let batch = queue.nextBatch() {
            forwardQueues[key] = queue
            guard let peer = peerAddress(of: key.owner) else {
                forwardQueues[key]?.finished()
                for piece in batch {
                    pieceDone(part: piece.part, error: IngestError(status: 503, code: "owner_unavailable", message: "owner \(key.owner) has no known address"))
                }
                continue
            }
            var records: [RecordBatch.Item] = []
            var events: [ForwardedEvent] = []
            for piece in batch {
                switch piece.payload {
                case .records(let r): records.append(contentsOf: r)
                case .events(let e): events.append(contentsOf: e)
                }
            }
            out.append(.count(.forwardBatch))
            let body = key.json ? EventBatch(events: events).encode() : RecordBatch(items: records).encode()
            request(key.json ? .forwardEvents : .forwardRecords, body: body, to: peer,
                    what: .forward(parts: batch.map(\.part), key: key), timeoutMs: settings.forwardTimeoutMs, now: now,
                    traces: TraceContext.distinct(batch.lazy.compactMap(\.trace), max: Frame.tracesMax))
        }
    }

    /// A forward batch got its answer (nil: stored by the owner and its replicas), or failed.
    mutating func forwarded(parts: [UInt64], key: ForwardKey, error: IngestError?, now: Int64) {
        for p in parts { pieceDone(part: p, error: error) }
        forwardQueues[key]?.finished()
        pumpForwards(key, now: now)
    }
}

extension ForwardResult {
    /// The answer to a forward: 202 with the events stored, or the failure.
    public init(_ result: Result<Int, IngestError>) {
        switch result {
        case .success(let n): self.init(status: 202, code: "", message: "", accepted: UInt32(clamping: n))
        case .failure(let e): self.init(status: UInt16(clamping: e.status), code: e.code, message: e.message, accepted: 0,
                                        index: e.index.map { Int32(clamping: $0) } ?? -1)
        }
    }
}

extension Result {
    /// The error of a failure, nil for a success.
    public var failureValue: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
