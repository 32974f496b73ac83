import Dispatch
import Synchronization
import StarlingCore
import StarlingLog

/// What a node remembers about its cluster in `DIR/cluster.meta` (JSON):
/// the cluster id, its own incarnation, and the peer addresses of members it has seen,
/// so a restart with the same `--data` rejoins as the same member with or without `--join`.
public struct ClusterMeta: Sendable, Equatable {
    public var clusterID: UInt64
    public var incarnation: UInt64
    public var peers: [String]

    public init(clusterID: UInt64 = 0, incarnation: UInt64 = 0, peers: [String] = []) {
        self.clusterID = clusterID
        self.incarnation = incarnation
        self.peers = peers
    }

    static func path(_ dir: String) -> String { dir + "/cluster.meta" }

    public static func load(_ dir: String) -> ClusterMeta? {
        guard let bytes = FileIO.readFile(path(dir)), let v = try? JSONParser.parse(bytes), case .object(let o) = v,
              case .string(let cid)? = o["cluster_id"], let id = UInt64(cid, radix: 16),
              case .number(let inc)? = o["incarnation"], let incarnation = UInt64(inc) else { return nil }
        var peers: [String] = []
        if case .array(let list)? = o["peers"] {
            for case .string(let p) in list { peers.append(p) }
        }
        return ClusterMeta(clusterID: id, incarnation: incarnation, peers: peers)
    }

    public func save(_ dir: String) throws {
        var out: [UInt8] = []
        JSONWriter.write(.object(JSONObject([
            ("cluster_id", .string(String(clusterID, radix: 16))),
            ("incarnation", .number(String(incarnation))),
            ("peers", .array(peers.sorted().map { .string($0) })),
        ])), into: &out)
        out.append(0x0A)
        try FileIO.writeFileAtomically(Self.path(dir), out)
    }
}

/// The one writer of `DIR/cluster.meta`. Changes are made under its lock; saves run on its own
/// serial queue (off the event loops), each writing the newest state through a temporary file
/// and a rename, so saves never interleave (several event loops used to save through the same
/// temporary name at once, which could leave invalid JSON, and a restart without `--join`
/// would then found a new cluster) and a later state is never overwritten by an older one.
final class MetaStore: Sendable {
    struct State {
        var meta: ClusterMeta
        var version: UInt64 = 0
        var savedVersion: UInt64 = 0
    }
    let dir: String
    let state: Mutex<State>
    let queue = DispatchQueue(label: "starling.cluster-meta")
    let onError: @Sendable (String) -> Void

    /// Saves `meta` at once (the start must not go on without it), then takes changes.
    init(dir: String, meta: ClusterMeta, onError: @escaping @Sendable (String) -> Void) throws {
        self.dir = dir
        self.onError = onError
        try meta.save(dir)
        state = Mutex(State(meta: meta))
    }

    var current: ClusterMeta { state.withLock { $0.meta } }

    /// Applies `change`; if it changed the state, a save of the newest state is queued.
    @discardableResult
    func update<T>(_ change: (inout ClusterMeta) -> T) -> T {
        let (result, changed): (T, Bool) = state.withLock { s in
            let before = s.meta
            let r = change(&s.meta)
            guard s.meta != before else { return (r, false) }
            s.version += 1
            return (r, true)
        }
        if changed { queue.async { self.saveNewest() } }
        return result
    }

    /// Runs on `queue`: writes the newest state unless it is already on disk.
    func saveNewest() {
        let (meta, version): (ClusterMeta?, UInt64) = state.withLock { s in
            s.version > s.savedVersion ? (s.meta, s.version) : (nil, 0)
        }
        guard let meta else { return }
        do {
            try meta.save(dir)
            state.withLock { $0.savedVersion = max($0.savedVersion, version) }
        } catch {
            onError("saving cluster.meta failed: \(error)")
        }
    }

    /// Waits until every queued save has run.
    func flush() { queue.sync {} }
}
