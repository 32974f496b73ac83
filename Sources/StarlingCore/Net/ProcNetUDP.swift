/// Reads the kernel's UDP socket table (`/proc/net/udp`, `/proc/net/udp6`): how many datagrams
/// the kernel dropped on the sockets bound to a port because their receive queue was full. A
/// UDP sender is never told (fire and forget), so this is the only place such loss shows.
/// Pure: the caller reads the files.
public enum ProcNetUDP {
    /// The sum of the `drops` column over the rows whose local port is `port`; nil when no row
    /// has it. Rows look like
    /// `10460: 0100007F:DC61 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 7697372 2 000000009fbab68d 0`
    /// (local address and port in hex; `drops` is the last column). Malformed rows are skipped.
    public static func drops(inTables tables: [String], port: Int) -> UInt64? {
        var total: UInt64 = 0
        var found = false
        for table in tables {
            for line in table.split(separator: "\n").dropFirst() {
                let cols = line.split(separator: " ", omittingEmptySubsequences: true)
                guard cols.count >= 13, let colon = cols[1].lastIndex(of: ":"),
                      let p = Int(cols[1][cols[1].index(after: colon)...], radix: 16), p == port,
                      let d = UInt64(cols[cols.count - 1]) else { continue }
                total &+= d
                found = true
            }
        }
        return found ? total : nil
    }
}
