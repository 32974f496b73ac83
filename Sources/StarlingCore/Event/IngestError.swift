/// A refusal of client input, rendered by the HTTP shell as
/// `{"error": {"code", "message", "index"?}}` with `status`.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    /// 0-based index of the faulty event within a batch.
    public var index: Int?

    public init(status: Int = 400, code: String, message: String, index: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.index = index
    }

    public var description: String { "\(status) \(code): \(message)" + (index.map { " (index \($0))" } ?? "") }

    public func at(index: Int) -> IngestError {
        var e = self
        e.index = index
        if !e.message.hasPrefix("event \(index)") { e.message = "event \(index): " + e.message }
        return e
    }

    /// The reason label used in `starling_events_rejected_total{reason}`.
    public var reason: String { code }

    public static func invalidJSON(_ m: String) -> IngestError { .init(code: "invalid_json", message: m) }
    public static func missingField(_ f: String) -> IngestError { .init(code: "missing_field", message: "missing required field '\(f)'") }
    public static func invalidField(_ f: String, _ m: String) -> IngestError { .init(code: "invalid_field", message: "field '\(f)' \(m)") }
    public static func eventTooLarge(_ n: Int, _ max: Int) -> IngestError {
        .init(status: 413, code: "event_too_large", message: "event is \(n) bytes, the limit is \(max)")
    }
    public static func bodyTooLarge(_ max: Int) -> IngestError {
        .init(status: 413, code: "body_too_large", message: "request body exceeds \(max) bytes")
    }
}
