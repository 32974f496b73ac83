import CLZ4

/// Thin wrapper over liblz4's block API.
public enum LZ4 {
    /// Compresses `src`; nil when the output would not be smaller (the caller then stores raw bytes).
    public static func compress(_ src: UnsafeRawBufferPointer) -> [UInt8]? {
        guard src.count > 0, src.count < Int(LZ4_MAX_INPUT_SIZE) else { return nil }
        let bound = Int(LZ4_compressBound(Int32(src.count)))
        var dst = [UInt8](repeating: 0, count: bound)
        let n = dst.withUnsafeMutableBytes { d in
            LZ4_compress_default(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                 d.baseAddress!.assumingMemoryBound(to: CChar.self),
                                 Int32(src.count), Int32(bound))
        }
        guard n > 0, Int(n) < src.count else { return nil }
        dst.removeLast(bound - Int(n))
        return dst
    }

    /// Decompresses exactly `originalCount` bytes; nil on malformed input (never reads or writes out of bounds).
    public static func decompress(_ src: UnsafeRawBufferPointer, originalCount: Int) -> [UInt8]? {
        guard originalCount > 0, src.count > 0, src.count <= Int(Int32.max), originalCount <= Int(Int32.max) else {
            return originalCount == 0 && src.count == 0 ? [] : nil
        }
        var dst = [UInt8](repeating: 0, count: originalCount)
        let n = dst.withUnsafeMutableBytes { d in
            LZ4_decompress_safe(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                d.baseAddress!.assumingMemoryBound(to: CChar.self),
                                Int32(src.count), Int32(originalCount))
        }
        guard n == Int32(originalCount) else { return nil }
        return dst
    }
}
