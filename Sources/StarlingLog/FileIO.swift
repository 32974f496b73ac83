import CFileIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An operating error of the log's file I/O (disk full, permission, ...).
public struct LogIOError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var errno: Int32
    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
    public var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }
}

/// Minimal POSIX file helpers used by the log. Everything throws `LogIOError`.
public enum FileIO {
    static func openFile(_ path: String, flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        let fd = open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw LogIOError(operation: "open", path: path, errno: errno) }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogIOError(operation: "write", path: path, errno: errno)
            }
            if n == 0 { throw LogIOError(operation: "write", path: path, errno: EIO) }
            done += n
        }
    }

    /// The bytes if they are all in the page cache now, nil if reading them would wait for the
    /// disk (or the system cannot tell); read errors throw as in `readAll`.
    static func readCached(_ fd: Int32, count: Int, at offset: Int, path: String) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { starling_pread_nowait(fd, $0.baseAddress, count, off_t(offset)) }
        if n < 0 {
            switch errno {
            case EAGAIN, EOPNOTSUPP, ENOSYS, EINVAL, EINTR: return nil
            default: throw LogIOError(operation: "read", path: path, errno: errno)
            }
        }
        if n < count {
            // Part cached, or the end of the file: let a blocking read decide.
            return nil
        }
        return out
    }

    static func readAll(_ fd: Int32, count: Int, at offset: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        let err: Int32? = out.withUnsafeMutableBytes { buf in
            while done < count {
                let n = pread(fd, buf.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { break }
                done += n
            }
            return nil
        }
        if let err { throw LogIOError(operation: "read", path: path, errno: err) }
        if done < count { out.removeLast(count - done) }
        return out
    }

    static func size(_ fd: Int32, path: String) throws -> Int {
        var st = stat()
        if fstat(fd, &st) != 0 { throw LogIOError(operation: "stat", path: path, errno: errno) }
        return Int(st.st_size)
    }

    static func sync(_ fd: Int32, path: String) throws {
        if fdatasync(fd) != 0 { throw LogIOError(operation: "fsync", path: path, errno: errno) }
    }

    static func truncate(_ fd: Int32, to size: Int, path: String) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw LogIOError(operation: "truncate", path: path, errno: errno) }
    }

    public static func mkdirs(_ path: String) throws {
        var built = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o755) != 0 && errno != EEXIST {
                throw LogIOError(operation: "mkdir", path: built, errno: errno)
            }
        }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    public static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// A file's size, nil when it cannot be read.
    public static func fileSize(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    public static func removeTree(_ path: String) throws {
        var st = stat()
        if lstat(path, &st) != 0 { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in list(path) { try removeTree(path + "/" + name) }
            if rmdir(path) != 0 { throw LogIOError(operation: "rmdir", path: path, errno: errno) }
        } else if unlink(path) != 0 {
            throw LogIOError(operation: "unlink", path: path, errno: errno)
        }
    }

    /// Moves a directory; across file systems it copies file by file, then removes the source.
    static func move(_ from: String, to: String) throws {
        if rename(from, to) == 0 { return }
        guard errno == EXDEV else { throw LogIOError(operation: "rename", path: from, errno: errno) }
        try mkdirs(to)
        for name in list(from) {
            let src = try openFile(from + "/" + name, flags: O_RDONLY)
            defer { close(src) }
            let n = try size(src, path: from + "/" + name)
            let bytes = try readAll(src, count: n, at: 0, path: from + "/" + name)
            let dst = try openFile(to + "/" + name, flags: O_WRONLY | O_CREAT | O_TRUNC)
            defer { close(dst) }
            try bytes.withUnsafeBytes { (b) throws in try writeAll(dst, b, at: 0, path: to + "/" + name) }
            try sync(dst, path: to + "/" + name)
        }
        try removeTree(from)
    }

    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = path + ".tmp"
        let fd = try openFile(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try bytes.withUnsafeBytes { (b) throws in try writeAll(fd, b, at: 0, path: tmp) }
            try sync(fd, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 { throw LogIOError(operation: "rename", path: tmp, errno: errno) }
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Reads a file whose size is not known in advance (`/proc` files report 0) up to `limit`
    /// bytes, until end of file.
    public static func readStream(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
        guard let fd = try? openFile(path, flags: O_RDONLY) else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    public static func readFile(_ path: String) -> [UInt8]? {
        guard let fd = try? openFile(path, flags: O_RDONLY) else { return nil }
        defer { close(fd) }
        guard let n = try? size(fd, path: path) else { return nil }
        return try? readAll(fd, count: n, at: 0, path: path)
    }
}
