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
    public func row(_ json: [UInt8], columns: [String]) -> [UInt8]? {
        if self == .ndjson {
            guard json.first == UInt8(ascii: "{") else { return nil }
            return json + [UInt8(ascii: "\n")]
        }
        guard case .object(let event)? = try? JSONParser.parse(json) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(json.count + 32)
        for (i, column) in columns.enumerated() {
            if i > 0 { out.append(self == .tsv ? UInt8(ascii: "\t") : UInt8(ascii: ",")) }
            let text = Self.cell(Self.value(at: column, in: event))
            if self == .tsv { Self.tsvField(text, into: &out) } else { Self.csvField(text, into: &out) }
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// The value at a dot-separated path of object keys.
    static func value(at path: String, in event: JSONObject) -> JSONValue? {
        var current: JSONValue = .object(event)
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard case .object(let o) = current, let next = o[String(part)] else { return nil }
            current = next
        }
        return current
    }

    static func cell(_ v: JSONValue?) -> [UInt8] {
        switch v {
        case nil, .null?: return []
        case .string(let s)?: return Array(s.utf8)
        case let v?:
            var out: [UInt8] = []
            JSONWriter.write(v, into: &out)
            return out
        }
    }

    static func tsvField(_ text: [UInt8], into out: inout [UInt8]) {
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
