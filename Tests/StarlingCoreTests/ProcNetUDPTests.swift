import Testing
@testable import StarlingCore

@Suite struct ProcNetUDPTests {
    static let v4 = """
       sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
     10460: 0100007F:DC61 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7697372 2 000000009fbab68d 0
     10461: 0100007F:46B9 00000000:0000 07 00000000:00041000 00:00000000 00000000     0        0 7697373 2 000000009fbab68e 1234
     10462: 00000000:46B9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7697374 2 000000009fbab68f 6
     garbage line
     10463: 0100007F:46B9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7697375 2 000000009fbab690 notanumber
    """
    static let v6 = """
       sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
      200: 00000000000000000000000001000000:46B9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7697380 2 000000009fbab691 10
    """

    @Test func dropsAreSummedOverTheRowsOfThePort() {
        // 0x46B9 = 18105: three well-formed rows (1234 + 6, and 10 over IPv6); the malformed ones skipped.
        #expect(ProcNetUDP.drops(inTables: [Self.v4, Self.v6], port: 18105) == 1250)
        #expect(ProcNetUDP.drops(inTables: [Self.v4], port: 0xDC61) == 0)
        #expect(ProcNetUDP.drops(inTables: [Self.v4, Self.v6], port: 9) == nil)
        #expect(ProcNetUDP.drops(inTables: [], port: 18105) == nil)
    }
}
