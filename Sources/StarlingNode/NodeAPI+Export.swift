import NIOCore
import NIOHTTP1
import StarlingCore

extension NodeAPI {
    /// `POST /v1/admin/export` `{"day","format","compress","columns":[…],"out"}`: this node writes
    /// the events of a sealed day that it owns in the current ring (each once) under `out` on its
    /// own disk, and answers the manifest. `starling export` asks every member.
    func export(_ req: APIRequest, _ loop: EventLoop) -> EventLoopFuture<APIResponse> {
        let body = req.body.flatMap { $0.getBytes(at: $0.readerIndex, length: $0.readableBytes) } ?? []
        guard body.count <= 64 * 1024, case .object(let o)? = try? JSONParser.parse(body) else {
            return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "the body must be a JSON object")))
        }
        func text(_ k: String) -> String? { if case .string(let s)? = o[k] { return s }; return nil }
        guard let day = text("day"), let out = text("out"), out.hasPrefix("/") else {
            return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "'day' (YYYY-MM-DD) and 'out' (an absolute directory) are required")))
        }
        guard let format = ExportFormat(rawValue: text("format") ?? "ndjson") else {
            return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "'format' must be ndjson, tsv or csv")))
        }
        guard let compression = ExportCompression(rawValue: text("compress") ?? "none") else {
            return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "'compress' must be none, gzip, lz4 or zstd")))
        }
        var columns: [String] = []
        if case .array(let list)? = o["columns"] {
            for v in list {
                guard case .string(let c) = v, !c.isEmpty else {
                    return loop.makeSucceededFuture(.error(IngestError(code: "bad_request", message: "'columns' must be strings such as attrs.geo.country")))
                }
                columns.append(c)
            }
        }
        let engine = self.engine, cluster = self.cluster, me = config.id
        return threadPool.runIfActive(eventLoop: loop) {
            let manifest = try engine.export(day: day, format: format, compression: compression, extraColumns: columns, outDir: out) { r in
                let key = r.sessionID.isEmpty ? (NodeIndex.subjects(listing: r).first?.ringKey ?? "") : r.sessionID
                return cluster.owner(of: key) == me
            }
            return APIResponse.json(.ok, manifest.json)
        }.flatMapErrorThrowing { error in
            if let e = error as? ExportError { return .error(IngestError(status: e.status, code: "export_failed", message: e.description)) }
            return .error(IngestError(status: 500, code: "export_failed", message: "\(error)"))
        }
    }
}
