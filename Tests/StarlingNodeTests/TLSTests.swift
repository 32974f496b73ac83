import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import StarlingCluster
import StarlingCore
import Testing
@testable import StarlingNode

/// Makes a CA (once per directory) and new certificates with `starling cert` (Debian's openssl).
func makeCerts(_ dir: String, _ ids: [String]) throws {
    guard let bin = starlingBinary() else { throw SimpleHTTPClient.ClientError(description: "starling binary not found") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bin)
    p.arguments = ["cert", dir] + ids
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw SimpleHTTPClient.ClientError(description: "starling cert failed") }
}

/// `curl` over HTTPS, trusting `ca`: the status, or nil when TLS failed.
func curlStatus(_ url: String, ca: String) -> Int? {
    let p = Process()
    let out = Pipe()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    p.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert", ca, url]
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return nil }
    p.waitUntilExit()
    let code = Int(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0
    return code == 0 ? nil : code
}

@Suite(.serialized) struct TLSTests {
    func tempDir() -> String { NSTemporaryDirectory() + "starling-tls-" + UUID().uuidString }

    /// HTTPS with the configured certificate; certificates rotate under load (SIGHUP's reload)
    /// with no failed request; a certificate of a new CA is served after the next reload.
    @Test func httpsRotatesCertificatesWithoutARestart() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCerts(dir, [])
        let node = try LiveNode { $0.httpTLS = TLSFiles(cert: dir + "/http.pem", key: dir + "/http.key") }
        defer { node.stop() }
        let url = "https://127.0.0.1:\(node.port)/healthz"
        #expect(curlStatus(url, ca: dir + "/ca.pem") == 200)
        #expect((try? node.call("GET", "/healthz"))?.status != 200, "plain HTTP is not served on a TLS listener")

