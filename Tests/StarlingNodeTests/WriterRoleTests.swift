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

    @Test func anEventLoopCommitsWithoutTheWriterQueue() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = try engine()
        defer { engine.shutdown() }
        // The writer queue is stuck (not holding the role): an inline commit does not need it.
        let gate = DispatchSemaphore(value: 0)
        engine.writer.async { gate.wait() }
        defer { gate.signal() }
        let result = value(submit(engine, 1, on: group.next()), within: 5)
        #expect(try result?.get() == 1, "committed while the writer queue is stuck")
        #expect(engine.session("s", query: EventQuery(limit: 10)).0.records.map { $0.eventID } == ["e1"])
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
        #expect(engine.session("s", query: EventQuery(limit: 10)).0.records.isEmpty, "nothing is appended beside the task")
        gate.signal()
        #expect(try value(future)?.get() == 1)
        #expect(engine.session("s", query: EventQuery(limit: 10)).0.records.map { $0.eventID } == ["e2"])
    }

    @Test func underFsyncAlwaysCommitsStayOnTheWriterQueue() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = try engine(fsync: .always)
        defer { engine.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        engine.writer.async { gate.wait() }
        let future = submit(engine, 3, on: group.next())
        Thread.sleep(forTimeInterval: 0.3)
        #expect(engine.session("s", query: EventQuery(limit: 10)).0.records.isEmpty, "an event loop does not wait for a flush")
        gate.signal()
        #expect(try value(future)?.get() == 1)
    }

    @Test func udpReadersLeaveTheCommitToTheWriterQueue() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = try engine()
        defer { engine.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        engine.writer.async { gate.wait() }
        let future = submit(engine, 4, on: group.next(), transport: .udp)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(engine.session("s", query: EventQuery(limit: 10)).0.records.isEmpty, "the UDP loop keeps reading its socket")
        gate.signal()
        #expect(try value(future)?.get() == 1)
    }
}
