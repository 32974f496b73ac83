import FuzzSupport
import StarlingCluster
import StarlingCore

/// The peer port: a stream of frames (header checks, CRCs, LZ4), and every message body's
/// decoder on its own (byte 0 picks one), since random bytes rarely pass a frame's CRC.
@_cdecl("FuzzPeer_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, seeds: seeds) { b in
        guard let (selector, rest) = split(b) else { return }
        switch Int(selector) % (decoders.count + 1) {
        case 0:
            // Frames back to back, as a connection delivers them.
            var offset = 0
            while offset < rest.count {
                let parsed = rest.withUnsafeBytes { raw in try? FrameParser().parse(UnsafeRawBufferPointer(rebasing: raw[offset...])) }
                guard let (frame, used) = parsed ?? nil, used > 0 else { break }
                for decode in decoders { decode(frame.body) }
                offset += used
            }
        case let k:
            decoders[k - 1](rest)
        }
    }
}

let decoders: [@Sendable ([UInt8]) -> Void] = [
    { _ = try? Hello.decode($0) }, { _ = try? Refuse.decode($0) }, { _ = try? ErrorBody.decode($0) },
    { _ = try? EventBatch.decode($0) }, { _ = try? RecordBatch.decode($0) }, { _ = try? ForwardResult.decode($0) },
    { _ = try? ForwardedEvent.decode($0) }, { _ = try? ReplicateBatch.decode($0) }, { _ = try? ReplicateResult.decode($0) },
    { _ = try? CatchUpRequest.decode($0) }, { _ = try? CatchUpResult.decode($0) }, { _ = try? QueryRequest.decode($0) },
    { _ = try? QueryResult.decode($0) }, { _ = try? QueryHit.decode($0) }, { _ = try? IdentifyRequest.decode($0) },
    { _ = try? IdentifyResult.decode($0) }, { _ = try? ResolveIdentity.decode($0) }, { _ = try? ResolveResult.decode($0) },
    { _ = try? LinksRequest.decode($0) }, { _ = try? LinksResult.decode($0) }, { _ = MembershipMessage.decode($0) },
]

func seeds() -> [[UInt8]] {
    let record = Record(kind: .event, ts: 1, receivedAt: 2, sessionID: "s1", eventID: "e1", key: "k",
                        json: Array(#"{"session_id":"s1","key":"k","value":1}"#.utf8))
    let member = MemberInfo(id: "n1", peer: "127.0.0.1:7081", http: "127.0.0.1:8081", incarnation: 3, status: .up)
    var proven = Hello(nodeID: "n2", peer: "127.0.0.1:7082", http: "127.0.0.1:8082", incarnation: 1)
    proven.proof = HelloProof(time: 5, nonce: [UInt8](repeating: 7, count: 16), mac: [UInt8](repeating: 9, count: 32))
    let bodies: [(MessageKind, [UInt8])] = [
        (.hello, Hello(nodeID: "n1", peer: "127.0.0.1:7081", http: "127.0.0.1:8081", incarnation: 2).encode()),
        (.hello, proven.encode()),
        (.forwardEvents, EventBatch(events: [ForwardedEvent(transport: 0, ip: "10.0.0.1", receivedAt: 9, json: record.json)]).encode()),
        (.replicate, ReplicateBatch(records: [record.encoded, record.encoded]).encode()),
        (.catchUp, CatchUpRequest(requester: "n2", since: 0, afterKey: "G1:1:16:0", members: ["n1", "n2"]).encode()),
        (.catchUpResult, CatchUpResult(records: [record.encoded], nextKey: "L1:ff:2").encode()),
        (.query, QueryRequest(scope: 0, id: "s1", from: 1, to: 2, key: "k", limit: 10, wantState: true).encode()),
        (.queryResult, QueryResult(hits: [QueryHit(eventID: "e1", ts: 1, receivedAt: 2, json: record.json)], state: Array("{}".utf8), nextOffset: 4).encode()),
        (.identify, IdentifyRequest(sessionID: "s1", userID: "u1").encode()),
        (.membership, MembershipMessage.ping(seq: 4, gossip: [member]).encode()),
        (.error, ErrorBody(code: "unauthenticated", message: "no").encode()),
    ]
    var out: [[UInt8]] = []
    // Frames, plain and compressed, one after another.
    var stream: [UInt8] = [0]
    for (i, (kind, body)) in bodies.enumerated() {
        var frame = Frame(kind: kind, isResponse: i % 2 == 1, clusterID: 0xABC, requestID: UInt64(i), sender: "n1", body: body)
        // Every other request carries trace contexts (flag bit 2).
        if i % 2 == 0 { frame.traces = (0...(i % 3)).map { TraceContext(traceHigh: 1, traceLow: UInt64($0 + 1), spanID: UInt64(i + 1)) } }
        stream += FrameCodec.encode(frame, compress: i % 3 == 0)
        out.append([0] + FrameCodec.encode(frame, compress: true))
    }
    out.append(stream)
    // Bodies for their decoders (selector k + 1 is decoders[k]).
    let selectors: [MessageKind: UInt8] = [.hello: 1, .forwardEvents: 4, .replicate: 8, .catchUp: 10, .catchUpResult: 11,
                                           .query: 12, .queryResult: 13, .identify: 15, .membership: 21, .error: 3]
    for (kind, body) in bodies { if let s = selectors[kind] { out.append([s] + body) } }
    return out
}
