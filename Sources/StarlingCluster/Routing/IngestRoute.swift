import StarlingCore

/// Which events of a request go to which owner (pure): owners in the order their first event
/// appears, each with the indices of its events in request order.
public struct IngestRoute: Sendable, Equatable {
    public var owners: [String]
    public var indices: [[Int]]

    public init(keys: [SubjectKey], ring: HashRing, me: String) {
        owners = []
        indices = []
        var slot: [String: Int] = [:]
        for (i, key) in keys.enumerated() {
            let owner = Placement.owner(of: key.ringKey, ring: ring, me: me)
            if let s = slot[owner] {
                indices[s].append(i)
            } else {
                slot[owner] = owners.count
                owners.append(owner)
                indices.append([i])
            }
        }
    }
}
