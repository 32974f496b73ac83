import NIOSSL
import Synchronization

/// Certificate and key files (PEM) for a listener or for peer connections, and the CA that
/// client certificates must chain to (required for peers: the cluster CA).
public struct TLSFiles: Sendable, Equatable {
    public var cert: String
    public var key: String
    public var ca: String?

    public init(cert: String, key: String, ca: String? = nil) {
        self.cert = cert
        self.key = key
        self.ca = ca
    }
}

/// A TLS context built from files, rebuilt by `reload` (SIGHUP) so certificates rotate without a
/// restart: connections made after a reload use the new one, open ones keep theirs.
final class TLSContext: Sendable {
    enum Role: Sendable {
        /// HTTP: a client certificate is required only when `ca` is given.
        case httpServer
        /// The peer port: a client certificate is optional, but one presented must chain to the
        /// cluster CA (a connection with one is a member's; without, a client's).
        case peerServer
        /// Our side of a peer connection: we present our certificate and require the server's to
        /// chain to the cluster CA (no host name check: members are addressed by IP).
        case peerClient
    }

    let files: TLSFiles
    let role: Role
    let context: Mutex<NIOSSLContext>

    init(_ files: TLSFiles, role: Role) throws {
        self.files = files
        self.role = role
        context = Mutex(try Self.make(files, role))
    }

    var current: NIOSSLContext { context.withLock { $0 } }

    /// Rereads the files; on failure the current context stays.
    func reload() throws {
        let new = try Self.make(files, role)
        context.withLock { $0 = new }
    }

    static func make(_ f: TLSFiles, _ role: Role) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(f.cert).map { NIOSSLCertificateSource.certificate($0) }
        let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(file: f.key, format: .pem))
        var c: TLSConfiguration
        switch role {
        case .httpServer:
            c = .makeServerConfiguration(certificateChain: chain, privateKey: key)
            if let ca = f.ca {
                c.trustRoots = .file(ca)
                c.certificateVerification = .noHostnameVerification
            }
        case .peerServer:
            c = .makeServerConfiguration(certificateChain: chain, privateKey: key)
            c.trustRoots = .file(f.ca ?? "")
            c.certificateVerification = .optionalVerification
        case .peerClient:
            c = .makeClientConfiguration()
            c.certificateChain = chain
            c.privateKey = key
            c.trustRoots = .file(f.ca ?? "")
            c.certificateVerification = .noHostnameVerification
        }
        c.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: c)
    }
}
