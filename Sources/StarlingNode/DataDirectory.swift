import StarlingCore
import StarlingLog

/// The node's `--data` directory: `node.meta` (format version and node id) and `log/`.
/// A directory written by another node id or a newer format is refused, so an operator
/// mix-up cannot merge two nodes' data.
public enum DataDirectory {
    public static let formatVersion = 1

    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    public static func prepare(_ dir: String, nodeID: String) throws {
        try FileIO.mkdirs(dir)
        let metaPath = dir + "/node.meta"
        if let bytes = FileIO.readFile(metaPath) {
            guard let v = try? JSONParser.parse(bytes), case .object(let o) = v,
                  case .string(let id)? = o["node_id"], case .number(let f)? = o["format"], let format = Int(f) else {
                throw Mismatch(description: "\(metaPath) is not a Starling node.meta file")
            }
            if id != nodeID {
                throw Mismatch(description: "data directory \(dir) belongs to node '\(id)', not '\(nodeID)'")
            }
            if format > formatVersion {
                throw Mismatch(description: "data directory \(dir) has format \(format); this build reads up to \(formatVersion)")
            }
            return
        }
        var out: [UInt8] = []
        JSONWriter.write(.object(JSONObject([("format", .number(String(formatVersion))), ("node_id", .string(nodeID))])), into: &out)
        out.append(0x0A)
        try FileIO.writeFileAtomically(metaPath, out)
    }
}