        // Rotation under load: requests keep going while the certificate is replaced.
        let results = Mutex_<[Int?]>([])
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            for _ in 0..<40 { let r = curlStatus(url, ca: dir + "/ca.pem"); results.set(results.get() + [r]) }
            done.signal()
        }
        for _ in 0..<3 {
            usleep(150_000)
            try makeCerts(dir, [])          // new http.pem/key, same CA
            node.server.reloadTLS()
        }
        done.wait()
        #expect(results.get().count == 40 && results.get().allSatisfy { $0 == 200 }, "\(results.get())")
        #expect(metricValue(node.server.engine.metrics, #"starling_tls_reloads_total{result="ok"}"#) == 3)

        // A certificate of another CA: served after the reload, and only then.
        let other = tempDir()
        defer { try? FileManager.default.removeItem(atPath: other) }
        try makeCerts(other, [])
        for f in ["http.pem", "http.key"] {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
            try FileManager.default.copyItem(atPath: other + "/" + f, toPath: dir + "/" + f)
        }
        #expect(curlStatus(url, ca: other + "/ca.pem") == nil, "not before the reload")
        node.server.reloadTLS()
        #expect(curlStatus(url, ca: other + "/ca.pem") == 200)
        #expect(curlStatus(url, ca: dir + "/ca.pem") == nil)
        // A file that does not load leaves the current certificate, counted.
        try Data("not a key".utf8).write(to: URL(fileURLWithPath: dir + "/http.key"))
        node.server.reloadTLS()
        #expect(metricValue(node.server.engine.metrics, #"starling_tls_reloads_total{result="failed"}"#) == 1)
        #expect(curlStatus(url, ca: other + "/ca.pem") == 200)
    }

    /// mTLS between nodes: members with certificates of the cluster CA form a cluster and
    /// replicate; a node with a certificate of another CA is refused at the handshake, counted.
    @Test func membersNeedACertificateOfTheCluster() throws {
        let dir = tempDir(), rogue = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: rogue) }
        try makeCerts(dir, ["a", "b"])
        try makeCerts(rogue, ["c"])
        func tls(_ d: String, _ id: String) -> TLSFiles { TLSFiles(cert: "\(d)/\(id).pem", key: "\(d)/\(id).key", ca: "\(d)/ca.pem") }
        let a = try LiveNode(id: "a") { $0.rf = 2; $0.peerTLS = tls(dir, "a") }
        defer { a.stop() }
        let b = try LiveNode(id: "b") {
            $0.rf = 2
            $0.peerTLS = tls(dir, "b")
            $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        }
        defer { b.stop() }
        func up(_ n: LiveNode) -> Set<String> {
            let m = ((try? n.json("GET", "/v1/cluster").1["members"] as? [[String: Any]]) ?? nil) ?? []
            return Set(m.filter { $0["status"] as? String == "up" }.compactMap { $0["id"] as? String })
        }
        #expect(eventually(10) { up(a) == ["a", "b"] && up(b) == ["a", "b"] })
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 })
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"tls","key":"k","value":1}"#).status == 202)
        #expect(b.server.engine.session("tls", query: EventQuery()).0.records.count == 1, "replicated over mTLS")

        // Rotation under load: new certificates of the same CA, reloaded on both while writes
        // stream; every write is acknowledged. Then connections are dropped, so new handshakes
        // use the new certificates on both sides, and writes still replicate.
        let statuses = Mutex_<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        let port = a.port
        DispatchQueue.global().async {
            for i in 0..<60 {
                let r = try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events",
                                                      body: Array(#"{"session_id":"rot\#(i % 7)","key":"k","value":\#(i)}"#.utf8))
                statuses.set(statuses.get() + [r?.status ?? -1])
                usleep(20_000)
            }
            done.signal()
        }
        usleep(300_000)
        try makeCerts(dir, ["a", "b"])
        for n in [a, b] { n.server.reloadTLS() }
        done.wait()
        #expect(statuses.get().count == 60 && statuses.get().allSatisfy { $0 == 202 }, "\(statuses.get())")
        for n in [a, b] {
            for peer in n.server.api.cluster.clients.withLock({ Array($0.values) }) { peer.resetConnection() }
        }
        #expect(eventually(10) { (try? a.call("POST", "/v1/events", #"{"session_id":"after-rotation","key":"k","value":1}"#).status) == 202 })
        #expect(eventually(5) { b.server.engine.session("after-rotation", query: EventQuery()).0.records.count >= 1 })
        #expect(metricValue(a.server.engine.metrics, #"starling_tls_reloads_total{result="ok"}"#) == 2, "peer server and peer client contexts")

        let c = try LiveNode(id: "c") {
            $0.rf = 2
            $0.peerTLS = tls(rogue, "c")
            $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)]
        }
        defer { c.stop() }
        #expect(eventually(10) { (metricValue(a.server.engine.metrics, "starling_peer_tls_refused_total") ?? 0) >= 1 })
        Thread.sleep(forTimeInterval: 1)
        #expect(up(a) == ["a", "b"], "a node with a certificate of another CA is no member")
        // Plain bytes on the peer port: no TLS, refused and counted too.
        let before = metricValue(a.server.engine.metrics, "starling_peer_tls_refused_total") ?? 0
        let plain = try PeerClientTests.Client(port: a.server.peerPort!)
        plain.send(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "x", body: Hello(nodeID: "a", peer: "", http: "", incarnation: 0).encode()))
        #expect(eventually(5) { (metricValue(a.server.engine.metrics, "starling_peer_tls_refused_total") ?? 0) > before })
    }

    /// Over mTLS, a process with TLS but no certificate that names a member's id is a client:
    /// it cannot replicate, pull or speak for membership; its events take the client path.
    @Test func aTLSClientWithoutACertificateIsOnlyAClient() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCerts(dir, ["a", "b"])
        func tls(_ id: String) -> TLSFiles { TLSFiles(cert: "\(dir)/\(id).pem", key: "\(dir)/\(id).key", ca: "\(dir)/ca.pem") }
        let a = try LiveNode(id: "a") { $0.rf = 2; $0.peerTLS = tls("a") }
        defer { a.stop() }
        let b = try LiveNode(id: "b") { $0.rf = 2; $0.peerTLS = tls("b"); $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)] }
        defer { b.stop() }
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 })

        // A TLS client that trusts the cluster CA but presents no certificate.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var config = TLSConfiguration.makeClientConfiguration()
        config.trustRoots = .file(dir + "/ca.pem")
        config.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: config)
        let inbox = Inbox()
        let channel = try tlsPeerChannel(group: group, context: context, port: a.server.peerPort!, inbox: inbox)
        defer { channel.close(promise: nil) }
        func ask(_ frame: Frame) throws -> Frame? {
            try channel.writeAndFlush(frame).wait()
            return inbox.next(within: 5)
        }
        let hello = Hello(nodeID: "b", peer: "127.0.0.1:1", http: "127.0.0.1:2", incarnation: 99)
        #expect(try ask(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: "b", body: hello.encode()))?.kind == .helloAck)
        let record = Record(kind: .event, ts: 1, receivedAt: 1, sessionID: "forged", eventID: "f1", key: "k",
                            json: Array(#"{"session_id":"forged","key":"k","value":1}"#.utf8))
        let refused = try ask(Frame(kind: .replicate, clusterID: 0, requestID: 2, sender: "b", body: ReplicateBatch(records: [record.encoded]).encode()))
        #expect(refused?.kind == .error)
        #expect(refused.flatMap { try? ErrorBody.decode($0.body).code } == "unauthenticated")
        try channel.writeAndFlush(Frame(kind: .membership, clusterID: 0, requestID: 3, sender: "b", body: [1, 2, 3])).wait()
        #expect(eventually(5) { (metricValue(a.server.engine.metrics, "starling_peer_unauthenticated_frames_total") ?? 0) == 2 })
        #expect(a.server.engine.session("forged", query: EventQuery()).0.records.isEmpty)
        let batch = EventBatch(events: [ForwardedEvent(transport: 0, ip: "6.6.6.6", receivedAt: 1,
                                                       json: Array(#"{"session_id":"tls-client","key":"k","value":1}"#.utf8))])
        let answer = try ask(Frame(kind: .forwardEvents, clusterID: 0, requestID: 4, sender: "b", body: batch.encode()))
        #expect(answer.flatMap { try? ForwardResult.decode($0.body).status } == 202)
        let list = events(try a.json("GET", "/v1/sessions/tls-client").1)
        #expect(list.count == 1 && list.first?["ip"] as? String == "127.0.0.1", "client semantics, not a member's forward")
    }
}

extension TLSTests {
    /// `--metrics-tls on`: the metrics listener serves HTTPS with the HTTP certificate, and
    /// nothing in plain HTTP.
    @Test func metricsOverHTTPS() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCerts(dir, [])
        let node = try LiveNode {
            $0.httpTLS = TLSFiles(cert: dir + "/http.pem", key: dir + "/http.key")
            $0.metricsListen = HostPort(host: "127.0.0.1", port: 0)
            $0.metricsTLS = true
        }
        defer { node.stop() }
        let port = try #require(node.server.metricsPort)
        #expect(curlStatus("https://127.0.0.1:\(port)/metrics", ca: dir + "/ca.pem") == 200)
        let plain = try? SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/metrics")
        #expect(plain?.status != 200, "plain HTTP is not served on the TLS metrics listener")
    }

    /// A certificate of the cluster speaks for the node its CN names and no other: node c's
    /// certificate with a hello naming member b is refused at hello and counted; with c's own
    /// name it is a member's connection.
    @Test func aCertificateSpeaksOnlyForItsOwnNode() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCerts(dir, ["a", "b", "c"])
        let a = try LiveNode(id: "a") { $0.rf = 1; $0.peerTLS = TLSFiles(cert: "\(dir)/a.pem", key: "\(dir)/a.key", ca: "\(dir)/ca.pem") }
        defer { a.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var config = TLSConfiguration.makeClientConfiguration()
        config.trustRoots = .file(dir + "/ca.pem")
        config.certificateVerification = .noHostnameVerification
        config.certificateChain = [.certificate(try NIOSSLCertificate(file: dir + "/c.pem", format: .pem))]
        config.privateKey = .privateKey(try NIOSSLPrivateKey(file: dir + "/c.key", format: .pem))
        let context = try NIOSSLContext(configuration: config)
        func helloAnswer(naming id: String) throws -> Frame? {
            let inbox = Inbox()
            let channel = try tlsPeerChannel(group: group, context: context, port: a.server.peerPort!, inbox: inbox)
            defer { channel.close(promise: nil) }
            let hello = Hello(nodeID: id, peer: "127.0.0.1:1", http: "127.0.0.1:2", incarnation: 7)
            try channel.writeAndFlush(Frame(kind: .hello, clusterID: 0, requestID: 1, sender: id, body: hello.encode())).wait()
            return inbox.next(within: 5)
        }
        let before = metricValue(a.server.engine.metrics, "starling_peer_auth_refused_total") ?? 0
        let forged = try helloAnswer(naming: "b")
        #expect(forged?.kind == .refuse)
        #expect(forged.flatMap { try? Refuse.decode($0.body).reason }?.contains("certificate is for c") == true)
        #expect(metricValue(a.server.engine.metrics, "starling_peer_auth_refused_total") == before + 1)
        #expect(try helloAnswer(naming: "c")?.kind == .helloAck)
    }
}

extension TLSTests {
    /// The dialling side: a member's answer counts only when the server's certificate (already
    /// checked against the cluster CA in the handshake) names the node the `helloAck` names.
    /// The wiring (names read from the TLS handler) is what every mTLS test above goes through.
    @Test func aServersCertificateMustNameTheNodeItsAckNames() throws {
        let a = try LiveNode(id: "a")
        defer { a.stop() }
        let shell = a.server.api.cluster
        let sent = Hello(nodeID: "a", peer: "127.0.0.1:1", http: "127.0.0.1:2", incarnation: 1)
        let ack = Frame(kind: .helloAck, isResponse: true, clusterID: 1, requestID: 1, sender: "b",
                        body: Hello(nodeID: "b", peer: "127.0.0.1:3", http: "127.0.0.1:4", incarnation: 2).encode())
        let before = metricValue(a.server.engine.metrics, "starling_peer_auth_refused_total") ?? 0
        #expect(!shell.ackProves(sent: sent, ack: ack, certificateNames: ["c"], peer: "127.0.0.1:3"))
        #expect(!shell.ackProves(sent: sent, ack: ack, certificateNames: [], peer: "127.0.0.1:3"))
        #expect(metricValue(a.server.engine.metrics, "starling_peer_auth_refused_total") == before + 2)
        #expect(shell.ackProves(sent: sent, ack: ack, certificateNames: ["b"], peer: "127.0.0.1:3"))
        #expect(shell.ackProves(sent: sent, ack: ack, certificateNames: nil, peer: "127.0.0.1:3"))   // no TLS: nothing to check
    }
}

/// A TLS connection to a peer port that speaks frames, delivering what it receives to `inbox`.
func tlsPeerChannel(group: EventLoopGroup, context: NIOSSLContext, port: Int, inbox: Inbox) throws -> Channel {
    try ClientBootstrap(group: group).channelInitializer { ch in
        ch.eventLoop.makeCompletedFuture {
            let sync = ch.pipeline.syncOperations
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
            try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
            try sync.addHandler(MessageToByteHandler(PeerFrameEncoder(compress: false)))
            try sync.addHandler(inbox)
        }
    }.connect(host: "127.0.0.1", port: port).wait()
}

/// Frames a test connection received, in order.
final class Inbox: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let frames = Mutex<[Frame]>([])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        frames.withLock { $0.append(frame) }
    }

    func next(within seconds: Double) -> Frame? {
        var got: Frame?
        _ = eventually(seconds) {
            got = frames.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            return got != nil
        }
        return got
    }
}
