import Foundation
import StarlingCore
import Testing
@testable import StarlingNode

/// Enrichment where an event is first received: GeoIP from a real MaxMind database (the 2018
/// GeoLite2 City that the `maxminddb-geolite2` package on PyPI ships; `.ci/run` installs it),
/// the user agent, the first-party id cookie; and that replicas store what the receiver made.
@Suite(.serialized) struct EnrichmentProcessTests {
    /// The database of the installed `maxminddb-geolite2` package.
    static func geoLite() -> String? {
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import os, _maxminddb_geolite2 as m; print(os.path.join(os.path.dirname(m.__file__), 'GeoLite2-City.mmdb'))"]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return p.terminationStatus == 0 && FileManager.default.fileExists(atPath: path) ? path : nil
    }

    static let chrome = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"

    @Test func geoAndUserAgentAreAddedOnceWhereReceived() throws {
        let mmdb = try #require(Self.geoLite(), "pip install maxminddb-geolite2 (.ci/run does)")
        let a = try LiveNode(id: "a") { $0.rf = 2; $0.geoipPath = mmdb }
        defer { a.stop() }
        let b = try LiveNode(id: "b") { $0.rf = 2; $0.geoipPath = mmdb; $0.join = [HostPort(host: "127.0.0.1", port: a.server.peerPort!)] }
        defer { b.stop() }
        #expect(eventually(10) { (try? a.call("GET", "/readyz").status) == 200 && (try? b.call("GET", "/readyz").status) == 200 })
        // Through the trusted local proxy: the client is the X-Forwarded-For address.
        let headers = [("X-Forwarded-For", "81.2.69.160"), ("User-Agent", Self.chrome)]
        for i in 0..<6 {
            #expect(try a.call("POST", "/v1/events", #"{"session_id":"geo-\#(i)","key":"k","value":1}"#, headers: headers).status == 202)
        }
        #expect(try a.call("GET", "/t.gif?sid=geo-px&k=view&v=1", headers: headers).status == 200)
        for n in [a, b] {
            for s in (0..<6).map({ "geo-\($0)" }) + ["geo-px"] {
                let e = try #require(events(try n.json("GET", "/v1/sessions/\(s)").1).first)
                let attrs = e["attrs"] as? [String: Any]
                let geo = attrs?["geo"] as? [String: Any]
                #expect(geo?["country"] as? String == "GB" && geo?["region"] as? String == "ENG" && geo?["city"] as? String == "Willesden", "\(s): \(String(describing: attrs))")
                #expect((attrs?["ua"] as? [String: Any])?["device"] as? String == "mobile")
            }
        }
        // Counted where received only: 7 events on a, none on b (its copies came enriched).
        #expect(metricValue(a.server.engine.metrics, #"starling_events_enriched_total{kind="geo"}"#) == 7)
        #expect(metricValue(b.server.engine.metrics, #"starling_events_enriched_total{kind="geo"}"#) == nil)
        // A loopback client has no location; a server library's agent adds nothing.
        #expect(try a.call("POST", "/v1/events", #"{"session_id":"geo-none","key":"k","value":1}"#, headers: [("User-Agent", "curl/8.0")]).status == 202)
        let plain = try #require(events(try a.json("GET", "/v1/sessions/geo-none").1).first)
        #expect(plain["attrs"] == nil)
    }

    @Test func theFirstPartyCookieIsTheVisitorsTerminalId() throws {
        let node = try LiveNode { $0.idCookie = IDCookie(name: "sid1", domain: "shop.example", maxAgeSeconds: 86_400) }
        defer { node.stop() }
        let first = try node.call("GET", "/t.gif?k=view&v=1")
        #expect(first.status == 200, "a pixel with no id of its own is stored under the visitor's")
        let set = try #require(first.header("Set-Cookie"))
        #expect(set.contains("SameSite=None") && set.contains("Secure") && set.contains("Max-Age=86400") && set.contains("Domain=shop.example"))
        let id = String(set.dropFirst("sid1=".count).prefix(32))
        let again = try node.call("POST", "/v1/events", #"{"session_id":"ck","key":"k","value":1}"#, headers: [("Cookie", "other=1; sid1=" + id)])
        #expect(again.status == 202 && again.header("Set-Cookie")?.hasPrefix("sid1=\(id);") == true, "the same id, its lifetime slid")
        #expect(events(try node.json("GET", "/v1/sessions/ck").1).first?["terminal_id"] as? String == id)
        #expect(events(try node.json("GET", "/v1/terminals/\(id)/events").1).count == 2)
        // Opted out: no cookie, no id.
        let anonymous = try node.call("GET", "/t.gif?k=view&v=1", headers: [("SP-Anonymous", "*")])
        #expect(anonymous.status == 400 && anonymous.header("Set-Cookie") == nil)
        let own = try node.call("POST", "/v1/events", #"{"session_id":"ck2","terminal_id":"mine","key":"k","value":1}"#, headers: [("Cookie", "sid1=" + id)])
        #expect(own.status == 202)
        #expect(events(try node.json("GET", "/v1/sessions/ck2").1).first?["terminal_id"] as? String == "mine", "an event's own id wins")
    }
}
