// swift-tools-version:6.0
// libFuzzer targets for every parser that takes bytes from outside: HTTP ingest bodies, the
// pixel query, UDP datagrams, peer frames and every message body, log blocks, records, index
// files, checkpoints, state snapshots and the SDK formats. A package of its own, so the node's build never
// carries sanitizer flags. Build and run with ops/fuzz/run (see its header).
import Foundation
import PackageDescription

// The node's package, two levels up; SwiftPM names a path dependency after its directory.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let node = root.lastPathComponent.lowercased()

let fuzzers = ["FuzzIngest", "FuzzPixel", "FuzzDatagram", "FuzzPeer", "FuzzLog", "FuzzSDK"]

let package = Package(
    name: "starling-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: root.path)],
    targets: [
        .target(name: "FuzzSupport"),
    ] + fuzzers.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport"] + ["StarlingCore", "StarlingCluster", "StarlingLog"].map {
            .product(name: $0, package: node)
        })
    }
)
