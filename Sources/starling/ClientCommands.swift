import ArgumentParser
import Foundation
import StarlingCore
import StarlingNode

/// Options shared by the client subcommands: which node to talk to.
struct NodeAddress: ParsableArguments {
    @Option(name: .customLong("node"), help: "HTTP address of any node, HOST:PORT.") var node: String = "127.0.0.1:8081"

    func call(_ method: String, _ path: String, body: [UInt8] = [], headers: [(String, String)] = []) throws -> SimpleHTTPClient.Response {
        guard let hp = HostPort(node) else { throw ValidationError("invalid --node '\(node)': expected HOST:PORT") }
        do {
            return try SimpleHTTPClient.request(host: hp.host, port: hp.port, method: method, path: path, headers: headers, body: body)
        } catch {
            throw CommandFailure(description: "error: \(error)")
        }
    }
}

func percentEncode(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
}

/// The `Authorization` header an admin call sends when `--token-file` is given.
func adminHeaders(tokenFile: String?) throws -> [(String, String)] {
    guard let tokenFile else { return [] }
    guard let bytes = FileManager.default.contents(atPath: tokenFile) else {
        throw CommandFailure(description: "error: cannot read --token-file '\(tokenFile)'")
    }
    return [("Authorization", "Bearer " + String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))]
}

func printBody(_ r: SimpleHTTPClient.Response) throws {
    FileHandle.standardOutput.write(Data(r.body))
    if r.body.last != 0x0A { print("") }
    if r.status >= 300 { throw CommandFailure(description: "error: HTTP \(r.status)") }
}

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send events: one from flags, or NDJSON read from standard input (POST /v1/events).")
    @OptionGroup var address: NodeAddress
    @Option(help: "session_id") var session: String?
    @Option(help: "key") var key: String?
    @Option(help: "value as JSON (default: null)") var value: String = "null"
    @Option(help: "user_id") var user: String?
    @Option(help: "component") var component: String?
    @Option(help: "via") var via: String?

    func run() throws {
        let body: [UInt8]
        let ct: String
        if let key {
            var obj = "{"
            if let session { obj += "\"session_id\":\(jsonString(session))," }
            if let user { obj += "\"user_id\":\(jsonString(user))," }
            if let component { obj += "\"component\":\(jsonString(component))," }
            if let via { obj += "\"via\":\(jsonString(via))," }
            obj += "\"key\":\(jsonString(key)),\"value\":\(value)}"
            body = Array(obj.utf8)
            ct = "application/json"
        } else {
            body = Array(FileHandle.standardInput.readDataToEndOfFile())
            ct = "application/x-ndjson"
        }
        try printBody(try address.call("POST", "/v1/events", body: body, headers: [("Content-Type", ct)]))
    }

    func jsonString(_ s: String) -> String {
        String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
    }
}

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Print every event of a session (GET /v1/sessions/{id}).")
    @OptionGroup var address: NodeAddress
    @Argument(help: "session id") var session: String
    @Option(help: "json | ndjson | html") var format: String = "json"
    @Option(help: "keep only this key") var key: String?
    @Option(help: "at most this many events") var limit: Int?

    func run() throws {
        var path = "/v1/sessions/\(percentEncode(session))?format=\(percentEncode(format))"
        if let key { path += "&key=\(percentEncode(key))" }
        if let limit { path += "&limit=\(limit)" }
        try printBody(try address.call("GET", path))
    }
}

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Inspect the cluster.",
                                                    subcommands: [Status.self, Leave.self, Remove.self])
    struct Leave: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "leave",
            abstract: "Ask member ID to leave the cluster gracefully (its data stays on its replicas) and exit 0.")
        @OptionGroup var address: NodeAddress
        @Argument(help: "member id") var id: String
        @Option(name: .customLong("token-file"), help: "File holding the member's admin token (its --admin-token-file).") var tokenFile: String?

        func run() throws {
            let r = try address.call("GET", "/v1/cluster")
            guard let obj = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let members = obj["members"] as? [[String: Any]],
                  let member = members.first(where: { $0["id"] as? String == id }),
                  let http = member["http"] as? String, let hp = HostPort(http) else {
                throw CommandFailure(description: "error: no member '\(id)' in the cluster seen by \(address.node)")
            }
            let answer: SimpleHTTPClient.Response
            let headers = try adminHeaders(tokenFile: tokenFile)
            do {
                answer = try SimpleHTTPClient.request(host: hp.host, port: hp.port, method: "POST", path: "/v1/admin/leave", headers: headers)
            } catch {
                throw CommandFailure(description: "error: \(error)")
            }
            try printBody(answer)
        }
    }
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove member ID, down for good, from the cluster (asked of --node; its copies were restored when it went down).")
        @OptionGroup var address: NodeAddress
        @Argument(help: "member id") var id: String
        @Option(name: .customLong("token-file"), help: "File holding --node's admin token (its --admin-token-file).") var tokenFile: String?

        func run() throws {
            try printBody(address.call("POST", "/v1/admin/remove/" + percentEncode(id), headers: adminHeaders(tokenFile: tokenFile)))
        }
    }
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Print the membership table (GET /v1/cluster).")
        @OptionGroup var address: NodeAddress
        @Flag(help: "print the raw JSON") var json = false

        func run() throws {
            let r = try address.call("GET", "/v1/cluster")
            guard r.status == 200, !json,
                  let obj = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let members = obj["members"] as? [[String: Any]] else {
                try printBody(r)
                return
            }
            print("self: \(obj["self"] ?? "-")   epoch: \(obj["epoch"] ?? "-")   rf: \(obj["rf"] ?? "-")")
            let pad = { (s: String, n: Int) in s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
            print(pad("ID", 34) + pad("STATUS", 10) + pad("HTTP", 24) + "PEER")
            for m in members {
                print(pad("\(m["id"] ?? "")", 34) + pad("\(m["status"] ?? "")", 10) + pad("\(m["http"] ?? "")", 24) + "\(m["peer"] ?? "")")
            }
        }
    }
}
