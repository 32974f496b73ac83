import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct Starling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "Starling: a cluster that collects events per session and answers session queries in milliseconds.",
        version: "0.1.0",
        subcommands: [NodeCommand.self, DevCommand.self, SendCommand.self, QueryCommand.self, ClusterCommand.self, ExportCommand.self, BenchCommand.self, CertCommand.self]
    )

    /// Bad flags or config exit with code 2 and a first line naming the problem (SPEC).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = fullMessage(for: error)
            FileHandleOut.stderr(message.hasSuffix("\n") ? message : message + "\n")
            if error is CommandFailure { Glibc.exit((error as! CommandFailure).code) }
            Glibc.exit(2)
        }
    }
}

/// A failure of a subcommand after parsing (connection refused, non-2xx answer...).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    var code: Int32 = 1
}

enum FileHandleOut {
    static func stdout(_ s: String) {
        _ = s.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }
    static func stderr(_ s: String) {
        _ = s.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}
