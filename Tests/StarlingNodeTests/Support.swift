import Foundation
import Logging
import StarlingCore
import StarlingNode

/// A live node on ephemeral loopback ports with its own temp data directory.
final class LiveNode {
    let dir: String
    let server: StarlingServer
    let ownsDir: Bool

    init(id: String = "n1", dir: String? = nil, configure: (inout NodeConfig) -> Void = { _ in },
         clock: (@Sendable () -> Int64)? = nil) throws {
        self.dir = dir ?? (NSTemporaryDirectory() + "starling-node-test-" + UUID().uuidString)
        ownsDir = dir == nil
        var c = NodeConfig(id: id, dataDir: self.dir, http: HostPort(host: "127.0.0.1", port: 0),
                           peer: HostPort(host: "127.0.0.1", port: 0))
        c.udp = HostPort(host: "127.0.0.1", port: 0)
        c.rf = 1
        c.threads = 2
        configure(&c)
        var logger = Logger(label: "test.\(id)")
        logger.logLevel = .warning
        server = try StarlingServer(config: c, logger: logger, clock: clock ?? StarlingServer.systemMillis)
        try server.start()
    }

    var port: Int { server.httpPort! }

    func stop() { server.stop(drainSeconds: 5) }

    deinit {
        if ownsDir { try? FileManager.default.removeItem(atPath: dir) }
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String = "", headers: [(String, String)] = []) throws -> SimpleHTTPClient.Response {
        try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: method, path: path, headers: headers, body: Array(body.utf8))
    }

    func json(_ method: String, _ path: String, _ body: String = "", headers: [(String, String)] = []) throws -> (Int, [String: Any]) {
        let r = try call(method, path, body, headers: headers)
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
        return (r.status, obj)
    }
}

func errorCode(_ obj: [String: Any]) -> String? {
    (obj["error"] as? [String: Any])?["code"] as? String
}

func events(_ obj: [String: Any]) -> [[String: Any]] {
    obj["events"] as? [[String: Any]] ?? []
}

/// Polls `condition` until it holds or `seconds` pass (no fixed sleeps in tests).
func eventually(_ seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

/// 127.0.0.1:`port` as a socket address (tests that speak raw sockets).
func loopback(_ port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

/// Calls `body` with `addr` as the `sockaddr` pointer and length that bind, connect and sendto take.
func withSockaddr<T>(_ addr: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var a = addr
    return withUnsafePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
