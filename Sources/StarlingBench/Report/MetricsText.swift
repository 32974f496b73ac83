/// Reads one sample from Prometheus text exposition (`name{label="v",...} value`), for
/// `--verify-url`: how many events a node stored, from `starling_events_ingested_total`.
public enum MetricsText {
    /// The sum of the samples of `name` whose labels include every pair of `labels`; nil when none matched.
    public static func sum(_ name: String, labels: [String: String], in text: String) -> Double? {
        var total: Double?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.drop { $0 == " " }
            guard !line.hasPrefix("#"), line.hasPrefix(name) else { continue }
            let rest = line.dropFirst(name.count)
            var labelText = Substring("")
            var valueText: Substring
            if rest.first == "{" {
                guard let close = rest.firstIndex(of: "}") else { continue }
                labelText = rest[rest.index(after: rest.startIndex)..<close]
                valueText = rest[rest.index(after: close)...]
            } else if rest.first == " " {
                valueText = rest
            } else {
                continue   // a longer metric name with this prefix
            }
            valueText = valueText.drop { $0 == " " }
            let number = valueText.prefix { $0 != " " }
            guard let v = Double(number) else { continue }
            let have = parseLabels(labelText)
            guard labels.allSatisfy({ have[$0.key] == $0.value }) else { continue }
            total = (total ?? 0) + v
        }
        return total
    }

    static func parseLabels(_ s: Substring) -> [String: String] {
        var out: [String: String] = [:]
        var i = s.startIndex
        while i < s.endIndex {
            guard let eq = s[i...].firstIndex(of: "=") else { break }
            let key = s[i..<eq].trimmingCharacters(in: ", ")
            var j = s.index(after: eq)
            guard j < s.endIndex, s[j] == "\"" else { break }
            j = s.index(after: j)
            var value = ""
            while j < s.endIndex && s[j] != "\"" {
                if s[j] == "\\", s.index(after: j) < s.endIndex { j = s.index(after: j) }
                value.append(s[j])
                j = s.index(after: j)
            }
            out[key] = value
            i = j < s.endIndex ? s.index(after: j) : j
        }
        return out
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
