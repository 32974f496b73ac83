import Testing
@testable import StarlingCore

/// How the bounds relate: a validated event always fits a record, a record always fits a block
/// the reader accepts, and one item always fits a peer frame.
@Suite struct LimitsTests {
    let limits = Limits()

    @Test func aValidatedEventFitsARecord() {
        // The largest event the validator passes, with every string at its limit and the stamps.
        let json = limits.eventBytesMax + 512
        let strings = limits.sessionIDBytesMax + limits.eventIDBytesMax + limits.keyBytesMax + 4 * limits.identityBytesMax
        #expect(8 + 20 + 14 + strings + 4 + json <= limits.recordBytesMax)
    }

    @Test func aFullBlockFitsWhatTheReaderAccepts() {
        // The writer closes a block at blockBytesMax; the record that crosses it is at most recordBytesMax.
        #expect(limits.blockBytesMax + limits.recordBytesMax <= limits.blockPayloadBytesMax)
    }

    @Test func oneItemFitsAFrame() {
        // Frames are refused over 4 MiB as sent; an item plus its framing is far below the budget.
        #expect(limits.recordBytesMax * 4 < limits.frameItemBytesMax)
        #expect(limits.frameItemBytesMax + 64 * 1024 <= 4 << 20)
        #expect(limits.bodyBytesMax <= limits.frameItemBytesMax)
    }

    @Test func aFullRequestFitsTheForwardQueue() {
        // A 1 MiB body of tiny events makes up to about 5 MB of records (stamps and the record
        // header outweigh a 40-byte event); all its pieces must fit one owner's queue at once.
        #expect(limits.bodyBytesMax * 8 <= limits.forwardQueueBytesMax)
        #expect(limits.frameItemBytesMax <= limits.forwardQueueBytesMax)
    }
}
