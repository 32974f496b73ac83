/// Renders query answers. The stored JSON of each event is copied as is.
public enum QueryRender {
    /// `{"<subjectKey>": subject, "events": [...], "state": ..., "partial": p, "truncated": t}`.
    public static func json(subjectKey: String, subject: String, records: [Record], state: JSONValue??,
                            partial: Bool, truncated: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + records.reduce(0) { $0 + $1.json.count + 1 })
        out.append(UInt8(ascii: "{"))
        JSONWriter.writeString(subjectKey, into: &out)
        out.append(UInt8(ascii: ":"))
        JSONWriter.writeString(subject, into: &out)
        out.append(contentsOf: Array(",\"events\":[".utf8))
        for (i, r) in records.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: r.json)
        }
        out.append(UInt8(ascii: "]"))
        if let state {
            out.append(contentsOf: Array(",\"state\":".utf8))
            JSONWriter.write(state ?? .null, into: &out)
        }
        out.append(contentsOf: Array(",\"partial\":\(partial),\"truncated\":\(truncated)}".utf8))
        return out
    }

    public static func ndjson(records: [Record]) -> [UInt8] {
        var out: [UInt8] = []
        for r in records {
            out.append(contentsOf: r.json)
            out.append(0x0A)
        }
        return out
    }

    public static func escapeHTML(_ s: String) -> String {
        var o = ""
        o.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.append(c)
            }
        }
        return o
    }

    /// What the session page shows besides the events (`html`).
    public struct PageContext: Sendable {
        /// The request's filters, to fill the form.
        public var filters: [String: String] = [:]
        /// The user's other sessions, newest first (links).
        public var otherSessions: [(sessionID: String, linkedAt: Int64)] = []
        /// The path the form submits to (`/v1/sessions/ID`).
        public var path: String = ""
        /// The nonce of the page's one script (the answer's Content-Security-Policy names it).
        public var nonce: String = ""
        public init() {}
    }

    /// Gaps between consecutive events longer than this are shown as a separator row.
    public static let gapMs: Int64 = 5 * 60_000

    /// The session page: the state at the top (TTLs, via, identities, links to the user's other
    /// sessions), a filter form for the SPEC's filters, then a timeline: time gaps shown, a
    /// colour per component, errors highlighted, value and attrs expandable. One self-contained
    /// answer: inline style and one inline script (a quick text filter), every client string
    /// escaped.
    public static func html(title: String, records: [Record], state: SessionState?, now: Int64,
                            partial: Bool, truncated: Bool, context: PageContext = PageContext()) -> [UInt8] {
        var h = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
        <title>\(escapeHTML(title))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
        h1{font-size:1.4em;margin:0 0 .4em}
        .card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:.8em 1em;margin-bottom:1em}
        .state{display:grid;grid-template-columns:repeat(auto-fill,minmax(15em,1fr));gap:.3em 1.5em;font-size:14px}
        .state b{display:block;color:#5b6475;font-weight:500;font-size:12px}
        form{display:flex;flex-wrap:wrap;gap:.6em;align-items:end;font-size:13px}
        form label{display:flex;flex-direction:column;color:#5b6475}
        input{font:inherit;padding:3px 6px;border:1px solid #c5ccd8;border-radius:4px}
        table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea}
        th,td{border-bottom:1px solid #eef0f4;padding:5px 8px;text-align:left;vertical-align:top;font-size:13px}
        th{background:#f1f3f7;position:sticky;top:0}
        td.t{white-space:nowrap;font-family:ui-monospace,monospace;color:#3d4555}
        .comp{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px}
        tr.err td{background:#fff1f1}tr.err td.k::after{content:" error";color:#c0262d;font-size:11px;font-weight:600}
        tr.gap td{background:#f6f7fa;color:#7a8394;font-size:12px;text-align:center;padding:2px}
        details summary{cursor:pointer;font-family:ui-monospace,monospace;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:40em}
        pre{margin:.3em 0;white-space:pre-wrap;word-break:break-all;font-size:12px;background:#f6f8fa;padding:6px;border-radius:4px}
        .meta{color:#5b6475;font-size:13px}.warn{color:#a15c00}
        a{color:#2457c5}
        </style></head><body>
        <h1>\(escapeHTML(title))</h1>

        """
        if let s = state {
            func at(_ ms: Int64) -> String { Timestamps.formatRFC3339(ms) }
            func until(_ ms: Int64) -> String {
                let d = ms - now
                return d <= 0 ? "expired" : "in " + Self.duration(d)
            }
            h += "<div class=\"card state\" id=\"state\">"
            h += "<div><b>first seen</b>\(at(s.firstSeen))</div><div><b>last seen</b>\(at(s.lastSeen))</div>"
            h += "<div><b>events</b>\(s.events) · \(s.isActive(now: now) ? "active" : "inactive")</div>"
            h += "<div><b>short TTL</b>\(at(s.shortExpiresAt)) (\(until(s.shortExpiresAt)))</div>"
            h += "<div><b>long TTL</b>\(at(s.longExpiresAt)) (\(until(s.longExpiresAt)))</div>"
            h += "<div><b>via first / last</b>\(escapeHTML(s.viaFirst ?? "–")) / \(escapeHTML(s.viaLast ?? "–"))</div>"
            if let u = s.userID { h += "<div><b>user</b>\(escapeHTML(u))</div>" }
            if let t = s.terminalID { h += "<div><b>terminal</b>\(escapeHTML(t))</div>" }
            h += "</div>\n"
        }
        let others = context.otherSessions.filter { "Session \($0.sessionID)" != title }
        if !others.isEmpty {
            h += "<div class=\"card meta\" id=\"others\">The user's other sessions: "
            h += others.prefix(50).map { o in
                "<a href=\"/v1/sessions/\(escapeHTML(percentEncode(o.sessionID)))?format=html\">\(escapeHTML(o.sessionID))</a>"
            }.joined(separator: " · ")
            h += "</div>\n"
        }
        if !context.path.isEmpty {
            func field(_ name: String, _ label: String, _ hint: String) -> String {
                "<label>\(label)<input name=\"\(name)\" value=\"\(escapeHTML(context.filters[name] ?? ""))\" placeholder=\"\(hint)\"></label>"
            }
            h += "<form class=\"card\" method=\"get\" action=\"\(escapeHTML(context.path))\"><input type=\"hidden\" name=\"format\" value=\"html\">"
            h += field("key", "key", "page_view") + field("component", "component", "api")
            h += field("from", "from (epoch ms)", "1700000000000") + field("to", "to (epoch ms)", "1700003600000")
            h += field("limit", "limit", "10000")
            h += "<input type=\"submit\" value=\"Filter\"><label>quick filter<input id=\"quick\" placeholder=\"text on this page\"></label></form>\n"
        }
        h += "<p class=\"meta\" id=\"summary\">\(records.count) events shown"
        if truncated { h += " <span class=\"warn\">(truncated: more exist; raise limit or narrow the filters)</span>" }
        if partial { h += " <span class=\"warn\">(partial: some data may be missing)</span>" }
        h += "</p>\n<table id=\"events\"><thead><tr><th>time (UTC)</th><th>key</th><th>value</th><th>component</th><th>via</th><th>attrs</th><th>event id · node</th></tr></thead><tbody>\n"
        var previous: Int64? = nil
        for r in records {
            if let p = previous, r.ts - p > gapMs {
                h += "<tr class=\"gap\"><td colspan=\"7\">\(Self.duration(r.ts - p)) later</td></tr>\n"
            }
            previous = r.ts
            var value = "", attrs = "", node = ""
            if let v = try? JSONParser.parse(r.json), case .object(let o) = v {
                value = o["value"].map { jsonText($0) } ?? ""
                attrs = o["attrs"].map { jsonText($0) } ?? ""
                if case .string(let n)? = o["node"] { node = n }
            }
            h += "<tr class=\"ev\(r.isError ? " err" : "")\"><td class=\"t\">\(Timestamps.formatRFC3339(r.ts))</td><td class=\"k\">\(escapeHTML(r.key))</td>"
            h += "<td>\(expandable(value))</td>"
            h += "<td>\(r.component.isEmpty ? "" : "<span class=\"comp\" style=\"background:\(colour(r.component))\">\(escapeHTML(r.component))</span>")</td>"
            h += "<td>\(escapeHTML(r.via))</td><td>\(expandable(attrs))</td>"
            h += "<td class=\"meta\">\(escapeHTML(r.eventID)) · \(escapeHTML(node))</td></tr>\n"
        }
        h += "</tbody></table>\n"
        // The quick filter: hides rows whose text does not contain the box's words (also from
        // #q=... in the address, so a filtered view can be linked).
        h += """
        <script nonce="\(escapeHTML(context.nonce))">
        (function(){var box=document.getElementById('quick');if(!box)return;
        function apply(){var q=box.value.toLowerCase(),n=0;document.querySelectorAll('#events tbody tr').forEach(function(tr){
        var show=!q||(tr.classList.contains('ev')&&tr.textContent.toLowerCase().indexOf(q)>=0);if(tr.classList.contains('gap'))show=!q;
        tr.style.display=show?'':'none';if(show&&tr.classList.contains('ev'))n++;});
        document.getElementById('summary').setAttribute('data-visible',String(n));}
        box.addEventListener('input',apply);var m=/[#&]q=([^&]*)/.exec(location.hash);if(m){box.value=decodeURIComponent(m[1]);}apply();})();
        </script>
        </body></html>

        """
        return Array(h.utf8)
    }

    /// A value as compact JSON text, for the page.
    static func jsonText(_ v: JSONValue) -> String {
        var out: [UInt8] = []
        JSONWriter.write(v, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Short values inline; longer ones folded behind their first 80 characters.
    static func expandable(_ text: String) -> String {
        if text.count <= 80 { return "<code>\(escapeHTML(text))</code>" }
        return "<details><summary>\(escapeHTML(String(text.prefix(80))))…</summary><pre>\(escapeHTML(text))</pre></details>"
    }

    /// A light background per component, the same on every page (hue from a stable hash).
    static func colour(_ component: String) -> String {
        "hsl(\(StableHash.fnv1a64(component) % 360),70%,88%)"
    }

    static func duration(_ ms: Int64) -> String {
        let s = ms / 1000
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min" }
        if s < 86_400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86_400) d \(s % 86_400 / 3600) h"
    }

    /// Percent-encoding of a path segment (unreserved characters kept).
    public static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
