/// Fields the receiving node adds to an event before it is routed (`attrs.geo`, `attrs.ua`, a
/// first-party `terminal_id`): applied once, where the event is first received, to the
/// client's fields (`IncomingEvent.prefix`), so owners and replicas store the enriched bytes
/// and never enrich again.
public enum Enrichment {
    /// Adds `fields` to the event's `attrs` (made if absent). A field the client already sent
    /// in `attrs` is kept as sent and ours is left out: JSON objects must not repeat a key.
    /// Returns the names added.
    @discardableResult
    public static func addAttrs(_ fields: JSONObject, to event: inout IncomingEvent) -> [String] {
        guard !fields.fields.isEmpty else { return [] }
        guard let (text, members) = closed(event.prefix) else { return [] }
        guard let attrs = members.first(where: { $0.key == "attrs" }) else {
            append("attrs", .object(fields), to: &event.prefix)
            return fields.fields.map(\.key)
        }
        // The attrs object's members: keep the client's, add ours before its closing brace.
        let value = text.withUnsafeBytes { b in try? JSONParser.scan(UnsafeRawBufferPointer(rebasing: b[attrs.valueStart..<attrs.end])) }
        guard case .object(_, let existing)? = value else { return [] }
        let have = Set(existing.map(\.key))
        let adding = fields.fields.filter { !have.contains($0.key) }
        guard !adding.isEmpty else { return [] }
        var insert: [UInt8] = []
        for (k, v) in adding {
            if !existing.isEmpty || !insert.isEmpty { insert.append(UInt8(ascii: ",")) }
            JSONWriter.write(.string(k), into: &insert)
            insert.append(UInt8(ascii: ":"))
            JSONWriter.write(v, into: &insert)
        }
        // attrs.end is just past the object's closing brace.
        var out = Array(text[..<(attrs.end - 1)])
        out.append(contentsOf: insert)
        out.append(contentsOf: text[(attrs.end - 1)..<(text.count - 1)])
        out.append(UInt8(ascii: ","))
        event.prefix = out
        return adding.map(\.key)
    }

    /// Gives an event without a terminal id this one (the first-party cookie's id).
    public static func setTerminal(_ id: String, on event: inout IncomingEvent) {
        guard event.terminalID == nil else { return }
        // An empty terminal_id counts as absent but is in the bytes: do not repeat the key.
        guard let (_, members) = closed(event.prefix), !members.contains(where: { $0.key == "terminal_id" }) else { return }
        append("terminal_id", .string(id), to: &event.prefix)
        event.terminalID = id
    }

    /// The client fields as a closed object, and its members (nil if they do not scan).
    static func closed(_ prefix: [UInt8]) -> ([UInt8], [JSONMemberSpan])? {
        var text = prefix
        if text.last == UInt8(ascii: ",") { text.removeLast() }
        text.append(UInt8(ascii: "}"))
        guard case .object(_, let members)? = try? text.withUnsafeBytes({ try JSONParser.scan($0) }) else { return nil }
        return (text, members)
    }

    /// One more member at the end of the client fields (which stay open for the stamps).
    static func append(_ key: String, _ value: JSONValue, to prefix: inout [UInt8]) {
        if prefix.last != UInt8(ascii: ",") && prefix.last != UInt8(ascii: "{") { prefix.append(UInt8(ascii: ",")) }
        JSONWriter.write(.string(key), into: &prefix)
        prefix.append(UInt8(ascii: ":"))
        JSONWriter.write(value, into: &prefix)
        prefix.append(UInt8(ascii: ","))
    }
}
