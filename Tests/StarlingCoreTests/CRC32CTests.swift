import Testing
import StarlingCore

@Suite struct CRC32CTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func knownVectors() {
        // RFC 3720 (iSCSI) appendix B.4.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func matchesBitwiseReferenceAtEveryLength() {
        func reference(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var data: [UInt8] = []
        var x: UInt32 = 7
        for _ in 0..<100 {
            x = x &* 1_103_515_245 &+ 12345
            data.append(UInt8(truncatingIfNeeded: x >> 16))
        }
        for n in 0...data.count {
            #expect(CRC32C.checksum(Array(data[..<n])) == reference(Array(data[..<n])))
        }
        // Unaligned start.
        data.withUnsafeBytes { buffer in
            for start in 1..<9 {
                let slice = UnsafeRawBufferPointer(rebasing: buffer[start...])
                #expect(CRC32C.checksum(slice) == reference(Array(data[start...])))
            }
        }
    }

    @Test func incrementalSeed() {
        let a = Array("hello, ".utf8)
        let b = Array("world and more bytes to cross a word".utf8)
        let whole = CRC32C.checksum(a + b)
        let running = b.withUnsafeBytes { CRC32C.checksum($0, seed: CRC32C.checksum(a)) }
        #expect(running == whole)
        #expect(CRC32C.checksum(b, seed: CRC32C.checksum(a)) == whole)
        // Splitting at every point gives the same result.
        let all = a + b
        for cut in 0...all.count {
            #expect(CRC32C.checksum(Array(all[cut...]), seed: CRC32C.checksum(Array(all[..<cut]))) == whole)
        }
        // An empty continuation leaves the checksum unchanged.
        #expect(CRC32C.checksum([], seed: whole) == whole)
    }
}

@Suite struct StableHashTests {
    @Test func knownValues() {
        #expect(StableHash.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(StableHash.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(StableHash.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        #expect(StableHash.fnv1a64(Array("foobar".utf8)) == StableHash.fnv1a64("foobar"))
        #expect(StableHash.fnv1a64("é") == StableHash.fnv1a64([0xC3, 0xA9]))
    }

    @Test func hardwareAndTablesAgree() {
        #if arch(x86_64)
        #expect(CRC32C.usesHardware, "every x86-64 CPU this runs on has SSE4.2: without it this test compares the tables with themselves")
        #endif
        // Every length up to 300 and every start offset up to 8, with seeds: the instruction path
        // (used when the CPU has it) and the tables must give the same checksum.
        var data: [UInt8] = []
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<320 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            data.append(UInt8(truncatingIfNeeded: x >> 33))
        }
        data.withUnsafeBytes { buffer in
            for start in 0..<9 {
                for n in 0...300 {
                    let slice = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
                    let seed = UInt32(truncatingIfNeeded: n &* 2_654_435_761)
                    #expect(CRC32C.checksum(slice, seed: seed) == CRC32C.softwareChecksum(slice, seed: seed))
                }
            }
        }
    }
}
