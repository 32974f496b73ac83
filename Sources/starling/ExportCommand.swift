import ArgumentParser
import Foundation
import StarlingCore
import StarlingNode

/// `starling export`: every member writes the events of a sealed day that it owns (each once
/// across the cluster) to its own disk; the command collects the manifests.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a sealed day's events from every member (POST /v1/admin/export on each).",
        discussion: """
        Each member writes OUT/DAY/<node>.<format>[.gz|.lz4|.zst] and a manifest beside it (events, bytes,
        SHA-256) on its own filesystem: the events of DAY whose session it owns in the current ring,
        each event id once, so the files of all members together hold every event of the day once.
        TSV/CSV columns: event_id, session_id, ts, received_at, key, value, user_id, terminal_id,
        account_id, component, via, node, ip, then the --columns paths (e.g. attrs.geo.country).
        """)
    @OptionGroup var address: NodeAddress
    @Option(help: "The UTC day, YYYY-MM-DD (before today).") var day: String
    @Option(help: "ndjson | tsv | csv") var format: String = "ndjson"
    @Option(help: "none | gzip | lz4 | zstd") var compress: String = "none"
    @Option(help: "Extra TSV/CSV columns, comma-separated paths into the event (attrs.geo.country,value.sku).") var columns: String?
    @Option(help: "Directory on the nodes' filesystem (made if missing).") var out: String
    @Option(name: .customLong("token-file"), help: "File holding the members' admin token (their --admin-token-file).") var tokenFile: String?

    func run() throws {
        let outDir = out.hasPrefix("/") ? out : FileManager.default.currentDirectoryPath + "/" + out
        let r = try address.call("GET", "/v1/cluster")
        guard r.status == 200, let view = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
              let members = view["members"] as? [[String: Any]] else {
            throw CommandFailure(description: "error: cannot read the membership from \(address.node) (HTTP \(r.status))")
        }
        var body: [String: Any] = ["day": day, "format": format, "compress": compress, "out": outDir]
        if let columns { body["columns"] = columns.split(separator: ",").map { String($0) } }
        let payload = Array(try JSONSerialization.data(withJSONObject: body))
        let headers = try adminHeaders(tokenFile: tokenFile) + [("Content-Type", "application/json")]
        var failed: [String] = []
        var total = 0
        print("NODE".padding(toLength: 20, withPad: " ", startingAt: 0) + "EVENTS".padding(toLength: 12, withPad: " ", startingAt: 0) + "BYTES".padding(toLength: 14, withPad: " ", startingAt: 0) + "FILE")
        for m in members {
            let id = m["id"] as? String ?? "?", status = m["status"] as? String ?? "?"
            if status == "left" { continue }
            guard status == "up", let http = (m["http"] as? String).flatMap(HostPort.init) else {
                failed.append("\(id) is \(status)")
                continue
            }
            do {
                let a = try SimpleHTTPClient.request(host: http.host, port: http.port, method: "POST", path: "/v1/admin/export",
                                                     headers: headers, body: payload, timeoutSeconds: 3600)
                guard a.status == 200, let manifest = try? JSONSerialization.jsonObject(with: Data(a.body)) as? [String: Any] else {
                    failed.append("\(id): HTTP \(a.status) \(a.text)")
                    continue
                }
                let events = manifest["events"] as? Int ?? 0
                total += events
                print(id.padding(toLength: 20, withPad: " ", startingAt: 0) + "\(events)".padding(toLength: 12, withPad: " ", startingAt: 0)
                      + "\(manifest["bytes"] ?? 0)".padding(toLength: 14, withPad: " ", startingAt: 0) + "\(outDir)/\(day)/\(manifest["file"] ?? "")")
            } catch {
                failed.append("\(id): \(error)")
            }
        }
        print("total: \(total) events")
        if !failed.isEmpty {
            throw CommandFailure(description: "error: the export is not complete: " + failed.joined(separator: "; "))
        }
    }
}
