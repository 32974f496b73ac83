import Dispatch
import Logging
import NIOCore
import NIOPosix
import StarlingCluster
import Synchronization
import Testing
@testable import StarlingNode

private final class Counters: Sendable {
    let opened = Mutex(0)
    let closed = Mutex(0)
}

/// A peer that accepts connections and (optionally) answers the hello, then ignores every
/// request: what a node behind a partition looks like to a connection that is still open.
private final class SilentPeer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame
    let answerHello: Bool
    let counters: Counters

    init(answerHello: Bool, counters: Counters) {
        self.answerHello = answerHello
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) { counters.opened.withLock { $0 += 1 } }
    func channelInactive(context: ChannelHandlerContext) { counters.closed.withLock { $0 += 1 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.kind == .hello, answerHello else { return }
        let ack = Frame(kind: .helloAck, isResponse: true, clusterID: 7, requestID: frame.requestID, sender: "silent",
                        body: Hello(nodeID: "silent", peer: "127.0.0.1:1", http: "127.0.0.1:1", incarnation: 1).encode())
        context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
    }
}

private final class SilentServer {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let counters = Counters()
    var channel: Channel?
    var opened: Int { counters.opened.withLock { $0 } }
    var closed: Int { counters.closed.withLock { $0 } }

    init(answerHello: Bool) throws {
        let counters = self.counters
        channel = try ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    let sync = ch.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(PeerFrameEncoder(compress: false)))
                    try sync.addHandler(SilentPeer(answerHello: answerHello, counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var address: String { "127.0.0.1:\(channel!.localAddress!.port!)" }

    func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }
}

private func makeClient(_ address: String, group: EventLoopGroup) -> PeerClient {
    PeerClient(address: address, group: group, logger: Logger(label: "test"),
               identity: { (7, Hello(nodeID: "me", peer: "127.0.0.1:2", http: "127.0.0.1:2", incarnation: 1)) },
               onClusterID: { _ in true })
}

/// Waits (up to `seconds`) for `future` to complete; nil when it did not.
private func outcome<T: Sendable>(_ future: EventLoopFuture<T>, within seconds: Int) -> Result<T, Error>? {
    let done = DispatchSemaphore(value: 0)
    let box = Mutex<Result<T, Error>?>(nil)
    future.whenComplete { r in
        box.withLock { $0 = r }
        done.signal()
    }
    guard done.wait(timeout: .now() + .seconds(seconds)) == .success else { return nil }
    return box.withLock { $0 }
}

@Suite struct PeerConnectionTests {
    /// After a partition heals, a connection left in TCP retransmission backoff must not be
    /// reused: a request that times out closes it, and the next request connects afresh.
    @Test func aTimedOutRequestDropsTheConnection() throws {
        let server = try SilentServer(answerHello: true)
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = makeClient(server.address, group: group)
        let first = outcome(client.request(.query, body: [], timeout: .milliseconds(200)), within: 10)
        guard case .failure? = first else {
            Issue.record("the unanswered request must fail, got \(String(describing: first))")
            return
        }
        #expect(eventually(5) { server.closed == 1 }, "the client must close the connection it timed out on")
        _ = outcome(client.request(.query, body: [], timeout: .milliseconds(200)), within: 10)
        #expect(server.opened == 2, "the next request must open a new connection")
    }

    /// A peer that accepts the connection but never greets back must not hold requests forever.
    @Test func anUnansweredHelloFailsAndIsRetried() throws {
        let server = try SilentServer(answerHello: false)
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = makeClient(server.address, group: group)
        let first = outcome(client.request(.query, body: [], timeout: .seconds(60)), within: 20)
        guard case .failure? = first else {
            Issue.record("a request behind an unanswered hello must fail, got \(String(describing: first))")
            return
        }
        _ = outcome(client.request(.query, body: [], timeout: .seconds(60)), within: 20)
        #expect(eventually(5) { server.opened == 2 })
        #expect(server.closed >= 1)
    }

    @Test func resetConnectionClosesAndTheClientStaysUsable() throws {
        let server = try SilentServer(answerHello: true)
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = makeClient(server.address, group: group)
        _ = outcome(client.channel(), within: 10)
        // The server counts an accept on its own thread: under load it may lag the client's connect.
        #expect(eventually(5) { server.opened == 1 })
        client.resetConnection()
        #expect(eventually(5) { server.closed == 1 })
        _ = outcome(client.channel(), within: 10)
        #expect(eventually(5) { server.opened == 2 })
    }
}
