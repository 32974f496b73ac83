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
