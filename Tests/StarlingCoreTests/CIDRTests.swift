import Testing
import StarlingCore

@Suite struct IPAddressTests {
    @Test func parsesAndFormatsIPv4() {
        #expect(IPAddress("1.2.3.4")?.description == "1.2.3.4")
        #expect(IPAddress("0.0.0.0")?.description == "0.0.0.0")
        #expect(IPAddress("255.255.255.255")?.description == "255.255.255.255")
        #expect(IPAddress("1.2.3.4")?.isV4 == true)
    }

    @Test func parsesAndFormatsIPv6() {
        let cases: [(String, String)] = [
            ("::1", "::1"),
            ("::", "::"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("[::1]", "::1"),
            ("fe80::", "fe80::"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),        // longest zero run
            ("1:0:0:1:1:0:0:1", "1::1:1:0:0:1"),      // first run on a tie
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), // a single zero group is not compressed
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("::1.2.3.4", "::102:304"),
            ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ]
        for (input, canonical) in cases {
            #expect(IPAddress(input)?.description == canonical, "\(input)")
            #expect(IPAddress(input)?.isV4 == false, "\(input)")
        }
    }

    @Test func v4MappedIsV4() {
        let mapped = IPAddress("::ffff:1.2.3.4")
        #expect(mapped?.description == "1.2.3.4")
        #expect(mapped?.isV4 == true)
        #expect(mapped == IPAddress("1.2.3.4"))
        #expect(IPAddress("::FFFF:0102:0304") == IPAddress("1.2.3.4"))
        #expect(IPAddress("[::ffff:10.0.0.1]")?.description == "10.0.0.1")
    }

    @Test func rejectsInvalid() {
        let bad = [
            "", " ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "01.2.3.4", "1.2.3.04", "1..2.3", "1.2.3.4 ",
            " 1.2.3.4", "a.b.c.d", "1.2.3.4/32", "[1.2.3.4]", ":::", "1::2::3", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:",
            "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "::1%eth0", "fe80::1%1", "[::1", "::1]",
            "1:2:3:4:5:6:7:8::", "1::2:3:4:5:6:7:8", "::1.2.3.4:1", "::1.2.3", "1.2.3.4::", "::ffff:1.2.3.256",
            "localhost", "[]", "[", "::-1", "+1.2.3.4", String(repeating: "1", count: 100),
        ]
        for s in bad {
            #expect(IPAddress(s) == nil, "\(s)")
        }
    }
}

@Suite struct CIDRTests {
    @Test func v4Containment() throws {
        let net = try #require(CIDR("10.0.0.0/8"))
        #expect(net.contains(IPAddress("10.0.0.1")!))
        #expect(net.contains(IPAddress("10.255.255.255")!))
        #expect(!net.contains(IPAddress("11.0.0.0")!))
        #expect(!net.contains(IPAddress("9.255.255.255")!))
        let host = try #require(CIDR("127.0.0.1/32"))
        #expect(host.contains(IPAddress("127.0.0.1")!))
        #expect(!host.contains(IPAddress("127.0.0.2")!))
        let all = try #require(CIDR("0.0.0.0/0"))
        #expect(all.contains(IPAddress("8.8.8.8")!))
        #expect(!all.contains(IPAddress("::1")!))
        let odd = try #require(CIDR("192.168.1.128/25"))
        #expect(odd.contains(IPAddress("192.168.1.200")!))
        #expect(!odd.contains(IPAddress("192.168.1.127")!))
    }

    @Test func v6Containment() throws {
        let linkLocal = try #require(CIDR("fe80::/10"))
        #expect(linkLocal.contains(IPAddress("fe80::1")!))
        #expect(linkLocal.contains(IPAddress("febf:ffff::1")!))
        #expect(!linkLocal.contains(IPAddress("fec0::1")!))
        #expect(!linkLocal.contains(IPAddress("10.0.0.1")!))
        let loopback = try #require(CIDR("::1/128"))
        #expect(loopback.contains(IPAddress("::1")!))
        #expect(!loopback.contains(IPAddress("::2")!))
        let doc = try #require(CIDR("2001:db8::/32"))
        #expect(doc.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!doc.contains(IPAddress("2001:db9::1")!))
        let wide = try #require(CIDR("2001:db8:1234:5678:9abc::/65"))
        #expect(wide.contains(IPAddress("2001:db8:1234:5678:8000::1")!))
        #expect(!wide.contains(IPAddress("2001:db8:1234:5678:7fff::1")!))
    }

