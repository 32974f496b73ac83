import NIOCore
import StarlingCluster

/// What a connection learned from the bytes the server sent.
enum DialectAnswer {
    /// The handshake is done (peer: `helloAck`); load may start.
    case ready
    /// The server refused the handshake; the connection is useless.
    case refused(String)
    /// One answer. `id` is the request id for protocols that echo one (peer), nil for
    /// in-order protocols (HTTP). `error` names the failure when not `ok`.
    case response(id: UInt64?, ok: Bool, error: String?, closes: Bool)
}

struct DialectError: Error, CustomStringConvertible {
    var description: String
}

/// The protocol-specific part of a load connection: request bytes out, answers in.
protocol LoadDialect: Sendable {
    /// Whether requests get answers (UDP: no).
    static var isAnswered: Bool { get }
    /// Whether `handshake` must be sent and `.ready` awaited before load.
    static var needsHandshake: Bool { get }
    /// Size of one request on the wire (buffer capacity).
    var requestBytes: Int { get }
    mutating func writeHandshake(into buffer: inout ByteBuffer)
    mutating func writeRequest(firstEvent: Int, requestID: UInt64, into buffer: inout ByteBuffer)
    /// The next complete answer at the front of `buffer` (consumed), nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws -> DialectAnswer?
}

/// A dialect without a handshake whose every request is one pre-built template with its
/// session digits patched (HTTP, UDP).
protocol TemplateDialect: LoadDialect {
    var template: RequestTemplate { get }
    var sessions: Int { get }
    /// The session numbers this connection writes (ring routing), nil for all.
    var map: [Int]? { get }
}

extension TemplateDialect {
    static var needsHandshake: Bool { false }
    var requestBytes: Int { template.bytes.count }
    mutating func writeHandshake(into buffer: inout ByteBuffer) {}
    mutating func writeRequest(firstEvent: Int, requestID: UInt64, into buffer: inout ByteBuffer) {
        ByteBufferTemplate.write(template, firstEvent: firstEvent, sessions: sessions, map: map, into: &buffer)
    }
}

/// HTTP/1.1 requests (http, batch, pixel) from a pre-built template; answers parsed by
/// `HTTPResponseParser` (status line, Content-Length, Connection only).
struct HTTPDialect: TemplateDialect {
    static var isAnswered: Bool { true }
    let template: RequestTemplate
    let sessions: Int
    var map: [Int]? = nil

    mutating func next(_ buffer: inout ByteBuffer) throws -> DialectAnswer? {
        guard buffer.readableBytes > 0 else { return nil }
        let parsed: HTTPResponseParser.Response?
        do {
            parsed = try buffer.withUnsafeReadableBytes { raw throws(HTTPResponseParser.Failure) in try HTTPResponseParser.parse(raw) }
        } catch {
            throw DialectError(description: "bad HTTP response: \(error)")
        }
        guard let r = parsed else { return nil }
        let ok = (200..<300).contains(r.status)
        var kind: String?
        if !ok {
            let code = r.errorHeader ?? buffer.withUnsafeReadableBytes {
                HTTPResponseParser.errorCode(UnsafeRawBufferPointer(rebasing: $0[r.bodyStart..<r.length]))
            }
            kind = "HTTP \(r.status)" + (code.map { " \($0)" } ?? "")
        }
        buffer.moveReaderIndex(forwardBy: r.length)
        return .response(id: nil, ok: ok, error: kind, closes: r.closes)
    }
}

/// Datagrams: one JSON event each, no answers.
struct UDPDialect: TemplateDialect {
    static var isAnswered: Bool { false }
    let template: RequestTemplate
    let sessions: Int
    var map: [Int]? = nil

    mutating func next(_ buffer: inout ByteBuffer) throws -> DialectAnswer? {
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return nil
    }
}

/// The binary peer protocol as a client: `hello` (cluster id 0: "not known yet"), then
/// `forwardEvents` frames whose body is the pre-built `EventBatch` with its session slots
/// patched. Frames are built by the cluster's `FrameCodec` and answers read by its
/// `FrameParser` (header and body CRCs checked), so the bench speaks exactly what nodes speak.
struct PeerDialect: LoadDialect {
    static var isAnswered: Bool { true }
    static var needsHandshake: Bool { true }
    var body: RequestTemplate
    let sessions: Int
    let clientID: String
    let parser = FrameParser()
    /// Learned from the `helloAck`.
    var clusterID: UInt64 = 0
    var requestBytes: Int { FrameCodec.headerBytes + body.bytes.count }

    init(body: RequestTemplate, sessions: Int, clientID: String) {
        self.body = body
        self.sessions = sessions
        self.clientID = clientID
    }

    mutating func writeHandshake(into buffer: inout ByteBuffer) {
        let hello = Hello(nodeID: clientID, peer: "", http: "", incarnation: 0)
        buffer.writeBytes(FrameCodec.encode(Frame(kind: .hello, clusterID: 0, requestID: 0, sender: clientID, body: hello.encode()), compress: false))
    }

    mutating func writeRequest(firstEvent: Int, requestID: UInt64, into buffer: inout ByteBuffer) {
        // Patch in place (the array is uniquely referenced between frames), then encode.
        let sessions = self.sessions
        let slots = body.slots, width = body.width
        body.bytes.withUnsafeMutableBytes {
            RequestTemplate.patch($0, slots: slots, width: width, firstEvent: firstEvent, sessions: sessions)
        }
        let frame = Frame(kind: .forwardEvents, clusterID: clusterID, requestID: requestID, sender: clientID, body: body.bytes)
        buffer.writeBytes(FrameCodec.encode(frame, compress: false))
    }

    mutating func next(_ buffer: inout ByteBuffer) throws -> DialectAnswer? {
        guard buffer.readableBytes > 0 else { return nil }
        let parser = self.parser
        let parsed: (frame: Frame, consumed: Int)?
        do {
            parsed = try buffer.withUnsafeReadableBytes { raw throws(FrameError) in try parser.parse(raw) }
        } catch {
            throw DialectError(description: "bad peer frame: \(error)")
        }
        guard let (frame, consumed) = parsed else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        switch frame.kind {
        case .helloAck:
            clusterID = frame.clusterID
            return .ready
        case .refuse:
            return .refused((try? Refuse.decode(frame.body).reason) ?? "refused")
        case .forwardResult:
            guard let r = try? ForwardResult.decode(frame.body) else { throw DialectError(description: "malformed forwardResult") }
            let ok = r.status < 300
            return .response(id: frame.requestID, ok: ok, error: ok ? nil : "peer \(r.status) \(r.code)", closes: false)
        case .error:
            let e = try? ErrorBody.decode(frame.body)
            return .response(id: frame.requestID, ok: false, error: "peer error \(e?.code ?? "?")", closes: false)
        default:
            throw DialectError(description: "unexpected \(frame.kind) frame from the node")
        }
    }
}

enum ByteBufferTemplate {
    /// Appends the template's bytes to `buffer` and patches the session slots in place.
    @inline(__always)
    static func write(_ t: RequestTemplate, firstEvent: Int, sessions: Int, map: [Int]?, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex - buffer.readerIndex
        buffer.writeBytes(t.bytes)
        let count = t.bytes.count
        buffer.withUnsafeMutableReadableBytes { all in
            t.patch(UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + count)]), firstEvent: firstEvent, sessions: sessions, map: map)
        }
    }
}
