#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import NIOCore
import NIOPosix
import StarlingCluster
import StarlingCore
import StarlingLog
import Synchronization

/// Ships the records a write group appended as owner to their followers and calls `done` with
/// nil once every follower stored them (the ack rule), else with the failure.
public protocol GroupReplicator: AnyObject, Sendable {
    /// `traces`: the traces of the group's requests, which its replication frames carry.
    func replicate(_ records: [Record], traces: [TraceContext], done: @escaping @Sendable (IngestError?) -> Void)
}

/// The node's storage engine: admits validated events, writes them to the log with group
/// commit, folds them into the `NodeIndex`, and answers queries from the log.
///
/// One serial writer queue owns the log's write side: it dedupes, stamps, appends,
/// fsyncs (per policy), applies to the index and only then completes the callers. Queries
/// copy refs out of the index under its lock and read blocks without holding it.
public final class Engine: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<Int, IngestError>) -> Void

    public let config: NodeConfig
    public let metrics: NodeMetrics
    let log: SegmentedLog
    let index: Mutex<NodeIndex>
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// The node's randomness (one seed for the whole node).
    public let random: NodeRandom
    let writer = DispatchQueue(label: "starling.log-writer")
    let syncer = DispatchQueue(label: "starling.log-sync")
    let syncRunning = Mutex(false)
    let blockCache: BlockCache
    /// Threads that wait on reads for queries (blocks ahead, index lookups), so a cold query
    /// has many reads in flight instead of one per core. One per process, never stopped.
    static let ioPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()
    /// Index files of sealed segments (`SealedIndexes`), written off the writer thread.
    let sealed = SealedIndexes()
    let indexer = DispatchQueue(label: "starling.index-writer")
    /// The segment whose refs the in-memory index holds (writer thread): when appends move to a
    /// new one, the refs are sealed into index files.
    var openSegment: UInt32?
    /// When a seal writes the checkpoint (writer thread): see `checkpointDue`.
    var sealedBytesSinceCheckpoint = 0
    var lastCheckpointAt: Int64 = 0
    var checkpointWanted = true
    /// The last checkpoint written (indexer thread writes, the writer reads): its size, the
    /// segment it covers, and whether the last attempt failed.
    let checkpointWritten = Mutex<(bytes: Int, covered: UInt32, failing: Bool)>((0, 0, false))
    /// A seal writes the checkpoint only once the log sealed since the last one is this many
    /// times its size (or `checkpointMaxAgeMs` passed): the checkpoint holds the whole index, an
    /// hour of event ids included, so writing it at every seal of a busy node wrote ~100 MB per
    /// second (`docs/measurements.md`, "checkpoint cadence").
    static let checkpointLogFactor = 4
    static let checkpointMaxAgeMs: Int64 = 600_000
    public let recovery: RecoveryReport
    public let recoveryMillis: Int64
    /// Records recovery read but could not fold (`Record.problem`), skipped.
    public private(set) var skippedAtRecovery = 0

    /// A request's share of the next group commit (`GroupCommit.Input`: what to write) and who
    /// waits for it. Records of known sessions were built on I/O threads (this node's or the
    /// forwarding node's), so the single writer thread only plans, appends and folds.
    struct Job: Sendable {
        var payload: GroupCommit.Input
        /// For the ingest metrics (events inputs only).
        var transport: Transport? = nil
        var count: Int
        var bytes: Int
        var completion: Completion
        /// The caller's event loop: completions run there, one task per loop per group commit.
        var loop: EventLoop? = nil
        /// Who ships this node's own records to their followers (nil: rf 1, or a replica job).
        /// It travels with the job, so the engine holds no reference to the cluster.
        var replicator: (any GroupReplicator)? = nil
        /// The request's trace contexts (tracing on, the request sampled).
        var traces: [TraceContext] = []
    }
    /// Work that must not run beside an append (the fsync handle, retention, shutdown): run by
    /// whoever holds the writer role, on the writer queue (`exclusive`).
    struct WriterTask: Sendable {
        let run: @Sendable () -> Void
    }
    struct Pending {
        var jobs: [Job] = []
        var tasks: [WriterTask] = []
        var events = 0
        var bytes = 0
        /// Someone holds the writer role (the writer queue, or an I/O thread committing inline):
        /// the log, the open segment and the checkpoint cadence are touched only by that holder.
        var draining = false
        /// An event loop will take the role at the end of its turn (`drainInline`); until then
        /// other submitters leave the jobs to it. A role-taker that comes first (a writer task)
        /// takes the jobs too.
        var inlineScheduled = false
        var stopped = false
        /// The log failed to write; cleared by the next successful write.
        var storageError: String?
    }
    let pending = Mutex(Pending())
    var timers: [DispatchSourceTimer] = []  // set once in init, before the engine is shared
    /// Event-id randomness: seeded once from the system generator (ids need uniqueness, not secrecy;
    /// a getrandom syscall per id showed up in profiles). Used only on the writer queue.
    var idRandom: SplitMix64

    /// Opens (and recovers) the node's data directory.
    public init(config: NodeConfig, metrics: NodeMetrics, logger: Logger,
                clock: @escaping @Sendable () -> Int64) throws {
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        random = NodeRandom(seed: config.seed ?? UInt64.random(in: 1...UInt64.max))
        idRandom = random.generator()
        blockCache = BlockCache(capacity: config.limits.blockCacheBlocksMax)
        try DataDirectory.prepare(config.dataDir, nodeID: config.id)
        log = SegmentedLog(directory: config.dataDir, limits: config.limits)
        let started = clock()
        let (idx, report, skipped) = try Self.recover(log, sealed: sealed, config: config, metrics: metrics, logger: logger)
        openSegment = log.activeSegment
        recoveryMillis = clock() - started
        recovery = report
        for m in report.messages { logger.warning("log recovery: \(m)") }
        metrics.logCorruptBlocks.increment(by: Int64(report.corruptBlocks))
        metrics.logTruncatedBytes.increment(by: Int64(report.truncatedBytes))
        metrics.logCorruptHeaders.increment(by: Int64(report.corruptHeaders))
        metrics.logSkippedRecords.increment(by: Int64(skipped))
        skippedAtRecovery = skipped
        metrics.logBytes.set(Double(log.totalBytes))
        index = Mutex(idx)
        gauge(idx)
        gaugeSealed()
        logger.info("log recovered", metadata: [
            "segments": "\(report.segments)", "skipped_segments": "\(report.skippedSegments)", "records": "\(report.records)", "bytes": "\(report.bytes)",
            "millis": "\(recoveryMillis)", "truncated_bytes": "\(report.truncatedBytes)", "corrupt_blocks": "\(report.corruptBlocks)",
            "corrupt_headers": "\(report.corruptHeaders)", "skipped_records": "\(skipped)",
        ])
        startTimers()
    }

    /// The in-memory index's size gauges.
    func gauge(_ idx: NodeIndex) {
        metrics.sessions.set(Double(idx.sessions.count))
        metrics.identities.set(Double(idx.users.count + idx.terminals.count))
        metrics.dedupeEntries.set(Double(idx.dedupe.count))
        metrics.openRefs.set(Double(idx.openRefCount))
    }

    func startTimers() {
        var list: [DispatchSourceTimer] = []
        if config.fsync == .interval {
            let t = DispatchSource.makeTimerSource(queue: writer)
            let ms = max(1, config.fsyncIntervalMs)
            t.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms))
            t.setEventHandler { [weak self] in
                guard let engine = self else { return }
                engine.exclusive { engine.syncInBackground() }
            }
            t.resume()
            list.append(t)
        }
        let d = DispatchSource.makeTimerSource(queue: indexer)
        d.schedule(deadline: .now(), repeating: .seconds(10))
        d.setEventHandler { [weak self] in self?.gaugeDisk() }
        d.resume()
        list.append(d)
        let r = DispatchSource.makeTimerSource(queue: writer)
        r.schedule(deadline: .now() + .seconds(5), repeating: .seconds(600))
        r.setEventHandler { [weak self] in
            guard let engine = self else { return }
            engine.exclusive { engine.runRetention() }
        }
        r.resume()
        list.append(r)
        timers = list
    }

    // MARK: Ingest

    /// Why this node's storage cannot take writes right now, if it cannot
    /// (cluster-level conditions such as rf are checked by `ClusterShell`).
    public func unavailableReason() -> IngestError? {
        pending.withLock { p in
            if p.stopped { return IngestError(status: 503, code: "shutting_down", message: "node is shutting down") }
            if let e = p.storageError { return IngestError(status: 503, code: "storage_unavailable", message: e) }
            return nil
        }
    }

    /// Queues validated events; `completion` runs once they are in the log (or refused).
    public func submit(_ events: [IncomingEvent], ip: String, transport: Transport, bytes: Int, on loop: EventLoop? = nil,
                       replicator: (any GroupReplicator)? = nil, traces: [TraceContext] = [], completion: @escaping Completion) {
        if let reason = unavailableReason() {
            completion(.failure(reason))
            return
        }
        var rng = random.generator()   // one draw per request
        // Encoded once, here on the I/O thread: the writer and replication copy these bytes.
        let records = StoredEvent.records(of: events, receivedAt: clock(), node: config.id, ip: ip, using: &rng)
        // The event itself travels only when the writer must finish it (no session yet).
        let prepared = events.indices.map { i in
            GroupCommit.Prepared(event: records[i] == nil ? events[i] : nil, record: records[i], clientID: events[i].eventID != nil)
        }
        enqueue(Job(payload: .events(prepared, ip: ip), transport: transport, count: events.count, bytes: bytes, completion: completion,
                    loop: loop, replicator: replicator, traces: traces))
    }

    /// Appends events that another node validated and stamped for this node (their owner), as
    /// this node's own: deduped when the client gave the id, then replicated like local events.
    public func submit(forwarded items: [(record: Record, clientID: Bool)], transport: Transport, bytes: Int, on loop: EventLoop? = nil,
                       replicator: (any GroupReplicator)? = nil, traces: [TraceContext] = [], completion: @escaping Completion) {
        if let reason = unavailableReason() {
            completion(.failure(reason))
            return
        }
        let prepared = items.map { GroupCommit.Prepared(event: nil, record: $0.record, clientID: $0.clientID) }
        enqueue(Job(payload: .events(prepared, ip: ""), transport: transport, count: items.count, bytes: bytes, completion: completion,
                    loop: loop, replicator: replicator, traces: traces))
    }

    /// Appends records written by another node (replication, catch-up); completion once stored.
    public func submitReplica(_ records: [Record], completion: @escaping Completion) {
        if let reason = unavailableReason() {
            completion(.failure(reason))
            return
        }
        enqueue(Job(payload: .replica(records), count: records.count, bytes: records.reduce(0) { $0 + $1.encodedCount }, completion: completion))
    }

    /// Links identities to a session (`/v1/identify`), durably, in log order with events.
    public func identify(sessionID: String, userID: String?, terminalID: String?, completion: @escaping Completion) {
        if let reason = unavailableReason() {
            completion(.failure(reason))
            return
        }
        enqueue(Job(payload: .link(sessionID: sessionID, userID: userID, terminalID: terminalID), count: 1, bytes: 64, completion: completion))
    }

    func enqueue(_ job: Job) {
        let limits = config.limits
        // Nobody holds the writer role: an event loop commits the group itself, at the end of
        // its current turn (so the requests it read in that turn form one group), instead of a
        // hop to the writer thread and back: two thread wake-ups per group, the largest item of
        // a single-event POST's profile. Not under `--fsync always`: an event loop must not wait
        // for a flush. Nor for UDP: its reader must keep emptying the socket (a datagram the
        // kernel drops from a full queue is lost for good, while a TCP client only waits). Other
        // threads start the writer queue.
        let loop = config.fsync == .always || job.transport == .udp ? nil : MultiThreadedEventLoopGroup.currentEventLoop
        enum Start { case none, inline(EventLoop), writer, refused(stopped: Bool) }
        let start: Start = pending.withLock { p in
            if p.stopped { return .refused(stopped: true) }
            if p.events + job.count > limits.writeQueueEventsMax || p.bytes + job.bytes > limits.writeQueueBytesMax {
                return .refused(stopped: false)
            }
            p.jobs.append(job)
            p.events += job.count
            p.bytes += job.bytes
            if p.draining || p.inlineScheduled { return .none }
            guard let loop else {
                p.draining = true
                return .writer
            }
            p.inlineScheduled = true
            return .inline(loop)
        }
        switch start {
        case .none:
            return
        case .refused(let stopped):
            job.completion(.failure(IngestError(status: 503, code: stopped ? "shutting_down" : "overloaded",
                                                message: stopped ? "node is shutting down" : "the log writer queue is full; retry later")))
        case .writer:
            writer.async { self.drain(inline: false) }
        case .inline(let loop):
            loop.execute { self.drainInline() }
        }
    }

    /// An event loop's turn ended with its inline commit scheduled: it takes the writer role,
    /// unless someone else holds it (they take the jobs) or took them already.
    func drainInline() {
        let take = pending.withLock { p in
            p.inlineScheduled = false
            guard !p.draining && !p.jobs.isEmpty else { return false }
            p.draining = true
            return true
        }
        if take { drain(inline: true) }
    }

    /// Runs `body` holding the writer role (never beside an append), on the writer queue.
    func exclusive(_ body: @escaping @Sendable () -> Void) {
        let start = pending.withLock { p in
            p.tasks.append(WriterTask(run: body))
            let free = !p.draining
            p.draining = true
            return free
        }
        if start { writer.async { self.drain(inline: false) } }
    }

    /// `exclusive`, waiting until `body` ran. Never on the writer queue itself.
    func exclusiveSync(_ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        exclusive {
            body()
            done.signal()
        }
        done.wait()
    }

    /// An I/O thread commits at most this many groups inline before handing the rest to the
    /// writer queue, so one event loop does not stall its own sockets under a stream of others'
    /// jobs.
    static let inlineGroupsMax = 1

    /// Holds the writer role: takes what is pending and commits it, one group at a time, until
    /// nothing is. `inline`: on the I/O thread that submitted, which hands over to the writer
    /// queue after `inlineGroupsMax` groups or when a writer task waits (tasks can be slow).
    func drain(inline: Bool) {
        var groups = 0
        enum Step {
            case idle, handOver
            case tasks([WriterTask])
            case jobs([Job])
        }
        while true {
            let step: Step = pending.withLock { p in
                if !p.tasks.isEmpty {
                    if inline { return .handOver }
                    defer { p.tasks.removeAll() }
                    return .tasks(p.tasks)
                }
                if p.jobs.isEmpty {
                    p.draining = false
                    return .idle
                }
                if inline && groups >= Self.inlineGroupsMax { return .handOver }
                var take = 0, events = 0, bytes = 0
                let cap = config.limits.groupCommitEventsMax
                while take < p.jobs.count && (take == 0 || events + p.jobs[take].count <= cap) {
                    events += p.jobs[take].count
                    bytes += p.jobs[take].bytes
                    take += 1
                }
                let out = Array(p.jobs[0..<take])
                p.jobs.removeFirst(take)
                p.events -= events
                p.bytes -= bytes
                return .jobs(out)
            }
            switch step {
            case .idle:
                return
            case .handOver:
                writer.async { self.drain(inline: false) }
                return
            case .tasks(let tasks):
                for t in tasks { t.run() }
            case .jobs(let jobs):
                metrics.writeQueueEvents.set(Double(pending.withLock { $0.events }))
                commit(jobs)
                groups += 1
            }
        }
    }

    /// Runs completions on their callers' event loops: one task per loop for a whole group
    /// commit instead of a cross-thread hop per request (those wakeups showed in profiles), and
    /// at once for the loop this runs on (an inline commit). Jobs without a loop complete on the
    /// calling thread.
    static func deliver(_ results: [(Job, Result<Int, IngestError>)]) {
        var byLoop: [ObjectIdentifier: (loop: EventLoop, list: [(Completion, Result<Int, IngestError>)])] = [:]
        for (job, r) in results {
            guard let loop = job.loop else {
                job.completion(r)
                continue
            }
            byLoop[ObjectIdentifier(loop), default: (loop, [])].list.append((job.completion, r))
        }
        var here: [(Completion, Result<Int, IngestError>)] = []
        for (_, group) in byLoop {
            let list = group.list
            if group.loop.inEventLoop {
                here = list
            } else {
                group.loop.execute { for (completion, r) in list { completion(r) } }
            }
        }
        for (completion, r) in here { completion(r) }
    }

    /// Group commit of `jobs`: plan (dedupe, identity resolution, repeats), append, ship this
    /// node's own records to their followers, sync (per policy), fold, and answer once the
    /// group is durable here and (for own records) on the followers.
    ///
    /// The followers get the group before the local fdatasync, so under `--fsync always` the two
    /// flushes overlap: an rf=2 acknowledgement waits for one flush plus one round trip, not two
    /// flushes in a row.
    func commit(_ jobs: [Job]) {
        let now = clock()
        let plan = index.withLock { idx in
            GroupCommit.plan(jobs.map(\.payload), index: idx, now: now, node: config.id, ids: &idRandom, stored: storedRecords)
        }
        precondition(plan.perInput.count == jobs.count && plan.ownCount <= plan.records.count,
                     "a group plan must answer every job: \(plan.perInput.count) answers for \(jobs.count) jobs, \(plan.ownCount) own of \(plan.records.count) records")
        let bytesBefore = log.totalBytes
        let placed: [(location: RecordLocation, seq: UInt64)]
        do {
            placed = try log.append(plan.records, nowMs: now)
            if log.activeSegment != openSegment {
                // The append rolled a new segment: what the index holds now is all sealed.
                seal(nextSeq: placed.first?.seq ?? log.lastSeq + 1)
                openSegment = log.activeSegment
            }
        } catch {
            Self.deliver(jobs.map { ($0, .failure(storageFailure(error, jobs: jobs))) })
            return
        }
        let answer = shipAndAnswer(jobs, plan: plan)
        do {
            if config.fsync == .always { try timedSync() }
        } catch {
            answer(storageFailure(error, jobs: jobs))
            return
        }
        index.withLock { idx in
            for (r, p) in zip(plan.records, placed) { idx.apply(r, at: p.location, seq: p.seq) }
            gauge(idx)
        }
        pending.withLock { $0.storageError = nil }
        metrics.logAppendedBytes.increment(by: Int64(max(0, log.totalBytes - bytesBefore)))
        metrics.logBytes.set(Double(log.totalBytes))
        metrics.groupCommitEvents.record(Double(plan.records.count))
        answer(nil)
    }

    /// A failed append or sync, as the error every job of the group is answered with: 503 for
    /// an I/O error (the node refuses writes for a second, then probes again), 500 otherwise.
    /// Nothing of the group is folded.
    func storageFailure(_ error: any Error, jobs: [Job]) -> IngestError {
        guard let error = error as? LogIOError else {
            logger.error("log append refused the group: \(error)")
            return IngestError(status: 500, code: "internal", message: "\(error)")
        }
        metrics.logWriteErrors.increment()
        let message = error.isDiskFull ? "disk full: the log cannot take more events (\(error))" : "log write failed: \(error)"
        logger.error("\(message)")
        pending.withLock { $0.storageError = message }
        // Probe again soon: the condition clears on the next successful write.
        writer.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            self?.pending.withLock { $0.storageError = nil }
        }
        let code = error.isDiskFull ? "storage_full" : "storage_unavailable"
        for job in jobs {
            if case .events(let events, _) = job.payload, let t = job.transport { metrics.rejected(t, reason: code, count: events.count) }
        }
        return IngestError(status: 503, code: code, message: message)
    }

    /// Hands the open refs (all in sealed segments now) to an index file per segment, written on
    /// the indexer queue; until then lookups find them in memory (`SealedIndexes.pending`). Then
    /// writes the checkpoint: the index as it is now covers every segment before the active one,
    /// whose first sequence number is `nextSeq`. Runs on the writer queue.
    func seal(nextSeq: UInt64) {
        let covered = (log.activeSegment ?? 1) &- 1
        sealedBytesSinceCheckpoint += Int(log.sealedInfo(covered)?.bytes ?? 0)
        let now = clock()
        let due = covered >= 1 && checkpointDue(now: now)
        if due {
            sealedBytesSinceCheckpoint = 0
            lastCheckpointAt = now
            checkpointWanted = false
        }
        let (refs, id, snapshot) = index.withLock { idx in
            let refs = idx.takeOpenRefs()
            // A copy costs nothing here; the writer's next fold copies what it changes (copy on
            // write; the dedupe window's parts and chunks one at a time).
            return (refs, refs.isEmpty ? nil : sealed.addPending(refs), due ? idx : nil)
        }
        indexer.async { [self] in
            if let id { writeIndexes(refs, seal: id) }
            if let snapshot { writeCheckpoint(Checkpoint(segment: covered, nextSeq: nextSeq, body: snapshot.snapshot())) }
        }
    }

    /// Whether this seal writes the checkpoint: the first seal, one retention asked for, once
    /// the log sealed since the last checkpoint is `checkpointLogFactor` times its size (so
    /// writing checkpoints costs at most a quarter of the log's own writes, and a restart folds at
    /// most that much log beyond it), or when the last one is `checkpointMaxAgeMs` old.
    func checkpointDue(now: Int64) -> Bool {
        let last = checkpointWritten.withLock { $0 }
        return checkpointWanted || last.bytes == 0 || last.failing
            || sealedBytesSinceCheckpoint >= Self.checkpointLogFactor * last.bytes
            || now - lastCheckpointAt >= Self.checkpointMaxAgeMs
    }

    func writeIndexes(_ refs: [SubjectKey: [EventRef]], seal id: UInt64) {
        var files: [SegmentIndexFile] = []
        var unwritten: [UInt32: [IndexEntry]] = [:]
        for (segment, entries) in SealedIndexes.entries(of: refs) {
            guard let info = log.sealedInfo(segment) else { continue }   // removed by retention meanwhile
            if let file = Self.writeIndexFile(entries, segment: segment, segmentBytes: info.bytes, path: info.path,
                                              metrics: metrics, logger: logger) {
                files.append(file)
                metrics.indexSealed.increment()
            } else {
                unwritten[segment] = entries
            }
        }
        sealed.complete(id, files: files, unwritten: unwritten)
        gaugeSealed()
    }

    func writeCheckpoint(_ c: Checkpoint) {
        do {
            try c.write(in: config.dataDir)
            checkpointWritten.withLock { $0 = (c.body.count + Checkpoint.headerBytes, c.segment, false) }
            metrics.checkpointWritten.increment()
            metrics.checkpointBytes.set(Double(c.body.count + Checkpoint.headerBytes))
        } catch {
            // The previous checkpoint stays; start-up folds a little more.
            logger.error("could not write the checkpoint: \(error)")
            checkpointWritten.withLock { $0.failing = true }
            metrics.checkpointWriteErrors.increment()
        }
    }

    func gaugeSealed() {
        let sizes = sealed.sizes
        metrics.indexFiles.set(Double(sizes.files))
        metrics.indexResidentBytes.set(Double(sizes.residentBytes))
    }

    /// Waits until every index file being written is in place (tests, shutdown).
    public func waitForIndexes() { indexer.sync {} }

    /// After the append: ships this node's own records (and the stored copies of repeats,
    /// `GroupCommit.Plan.repeats`) to their followers at once, and returns what the writer calls
    /// when the group is durable here (nil) or failed (the error). Replica jobs are answered then;
    /// the others once both this node and the followers hold the group.
    func shipAndAnswer(_ jobs: [Job], plan: GroupCommit.Plan) -> @Sendable (IngestError?) -> Void {
        let records = plan.records, perJob = plan.perInput, ownCount = plan.ownCount, repeats = plan.repeats
        var own = Array(records.prefix(ownCount))
        let replicator = jobs.lazy.compactMap(\.replicator).first
        var waiting: [(Job, (stored: Int, duplicates: Int))] = []
        var replicaJobs: [Job] = []
        var replicaStored = 0
        for (job, r) in zip(jobs, perJob) {
            if case .replica = job.payload {
                replicaJobs.append(job)
                replicaStored += r.stored
            } else {
                waiting.append((job, r))
            }
        }
        let engineMetrics = self.metrics
        let replicaJobsDone = replicaJobs, replicaStoredDone = replicaStored
        @Sendable func answerReplicas(_ error: IngestError?) {
            if error == nil { engineMetrics.replicaRecords.increment(by: Int64(replicaStoredDone)) }
            Engine.deliver(replicaJobsDone.map { ($0, error.map { .failure($0) } ?? .success($0.count)) })
        }
        if replicator != nil && !repeats.isEmpty && !waiting.isEmpty {
            let copies = readRecords(repeats)
            if copies.count < repeats.count {
                // A stored copy that cannot be read cannot be copied: refuse rather than
                // acknowledge a repeat that may have fewer than rf copies.
                let e = IngestError(status: 503, code: "storage_unavailable",
                                    message: "\(repeats.count - copies.count) stored event(s) sent again could not be read for replication")
                logger.error("\(e.message)")
                Self.deliver(waiting.map { ($0.0, .failure(e)) })
                return answerReplicas
            }
            own.append(contentsOf: copies)
        }
        let waitingJobs = waiting
        let shipping = replicator != nil && !own.isEmpty && !waitingJobs.isEmpty
        let join = AckJoin(parts: shipping ? 2 : 1) { error in
            Engine.deliver(waitingJobs.map { job, r in
                if let error { return (job, .failure(error)) }
                if case .events = job.payload, let t = job.transport {
                    engineMetrics.ingested(t, r.stored)
                    if r.duplicates > 0 { engineMetrics.duplicates.increment(by: Int64(r.duplicates)) }
                }
                return (job, .success(job.count))
            })
        }
        if shipping, let replicator {
            replicator.replicate(own, traces: TraceContext.distinct(waitingJobs.lazy.flatMap(\.0.traces), max: Frame.tracesMax),
                                 done: join.arrive)
        }
        return { error in
            answerReplicas(error)
            join.arrive(error)
        }
    }

    func timedSync() throws {
        let start = ContinuousClock.now
        do {
            try log.sync()
        } catch {
            metrics.logWriteErrors.increment()
            throw error
        }
        metrics.fsyncSeconds.record(ContinuousClock.now - start)
    }

    /// `--fsync interval`: the fdatasync runs on its own queue, so appends (and the callers
    /// waiting on them) never queue behind a slow flush; a tick while one is still running is
    /// skipped. Runs on the writer queue (it takes the descriptor where appends happen).
    func syncInBackground() {
        guard !syncRunning.withLock({ $0 }), let handle = log.takeSyncHandle() else { return }
        syncRunning.withLock { $0 = true }
        syncer.async { [self] in
            let start = ContinuousClock.now
            do {
                try SegmentedLog.syncAndClose(handle)
                metrics.fsyncSeconds.record(ContinuousClock.now - start)
            } catch {
                metrics.logWriteErrors.increment()
                logger.error("fsync failed: \(error)")
            }
            syncRunning.withLock { $0 = false }
        }
    }

    func syncNow() {
        do { try timedSync() } catch { logger.error("fsync failed: \(error)") }
    }

    /// Free and total bytes of the data directory's filesystem (for the disk-full alert).
    func gaugeDisk() {
        var st = statvfs()
        guard statvfs(config.dataDir, &st) == 0 else { return }
        metrics.diskFreeBytes.set(Double(UInt64(st.f_bavail) &* UInt64(st.f_frsize)))
        metrics.diskSizeBytes.set(Double(UInt64(st.f_blocks) &* UInt64(st.f_frsize)))
    }

    func runRetention() {
        let now = clock()
        do {
            // Only days the checkpoint covers: a restart rebuilds session state from the checkpoint
            // and the segments after it, so a day with a segment beyond it waits for the next
            // checkpoint, which the next seal writes. (When checkpoints fail, retention does not
            // wait: a full disk needs the space more than a restart needs that state.)
            func pass() throws -> (days: [String], segments: Set<UInt32>, waiting: Bool) {
                let ckpt = checkpointWritten.withLock { $0 }
                return try log.applyRetention(keepDays: config.retentionDays, nowMs: now, archive: config.archiveDir,
                                              throughSegment: ckpt.failing ? nil : ckpt.covered)
            }
            var (days, segments, waiting) = try pass()
            if waiting {
                // A checkpoint may be on its way (a seal just before): wait for it once, then try again.
                indexer.sync {}
                let again = try pass()
                days += again.days
                segments.formUnion(again.segments)
                waiting = again.waiting
            }
            if waiting { checkpointWanted = true }
            if !days.isEmpty {
                index.withLock { $0.forget(segments: segments) }
                sealed.remove(segments: segments)
                gaugeSealed()
                blockCache.removeAll()
                metrics.retentionDeletedDays.increment(by: Int64(days.count))
                metrics.logBytes.set(Double(log.totalBytes))
                logger.info("retention removed days", metadata: ["days": "\(days.joined(separator: ","))",
                                                                 "archive": "\(config.archiveDir ?? "-")"])
            }
        } catch {
            logger.error("retention failed: \(error)")
        }
        // After the deleted segments' indexes are gone, so their sessions count as having no events left.
        evictSessions(now: now)
    }

    /// Drops session states past their long TTL of which no event is left (retention deleted
    /// their days, and no sealed index lists them: a replica record keeps its old receive time in
    /// a newer segment), so state memory follows the retained days and the long TTL, not all
    /// time. At most 100,000 a pass; the sealed indexes are read without the index lock.
    func evictSessions(now: Int64) {
        let day: Int64 = 86_400_000
        let cutoff = TimeMath.subtract(now, Int64(config.retentionDays) * day)
        let horizon = cutoff - ((cutoff % day) + day) % day   // start of the oldest day retention keeps
        func onDisk(_ subject: SubjectKey) -> Bool {
            let found = sealed.refs(of: subject)
            return !found.refs.isEmpty || !found.failed.isEmpty
        }
        let candidates = index.withLock { $0.expiredSessions(now: now, horizon: horizon, limit: 100_000) }
        let gone = candidates.filter { !onDisk(.session($0.id)) }
        let n = gone.isEmpty ? 0 : index.withLock { $0.forgetSessions(gone, now: now) }
        if n > 0 {
            metrics.sessionsEvicted.increment(by: Int64(n))
            logger.info("forgot \(n) expired sessions with no event left")
        }
        // Then the identities that only pointed at what was just forgotten.
        let identities = index.withLock { $0.expiredIdentities(horizon: horizon, limit: 100_000) }.filter { !onDisk($0.subject) }
        let m = identities.isEmpty ? 0 : index.withLock { $0.forgetIdentities(identities, horizon: horizon) }
        if m > 0 {
            metrics.identitiesEvicted.increment(by: Int64(m))
            logger.info("forgot \(m) identities whose sessions and events are gone")
        }
        index.withLock { gauge($0) }
    }

    /// Runs retention now (for tests and the admin path); waits for it.
    public func applyRetentionNow() { exclusiveSync { self.runRetention() } }

    /// Waits for queued writes, syncs and closes the log. Later submissions get 503.
    public func shutdown() {
        pending.withLock { $0.stopped = true }
        for t in timers { t.cancel() }
        // Jobs queued before `stopped` was set are written by whoever holds the writer role (the
        // writer queue now holds it, if an event loop's inline commit was still to come): wait
        // until they are.
        exclusiveSync {}
        while pending.withLock({ !$0.jobs.isEmpty || $0.draining }) { usleep(1_000) }
        exclusiveSync {
            self.syncNow()
            self.log.closeFiles()
        }
        waitForIndexes()
    }

    // MARK: Queries

    public struct Answer: Sendable {
        public var records: [Record]
        public var truncated: Bool
        /// Some referenced blocks could not be read (removed by retention or corrupt).
        public var partial: Bool
        /// The byte budget ended the page: the next one starts at this position of the answer order.
        public var nextOffset: Int? = nil
    }

    /// Reads the records behind `refs` that pass `query`, in answer order, starting at position
    /// `offset` of that order: until `query.limit` records (then `truncated` when one more
    /// matches) or until `byteBudget` bytes of records (then `nextOffset`). Blocks are read
    /// (cached) and decoded only when the walk reaches them, and only the records it needs, so a
    /// limit or a budget stops the work early instead of decoding the whole session first.
    func read(_ subject: SubjectKey, query: EventQuery, offset: Int = 0, byteBudget: Int = .max) -> Answer {
        let (refs, damaged) = refs(of: subject, ts: query.from, query.to)
        let ordered = query.candidates(refs)
        var partial = damaged
        // Which records of each block the walk may need (decoded together when it first gets there).
        var byBlock: [BlockKey: [Int]] = [:]
        for ref in ordered.dropFirst(offset) {
            byBlock[BlockKey(segment: ref.location.segment, offset: ref.location.blockOffset), default: []].append(Int(ref.location.index))
        }
        var decoded: [BlockKey: [Int: Record]] = [:]
        let prefetched = prefetch(ordered.dropFirst(offset).prefix(query.limit + 1))
        func record(_ ref: EventRef) -> Record? {
            let key = BlockKey(segment: ref.location.segment, offset: ref.location.blockOffset)
            if decoded[key] == nil {
                do {
                    let raw: [UInt8]
                    if let cached = blockCache.get(key) {
                        raw = cached
                    } else {
                        raw = try prefetched[key] ?? log.readRawBlock(segment: key.segment, offset: key.offset)
                        blockCache.put(key, raw)
                        metrics.blockCacheBytes.set(Double(blockCache.bytes))
                    }
                    decoded[key] = try BlockCodec.records(at: (byBlock[key] ?? []).sorted(), inRaw: raw)
                } catch {
                    logger.warning("query could not read block \(key.segment)@\(key.offset): \(error)")
                    partial = true
                    decoded[key] = [:]
                }
            }
            return decoded[key]?[Int(ref.location.index)]
        }
        var out: [Record] = []
        var seen = Set<String>()
        var bytes = 0
        var position = offset
        while position < ordered.count {
            let ref = ordered[position]
            // `lists`: a sealed index finds refs by key hash, which another subject may share.
            guard let r = record(ref), subject.lists(r), query.matches(r), seen.insert(r.eventID).inserted else {
                position += 1
                continue
            }
            if out.count >= query.limit {
                return Answer(records: out, truncated: true, partial: partial)
            }
            let size = r.jsonCount + r.eventID.utf8.count + 32
            if !out.isEmpty && bytes + size > byteBudget {
                return Answer(records: out, truncated: false, partial: partial, nextOffset: position)
            }
            out.append(r)
            bytes += size
            position += 1
        }
        return Answer(records: out, truncated: false, partial: partial)
    }

    /// Reads the blocks behind `refs` (in walk order, the first `Limits.queryPrefetchBlocks`) that
    /// the block cache does not hold: those in the page cache at once, the others several at a
    /// time on the I/O threads (a session's events sit in blocks spread over the log, and from a
    /// cold disk one read after another waits for each seek in turn). Blocks that fail are left
    /// out (the walk reads them again and reports the error).
    func prefetch(_ refs: ArraySlice<EventRef>) -> [BlockKey: [UInt8]] {
        var missing: [BlockKey] = []
        var seen = Set<BlockKey>()
        for r in refs where missing.count < config.limits.queryPrefetchBlocks {
            let k = BlockKey(segment: r.location.segment, offset: r.location.blockOffset)
            if seen.insert(k).inserted && blockCache.get(k) == nil { missing.append(k) }
        }
        // What the page cache holds is read here at once; only reads that would wait for the disk
        // go to the I/O threads (a hop per block costs more than a cached read).
        var cached: [BlockKey: [UInt8]] = [:]
        var cold: [BlockKey] = []
        for k in missing {
            if let raw = try? log.readRawBlockIfCached(segment: k.segment, offset: k.offset) { cached[k] = raw } else { cold.append(k) }
        }
        let keys = cold
        guard !keys.isEmpty else { return cached }
        let results = Mutex(cached)
        let log = self.log
        concurrently(keys.count) { i in
            if let raw = try? log.readRawBlock(segment: keys[i].segment, offset: keys[i].offset) {
                results.withLock { $0[keys[i]] = raw }
            }
        }
        return results.withLock { $0 }
    }

    /// Runs body(0..<n) on the I/O pool and waits for all of them.
    func concurrently(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard n > 1 else {
            if n == 1 { body(0) }
            return
        }
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            Self.ioPool.submit { state in
                if case .active = state { body(i) }
                group.leave()
            }
        }
        group.wait()
    }

    /// Reads records by location (any order in, log order out); unreadable blocks are skipped.
    func readRecords(_ refs: [EventRef]) -> [Record] {
        readRecordsAligned(refs.sorted { $0.seq < $1.seq }).compactMap { $0 }
    }

    /// How the group-commit plan reads stored records back to confirm a dedupe candidate.
    var storedRecords: StoredRecords {
        StoredRecords(read: { [self] ref in readRecordsAligned([ref]).first ?? nil },
                      sealed: { [self] subject, t in
                          sealed.refs(of: subject, file: { $0.minReceivedAt <= t && t <= $0.maxReceivedAt },
                                      keep: { $0.receivedAt == t }).refs
                      })
    }

    /// Reads records by location, one answer per ref in the same order (nil where unreadable).
    func readRecordsAligned(_ refs: [EventRef]) -> [Record?] {
        var byBlock: [BlockKey: [Int]] = [:]
        for ref in refs {
            byBlock[BlockKey(segment: ref.location.segment, offset: ref.location.blockOffset), default: []].append(Int(ref.location.index))
        }
        var decoded: [BlockKey: [Int: Record]] = [:]
        for (key, indexes) in byBlock {
            guard let raw = blockCache.get(key) ?? (try? log.readRawBlock(segment: key.segment, offset: key.offset)) else { continue }
            decoded[key] = try? BlockCodec.records(at: indexes.sorted(), inRaw: raw)
        }
        return refs.map { decoded[BlockKey(segment: $0.location.segment, offset: $0.location.blockOffset)]?[Int($0.location.index)] }
    }

    /// Receive time of the newest record in this node's index (catch-up starts a little before it).
    public var newestReceivedAt: Int64 {
        index.withLock { idx in idx.sessions.values.reduce(Int64(0)) { max($0, $1.newestReceivedAt) } }
    }

    /// Every ref of `subject`: the open ones from memory first, then the sealed segments' (whose
    /// ts range meets `from`...`to`); true when a sealed index could not be read.
    func refs(of subject: SubjectKey, ts from: Int64?, _ to: Int64?) -> ([EventRef], Bool) {
        // Open refs first: a seal moves refs from there to `sealed` under the index lock, so
        // reading in this order sees each ref at least once (twice is dropped by event id).
        let refs = index.withLock { $0.openRefs(of: subject) }
        let found = sealed.refs(of: subject, file: { h in
            h.count > 0 && (from.map { h.maxTs >= $0 } ?? true) && (to.map { h.minTs <= $0 } ?? true)
        }, concurrently: concurrently)
        for f in found.failed {
            logger.error("index of segment \(f.segment) could not be read: \(f.error)")
            metrics.indexReadErrors.increment()
        }
        guard !refs.isEmpty, !found.refs.isEmpty else { return (refs + found.refs, !found.failed.isEmpty) }
        let open = Set(refs.map(\.seq))   // a seal racing this read may show a ref in both places
        return (refs + found.refs.filter { !open.contains($0.seq) }, !found.failed.isEmpty)
    }

    public func session(_ id: String, query: EventQuery, offset: Int = 0, byteBudget: Int = .max) -> (Answer, SessionState?) {
        let now = clock()
        let state = index.withLock { $0.state(ofSession: id, now: now) }
        return (read(.session(id), query: query, offset: offset, byteBudget: byteBudget), state)
    }

    public func state(ofSession id: String) -> SessionState? {
        let now = clock()
        return index.withLock { $0.state(ofSession: id, now: now) }
    }

    public func events(ofUser id: String, query: EventQuery, offset: Int = 0, byteBudget: Int = .max) -> Answer {
        read(.user(id), query: query, offset: offset, byteBudget: byteBudget)
    }

    public func events(ofTerminal id: String, query: EventQuery, offset: Int = 0, byteBudget: Int = .max) -> Answer {
        read(.terminal(id), query: query, offset: offset, byteBudget: byteBudget)
    }

    /// The session an identity-only event belongs to, from this node's links.
    public func resolveSession(userID: String?, terminalID: String?) -> String? {
        index.withLock { $0.resolveSession(userID: userID, terminalID: terminalID) }
    }

    public func sessions(ofUser id: String) -> [NodeIndex.Link] {
        index.withLock { $0.users[id]?.links ?? [] }
    }

    public func sessions(ofTerminal id: String) -> [NodeIndex.Link] {
        index.withLock { $0.terminals[id]?.links ?? [] }
    }

    public func componentStats() -> [(String, ComponentStats)] {
        index.withLock { $0.components.sorted { $0.key < $1.key } }
    }

    public var eventCount: Int { index.withLock { $0.eventCount } }
    public var now: Int64 { clock() }
}