    @Test func v4MatchesMappedAddresses() throws {
        let net = try #require(CIDR("10.0.0.0/8"))
        #expect(net.contains(IPAddress("::ffff:10.1.2.3")!))
        #expect(!net.contains(IPAddress("::ffff:11.1.2.3")!))
        #expect(!net.contains(IPAddress("::10.1.2.3")!))
        // The same network written as a mapped IPv6 network is the IPv4 network.
        #expect(CIDR("::ffff:10.0.0.0/104") == net)
        #expect(CIDR("::ffff:10.0.0.0/104")?.description == "10.0.0.0/8")
    }

    @Test func bareAddressesAndDescriptions() {
        #expect(CIDR("1.2.3.4")?.description == "1.2.3.4/32")
        #expect(CIDR("::1")?.description == "::1/128")
        #expect(CIDR("[::1]/128")?.description == "::1/128")
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(CIDR("fe80::1234/10")?.description == "fe80::/10")
        #expect(CIDR("::ffff:0:0/95")?.description == "::fffe:0.0.0.0/95" || CIDR("::ffff:0:0/95")?.description == "::fffe:0:0/95")
        #expect(CIDR("::/0")?.description == "::/0")
        #expect(CIDR("1.2.3.4")?.prefixLength == 32)
        #expect(CIDR("1.2.3.4")?.isV4 == true)
        #expect(CIDR("fe80::/10")?.prefixLength == 10)
        #expect(CIDR("fe80::/10")?.network.description == "fe80::")
        for text in ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fe80::/10", "::ffff:0.0.0.0/90", "0.0.0.0/0", "::/0"] {
            let c = CIDR(text)
            #expect(c != nil, "\(text)")
            #expect(c.flatMap { CIDR($0.description) } == c, "\(text)")
        }
    }

    @Test func rejectsInvalid() {
        let bad = ["", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8",
                   "10.0.0/8", "10.0.0.0 /8", "10.0.0.0/ 8", "10.0.0.0/1000", "10.0.0.0/a", "fe80::/1.0", "fe80::%1/10",
                   "example.com/8", "10.0.0.0/08a"]
        for s in bad {
            #expect(CIDR(s) == nil, "\(s)")
        }
    }

    @Test func lists() {
        let list = CIDR.parseList("127.0.0.1/32, ::1 ,10.0.0.0/8,  fe80::/10")
        #expect(list?.map(\.description) == ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "fe80::/10"])
        #expect(CIDR.parseList("") == [])
        #expect(CIDR.parseList("   ") == [])
        #expect(CIDR.parseList("10.0.0.0/8") == [CIDR("10.0.0.0/8")!])
        #expect(CIDR.parseList("10.0.0.0/8,") == nil)
        #expect(CIDR.parseList("10.0.0.0/8,,::1") == nil)
        #expect(CIDR.parseList("10.0.0.0/8, nope") == nil)
        #expect(CIDR.parseList("10.0.0.0/8 ::1") == nil)
    }
}

@Suite struct NetworkTextFuzzTests {
    /// Random short strings over an address-like alphabet never trap, and whatever parses
    /// re-parses from its canonical text to the same value.
    @Test func randomTextNeverTraps() {
        let alphabet = Array("0123456789abcdefABCDEF:./[]% ,-fx".unicodeScalars)
        var state: UInt64 = 0xC1D8
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var parsed = 0
        for _ in 0..<2_000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<(next() % 24) { s.append(alphabet[next() % alphabet.count]) }
            let text = String(s)
            if let address = IPAddress(text) {
                parsed += 1
                #expect(IPAddress(address.description) == address, "\(text)")
            }
            if let cidr = CIDR(text) {
                #expect(CIDR(cidr.description) == cidr, "\(text)")
            }
            _ = CIDR.parseList(text)
        }
        // Structured random addresses: every v6 group pattern round-trips through its canonical text.
        for _ in 0..<500 {
            var groups: [String] = []
            for _ in 0..<8 { groups.append(next() % 3 == 0 ? "0" : String(next() % 0x10000, radix: 16)) }
            let address = IPAddress(groups.joined(separator: ":"))
            #expect(address != nil)
            if let address {
                #expect(IPAddress(address.description) == address)
                #expect(CIDR(address.description + "/64")?.contains(address) == true)
            }
        }
        #expect(parsed >= 0)
    }
}
