// The cluster module: Ring/ (consistent hashing), Membership/ (SWIM), Routing/ (placement, ingest
// routing, forward queues, replication plans, catch-up planning, query merge), Node/ (ClusterNode,
// the protocol as a value, and its directives) and Wire/ (frames and message bodies). Pure: no
// sockets, files, clocks or unseeded randomness.