struct BlockKey: Hashable, Sendable {
    var segment: UInt32
    var offset: UInt64
}

/// A small shared cache of uncompressed block payloads for queries (bounded by count;
/// evicts in insertion order).
final class BlockCache: Sendable {
    struct State {
        var map: [BlockKey: [UInt8]] = [:]
        var order: [BlockKey] = []
        var bytes = 0
    }
    let capacity: Int
    let state = Mutex(State())
    init(capacity: Int) { self.capacity = capacity }

    func get(_ k: BlockKey) -> [UInt8]? { state.withLock { $0.map[k] } }
    func put(_ k: BlockKey, _ v: [UInt8]) {
        state.withLock { s in
            if let old = s.map.updateValue(v, forKey: k) { s.bytes -= old.count } else { s.order.append(k) }
            s.bytes += v.count
            while s.order.count > capacity {
                s.bytes -= s.map.removeValue(forKey: s.order.removeFirst())?.count ?? 0
            }
        }
    }
    func removeAll() { state.withLock { $0 = State() } }
    var bytes: Int { state.withLock { $0.bytes } }
}

/// Answers a group once each of its `parts` (the local flush, the followers) arrived: with the
/// first error any part reported, else nil. Parts arrive on any thread, each exactly once.
final class AckJoin: Sendable {
    private let state: Mutex<(left: Int, error: IngestError?)>
    private let done: @Sendable (IngestError?) -> Void

    init(parts: Int, done: @escaping @Sendable (IngestError?) -> Void) {
        state = Mutex((parts, nil))
        self.done = done
    }

    func arrive(_ error: IngestError?) {
        let result: IngestError?? = state.withLock { s in
            if s.error == nil { s.error = error }
            s.left -= 1
            return s.left == 0 ? .some(s.error) : .none
        }
        if let result { done(result) }
    }
}
