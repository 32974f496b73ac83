import StarlingCore

/// A request frame that arrived on one connection: its answer goes back on the same connection.
public struct Inbound: Sendable, Hashable {
    /// The shell's handle for the connection (any number unique among its open connections).
    public var connection: UInt64
    public var requestID: UInt64
    /// The sending node's id (from the frame header).
    public var sender: String
    public init(connection: UInt64, requestID: UInt64, sender: String) {
        self.connection = connection
        self.requestID = requestID
        self.sender = sender
    }
}

/// Why records are handed to the storage as replicas.
public enum ReplicaSource: Sendable, Equatable {
    /// A `replicate` frame from the owner `sender`, which passed fencing in this node's view.
    case replicate(sender: String)
    /// A catch-up page from the peer at this address.
    case catchUp(peer: String)
}

/// What a catch-up responder should read from its storage for one page: the records received at
/// or after `since` of every routing key `selector` wants, keys in sorted order from `cursor`.
public struct CatchUpRead: Sendable, Equatable {
    public var selector: CatchUpSelector
    public var since: Int64
    public var cursor: CatchUpCursor?
    public var maxRecords: Int
    public var maxBytes: Int
}

/// Where a catch-up page starts: after `key` (`skip` 0), or inside it past its first `skip` items.
public struct CatchUpCursor: Sendable, Equatable {
    public var key: String
    public var skip: Int
    public init(key: String, skip: Int) {
        self.key = key
        self.skip = skip
    }
}

/// Which keys a catch-up responder sends (pure). The rings are built by whoever runs the read
/// (building one sorts `vnodes` points per member, so the shell does it off the event loop and
/// caches it); `wants` applies the `Placement` source rules.
public struct CatchUpSelector: Sendable, Equatable {
    public var mode: CatchUpRequest.Mode
    public var responder: String
    public var requester: String
    public var rf: Int
    /// The requester's view of the ring (sorted).
    public var members: [String]
    /// The requester's previous ring for a handoff (empty: none).
    public var previousMembers: [String]

    public func wants(_ key: String, ring: HashRing, previous: HashRing?) -> Bool {
        switch mode {
        case .handoff:
            return Placement.sendsHandoff(key: key, responder: responder, requester: requester, current: ring, previous: previous, rf: rf)
        case .standIn:
            return Placement.sendsStandIn(key: key, responder: responder, requester: requester, current: ring, rf: rf)
        }
    }
}

/// What the node's shell reports: one count per event, by name (the shell maps them to metrics).
public enum ClusterCount: Sendable, Equatable {
    /// A frame or body that could not be decoded, or a request over a bound.
    case peerProtocolError
    /// A record from a peer refused by `Record.problem`.
    case peerRecordRefused
    /// A write group that could not reach all of its followers.
    case replicationFailure
    /// Records a catch-up page brought.
    case catchUpRecords(Int)
    /// A forwarded record refused because the sender is not a ring member.
    case notAMember(Int)
    /// Events refused (503) because the forward queue to their owner was full.
    case forwardQueueFull(Int)
    /// Events of ingest requests sent on to their owners.
    case forwardedEvents(Int)
    /// One frame of forwarded events left for an owner (events forwarded / batches = the mean
    /// forward frame, which grows with load).
    case forwardBatch
    /// One replication frame left for a follower with `records` records (records shipped /
    /// frames = the mean replication frame: with vnodes an owner's followers are all the other
    /// members, so it shrinks as nodes are added).
    case replicaBatch(records: Int)
}

/// The ring as the node sees it, after a change (for the shell: metrics, connections, peers to
/// remember).
public struct RingView: Sendable, Equatable {
    public var members: [String]
    public var epoch: UInt64
    public var all: [MemberInfo]
    /// This node's share of the key space.
    public var share: Double
    /// Members that were in the previous ring and are not now (their connections may be stalled).
    public var dropped: [MemberInfo]
}

/// What to read from the identity index.
public enum IdentityRead: Sendable, Equatable {
    /// The session the identity was last linked to.
    case resolve(SubjectKey)
    /// The sessions linked to the identity.
    case links(SubjectKey)
}

public enum LogLevel: Sendable, Equatable { case info, warning, error }

/// What `ClusterNode` asks its shell to do. The shell only interprets these: sockets, timers, the
/// storage engine. Every asynchronous result comes back as an input with the same ticket.
public enum ClusterDirective: Sendable {
    /// Write `frame` to the member at this peer address (connect first if needed).
    case send(peer: String, frame: Frame)
    /// Answer a request on the connection it came on.
    case respond(Inbound, Frame)
    /// A write group's replication is decided: nil = every follower stored it (the ack rule);
    /// `startedAt` is when it began (for the replication latency metric).
    case groupReplicated(group: UInt64, error: IngestError?, startedAt: Int64)
    /// Append records written elsewhere; then `replicaStored(ticket:result:)`.
    case storeReplica([Record], ticket: UInt64, source: ReplicaSource)
    /// Append records forwarded by a ring member as this node's own (deduped, replicated);
    /// then `appended(ticket:result:)`.
    /// `traces`: the forward frame's trace contexts, for the replication frames of its group.
    case appendOwned([(record: Record, clientID: Bool)], transport: UInt8, bytes: Int, ticket: UInt64, traces: [TraceContext])
    /// Read one catch-up page; then `catchUpRead(ticket:records:next:)`.
    case readCatchUp(CatchUpRead, ticket: UInt64)
    /// Append validated events this node owns (they are stamped, deduped and replicated by the
    /// storage's group commit); then `appended(ticket:result:)`.
    case appendIncoming([IncomingEvent], ip: String, transport: UInt8, bytes: Int, ticket: UInt64, traces: [TraceContext])
    /// An ingest request (`ingest(_:ip:transport:ticket:now:)`) is answered: the events stored on
    /// `rf` nodes, or the first failure of any of its parts.
    case ingested(ticket: UInt64, result: Result<Int, IngestError>)
    /// Read this node's own answer to a query (one page of at most `byteBudget` bytes); then
    /// `queryRead(ticket:result:now:)`.
    case readQuery(QueryRequest, ticket: UInt64, byteBudget: Int)
    /// A fan-out is complete: the members' answers merged.
    case queryAnswered(ticket: UInt64, QueryMerge.Merged)
    /// Store a link (`/v1/identify`) in the log; then `linkStored(ticket:result:)`.
    case appendLink(sessionID: String, userID: String?, terminalID: String?, ticket: UInt64)
    /// Read this node's identity index; then `identityRead(ticket:sessionID:links:)`.
    case readIdentity(IdentityRead, ticket: UInt64)
    /// An `identify` call is stored on every owner concerned (nil), or why not.
    case identified(ticket: UInt64, error: IngestError?)
    /// The session an identity resolves to (nil: unknown or its owner did not answer).
    case resolved(ticket: UInt64, sessionID: String?)
    case linksAnswered(ticket: UInt64, [NodeIndex.Link])
    case ringChanged(RingView)
    /// Drop the connection to this peer (an unanswered request: TCP may be stuck in backoff).
    case resetConnection(peer: String)
    case count(ClusterCount)
    case log(LogLevel, String)
}
