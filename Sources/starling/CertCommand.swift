import ArgumentParser
import Foundation

/// `starling cert DIR [ID...]`: a cluster CA and certificates for HTTPS and mTLS, made with
/// Debian's openssl (the recipe below is the documented one).
struct CertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "Make a cluster CA (once, kept in DIR) and, for each ID and for \"http\", a certificate it signs (with openssl).",
        discussion: """
            Writes DIR/ca.pem and DIR/ca.key (keep ca.key off the nodes), and ID.pem + ID.key for each ID
            and for "http": EC P-256, valid for 127.0.0.1 and localhost, usable as server and client
            certificate. A node then runs with --peer-tls-cert DIR/ID.pem --peer-tls-key DIR/ID.key
            --peer-tls-ca DIR/ca.pem (and --tls-cert DIR/http.pem --tls-key DIR/http.key). Rotate by
            running it again (the CA is kept, the certificates are new) and sending the nodes SIGHUP.
            """)

    @Argument(help: "Directory for the CA and the certificates.") var dir: String
    @Argument(help: "Member ids (default n1 n2 n3).") var ids: [String] = []

    func run() throws {
        let list = ids.isEmpty ? ["n1", "n2", "n3"] : ids
        try Self.make(in: dir, ids: list)
        print("certificates in \(dir): ca.pem, " + (list + ["http"]).map { "\($0).pem" }.joined(separator: " "))
    }

    /// Makes the CA if `dir` has none, then a new certificate and key for each id and "http".
    static func make(in dir: String, ids: [String]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func openssl(_ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["openssl"] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CommandFailure(description: "error: openssl \(args.first ?? "") failed (is openssl installed?)") }
        }
        let old = umask(0o077)
        defer { umask(old) }
        if !FileManager.default.fileExists(atPath: "\(dir)/ca.key") {
            try openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(dir)/ca.key"])
            try openssl(["req", "-x509", "-new", "-key", "\(dir)/ca.key", "-sha256", "-days", "3650", "-subj", "/CN=starling cluster CA",
                         "-out", "\(dir)/ca.pem"])
        }
        let ext = "\(dir)/ext.cnf"
        guard FileManager.default.createFile(atPath: ext, contents: Data("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n".utf8)) else {
            throw CommandFailure(description: "error: cannot write \(ext)")
        }
        defer { try? FileManager.default.removeItem(atPath: ext) }
        for id in ids + ["http"] {
            // Written under temporary names, then renamed: a node reloading meanwhile sees old or new files.
            try openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(dir)/\(id).key.tmp"])
            try openssl(["req", "-new", "-key", "\(dir)/\(id).key.tmp", "-subj", "/CN=\(id)", "-out", "\(dir)/\(id).csr"])
            try openssl(["x509", "-req", "-in", "\(dir)/\(id).csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                         "-days", "825", "-sha256", "-extfile", ext, "-out", "\(dir)/\(id).pem.tmp"])
            try? FileManager.default.removeItem(atPath: "\(dir)/\(id).csr")
            for f in ["\(id).pem", "\(id).key"] {
                guard rename("\(dir)/\(f).tmp", "\(dir)/\(f)") == 0 else { throw CommandFailure(description: "error: could not write \(dir)/\(f)") }
            }
            _ = chmod("\(dir)/\(id).pem", 0o644)
        }
        _ = chmod("\(dir)/ca.pem", 0o644)
    }
}
