import StarlingCluster
import StarlingCore

/// One destination of a ring-routing client: the node's HTTP address and the session numbers it
/// owns (the connections to it write only those).
public struct BenchRoute: Sendable, Equatable {
    public var node: String
    public var host: String
    public var port: Int
    public var sessions: [Int]

    public init(node: String, host: String, port: Int, sessions: [Int]) {
        self.node = node
        self.host = host
        self.port = port
        self.sessions = sessions
    }
}

/// A client that computes the ring (pure): given the members `/v1/cluster` lists and the ring's
/// parameters, each session number goes to the node that owns its session id, so no request needs
/// a hop to its owner (Kafka's partition-aware producers and Cassandra's token-aware drivers work
/// the same way). Members that own none of the sessions get no route.
public enum BenchRouting {
    /// A ring member's id and HTTP address.
    public typealias Member = (id: String, http: HostPort)

    public static func routes(ring members: [Member], vnodes: Int, prefix: String, sessions: Int) -> [BenchRoute] {
        let ring = HashRing(members: members.map(\.id), vnodes: vnodes)
        var owned: [String: [Int]] = [:]
        for n in 0..<sessions {
            guard let owner = ring.owner(of: Workload.sessionID(prefix: prefix, n: n, sessions: sessions)) else { continue }
            owned[owner, default: []].append(n)
        }
        return members.compactMap { m in
            guard let list = owned[m.id], !list.isEmpty else { return nil }
            return BenchRoute(node: m.id, host: m.http.host, port: m.http.port, sessions: list)
        }
    }

    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The routes from a node's `/v1/cluster` answer: its `ring` (member ids), `vnodes`, and each
    /// member's `http` address.
    public static func routes(clusterJSON body: [UInt8], prefix: String, sessions: Int) throws -> [BenchRoute] {
        guard case .object(let o)? = try? JSONParser.parse(body), case .array(let ringIDs)? = o["ring"],
              case .number(let v)? = o["vnodes"], let vnodes = Int(v), case .array(let list)? = o["members"] else {
            throw Unreadable(description: "the answer does not describe the ring (ring, vnodes, members)")
        }
        var http: [String: HostPort] = [:]
        for case .object(let m) in list {
            if case .string(let id)? = m["id"], case .string(let h)? = m["http"], let a = HostPort(h) { http[id] = a }
        }
        let members = ringIDs.compactMap { v -> Member? in
            guard case .string(let id) = v, let a = http[id] else { return nil }
            return (id, a)
        }
        guard members.count == ringIDs.count, !members.isEmpty else {
            throw Unreadable(description: "the ring names members without an HTTP address")
        }
        return routes(ring: members, vnodes: vnodes, prefix: prefix, sessions: sessions)
    }
}
