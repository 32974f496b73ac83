/// A browser's `User-Agent` reduced to browser, OS and device class (`attrs.ua`), by a small
/// rule table rather than a regex database: the first matching rule of each table wins.
/// Unrecognised agents (server libraries, scripts) give nil, so backend events carry nothing.
///
/// | field | rules, in order |
/// |---|---|
/// | device | `bot`: bot, crawl, spider, slurp, headless, lighthouse; `tablet`: iPad, Tablet, Android without Mobile; `mobile`: Mobile, iPhone, iPod, Android; else `desktop` (only when a browser or OS was recognised) |
/// | browser | Edge (`Edg/`, `EdgA/`, `EdgiOS/`), Opera (`OPR/`), Samsung Internet (`SamsungBrowser/`), Firefox (`Firefox/`, `FxiOS/`), Chrome (`CriOS/`, `Chrome/`), Safari (`Version/` + `Safari/`), Internet Explorer (`MSIE `, `Trident/`) — with the major version |
/// | os | Windows (`Windows NT 10.0` → 10, 6.3 → 8.1, 6.2 → 8, 6.1 → 7), iOS / iPadOS (`iPhone OS 17_4` → 17), Android (major), macOS (`Mac OS X 10_15_7` → 10.15), ChromeOS (`CrOS`), Linux |
public struct UserAgent: Sendable, Equatable {
    public var browser: String?
    public var browserVersion: String?
    public var os: String?
    public var osVersion: String?
    public var device: String

    public init(browser: String?, browserVersion: String?, os: String?, osVersion: String?, device: String) {
        self.browser = browser
        self.browserVersion = browserVersion
        self.os = os
        self.osVersion = osVersion
        self.device = device
    }

    public static func parse(_ ua: String) -> UserAgent? {
        guard !ua.isEmpty, ua.utf8.count <= 1024 else { return nil }
        let lower = ua.lowercased()
        var r = UserAgent(browser: nil, browserVersion: nil, os: nil, osVersion: nil, device: "desktop")
        let browsers: [(String, [String])] = [
            ("Edge", ["Edg/", "EdgA/", "EdgiOS/"]), ("Opera", ["OPR/"]), ("Samsung Internet", ["SamsungBrowser/"]),
            ("Firefox", ["Firefox/", "FxiOS/"]), ("Chrome", ["CriOS/", "Chrome/"]),
        ]
        outer: for (name, marks) in browsers {
            for m in marks {
                if let v = version(after: m, in: ua) {
                    r.browser = name
                    r.browserVersion = v
                    break outer
                }
            }
        }
        if r.browser == nil, ua.contains("Safari/"), let v = version(after: "Version/", in: ua) {
            r.browser = "Safari"
            r.browserVersion = v
        }
        if r.browser == nil {
            if let v = version(after: "MSIE ", in: ua) {
                r.browser = "Internet Explorer"; r.browserVersion = v
            } else if ua.contains("Trident/") {
                r.browser = "Internet Explorer"; r.browserVersion = version(after: "rv:", in: ua)
            }
        }
        if let v = version(after: "Windows NT ", in: ua, full: true) {
            r.os = "Windows"
            r.osVersion = ["10.0": "10", "6.3": "8.1", "6.2": "8", "6.1": "7"][v] ?? v
        } else if ua.contains("iPad") {
            r.os = "iPadOS"; r.osVersion = version(after: "OS ", in: ua)
        } else if ua.contains("iPhone") || ua.contains("iPod") {
            r.os = "iOS"; r.osVersion = version(after: "iPhone OS ", in: ua) ?? version(after: "OS ", in: ua)
        } else if let v = version(after: "Android ", in: ua) {
            r.os = "Android"; r.osVersion = v
        } else if let v = version(after: "Mac OS X ", in: ua, full: true) {
            r.os = "macOS"
            let parts = v.split(whereSeparator: { $0 == "_" || $0 == "." })
            r.osVersion = parts.prefix(2).joined(separator: ".")
        } else if ua.contains("CrOS") {
            r.os = "ChromeOS"
        } else if ua.contains("Linux") {
            r.os = "Linux"
        }
        let bots = ["bot", "crawl", "spider", "slurp", "headless", "lighthouse"]
        if bots.contains(where: { lower.contains($0) }) {
            r.device = "bot"
            return r
        }
        guard r.browser != nil || r.os != nil else { return nil }
        if ua.contains("iPad") || ua.contains("Tablet") || (ua.contains("Android") && !ua.contains("Mobile")) {
            r.device = "tablet"
        } else if ua.contains("Mobile") || ua.contains("iPhone") || ua.contains("iPod") || ua.contains("Android") {
            r.device = "mobile"
        }
        return r
    }

    /// `{"browser","browser_version","os","os_version","device"}`, absent parts left out.
    public var json: JSONValue {
        var o = JSONObject()
        if let browser { o.fields.append(("browser", .string(browser))) }
        if let browserVersion { o.fields.append(("browser_version", .string(browserVersion))) }
        if let os { o.fields.append(("os", .string(os))) }
        if let osVersion { o.fields.append(("os_version", .string(osVersion))) }
        o.fields.append(("device", .string(device)))
        return .object(o)
    }

    /// The digits (and, with `full`, dots and underscores) right after `mark`; the major part
    /// unless `full`.
    static func version(after mark: String, in ua: String, full: Bool = false) -> String? {
        guard let r = ua.firstRange(of: mark) else { return nil }
        var out = ""
        for c in ua[r.upperBound...] {
            if c.isASCII && c.isNumber { out.append(c); continue }
            if full && (c == "." || c == "_") { out.append(c); continue }
            break
        }
        while out.last == "." || out.last == "_" { out.removeLast() }
        return out.isEmpty ? nil : out
    }
}
