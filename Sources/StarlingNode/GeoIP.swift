#if canImport(Glibc)
import Glibc
#endif
import CMaxMindDB
import StarlingCore

/// A MaxMind database (`--geoip FILE.mmdb`, read with Debian's libmaxminddb, memory-mapped):
/// the client address to `attrs.geo` — country, region, city from a City database; ASN and its
/// organisation from an ASN database; whatever the file has. Lookups are read-only and safe
/// from any thread.
final class GeoIP: @unchecked Sendable {
    struct OpenError: Error, CustomStringConvertible {
        var description: String
    }

    private let db: UnsafeMutablePointer<MMDB_s>
    let path: String

    init(path: String) throws {
        db = .allocate(capacity: 1)
        self.path = path
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), db)
        guard status == MMDB_SUCCESS else {
            db.deallocate()
            throw OpenError(description: "cannot open GeoIP database \(path): \(String(cString: MMDB_strerror(status)))")
        }
    }

    deinit {
        MMDB_close(db)
        db.deallocate()
    }

    /// The `attrs.geo` object for an address, or nil when the database has nothing for it
    /// (private and loopback addresses, or not an address).
    func lookup(_ ip: String) -> JSONObject? {
        var gaiError: Int32 = 0, mmdbError: Int32 = 0
        var result = MMDB_lookup_string(db, ip, &gaiError, &mmdbError)
        guard gaiError == 0, mmdbError == MMDB_SUCCESS, result.found_entry else { return nil }
        var geo = JSONObject()
        func value(_ path: [String]) -> JSONValue? {
            var data = MMDB_entry_data_s()
            // A NULL-terminated array of C strings, as MMDB_aget_value takes.
            let cStrings = path.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            var argv: [UnsafePointer<CChar>?] = cStrings.map { $0.map { UnsafePointer<CChar>($0) } } + [nil]
            let status = argv.withUnsafeMutableBufferPointer { MMDB_aget_value(&result.entry, &data, $0.baseAddress) }
            guard status == MMDB_SUCCESS, data.has_data else { return nil }
            switch Int32(data.type) {
            case MMDB_DATA_TYPE_UTF8_STRING:
                guard let p = data.utf8_string else { return nil }
                let bytes = UnsafeRawBufferPointer(start: p, count: Int(data.data_size))
                return .string(String(decoding: bytes, as: UTF8.self))
            case MMDB_DATA_TYPE_UINT32:
                return .number(String(data.uint32))
            case MMDB_DATA_TYPE_UINT16:
                return .number(String(data.uint16))
            default:
                return nil
            }
        }
        if let v = value(["country", "iso_code"]) { geo.fields.append(("country", v)) }
        if let v = value(["subdivisions", "0", "iso_code"]) { geo.fields.append(("region", v)) }
        if let v = value(["city", "names", "en"]) { geo.fields.append(("city", v)) }
        if let v = value(["autonomous_system_number"]) { geo.fields.append(("asn", v)) }
        if let v = value(["autonomous_system_organization"]) { geo.fields.append(("asn_org", v)) }
        return geo.fields.isEmpty ? nil : geo
    }
}
