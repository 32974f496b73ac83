import Synchronization

/// Bounds open connections: in all, and per client address (where `exempt` says no: trusted
/// proxies carry everyone's connections). `admit` before a connection is used, `release` when
/// it closes.
final class ConnectionLimiter: Sendable {
    enum Refusal: String, Sendable {
        case total = "too_many_connections"
        case perAddress = "too_many_connections_from_address"
    }

    struct State {
        var open = 0
        var byAddress: [String: Int] = [:]
    }

    let state = Mutex(State())
    let totalMax: Int
    let perAddressMax: Int
    let exempt: @Sendable (String) -> Bool

    init(totalMax: Int, perAddressMax: Int = .max, exempt: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.totalMax = totalMax
        self.perAddressMax = perAddressMax
        self.exempt = exempt
    }

    /// nil when admitted (and counted), else why not.
    func admit(_ address: String) -> Refusal? {
        let limited = perAddressMax < .max && !exempt(address)
        return state.withLock { s in
            guard s.open < totalMax else { return .total }
            if limited {
                guard s.byAddress[address, default: 0] < perAddressMax else { return .perAddress }
                s.byAddress[address, default: 0] += 1
            }
            s.open += 1
            return nil
        }
    }

    func release(_ address: String) {
        let limited = perAddressMax < .max && !exempt(address)
        state.withLock { s in
            s.open -= 1
            if limited {
                let n = s.byAddress[address, default: 1] - 1
                s.byAddress[address] = n > 0 ? n : nil
            }
        }
    }

    var open: Int { state.withLock { $0.open } }
}
