import ArgumentParser
import Dispatch
import Foundation
import StarlingBench
import StarlingCore
import StarlingNode

extension BenchMode: ExpressibleByArgument {}

/// `starling bench`: the project's load generator (StarlingBench does the work).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load a node: HTTP events, batches, pixels, UDP or the binary peer protocol; closed or open loop; latency percentiles.",
        discussion: """
        Closed loop (no --rate): every connection keeps --pipeline requests in flight, as fast as the node answers.
        Open loop (--rate R): R requests per second over all connections on a fixed schedule; latency counts from \
        the time each request was due, so a slow server cannot hide its queueing (no coordinated omission).
        A request is one HTTP request, one datagram or one peer frame; batch and peer requests carry --batch events.
        Always bounded: --duration (default 10 s) and/or --requests (then at most 60 s unless --duration says more).
        Progress goes to stderr once a second, the summary to stdout, and --json FILE writes it machine-readable.
        """)

    @Option(help: "http | batch | pixel | udp | peer.") var mode: BenchMode = .http
    @Option(help: "HTTP address for http, batch and pixel, HOST:PORT.") var target: String = "127.0.0.1:8081"
    @Option(help: "UDP address for --mode udp, HOST:PORT.") var udp: String = "127.0.0.1:8081"
    @Option(help: "Peer (binary protocol) address for --mode peer, HOST:PORT.") var peer: String = "127.0.0.1:7081"
    @Option(help: "Connections (UDP: sockets); default 8, or 1 for udp.") var connections: Int?
    @Option(help: "Requests in flight per connection.") var pipeline: Int = 1
    @Option(help: "Requests per second over all connections (open loop); 0 = closed loop.") var rate: Double = 0
    @Option(help: "Measured seconds (default 10).") var duration: Double?
    @Option(help: "Measured requests over all connections.") var requests: Int?
    @Option(help: "Seconds of load before measuring.") var warmup: Double = 0
    @Option(help: "Event-loop threads of the generator.") var threads: Int = 1
    @Option(help: "Distinct session ids.") var sessions: Int = 1_000
    @Option(name: .customLong("event-bytes"), help: "Approximate size of one event as JSON.") var eventBytes: Int = 200
    @Option(help: "Events per request for batch and peer (default 100).") var batch: Int?
    @Option(name: .customLong("session-prefix"), help: "Session ids are PREFIX + number (default: bench-<random>-).") var sessionPrefix: String?
    @Option(name: .customLong("verify-url"), help: "HTTP address(es) of the node(s), comma-separated: compare what they stored (/metrics) with what was acknowledged (udp: sent).") var verifyURL: String?
    @Option(help: "Write the summary as JSON to this file.") var json: String?
    @Option(name: .customLong("drain-timeout"), help: "Seconds to wait for answers after the last send.") var drainTimeout: Double = 5
    @Option(name: .customLong("connect-timeout"), help: "Seconds to connect (and for peer, to get the hello answer).") var connectTimeout: Double = 2
    @Option(help: "lb: every connection to --target (a load balancer's view); ring: read the ring from --target's /v1/cluster and send each session straight to its owner.") var route: String = "lb"
    @Flag(help: "No progress lines.") var quiet = false

    func makeConfig() throws -> BenchConfig {
        let address: String
        switch mode {
        case .http, .batch, .pixel: address = target
        case .udp: address = udp
        case .peer: address = peer
        }
        guard let hp = HostPort(address), hp.port > 0 else {
            throw ValidationError("invalid address '\(address)' for --mode \(mode.rawValue): expected HOST:PORT")
        }
        var c = BenchConfig(mode: mode, host: hp.host, port: hp.port)
        c.connections = connections ?? (mode == .udp ? 1 : 8)
        c.pipeline = pipeline
        c.rate = rate
        c.duration = duration
        c.requests = requests
        c.warmup = warmup
        c.threads = threads
        c.sessions = sessions
        c.eventBytes = eventBytes
        c.batch = batch ?? (mode == .batch || mode == .peer ? 100 : 1)
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        c.sessionPrefix = sessionPrefix ?? "bench-\(tag)-"
        c.clientID = "bench-\(tag)"
        c.drainTimeout = drainTimeout
        c.connectTimeout = connectTimeout
        switch route {
        case "lb": break
        case "ring": c.routes = try ringRoutes(from: hp, prefix: c.sessionPrefix, sessions: c.sessions)
        default: throw ValidationError("invalid --route '\(route)': use lb or ring")
        }
        if let p = c.problem() { throw ValidationError(p) }
        return c
    }

    /// The routes of a ring-routing client, from the ring `--target`'s `/v1/cluster` describes.
    func ringRoutes(from node: HostPort, prefix: String, sessions: Int) throws -> [BenchRoute] {
        let r = try SimpleHTTPClient.request(host: node.host, port: node.port, method: "GET", path: "/v1/cluster", timeoutSeconds: 5)
        guard r.status == 200 else { throw ValidationError("--route ring: GET /v1/cluster at \(node) answered \(r.status)") }
        do {
            return try BenchRouting.routes(clusterJSON: r.body, prefix: prefix, sessions: sessions)
        } catch {
            throw ValidationError("--route ring: \(node): \(error)")
        }
    }

    func verifyNodes() throws -> [HostPort] {
        guard let verifyURL else { return [] }
        var out: [HostPort] = []
        for part in verifyURL.split(separator: ",") {
            var s = String(part)
            if s.hasPrefix("http://") { s.removeFirst(7) }
            while s.hasSuffix("/") { s.removeLast() }
            guard let hp = HostPort(s), hp.port > 0 else { throw ValidationError("invalid --verify-url entry '\(part)': expected HOST:PORT") }
            out.append(hp)
        }
        return out
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let config = try makeConfig()
        let nodes = try verifyNodes()
        let transport = Self.transport(of: config.mode)
        var before = 0
        if !nodes.isEmpty {
            before = try Self.storedCount(nodes, transport: transport)
        }
        let runner = try BenchRunner(config: config)

        // Ctrl-C ends the run early; the summary still prints.
        signal(SIGINT, SIG_IGN)
        let sigint = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "bench.signals"))
        sigint.setEventHandler { runner.stop() }
        sigint.resume()
        defer { sigint.cancel() }

        let loop = config.isOpenLoop ? "open loop at \(BenchSummary.group(Int(config.rate)))/s" : "closed loop, pipeline \(config.pipeline)"
        let bound = config.duration.map { "\(BenchSummary.fmt($0)) s" } ?? (config.requests != nil ? "\(config.requests!) requests" : "\(Int(BenchConfig.defaultDuration)) s")
        FileHandleOut.stderr("starling bench: \(config.mode.rawValue) → \(config.host):\(config.port), \(config.connections) connection(s), \(loop), \(bound)"
            + (config.warmup > 0 ? " after \(BenchSummary.fmt(config.warmup)) s warm-up" : "") + "\n")
        let quiet = self.quiet
        let outcome: BenchOutcome
        do {
            if quiet {
                outcome = try runner.run(progress: nil)
            } else {
                outcome = try runner.run(progress: { (line: ProgressLine) in FileHandleOut.stderr(line.text + "\n") })
            }
        } catch let e as BenchError {
            throw CommandFailure(description: "error: \(e)")
        }
        var summary = outcome.summary
        summary.command = (["starling"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        if !nodes.isEmpty {
            let s = outcome.stats
            let expected = config.mode == .udp ? s.sentEvents + s.warmupSent : s.okEvents + s.warmupOKEvents
            let after = Self.settledStoredCount(nodes, transport: transport, target: before + expected)
            summary.verification = BenchSummary.Verification(stored: after - before, expected: expected,
                                                             nodes: nodes.map(\.description), transport: transport)
        }
        if outcome.initialConnectFailures > 0 {
            FileHandleOut.stderr("warning: \(outcome.initialConnectFailures) of \(config.connections) connection(s) could not connect at the start\n")
        }
        FileHandleOut.stdout(summary.text())
        if let json {
            do {
                try summary.json().write(to: URL(fileURLWithPath: json))
            } catch {
                throw CommandFailure(description: "error: cannot write \(json): \(error)")
            }
        }
        let succeeded = config.mode == .udp ? outcome.stats.sent : outcome.stats.ok
        if succeeded == 0 {
            throw CommandFailure(description: "error: no request succeeded")
        }
    }

    static func transport(of mode: BenchMode) -> String {
        switch mode {
        case .http, .batch: return "http"
        case .pixel: return "pixel"
        case .udp: return "udp"
        case .peer: return "peer"
        }
    }

    /// Sum of `starling_events_ingested_total{transport}` over the nodes.
    static func storedCount(_ nodes: [HostPort], transport: String) throws -> Int {
        var total = 0
        for n in nodes {
            let r: SimpleHTTPClient.Response
            do {
                r = try SimpleHTTPClient.request(host: n.host, port: n.port, method: "GET", path: "/metrics", timeoutSeconds: 5)
            } catch {
                throw CommandFailure(description: "error: --verify-url \(n): \(error)")
            }
            guard r.status == 200 else { throw CommandFailure(description: "error: --verify-url \(n): /metrics answered \(r.status)") }
            total += Int(MetricsText.sum("starling_events_ingested_total", labels: ["transport": transport], in: r.text) ?? 0)
        }
        return total
    }

    /// Polls until the count reaches `target` or stops moving (UDP datagrams may still be in the
    /// node's queue when the sender finishes); at most 10 s.
    static func settledStoredCount(_ nodes: [HostPort], transport: String, target: Int) -> Int {
        // Up to 30 s, or until the count has not moved for 2 s: a node that fell behind (UDP) is
        // still storing what it queued, which must count here and not in the next run.
        let deadline = Date().addingTimeInterval(30)
        var last = -1
        var still = 0
        while true {
            let now = (try? storedCount(nodes, transport: transport)) ?? last
            if now >= target || Date() >= deadline { return now }
            if now == last { still += 1 } else { still = 0 }
            if still >= 10 { return now }
            last = now
            usleep(200_000)
        }
    }
}
