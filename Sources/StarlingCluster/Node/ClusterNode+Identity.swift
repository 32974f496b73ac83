import StarlingCore

/// Identities: a link (`/v1/identify`) is stored by the session's owner (for its state) and by
/// each identity's owner (for lookups); an identity-only event asks the identity's owner for its
/// session; "sessions of a user" asks the identity's owner for its links.
extension ClusterNode {
    /// One identity call that went to several owners.
    struct Identify: Sendable {
        var waiting: Int
        var firstError: IngestError?
    }

    // MARK: Identify

    /// Stores a link on every owner concerned; `.identified(ticket:error:)` when all answered.
    public mutating func identify(sessionID: String, userID: String?, terminalID: String?, ticket: UInt64, now: Int64) -> [ClusterDirective] {
        var owners = [owner(of: SubjectKey.session(sessionID).ringKey)]
        for key in [userID.map(SubjectKey.user), terminalID.map(SubjectKey.terminal)].compactMap({ $0 }) {
            let o = owner(of: key.ringKey)
            if !owners.contains(o) { owners.append(o) }
        }
        precondition(identifies[ticket] == nil, "identify ticket \(ticket) is already pending (\(identifies.count) in progress)")
        identifies[ticket] = Identify(waiting: owners.count)
        for o in owners {
            if o == id {
                let t = newTicket(.identifyPart(ticket))
                out.append(.appendLink(sessionID: sessionID, userID: userID, terminalID: terminalID, ticket: t))
            } else if let peer = peerAddress(of: o) {
                request(.identify, body: IdentifyRequest(sessionID: sessionID, userID: userID, terminalID: terminalID).encode(),
                        to: peer, what: .identify(ticket: ticket), timeoutMs: settings.forwardTimeoutMs, now: now)
            } else {
                identified(part: ticket, error: IngestError(status: 503, code: "owner_unavailable", message: "owner \(o) has no known address"))
            }
        }
        return take()
    }

    mutating func identified(part ticket: UInt64, error: IngestError?) {
        guard var c = identifies[ticket] else { return }
        c.waiting -= 1
        if c.firstError == nil { c.firstError = error }
        identifies[ticket] = c
        guard c.waiting == 0 else { return }
        identifies[ticket] = nil
        out.append(.identified(ticket: ticket, error: c.firstError))
    }

    mutating func onIdentify(_ frame: Frame, inbound: Inbound) {
        guard let r = try? IdentifyRequest.decode(frame.body) else {
            out.append(.count(.peerProtocolError))
            return respond(inbound, .identifyResult, IdentifyResult(status: 400, code: "bad_request", message: "malformed identify").encode())
        }
        let t = newTicket(.identifyReply(inbound))
        out.append(.appendLink(sessionID: r.sessionID, userID: r.userID, terminalID: r.terminalID, ticket: t))
    }

    /// The storage stored (or failed to store) the link of `.appendLink`.
    public mutating func linkStored(ticket: UInt64, result: Result<Int, IngestError>) -> [ClusterDirective] {
        let error: IngestError? = if case .failure(let e) = result { e } else { nil }
        switch tickets.removeValue(forKey: ticket) {
        case .identifyReply(let inbound)?:
            let body = error.map { IdentifyResult(status: UInt16($0.status), code: $0.code, message: $0.message) }
                ?? IdentifyResult(status: 204, code: "", message: "")
            respond(inbound, .identifyResult, body.encode())
        case .identifyPart(let parent)?:
            identified(part: parent, error: error)
        default:
            break
        }
        return take()
    }

    // MARK: Resolve and links

    /// The session an identity was last linked to, from the identity's owner;
    /// `.resolved(ticket:sessionID:)` (nil when unknown or the owner did not answer: the event
    /// is stored unlinked, never dropped).
    public mutating func resolve(_ key: SubjectKey, ticket: UInt64, now: Int64) -> [ClusterDirective] {
        let o = owner(of: key.ringKey)
        if o == id {
            out.append(.readIdentity(.resolve(key), ticket: newTicket(.resolvePart(ticket))))
        } else if let peer = peerAddress(of: o) {
            let body = (key.isUser ? ResolveIdentity(userID: key.id) : ResolveIdentity(terminalID: key.id)).encode()
            request(.resolveIdentity, body: body, to: peer, what: .resolve(ticket: ticket), timeoutMs: settings.queryTimeoutMs, now: now)
        } else {
            out.append(.resolved(ticket: ticket, sessionID: nil))
        }
        return take()
    }

    /// The sessions linked to a user or terminal, from the identity's owner; `.linksAnswered`.
    public mutating func links(_ key: SubjectKey, ticket: UInt64, now: Int64) -> [ClusterDirective] {
        let o = owner(of: key.ringKey)
        if o == id {
            out.append(.readIdentity(.links(key), ticket: newTicket(.linksPart(ticket))))
        } else if let peer = peerAddress(of: o) {
            request(.links, body: LinksRequest(user: key.isUser, id: key.id).encode(), to: peer, what: .links(ticket: ticket),
                    timeoutMs: settings.queryTimeoutMs, now: now)
        } else {
            out.append(.linksAnswered(ticket: ticket, []))
        }
        return take()
    }

    mutating func onResolve(_ frame: Frame, inbound: Inbound) {
        let r = try? ResolveIdentity.decode(frame.body)
        guard let key = r.flatMap({ r in r.userID.map(SubjectKey.user) ?? r.terminalID.map(SubjectKey.terminal) }) else {
            return respond(inbound, .resolveResult, ResolveResult(sessionID: nil).encode())
        }
        out.append(.readIdentity(.resolve(key), ticket: newTicket(.resolveReply(inbound))))
    }

    mutating func onLinks(_ frame: Frame, inbound: Inbound) {
        guard let r = try? LinksRequest.decode(frame.body) else {
            return respond(inbound, .linksResult, LinksResult(links: []).encode())
        }
        out.append(.readIdentity(.links(r.user ? .user(r.id) : .terminal(r.id)), ticket: newTicket(.linksReply(inbound))))
    }

    /// The storage answered a `.readIdentity`.
    public mutating func identityRead(ticket: UInt64, sessionID: String?, links: [NodeIndex.Link]) -> [ClusterDirective] {
        switch tickets.removeValue(forKey: ticket) {
        case .resolveReply(let inbound)?: respond(inbound, .resolveResult, ResolveResult(sessionID: sessionID).encode())
        case .resolvePart(let parent)?: out.append(.resolved(ticket: parent, sessionID: sessionID))
        case .linksReply(let inbound)?: respond(inbound, .linksResult, LinksResult(links: links).encode())
        case .linksPart(let parent)?: out.append(.linksAnswered(ticket: parent, links))
        default: break
        }
        return take()
    }
}

extension SubjectKey {
    var isUser: Bool {
        if case .user = self { true } else { false }
    }
}
