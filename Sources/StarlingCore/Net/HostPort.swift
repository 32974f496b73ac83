/// A host:port pair as given on the command line.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    /// Parses "HOST:PORT" or "[v6]:PORT"; port 0 asks for an ephemeral port.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var h = String(text[..<colon])
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        guard !h.isEmpty, let p = Int(text[text.index(after: colon)...]), (0...65535).contains(p) else { return nil }
        host = h
        port = p
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
