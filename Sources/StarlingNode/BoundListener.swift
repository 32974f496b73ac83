#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import StarlingCore

/// A TCP socket bound (not yet accepting) before the node is built, so a node's parts are made in
/// one order with no late binding: bind (ports resolved, also for port 0) → the cluster shell, which
/// names its own addresses in every hello → the API → accept (`ServerBootstrap.withBoundSocket`).
struct BoundListener {
    let fd: CInt
    let port: Int
    let host: String

    var address: HostPort { HostPort(host: host, port: port) }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func bind(host: String, port: Int) throws -> BoundListener {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family: CInt
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw Failure(description: "cannot listen on \(host):\(port): not an IP address")
        }
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() for \(host):\(port) failed: errno \(errno)") }
        var one: CInt = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "cannot bind \(host):\(port): \(String(cString: strerror(e)))")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw Failure(description: "getsockname for \(host):\(port) failed: errno \(errno)")
        }
        let networkPort: UInt16 = withUnsafePointer(to: &storage) { p in
            family == AF_INET
                ? p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
                : p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
        }
        return BoundListener(fd: fd, port: Int(UInt16(bigEndian: networkPort)), host: host)
    }

    /// Starts accepting through NIO, with `backlog` (NIO listens with its default first).
    func accept(with bootstrap: ServerBootstrap, backlog: CInt) throws -> Channel {
        let channel = try bootstrap.withBoundSocket(fd).wait()
        _ = listen(fd, backlog)
        return channel
    }
}
