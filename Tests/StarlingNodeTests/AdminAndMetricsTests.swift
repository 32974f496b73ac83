import Foundation
import Testing
import StarlingCore
@testable import StarlingNode

/// Admin calls are not open to whoever reaches HTTP, and metrics can move off the public port.
@Suite(.serialized) struct AdminAndMetricsTests {
    @Test func withoutATokenOnlyThisHostNotThroughAProxy() throws {
        let node = try LiveNode()
        defer { node.stop() }
        // A loopback client straight to the node: taken (the test node cannot stop over HTTP: 501).
        #expect(try node.call("POST", "/v1/admin/leave").status == 501)
        // The same through a proxy on this host: refused.
        let proxied = try node.json("POST", "/v1/admin/leave", headers: [("X-Forwarded-For", "203.0.113.9")])
        #expect(proxied.0 == 403 && errorCode(proxied.1) == "forbidden")
        // From another host (an in-memory request with a public peer address).
        let api = node.server.api
        let remote = try api.handle(APIRequest(method: .POST, uri: "/v1/admin/leave", remoteIP: "198.51.100.7"),
                                    on: node.server.group.next()).wait()
        #expect(remote.status == .forbidden)
        #expect(try node.call("GET", "/metrics").text.contains("starling_admin_refused_total 2"))
    }

    @Test func withATokenTheBearerMustMatch() throws {
        let node = try LiveNode { $0.adminToken = "s3cret-admin-token-0123" }
        defer { node.stop() }
        #expect(try node.call("POST", "/v1/admin/leave").status == 401)
        #expect(try node.call("POST", "/v1/admin/leave", headers: [("Authorization", "Bearer wrong-token-0123456")]).status == 401)
        #expect(try node.call("POST", "/v1/admin/leave", headers: [("Authorization", "Bearer s3cret-admin-token-0123")]).status == 501)
        // With a token, a proxied caller that has it is taken.
        #expect(try node.call("POST", "/v1/admin/leave", headers: [("Authorization", "Bearer s3cret-admin-token-0123"),
                                                                   ("X-Forwarded-For", "203.0.113.9")]).status == 501)
        #expect(NodeAPI.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!NodeAPI.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!NodeAPI.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
    }

    @Test func metricsOnTheirOwnListener() throws {
        let node = try LiveNode { $0.metricsListen = HostPort(host: "127.0.0.1", port: 0) }
        defer { node.stop() }
        let port = try #require(node.server.metricsPort)
        let metrics = try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/metrics")
        #expect(metrics.status == 200 && metrics.text.contains("starling_events_ingested_total"))
        #expect(try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "GET", path: "/healthz").status == 200)
        #expect(try SimpleHTTPClient.request(host: "127.0.0.1", port: port, method: "POST", path: "/v1/events",
                                             body: Array(#"{"session_id":"m","key":"k","value":1}"#.utf8)).status == 404)
        #expect(try node.call("GET", "/metrics").status == 404, "the public port serves no metrics then")
        #expect(try node.call("POST", "/v1/events", #"{"session_id":"m","key":"k","value":1}"#).status == 202)
    }
}
