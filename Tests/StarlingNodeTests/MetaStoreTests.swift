import Foundation
import Testing
@testable import StarlingNode

@Suite struct MetaStoreTests {
    /// Eight threads change the peer list 200 times each while others read the file: every read
    /// finds valid JSON, and once the saves drain the file holds the newest state. (Saving from
    /// each thread through the one temporary name, as the node did, breaks the first check.)
    @Test func concurrentChangesLeaveAValidFileAndTheNewestStateWins() throws {
        let dir = NSTemporaryDirectory() + "starling-meta-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errors = Mutex_<[String]>([])
        let store = try MetaStore(dir: dir, meta: ClusterMeta(clusterID: 0xABC, incarnation: 1, peers: []),
                                  onError: { e in errors.lock.withLock { errors.value.append(e) } })
        let badReads = Mutex_<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<200 {
                store.update { $0.peers = (0..<((t * 7 + i) % 40)).map { "127.0.0.1:\(7_000 + $0 + t * 100)" } }
                if ClusterMeta.load(dir) == nil { badReads.lock.withLock { badReads.value += 1 } }
            }
        }
        store.flush()
        #expect(badReads.get() == 0, "reads found an invalid cluster.meta")
        #expect(errors.get().isEmpty, "\(errors.get().prefix(3))")
        #expect(ClusterMeta.load(dir) == store.current)
        #expect(store.current.clusterID == 0xABC)
    }
}
