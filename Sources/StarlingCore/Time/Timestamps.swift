/// RFC 3339 timestamps and UTC days as epoch milliseconds, by pure arithmetic
/// (proleptic Gregorian calendar, days-from-civil). No Foundation, no clock reads.
public enum Timestamps {
    private static let msPerDay: Int64 = 86_400_000

    /// Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123+09:00", fraction of
    /// any length, 't'/'z' lowercase allowed) into epoch milliseconds (fraction truncated to ms).
    /// Returns nil when invalid (bad month/day incl. leap years, hour>23, minute>59, second>60 (60 accepted
    /// as 59 leap), missing offset, out of year range 0001...9999).
    public static func parseRFC3339(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { parseRFC3339(bytes: $0) }
    }

    private static func parseRFC3339(bytes b: UnsafeBufferPointer<UInt8>) -> Int64? {
        // YYYY-MM-DDTHH:MM:SS is 19 bytes, then an optional fraction, then Z or ±HH:MM.
        guard b.count >= 20,
              let (year, month, day) = parseDate(b),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              let hour = digits2(b, 11), b[13] == UInt8(ascii: ":"),
              let minute = digits2(b, 14), b[16] == UInt8(ascii: ":"),
              let second = digits2(b, 17),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }

        var i = 19
        var millis = 0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            let fractionStart = i
            while i < b.count, let d = digit(b[i]) {
                if i - fractionStart < 3 { millis = millis * 10 + d }
                i += 1
            }
            let fractionDigits = i - fractionStart
            guard fractionDigits > 0 else { return nil }
            if fractionDigits == 1 { millis *= 100 } else if fractionDigits == 2 { millis *= 10 }
        }

        guard i < b.count else { return nil }
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            guard i + 6 <= b.count, let oh = digits2(b, i + 1), b[i + 3] == UInt8(ascii: ":"),
                  let om = digits2(b, i + 4), oh <= 23, om <= 59
            else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }

        let days = daysFromCivil(year: Int64(year), month: Int64(month), day: Int64(day))
        let secondsOfDay = Int64(hour * 3600 + minute * 60 + min(second, 59))
        return days * msPerDay + secondsOfDay * 1000 + Int64(millis) - Int64(offsetMinutes) * 60_000
    }

    /// Formats epoch milliseconds as RFC 3339 UTC with milliseconds: "2026-11-22T10:00:00.123Z".
    /// Years outside 0...9999 are written with a sign or more digits ("-0001", "12345").
    public static func formatRFC3339(_ ms: Int64) -> String {
        let (days, msOfDay) = splitDays(ms)
        let (y, m, d) = civilFromDays(days)
        let seconds = Int(msOfDay / 1000)
        let millis = Int(msOfDay % 1000)
        guard y >= 0 && y <= 9999 else {
            var out: [UInt8] = []
            appendDate(y, m, d, into: &out)
            out.append(contentsOf: Array("T00:00:00.000Z".utf8))
            let timeStart = out.count - 13
            out.withUnsafeMutableBufferPointer { buffer in
                putTime(seconds, millis, into: buffer, at: timeStart)
            }
            return String(decoding: out, as: UTF8.self)
        }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            guard buffer.count >= 24 else { return 0 }
            putDigits(Int(y), width: 4, into: buffer, at: 0)
            buffer[4] = UInt8(ascii: "-")
            putDigits(Int(m), width: 2, into: buffer, at: 5)
            buffer[7] = UInt8(ascii: "-")
            putDigits(Int(d), width: 2, into: buffer, at: 8)
            buffer[10] = UInt8(ascii: "T")
            putTime(seconds, millis, into: buffer, at: 11)
            return 24
        }
    }

    /// Writes "HH:MM:SS.mmmZ" (13 bytes) at `at`.
    private static func putTime(_ seconds: Int, _ millis: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at: Int) {
        guard at >= 0, buffer.count - at >= 13 else { return }
        putDigits(seconds / 3600, width: 2, into: buffer, at: at)
        buffer[at + 2] = UInt8(ascii: ":")
        putDigits(seconds / 60 % 60, width: 2, into: buffer, at: at + 3)
        buffer[at + 5] = UInt8(ascii: ":")
        putDigits(seconds % 60, width: 2, into: buffer, at: at + 6)
        buffer[at + 8] = UInt8(ascii: ".")
        putDigits(millis, width: 3, into: buffer, at: at + 9)
        buffer[at + 12] = UInt8(ascii: "Z")
    }

    /// Writes the last `width` decimal digits of the non-negative `value` at `at`.
    @inline(__always)
    private static func putDigits(_ value: Int, width: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at: Int) {
        var v = value
        var k = at + width - 1
        while k >= at {
            buffer[k] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
            v /= 10
            k -= 1
        }
    }

    /// "2026-11-22" (the UTC day) for epoch milliseconds.
    public static func utcDay(_ ms: Int64) -> String {
        let (y, m, d) = civilFromDays(splitDays(ms).days)
        guard y >= 0 && y <= 9999 else {
            var out: [UInt8] = []
            appendDate(y, m, d, into: &out)
            return String(decoding: out, as: UTF8.self)
        }
        return String(unsafeUninitializedCapacity: 10) { buffer in
            guard buffer.count >= 10 else { return 0 }
            putDigits(Int(y), width: 4, into: buffer, at: 0)
            buffer[4] = UInt8(ascii: "-")
            putDigits(Int(m), width: 2, into: buffer, at: 5)
            buffer[7] = UInt8(ascii: "-")
            putDigits(Int(d), width: 2, into: buffer, at: 8)
            return 10
        }
    }

    /// Parses "2026-11-22" back to epoch ms of that day's 00:00 UTC, nil if invalid.
    public static func parseUTCDay(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { b -> Int64? in
            guard b.count == 10, let (y, m, d) = parseDate(b) else { return nil }
            return daysFromCivil(year: Int64(y), month: Int64(m), day: Int64(d)) * msPerDay
        }
    }

    // MARK: Calendar arithmetic

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01.
    static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    static func isLeapYear(_ y: Int) -> Bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: return 31
        case 4, 6, 9, 11: return 30
        case 2: return isLeapYear(year) ? 29 : 28
        default: return 0
        }
    }

    /// Floor division of milliseconds into whole days and the milliseconds within the day. Never overflows.
    private static func splitDays(_ ms: Int64) -> (days: Int64, msOfDay: Int64) {
        var days = ms / msPerDay
        var rest = ms % msPerDay
        if rest < 0 {
            days -= 1
            rest += msPerDay
        }
        return (days, rest)
    }

    // MARK: Text helpers

    @inline(__always)
    private static func digit(_ c: UInt8) -> Int? {
        c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") ? Int(c - UInt8(ascii: "0")) : nil
    }

    private static func digits2(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Int? {
        guard at >= 0, at + 2 <= b.count, let h = digit(b[at]), let l = digit(b[at + 1]) else { return nil }
        return h * 10 + l
    }

    /// "YYYY-MM-DD" at the start of `b`, validated (year 0001...9999, real day of month).
    private static func parseDate(_ b: UnsafeBufferPointer<UInt8>) -> (Int, Int, Int)? {
        guard b.count >= 10, let y1 = digits2(b, 0), let y2 = digits2(b, 2), b[4] == UInt8(ascii: "-"),
              let month = digits2(b, 5), b[7] == UInt8(ascii: "-"), let day = digits2(b, 8)
        else { return nil }
        let year = y1 * 100 + y2
        guard year >= 1, month >= 1, month <= 12, day >= 1, day <= daysInMonth(year: year, month: month) else {
            return nil
        }
        return (year, month, day)
    }

    private static func append(_ v: Int64, width: Int, into out: inout [UInt8]) {
        let start = out.count
        var x = v.magnitude
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: x % 10))
            x /= 10
        } while x > 0
        while out.count - start < width { out.append(UInt8(ascii: "0")) }
        out[start...].reverse()
    }

    private static func appendDate(_ y: Int64, _ m: Int64, _ d: Int64, into out: inout [UInt8]) {
        if y < 0 { out.append(UInt8(ascii: "-")) }
        append(y, width: 4, into: &out)
        out.append(UInt8(ascii: "-"))
        append(m, width: 2, into: &out)
        out.append(UInt8(ascii: "-"))
        append(d, width: 2, into: &out)
    }
}
