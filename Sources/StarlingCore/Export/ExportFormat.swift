/// Rows of an export (`starling export`): stored events as NDJSON (the stored JSON, as a query
/// returns it), TSV or CSV. Pure: the shell streams records through `row` into a file.
///
/// TSV and CSV columns: the fixed fields below, in this order, then one column per `--columns`
/// path (`attrs.geo.country`, `attrs.ua.device`, `value.sku`, ...: dot-separated object keys into
/// the stored event). A string is written as is; a number or boolean as its JSON text; an object
/// or array as compact JSON; null or absent as empty. TSV escapes backslash, tab, newline and
/// carriage return as `\\`, `\t`, `\n`, `\r` (what PostgreSQL `COPY` and Hive read) and has no
/// header line; CSV quotes per RFC 4180 and starts with a header line.
public enum ExportFormat: String, Sendable, CaseIterable {
    case ndjson, tsv, csv

    public static let fixedColumns = ["event_id", "session_id", "ts", "received_at", "key", "value", "user_id", "terminal_id",
                                      "account_id", "component", "via", "node", "ip"]

    public var fileExtension: String { rawValue }

    /// The columns of a TSV/CSV export: the fixed ones, then the chosen paths.
    public static func columns(extra: [String]) -> [String] { fixedColumns + extra }

    /// The header line (CSV only; empty for the others).
    public func header(columns: [String]) -> [UInt8] {
        guard self == .csv else { return [] }
        var out: [UInt8] = []
        for (i, c) in columns.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            Self.csvField(Array(c.utf8), into: &out)
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// One line for a stored event's JSON. nil when the bytes are not a JSON object (a damaged
    /// record; the caller counts it).
    public func row(_ json: [UInt8], columns: [String]) -> [UInt8]? { row(json, paths: Self.paths(columns)) }

    /// Columns split into their keys once, for `row(_:paths:)` over many events.
    public static func paths(_ columns: [String]) -> [[String]] {
        columns.map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
    }

    public func row(_ json: [UInt8], paths: [[String]]) -> [UInt8]? {
        if self == .ndjson {
            guard json.first == UInt8(ascii: "{") else { return nil }
            return json + [UInt8(ascii: "\n")]
        }
        // Spans, not a parsed tree: a cell is the value's bytes (a string's decoded), so a row
        // costs one validating scan of the event plus one per nested object a path enters.
        return json.withUnsafeBytes { b -> [UInt8]? in
            guard case .object(_, let members)? = try? JSONParser.scan(b) else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(json.count + 32)
            for (i, path) in paths.enumerated() {
                if i > 0 { out.append(self == .tsv ? UInt8(ascii: "\t") : UInt8(ascii: ",")) }
                let text = Self.cell(at: path, members: members, in: b)
                if self == .tsv { Self.tsvField(text, into: &out) } else { Self.csvField(text, into: &out) }
            }
            out.append(UInt8(ascii: "\n"))
            return out
        }
    }

    /// The cell for a dot-separated path of object keys: a string decoded, null or absent empty,
    /// anything else its JSON text as stored.
    static func cell(at parts: [String], members top: [JSONMemberSpan], in b: UnsafeRawBufferPointer) -> [UInt8] {
        var members = top
        var base = 0
        for (n, part) in parts.enumerated() {
            guard let m = members.last(where: { $0.key == part }) else { return [] }
            let start = base + m.valueStart, end = base + m.end
            if n == parts.count - 1 {
                switch b[start] {
                case UInt8(ascii: "\""): return JSONParser.decodeString(b, at: start).map { Array($0.utf8) } ?? []
                case UInt8(ascii: "n"): return []
                default: return Array(b[start..<end])
                }
            }
            guard b[start] == UInt8(ascii: "{"),
                  case .object(_, let inner)? = try? JSONParser.scan(UnsafeRawBufferPointer(rebasing: b[start..<end])) else { return [] }
            members = inner
            base = start
        }
        return []
    }

    static func tsvField(_ text: [UInt8], into out: inout [UInt8]) {
        if !text.contains(where: { $0 == UInt8(ascii: "\\") || $0 < 0x20 }) {
            out.append(contentsOf: text)
            return
        }
        for b in text {
            switch b {
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            default: out.append(b)
            }
        }
    }

    static func csvField(_ text: [UInt8], into out: inout [UInt8]) {
        let quote = text.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }
        guard quote else {
            out.append(contentsOf: text)
            return
        }
        out.append(UInt8(ascii: "\""))
        for b in text {
            if b == UInt8(ascii: "\"") { out.append(b) }
            out.append(b)
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// What an export wrote, as its manifest (`<node>.manifest.json` beside the file): a loader
/// reads the manifest, and a file without one, or whose checksum differs, is not complete.
public struct ExportManifest: Sendable, Equatable {
    public var day: String
    public var node: String
    public var format: String
    public var compression: String
    public var columns: [String]
    public var file: String
    public var events: Int
    /// Bytes of the file as written (compressed, if it is).
    public var bytes: Int
    /// SHA-256 of the file as written, lowercase hex.
    public var sha256: String
    /// Records of the day that were not this node's to export (another owner's) or were repeats.
    public var skippedNotOwned: Int
    public var skippedRepeats: Int
    /// Blocks that could not be read (damage; also in `starling_export_errors_total`).
    public var unreadableBlocks: Int
    public var startedAt: Int64
    public var finishedAt: Int64

    public init(day: String, node: String, format: String, compression: String, columns: [String], file: String, events: Int,
                bytes: Int, sha256: String, skippedNotOwned: Int, skippedRepeats: Int, unreadableBlocks: Int,
                startedAt: Int64, finishedAt: Int64) {
        self.day = day
        self.node = node
        self.format = format
        self.compression = compression
        self.columns = columns
        self.file = file
        self.events = events
        self.bytes = bytes
        self.sha256 = sha256
        self.skippedNotOwned = skippedNotOwned
        self.skippedRepeats = skippedRepeats
        self.unreadableBlocks = unreadableBlocks
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    public var json: JSONValue {
        .object(JSONObject([
            ("day", .string(day)), ("node", .string(node)), ("format", .string(format)), ("compression", .string(compression)),
            ("columns", .array(columns.map { .string($0) })), ("file", .string(file)), ("events", .number(String(events))),
            ("bytes", .number(String(bytes))), ("sha256", .string(sha256)),
            ("skipped_not_owned", .number(String(skippedNotOwned))), ("skipped_repeats", .number(String(skippedRepeats))),
            ("unreadable_blocks", .number(String(unreadableBlocks))),
            ("started_at", .number(String(startedAt))), ("finished_at", .number(String(finishedAt))),
        ]))
    }
}
