import ArgumentParser
import Dispatch
import Foundation

/// `starling dev`: a local cluster of N nodes on 127.0.0.1 as child processes.
struct DevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Start a local cluster of N nodes on 127.0.0.1 (node k: HTTP and UDP on 8080+k, peer on 7080+k).")

    @Option(help: "Number of nodes (1...9).") var nodes: Int = 3
    @Option(help: "Directory for the nodes' data (one subdirectory per node).") var data: String = ".starling-dev"
    @Option(help: "Copies of every event (default 2, or 1 for a single node).") var rf: Int?
    @Flag(help: "HTTPS on every node and mTLS between them, with a CA and certificates made (by openssl) in the data directory.") var tls = false
    @Flag(help: "Trace requests that carry a sampled traceparent; spans at GET /v1/admin/traces/ID on each node.") var tracing = false
    @Option(name: .customLong("otlp-endpoint"), help: "Export every node's spans by OTLP/HTTP JSON to http://HOST:PORT (an OpenTelemetry collector).") var otlpEndpoint: String?
    @Option(name: .customLong("base-port"), help: "HTTP/UDP port of node 1 minus one; peer ports are this minus 1000.") var basePort: Int = 8080

    func validate() throws {
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1...9") }
        guard basePort > 1000 && basePort + nodes < 65536 else { throw ValidationError("--base-port out of range") }
        if let rf, !(1...nodes).contains(rf) { throw ValidationError("--rf must be 1...\(nodes) for \(nodes) node(s)") }
    }

    func run() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var children: [Process] = []
        say("starling dev: starting \(nodes) node(s); data in \(data)")
        // The nodes prove a shared secret in their peer hellos (made once, kept with the data).
        let secretPath = "\(data)/cluster-secret"
        if !FileManager.default.fileExists(atPath: secretPath) {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            var rng = SystemRandomNumberGenerator()
            let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
            guard FileManager.default.createFile(atPath: secretPath, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw CommandFailure(description: "error: could not write \(secretPath)")
            }
        }
        if tls && !FileManager.default.fileExists(atPath: "\(data)/tls/ca.pem") {
            try CertCommand.make(in: "\(data)/tls", ids: (1...nodes).map { "n\($0)" })
        }
        let rf = self.rf ?? min(2, nodes)
        say("rf \(rf): a 202 means every event is stored on \(rf) node(s)")
        for k in 1...nodes {
            let id = "n\(k)"
            let http = "127.0.0.1:\(basePort + k)"
            let peer = "127.0.0.1:\(basePort - 1000 + k)"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            var args = ["node", "--id", id, "--data", "\(data)/\(id)", "--http", http, "--udp", http, "--peer", peer, "--rf", String(rf),
                        "--cluster-secret-file", secretPath]
            if k > 1 { args += ["--join", "127.0.0.1:\(basePort - 1000 + 1)"] }
            if tracing { args += ["--tracing", "on"] }
            if let otlpEndpoint { args += ["--otlp-endpoint", otlpEndpoint] }
            if tls {
                let t = "\(data)/tls"
                args += ["--tls-cert", "\(t)/http.pem", "--tls-key", "\(t)/http.key",
                         "--peer-tls-cert", "\(t)/\(id).pem", "--peer-tls-key", "\(t)/\(id).key", "--peer-tls-ca", "\(t)/ca.pem"]
            }
            p.arguments = args
            do {
                try p.run()
            } catch {
                for c in children { c.terminate() }
                throw CommandFailure(description: "error: could not start node \(id): \(error)")
            }
            children.append(p)
            say("  \(id): http http://\(http)  udp \(http)  peer \(peer)  (pid \(p.processIdentifier))")
        }
        if tls { say("TLS: https on every node (trust \(data)/tls/ca.pem: curl --cacert \(data)/tls/ca.pem https://127.0.0.1:\(basePort + 1)/healthz); mTLS between nodes") }
        say("try:   curl -s -XPOST localhost:\(basePort + 1)/v1/events -d '{\"session_id\":\"s1\",\"key\":\"page_view\",\"value\":\"/home\"}'")
        say("       curl -s localhost:\(basePort + 1)/v1/sessions/s1")
        say("Ctrl-C stops all nodes.")

        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        let q = DispatchQueue(label: "dev.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: q)
            s.setEventHandler { stop.signal() }
            s.resume()
            sources.append(s)
        }
        // Report children that die on their own.
        let watcher = DispatchQueue(label: "dev.watch")
        for (i, c) in children.enumerated() {
            watcher.async {
                c.waitUntilExit()
                FileHandle.standardError.write("node n\(i + 1) exited with status \(c.terminationStatus)\n".data(using: .utf8)!)
            }
        }
        stop.wait()
        say("\nstopping nodes...")
        for c in children where c.isRunning { kill(c.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(15)
        while children.contains(where: { $0.isRunning }) && Date() < deadline { usleep(50_000) }
        for c in children where c.isRunning { kill(c.processIdentifier, SIGKILL) }
        _ = sources
        say("all nodes stopped")
    }
}

/// Unbuffered output (print is block-buffered when stdout is a pipe or file).
func say(_ s: String = "") { FileHandleOut.stdout(s + "\n") }
