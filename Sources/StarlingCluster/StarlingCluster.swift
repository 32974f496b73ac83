// The cluster module's files live in Ring/, Membership/ and Wire/.
