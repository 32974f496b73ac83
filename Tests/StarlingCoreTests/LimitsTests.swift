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

    @Test func queuesHoldWhatFeedsThem() {
        // A whole request fits the write queue; a group commit and a forward batch take from
        // queues larger than themselves.
        #expect(limits.requestEventsMax <= limits.writeQueueEventsMax)
        #expect(limits.bodyBytesMax <= limits.writeQueueBytesMax)
        #expect(limits.groupCommitEventsMax <= limits.writeQueueEventsMax)
        #expect(limits.forwardBatchEventsMax <= limits.forwardQueueEventsMax)
        #expect(limits.forwardBatchesInFlightMax >= 1 && limits.catchUpPlansQueuedMax >= 1)
        // A catch-up page of records at the item bound still fits the frame budget by bytes
        // (the engine cuts pages by both).
        #expect(limits.catchUpPageRecordsMax >= 1 && limits.frameItemBytesMax >= limits.recordBytesMax)
    }

    @Test func memoryOfFixedBuffersIsSmall() {
        // The query block cache and one UDP read buffer, at their worst.
        #expect(limits.blockCacheBlocksMax * limits.blockPayloadBytesMax <= 16 * 1024 * 1024)
        #expect(limits.udpReadDatagramsMax * (limits.datagramBytesMax + 1) <= 1024 * 1024)
        // A connection's requests in flight stay at a number a node can hold; outbound clients
        // cover every member a cluster may have.
        #expect(limits.peerInFlightMax <= 65_536 && limits.peerClientsMax >= limits.membersMax)
    }
}
