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

    /// A readable timeline: one row per event with time, key, value, component, via, node.
    public static func html(title: String, records: [Record], state: SessionState?, now: Int64,
                            partial: Bool, truncated: Bool) -> [UInt8] {
        var h = """
        <!doctype html><html><head><meta charset="utf-8"><title>\(escapeHTML(title))</title>
        <style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
        th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
        th{background:#f4f4f4}td.v{font-family:monospace;white-space:pre-wrap;word-break:break-all}
        .err{background:#fff0f0}.meta{color:#666;font-size:13px}</style></head><body>
        <h1>\(escapeHTML(title))</h1>

        """
        if let s = state {
            h += "<p class=\"meta\">first seen \(Timestamps.formatRFC3339(s.firstSeen)) · last seen \(Timestamps.formatRFC3339(s.lastSeen))"
            h += " · \(s.events) events · \(s.isActive(now: now) ? "active" : "inactive")"
            if let v = s.viaFirst { h += " · via first: \(escapeHTML(v))" }
            if let v = s.viaLast { h += " · via last: \(escapeHTML(v))" }
            if let u = s.userID { h += " · user \(escapeHTML(u))" }
            if let t = s.terminalID { h += " · terminal \(escapeHTML(t))" }
            h += "</p>\n"
        }
        h += "<p class=\"meta\">\(records.count) events shown"
        if truncated { h += " (truncated: more exist)" }
        if partial { h += " (partial: a shard did not answer)" }
        h += "</p>\n<table><tr><th>time (UTC)</th><th>key</th><th>value</th><th>component</th><th>via</th><th>event id</th><th>node</th></tr>\n"
        for r in records {
            var value = ""
            var node = ""
            if let v = try? JSONParser.parse(r.json), case .object(let o) = v {
                value = o["value"].map { JSONWriter.string($0) } ?? ""
                if case .string(let n)? = o["node"] { node = n }
            }
            h += "<tr\(r.isError ? " class=\"err\"" : "")><td>\(Timestamps.formatRFC3339(r.ts))</td><td>\(escapeHTML(r.key))</td>"
            h += "<td class=\"v\">\(escapeHTML(value))</td><td>\(escapeHTML(r.component))</td><td>\(escapeHTML(r.via))</td>"
            h += "<td>\(escapeHTML(r.eventID))</td><td>\(escapeHTML(node))</td></tr>\n"
        }
        h += "</table></body></html>\n"
        return Array(h.utf8)
    }
}
