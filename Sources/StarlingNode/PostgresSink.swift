#if canImport(Glibc)
import Glibc
#endif
import CLibPQ
import Dispatch
import Logging
import StarlingCore
import StarlingLog
import Synchronization

/// `--sink-postgres CONNINFO`: streams every event this node stores into a PostgreSQL table,
/// at least once, from a durable cursor in the local log (`SinkCursor`).
///
/// - **Reads the log, not the write path.** A thread of its own reads blocks after the cursor
///   and sends them in batches; ingest never waits for it. When PostgreSQL is slow or down the
///   sink falls behind (`starling_sink_lag_bytes`) and retries with backoff; it catches up from
///   the log when it can.
/// - **Exactly once in the table.** Every node sinks every event it stores (its own and its
///   replica copies), so an event reaches the table even when its owner dies before sending it;
///   the table's primary key (routing key, event id) and `ON CONFLICT DO NOTHING` keep one row.
///   The cursor moves only after PostgreSQL confirmed a batch, so a restart re-sends at most
///   that batch, which the key drops.
/// - Retention that removes segments the sink has not read loses them for the sink
///   (`starling_sink_skipped_segments_total`).
final class PostgresSink: @unchecked Sendable {
    let conninfo: String
    let table: String
    let batchMax: Int
    let log: SegmentedLog
    let dataDir: String
    let metrics: NodeMetrics
    let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let thread = DispatchQueue(label: "starling.sink")
    private let done = DispatchSemaphore(value: 0)
    private var conn: OpaquePointer?

    init(conninfo: String, table: String, batchMax: Int, log: SegmentedLog, dataDir: String, metrics: NodeMetrics, logger: Logger) {
        self.conninfo = conninfo
        self.table = table
        self.batchMax = batchMax
        self.log = log
        self.dataDir = dataDir
        self.metrics = metrics
        self.logger = logger
    }

    var cursorPath: String { "\(dataDir)/sink.postgres.cursor" }

    func start() {
        thread.async { [self] in
            run()
            done.signal()
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        _ = done.wait(timeout: .now() + 10)
        if let conn { PQfinish(conn) }
        conn = nil
    }

    // MARK: The loop

    private func run() {
        var cursor = FileIO.readFile(cursorPath).flatMap(SinkCursor.decode) ?? firstCursor()
        var backoffMs = 100
        while !stopped.load(ordering: .relaxed) {
            gaugeLag(cursor)
            let (records, next) = read(from: cursor)
            if records.isEmpty {
                if next != cursor {
                    cursor = next
                    saveCursor(cursor)
                    continue
                }
                sleepMs(200)
                continue
            }
            do {
                try send(records)
                metrics.sinkEvents.increment(by: Int64(records.count))
                cursor = next
                saveCursor(cursor)
                backoffMs = 100
            } catch let error as SinkError where error.statement {
                // PostgreSQL refused the batch's data (say a \u0000 that jsonb cannot hold):
                // send the rows one by one, so one bad event does not stop the stream.
                logger.warning("postgres sink: a batch was refused (\(error)); sending its \(records.count) rows one by one")
                var sent = 0
                for r in records {
                    do {
                        try send([r])
                        sent += 1
                    } catch let e as SinkError where e.statement {
                        metrics.sinkRejected.increment()
                        logger.error("postgres sink: event \(r.eventID) of session '\(r.sessionID)' refused: \(e)")
                    } catch {
                        break
                    }
                }
                if conn.map({ PQstatus($0) == CONNECTION_OK }) == true {
                    metrics.sinkEvents.increment(by: Int64(sent))
                    cursor = next
                    saveCursor(cursor)
                }
            } catch {
                metrics.sinkErrors.increment()
                logger.warning("postgres sink: \(error); retrying in \(backoffMs) ms")
                if let conn { PQfinish(conn) }
                conn = nil
                sleepMs(backoffMs)
                backoffMs = min(backoffMs * 2, 10_000)
            }
        }
    }

    private func sleepMs(_ ms: Int) {
        var left = ms
        while left > 0 && !stopped.load(ordering: .relaxed) {
            usleep(UInt32(min(left, 100)) * 1000)
            left -= 100
        }
    }

    private func firstCursor() -> SinkCursor {
        SinkCursor(segment: log.segmentNumbers.first ?? 1, offset: UInt64(SegmentedLog.segmentHeaderBytes))
    }

    private func saveCursor(_ c: SinkCursor) {
        do {
            try FileIO.writeFileAtomically(cursorPath, c.encoded)
        } catch {
            logger.error("postgres sink: cannot save the cursor: \(error)")
        }
    }

    /// Bytes of the log after the cursor.
    private func gaugeLag(_ c: SinkCursor) {
        var lag = 0
        for s in log.segmentNumbers where s >= c.segment {
            let size = log.segmentBytes(s) ?? 0
            lag += s == c.segment ? max(0, size - Int(c.offset)) : size
        }
        metrics.sinkLagBytes.set(Double(lag))
    }

    /// Up to `batchMax` events after the cursor, and the cursor after them. Moves past the end
    /// of a segment that a newer one follows; waits at a torn block at the end of the newest
    /// (an append in flight); skips a damaged block elsewhere, as recovery does.
    private func read(from start: SinkCursor) -> ([Record], SinkCursor) {
        var c = start
        var out: [Record] = []
        let segments = log.segmentNumbers
        if !segments.contains(c.segment) {
            // Removed by retention (or never there): go on at the next segment we have.
            guard let next = segments.first(where: { $0 > c.segment }) else { return ([], c) }
            metrics.sinkSkippedSegments.increment(by: Int64(next - c.segment))
            logger.warning("postgres sink: segments before \(next) are gone (retention); they were not all sent")
            return ([], SinkCursor(segment: next, offset: UInt64(SegmentedLog.segmentHeaderBytes)))
        }
        while out.count < batchMax {
            guard let end = log.segmentBytes(c.segment) else { break }
            if c.offset >= UInt64(end) {
                guard let next = segments.first(where: { $0 > c.segment }) else { break }
                c = SinkCursor(segment: next, offset: UInt64(SegmentedLog.segmentHeaderBytes))
                continue
            }
            do {
                let block = try log.readBlockForScan(segment: c.segment, offset: c.offset)
                out.append(contentsOf: block.records.filter { $0.kind == .event })
                c.offset = block.next
            } catch {
                let newest = segments.last == c.segment
                guard let next = try? log.nextValidBlock(segment: c.segment, after: c.offset, end: end) else {
                    if newest { break }   // an append in flight: read it next time
                    guard let n = segments.first(where: { $0 > c.segment }) else { break }
                    c = SinkCursor(segment: n, offset: UInt64(SegmentedLog.segmentHeaderBytes))
                    continue
                }
                if newest && next >= UInt64(end) { break }
                logger.warning("postgres sink: unreadable block in segment \(c.segment) at \(c.offset): \(error)")
                metrics.sinkErrors.increment()
                c.offset = next
            }
        }
        return (out, c)
    }

    // MARK: PostgreSQL

    struct SinkError: Error, CustomStringConvertible {
        var description: String
        /// The server refused the statement (the connection is fine): retrying the same data
        /// would fail again.
        var statement = false
    }

    private func connection() throws -> OpaquePointer {
        if let conn, PQstatus(conn) == CONNECTION_OK { return conn }
        if let conn { PQfinish(conn) }
        let c = PQconnectdb(conninfo)
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let why = c.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            if let c { PQfinish(c) }
            throw SinkError(description: "cannot connect: \(why.trimmingSpaces)")
        }
        conn = c
        try exec(c, """
            CREATE TABLE IF NOT EXISTS \(table) (
              routing_key text NOT NULL, event_id text NOT NULL, session_id text, ts bigint NOT NULL,
              received_at bigint NOT NULL, key text NOT NULL, event jsonb NOT NULL,
              PRIMARY KEY (routing_key, event_id))
            """, [])
        return c
    }

