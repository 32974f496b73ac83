// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "starling",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "starling", targets: ["starling"]),
        // The pure parsers and codecs, for the fuzz targets (ops/fuzz, a package of its own).
        .library(name: "StarlingCore", targets: ["StarlingCore"]),
        .library(name: "StarlingCluster", targets: ["StarlingCluster"]),
        .library(name: "StarlingLog", targets: ["StarlingLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Pure core: event model, JSON, validation, session state, identity map,
        // limits, rate limiting. No sockets, files or clocks.
        .target(name: "StarlingCore", dependencies: ["CCRC32C"]),
        // CRC32C with the CPU's instruction (x86-64 SSE4.2); pure computation, no I/O.
        .target(name: "CCRC32C"),
        // preadv2(RWF_NOWAIT): a read that says "would block" instead of waiting for the disk.
        .target(name: "CFileIO"),
        // LZ4 from Debian's liblz4-dev.
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        // libcrypto from Debian's libssl-dev: HMAC-SHA256 of the peer hello (cluster secret).
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // libmaxminddb from Debian's libmaxminddb-dev: GeoIP lookups (--geoip FILE.mmdb).
        .systemLibrary(name: "CMaxMindDB", pkgConfig: "libmaxminddb", providers: [.apt(["libmaxminddb-dev"])]),
        // libpq from Debian's libpq-dev: the PostgreSQL sink (--sink-postgres).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // zlib from Debian's zlib1g-dev: gzip request bodies (the SDKs that send them).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // zstd from Debian's libzstd-dev: compressed exports (`--compress zstd`).
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // LZ4 block compression (a thin, pure wrapper): log blocks and peer frames.
        .target(name: "StarlingLZ4", dependencies: ["CLZ4"]),
        // The append-only log: block codec (pure) and segment files (I/O).
        .target(name: "StarlingLog", dependencies: ["StarlingCore", "StarlingLZ4", "CFileIO"]),
        // Pure cluster logic: hash ring, membership (SWIM), placement, peer wire codec. No sockets,
        // no files, no clocks: it does not import the log module.
        .target(name: "StarlingCluster", dependencies: ["StarlingCore", "StarlingLZ4", "CCrypto"]),
        // The NIO shell: engine, HTTP, UDP, peers, metrics.
        .target(name: "StarlingNode", dependencies: [
            "StarlingCore", "StarlingLog", "StarlingCluster", "CCrypto", "CZlib", "CZstd", "CMaxMindDB", "CLZ4", "CLibPQ",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // `starling bench`: the load generator. Plan/ and Report/ are pure (workload bytes, rate
        // schedule, response parsing, summaries); Driver/ is the NIO shell.
        .target(name: "StarlingBench", dependencies: [
            "StarlingCore", "StarlingCluster",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .executableTarget(name: "starling", dependencies: [
            "StarlingCore", "StarlingLog", "StarlingNode", "StarlingBench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "StarlingCoreTests", dependencies: ["StarlingCore"]),
        .testTarget(name: "StarlingLogTests", dependencies: ["StarlingLog", "StarlingCore"]),
        // Test support shared by the simulations: the seed, the simulated clock and the faulty network.
        .target(name: "StarlingSimSupport", dependencies: ["StarlingCore"], path: "Tests/StarlingSimSupport"),
        .testTarget(name: "StarlingClusterTests", dependencies: ["StarlingCluster", "StarlingCore", "StarlingSimSupport"]),
        .testTarget(name: "StarlingBenchTests", dependencies: [
            "StarlingBench", "StarlingNode", "StarlingCore", "StarlingCluster",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .testTarget(name: "StarlingNodeTests", dependencies: [
            "StarlingNode", "StarlingCore", "StarlingLog", "StarlingCluster",
            .product(name: "NIOTestUtils", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
    ]
)
