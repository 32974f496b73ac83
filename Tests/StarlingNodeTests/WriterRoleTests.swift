import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import StarlingCore
import StarlingLog
import Synchronization
import Testing
@testable import StarlingNode

/// The writer role (`Engine.drain`): an event loop that submits while nobody writes commits the
/// group itself, on its own thread; tasks that must not run beside an append (`exclusive`) hold
/// the role, so commits wait for them; under `--fsync always` commits stay on the writer queue.
@Suite struct WriterRoleTests {
    func engine(fsync: FsyncPolicy = .interval) throws -> Engine {
        let dir = NSTemporaryDirectory() + "starling-writer-" + UUID().uuidString
        var c = NodeConfig(id: "n1", dataDir: dir, http: HostPort(host: "127.0.0.1", port: 0), peer: HostPort(host: "127.0.0.1", port: 0))
        c.fsync = fsync
        var logger = Logger(label: "test.writer")
        logger.logLevel = .critical
        return try Engine(config: c, metrics: NodeMetrics(), logger: logger, clock: StarlingServer.systemMillis)
    }

    func event(_ n: Int) -> IncomingEvent {
        IncomingEvent(prefix: Array(#"{"session_id":"s","key":"k","#.utf8), sessionID: "s", key: "k", eventID: "e\(n)")
    }

    /// Submits one event from `loop`; the result arrives through the returned future.
    func submit(_ engine: Engine, _ n: Int, on loop: EventLoop, transport: Transport = .http) -> EventLoopFuture<Result<Int, IngestError>> {
        loop.submit {
            let p = loop.makePromise(of: Result<Int, IngestError>.self)
            engine.submit([event(n)], ip: "127.0.0.1", transport: transport, bytes: 40, on: loop) { p.succeed($0) }
            return p.futureResult
        }.flatMap { $0 }
    }

    /// The future's value, or nil when it has none within `seconds` (a commit that never comes
    /// fails the test instead of hanging it).
    func value<T: Sendable>(_ f: EventLoopFuture<T>, within seconds: Double = 10) -> T? {
        let got = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        f.whenSuccess { v in
            got.withLock { $0 = v }
            done.signal()
        }
        _ = done.wait(timeout: .now() + seconds)
        return got.withLock { $0 }
    }

    /// The stored event ids of session "s".
    func stored(_ engine: Engine) -> [String] {
        engine.session("s", query: EventQuery(limit: 10)).0.records.map { $0.eventID }
    }

    /// An engine on one event loop whose writer queue is stuck (a block that waits, not holding
    /// the role) until `release` is called; released at the end in any case.
    func withStuckWriterQueue(fsync: FsyncPolicy = .interval,
                              _ body: (_ engine: Engine, _ loop: EventLoop, _ release: () -> Void) throws -> Void) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = try engine(fsync: fsync)
        defer { engine.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        let release = { _ = gate.signal() }   // a second signal (the defer) is harmless
        engine.writer.async { gate.wait() }
        defer { release() }
        try body(engine, group.next(), release)
    }

    /// A commit that must wait for the writer queue: nothing stored while it is stuck, stored once
    /// it is released.
    func expectWaitsForTheWriterQueue(fsync: FsyncPolicy = .interval, transport: Transport, _ why: Comment) throws {
        try withStuckWriterQueue(fsync: fsync) { engine, loop, release in
            let future = submit(engine, 3, on: loop, transport: transport)
            Thread.sleep(forTimeInterval: 0.3)
            #expect(stored(engine).isEmpty, why)
            release()
            #expect((try? value(future)?.get()) == 1)
            #expect(stored(engine) == ["e3"])
        }
    }

    @Test func anEventLoopCommitsWithoutTheWriterQueue() throws {
        try withStuckWriterQueue { engine, loop, _ in
            let result = value(submit(engine, 1, on: loop), within: 5)
            #expect((try? result?.get()) == 1, "committed while the writer queue is stuck")
            #expect(stored(engine) == ["e1"])
        }
    }

    @Test func aTaskHoldingTheRoleHoldsBackInlineCommits() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = try engine()
        defer { engine.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        let running = DispatchSemaphore(value: 0)
        engine.exclusive {
            running.signal()
            gate.wait()
        }
        running.wait()
        let future = submit(engine, 2, on: group.next())
        Thread.sleep(forTimeInterval: 0.3)
        #expect(stored(engine).isEmpty, "nothing is appended beside the task")
        gate.signal()
        #expect((try? value(future)?.get()) == 1)
        #expect(stored(engine) == ["e2"])
    }

    @Test func underFsyncAlwaysCommitsStayOnTheWriterQueue() throws {
        try expectWaitsForTheWriterQueue(fsync: .always, transport: .http, "an event loop does not wait for a flush")
    }

    @Test func udpReadersLeaveTheCommitToTheWriterQueue() throws {
        try expectWaitsForTheWriterQueue(transport: .udp, "the UDP loop keeps reading its socket")
    }
}
