import Foundation
import StarlingCore
import Synchronization
import Testing
@testable import StarlingNode

/// `starling export` of a sealed day: each event once across the cluster (owned, not replica
/// copies; repeats once), files and manifests that agree, the formats and compressions readable
/// by the standard tools.
@Suite(.serialized) struct ExportTests {
    static let day1 = Timestamps.parseUTCDay("2026-03-01")! + 10 * 3_600_000
    static let day2 = Timestamps.parseUTCDay("2026-03-02")! + 3_600_000

    func run(_ tool: String, _ args: [String]) -> (status: Int32, out: [UInt8]) {
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return (-1, []) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, Array(data))
    }

    func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func eachEventOfADayOnceAcrossTheCluster() throws {
        let now = Mutex_<Int64>(Self.day1)
        let clock: @Sendable () -> Int64 = { now.get() }
        let a = try LiveNode(id: "a", configure: { $0.rf = 2 }, clock: clock)
        defer { a.stop() }
        let b = try LiveNode(id: "b", configure: { $0.rf = 2; $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)] }, clock: clock)
        defer { b.stop() }
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 && (try? b.call("GET", "/readyz").status) == 200 })
        var ids: Set<String> = []
        for i in 0..<200 {
            let body = #"{"session_id":"x-\#(i % 40)","key":"k","value":"v\t\#(i)\n","event_id":"e-\#(i)","attrs":{"geo":{"country":"GB"}}}"#
            #expect(try (i % 2 == 0 ? a : b).call("POST", "/v1/events", body).status == 202)
            ids.insert("e-\(i)")
        }
        // A repeat, and an event of the next day: neither may add a line.
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"x-1","key":"k","value":1,"event_id":"e-1"}"#).status == 202)
        now.set(Self.day2)
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"x-1","key":"k","value":1,"event_id":"next-day"}"#).status == 202)

        let out = NSTemporaryDirectory() + "starling-export-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: out) }
        var exported: [String] = []
        var perNode: [Int] = []
        for n in [a, b] {
            let (status, manifest) = try n.json("POST", "/v1/admin/export", #"{"day":"2026-03-01","format":"ndjson","out":"\#(out)"}"#)
            #expect(status == 200, "\(manifest)")
            let file = "\(out)/2026-03-01/\(manifest["file"] as? String ?? "")"
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            let rows = lines(bytes)
            #expect(rows.count == manifest["events"] as? Int)
            #expect(bytes.count == manifest["bytes"] as? Int)
            let sum = String(decoding: run("sha256sum", [file]).out, as: UTF8.self).prefix(64)
            #expect(String(sum) == manifest["sha256"] as? String, "the manifest's checksum is the file's")
            #expect(manifest["skipped_not_owned"] as? Int ?? 0 > 0, "the other owner's copies are left out")
            #expect(FileManager.default.fileExists(atPath: file + ".manifest.json"))
            for row in rows {
                let obj = try JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any]
                exported.append(obj?["event_id"] as? String ?? "?")
            }
            perNode.append(rows.count)
        }
        #expect(exported.count == 200 && Set(exported) == ids, "every event of the day once across both nodes")
        #expect(perNode.allSatisfy { $0 > 0 }, "both nodes own some sessions: \(perNode)")

        // TSV with a chosen column, gzip: readable by gzip, escaped for COPY.
        let (st, tsv) = try a.json("POST", "/v1/admin/export", #"{"day":"2026-03-01","format":"tsv","compress":"gzip","columns":["attrs.geo.country","attrs.missing"],"out":"\#(out)"}"#)
        #expect(st == 200)
        let gz = "\(out)/2026-03-01/\(tsv["file"] as? String ?? "")"
        #expect(gz.hasSuffix("a.tsv.gz"))
        let unzipped = run("gzip", ["-dc", gz])
        #expect(unzipped.status == 0)
        let tsvRows = lines(unzipped.out)
        #expect(tsvRows.count == tsv["events"] as? Int)
        let cells = tsvRows.first?.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) ?? []
        #expect(cells.count == ExportFormat.fixedColumns.count + 2)
        #expect(cells.first?.hasPrefix("e-") == true && cells[ExportFormat.fixedColumns.count] == "GB" && cells.last == "")
        #expect(cells[5].hasPrefix("v\\t") && cells[5].hasSuffix("\\n"), "tabs and newlines escaped: \(cells[5])")

        // CSV and LZ4 (the frame format: its magic number first).
        let (st2, lz) = try b.json("POST", "/v1/admin/export", #"{"day":"2026-03-01","format":"csv","compress":"lz4","out":"\#(out)"}"#)
        #expect(st2 == 200)
        let lzBytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(out)/2026-03-01/\(lz["file"] as? String ?? "")")))
        #expect(lzBytes.prefix(4) == [0x04, 0x22, 0x4D, 0x18])

        // NDJSON and zstd: its frame magic, and `zstd -d` gives back the 100 events b owns.
        let (st3, zs) = try b.json("POST", "/v1/admin/export", #"{"day":"2026-03-01","format":"ndjson","compress":"zstd","out":"\#(out)"}"#)
        #expect(st3 == 200)
        let zsPath = "\(out)/2026-03-01/\(zs["file"] as? String ?? "")"
        #expect(zsPath.hasSuffix(".ndjson.zst"))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: zsPath))).prefix(4) == [0x28, 0xB5, 0x2F, 0xFD])
        let unz = run("zstd", ["-dc", zsPath])
        #expect(unz.status == 0, "zstd is needed (apt-get install zstd)")
        let lines = String(decoding: unz.out, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == zs["events"] as? Int && lines.count > 0)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })

        // The day being written is refused; so is a bad request.
        #expect(try a.call("POST", "/v1/admin/export", #"{"day":"2026-03-02","out":"\#(out)"}"#).status == 409)
        #expect(try a.call("POST", "/v1/admin/export", #"{"day":"2026-03-01","format":"parquet","out":"\#(out)"}"#).status == 400)

        // The CLI asks every member and sums up.
        if let bin = starlingBinary() {
            let cli = run(bin, ["export", "--node", "127.0.0.1:\(a.port)", "--day", "2026-03-01", "--out", out + "/cli"])
            #expect(cli.status == 0)
            #expect(String(decoding: cli.out, as: UTF8.self).contains("total: 200 events"))
        } else {
            Issue.record("starling binary not found")
        }
    }

    @Test func sealedDaysAreExportedOnceAutomatically() throws {
        let now = Mutex_<Int64>(Self.day1)
        let out = NSTemporaryDirectory() + "starling-autoexport-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: out) }
        let node = try LiveNode(configure: { $0.exportDir = out; $0.exportFormat = .tsv; $0.exportCompression = .gzip }, clock: { now.get() })
        defer { node.stop() }
        for i in 0..<25 {
            #expect(try node.call("POST", "/v1/events", #"{"session_id":"auto-\#(i % 3)","key":"k","value":\#(i)}"#).status == 202)
        }
        #expect(node.server.exportSealedDays().isEmpty, "nothing is sealed yet")
        now.set(Self.day2)
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"auto-0","key":"k","value":1}"#).status == 202)
        #expect(node.server.exportSealedDays() == ["2026-03-01"])
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/2026-03-01/n1.tsv.gz.manifest.json"))) as? [String: Any]
        #expect(manifest?["events"] as? Int == 25)
        #expect(node.server.exportSealedDays().isEmpty, "a day with its manifest is not exported again")
    }

    @Test func postgresArrayLiteralsQuoteEveryElement() {
        #expect(PostgresSink.arrayLiteral(["a", #"b"c"#, #"d\e"#, "", "{x,y}"]) == #"{"a","b\"c","d\\e","","{x,y}"}"#)
        #expect(PostgresSink.arrayLiteral([]) == "{}")
    }

    @Test func rowsOfEachFormat() {
        let json = Array(#"{"event_id":"e1","session_id":"s","ts":5,"key":"k","value":{"a":"x,y"},"attrs":{"n":"say \"hi\""},"ip":"1.2.3.4"}"#.utf8)
        let cols = ExportFormat.columns(extra: ["attrs.n"])
        #expect(ExportFormat.ndjson.row(json, columns: []) == json + [0x0A])
        let csv = String(decoding: ExportFormat.csv.row(json, columns: cols) ?? [], as: UTF8.self)
        #expect(csv == #"e1,s,5,,k,"{""a"":""x,y""}",,,,,,,1.2.3.4,"say ""hi""""# + "\n")
        #expect(ExportFormat.csv.header(columns: cols).count > 0 && ExportFormat.tsv.header(columns: cols).isEmpty)
        #expect(ExportFormat.tsv.row(Array("not json".utf8), columns: cols) == nil)
    }
}
