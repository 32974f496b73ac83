#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's driver (linked by `-sanitize=fuzzer`): runs `callback` on generated inputs.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

nonisolated(unsafe) var currentBody: ((UnsafeRawBufferPointer) -> Void)?

/// The entry of a fuzz target (each target's `<Target>_main`, which SwiftPM links as `main`).
/// With `STARLING_FUZZ_SEEDS=DIR` it writes `seeds` there as files and exits (the seed corpus
/// comes from the real encoders, so it follows the formats); otherwise it hands `body` to
/// libFuzzer with the command line's options.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      seeds: () -> [[UInt8]], _ body: @escaping (UnsafeRawBufferPointer) -> Void) -> CInt {
    if let dir = getenv("STARLING_FUZZ_SEEDS").map({ String(cString: $0) }) {
        for (i, seed) in seeds().enumerated() {
            let path = "\(dir)/seed-\(i)"
            guard let f = fopen(path, "wb") else { perror(path); return 1 }
            _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
        }
        return 0
    }
    currentBody = body
    var c = argc
    var v = argv
    return llvmFuzzerRunDriver(&c, &v) { data, size in
        currentBody?(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
}

/// The bytes after a selector byte (targets that fuzz several decoders pick one by byte 0).
public func split(_ b: UnsafeRawBufferPointer) -> (selector: UInt8, rest: [UInt8])? {
    guard let first = b.first else { return nil }
    return (first, Array(b.dropFirst()))
}