    private func exec(_ c: OpaquePointer, _ sql: String, _ params: [String]) throws {
        let cParams = params.map { strdup($0) }
        defer { cParams.forEach { free($0) } }
        let ptrs: [UnsafePointer<CChar>?] = cParams.map { $0.map { UnsafePointer<CChar>($0) } }
        let result = ptrs.withUnsafeBufferPointer { PQexecParams(c, sql, Int32(params.count), nil, $0.baseAddress, nil, nil, 0) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let connected = PQstatus(c) == CONNECTION_OK
            throw SinkError(description: String(cString: PQresultErrorMessage(result)).trimmingSpaces,
                            statement: connected && status == PGRES_FATAL_ERROR)
        }
    }

    /// One statement per batch: rows as parallel arrays (`unnest`), kept by the primary key.
    private func send(_ records: [Record]) throws {
        let c = try connection()
        var keys: [String] = [], ids: [String] = [], sessions: [String] = [], ts: [String] = [], received: [String] = []
        var names: [String] = [], events: [String] = []
        for r in records {
            let routing = r.sessionID.isEmpty ? (NodeIndex.subjects(listing: r).first?.ringKey ?? "") : r.sessionID
            keys.append(routing)
            ids.append(r.eventID)
            sessions.append(r.sessionID)
            ts.append(String(r.ts))
            received.append(String(r.receivedAt))
            names.append(r.key)
            events.append(String(decoding: r.json, as: UTF8.self))
        }
        let sql = """
            INSERT INTO \(table) (routing_key, event_id, session_id, ts, received_at, key, event)
            SELECT k, i, NULLIF(s, ''), t, r, n, e::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
              AS u(k, i, s, t, r, n, e)
            ON CONFLICT DO NOTHING
            """
        try exec(c, sql, [keys, ids, sessions, ts, received, names, events].map(Self.arrayLiteral))
    }

    /// A PostgreSQL array literal of strings: every element quoted, `"` and `\` escaped.
    static func arrayLiteral(_ items: [String]) -> String {
        var out = "{"
        for (i, s) in items.enumerated() {
            if i > 0 { out += "," }
            out += "\""
            for ch in s.unicodeScalars {
                if ch == "\"" || ch == "\\" { out += "\\" }
                out.unicodeScalars.append(ch)
            }
            out += "\""
        }
        return out + "}"
    }
}
