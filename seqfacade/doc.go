// Package seqfacade hands out per-uid sequences, after WeChat's seqsvr:
// for each uid an independent counter that only ever grows. A uid's
// sequence going backwards makes a phone miss messages for good, so the
// package refuses to answer (ErrUnavailable) whenever it cannot prove a
// value is safe.
//
// # Sections, steps and max_seq
//
// uids 1..UIDLimit-1 fall into sections of SectionSize consecutive uids
// (uid/SectionSize). Each section has one persisted max_seq; each uid's
// cur_seq lives only in memory: a few dozen bytes a uid touched while few
// of the section's uids are, 8 bytes a uid of the section (an array)
// once a sixteenth are (counters.go: a population spread thin over 2^32
// uids would otherwise fault in a page of memory per uid). A [Node] hands out
// cur_seq+1 only if it is at most the section's max_seq known to be
// persisted; a section that runs out first persists max_seq + its step
// (Step, doubled each time the section needs another within StepPeriod,
// so a busy uid writes every few seconds whatever its rate, and a write
// across sites stays off the request path). The next extension starts in
// the background once PrefetchFraction of a step is used (double
// buffering, as Meituan's Leaf does), so a steady stream rarely waits,
// and callers of one section share one write. When a group is loaded
// every cur_seq of its sections starts at the persisted max_seq, and
// every section gets a step in one write at once: after a restart or a
// move, values jump up, never repeat; and a population spread over every
// section (how millions of users arrive) costs a write per group, not
// one per section, with no call waiting on it.
//
// # Groups: the unit of storage and ownership
//
// GroupSize consecutive sections (default 128) persist in one etcd key as
// a compact binary value, 8 bytes a section. At defaults the 2^32 uid
// space is 42,950 sections in 336 keys of 1,025-byte values: 352,000
// bytes of keys and values in all (TestPersistedSizeAtDefaults), where a
// key per section would take about a megabyte. A group is
// also what a node owns, loads and unloads, and what one write raises:
// every section of the group that needs a step gets it in that write.
//
// # Writes prove ownership
//
// Every max_seq write is a transaction that compares the group key's
// ModRevision with the one this node last read or wrote (no other writer
// slipped in) and carries the [Ownership]'s proof. A failed comparison
// unloads the group at once (ErrNotOwner), except one that failed only
// because a newer table replaced the proof's (it is sent again with the
// newer proof). A write that times out may have happened: the in-memory
// max_seq stays where it was, which is safe since the persisted one can
// only be higher, and the group is re-read, under the proof, before its
// next write; the re-read is taken only if it is unchanged or exactly
// what this node tried to write, anything else unloads the group.
//
// # Ownership: nodes, tenures and the routing table
//
// [Start] spreads the groups over every node by a routing table, after
// seqsvr's "embedded routing table", under the rules of
// docs/seq-failover.md (routestate.go holds them as pure logic):
//
//   - Each node registers <prefix>/seq/nodes/<name> under its lease (only
//     if absent: two live processes cannot share a name), with its
//     address, datacenter and weight. A registration is an incarnation:
//     a node that registers again is a new one.
//   - One node at a time is the arbiter: it holds <prefix>/seq/arbiter,
//     created if absent under its lease, so the role moves when it dies.
//     It watches the registrations and writes <prefix>/seq/routing with
//     [Plan]: every group lives in the first datacenter of its [Homes]
//     list that has a live node; a node that is gone or draining loses
//     its groups at once; planned rounds, RebalanceInterval apart, move at
//     most MaxMoves groups of live nodes: home when their home datacenter
//     returns, then to even the load (calls a second per unit of weight,
//     from the nodes' reports, after EvidenceRounds rounds out of the
//     Tolerance band, never a group within its Cooldown, never
//     overshooting) or, below MinLoad, the group counts. Every write
//     compares the arbiter key's CreateRevision (locks are not fencing)
//     and the table's previous ModRevision.
//   - The table gives each group a tenure: its owner incarnation and the
//     version that began it, with the tenure before. A node serves a
//     group only in a tenure that is its incarnation's.
//   - Every ConfirmInterval a node reads the table in a linearizable
//     transaction that also checks its registration; the groups it gives
//     the node may be served until the read's send time +
//     ActivationDelay - Margin (rule 1). A watch makes moves seen at
//     once: a group that moved away is unloaded at once.
//   - A group newly given is served once its previous owner has released
//     exactly the previous tenure (<prefix>/seq/released/<group>,
//     written after that owner stopped: a handoff), or ActivationDelay
//     after it was first seen (rule 2). Until then calls wait for it,
//     within their context. Once it may be served the node loads it and
//     raises every section's max_seq in one write, before calls need it;
//     or, on the tenure's first load, serves from the state the previous
//     owner handed it off in: a release written with the group, in one
//     transaction that raised it a step (docs/seq-failover.md).
//   - A node releases the tenures it activated when it loses them (a
//     move, its registration, Close, Drain): planned moves, drains and
//     clean restarts do not wait the delay (rule 3).
//   - max_seq writes compare the routing key's ModRevision with the
//     newest table that still gives the group to the writer, and the
//     writer's registration, besides the group key's ModRevision.
//   - A call for a group that the table gives another node answers a
//     [NotOwnerError] that carries the table (a route.Table: version,
//     routes, addresses, and the layout that maps a uid to its group),
//     so a client reaches the owner in one more round trip and routes by
//     the table from then on. [Node.Routing] returns it for answers to
//     stale clients. With Config.HomeOnly (a datacenter's own store) a
//     call for a group homed elsewhere answers a [NotHomeError].
//
// With the defaults (2 s lease, 1 s activation delay, 200 ms margin), a
// killed node's groups are served again by the others about 3.5 s after
// it stopped renewing: up to a TTL for etcd to expire its lease (it
// revokes expired leases every 500 ms), plus the activation delay
// (TestRoutedKillUnderLoad logs the figure).
//
// # Fencing at request time
//
// A value is handed out only if the clock, read after the value was taken
// (after its compare-and-swap), is still before the claim's deadline; a
// read (Current) likewise. A goroutine closing a channel at the deadline
// would not do: it can run late while requests run on time. Because the
// reading follows the take, a call that passes the check took its value
// before the deadline, hence before any next owner can serve, whatever
// pauses the caller afterwards (docs/seq-failover.md). The reading is
// [clock.Deadline.Live]: the monotonic clock, which on Linux counts time
// the host was suspended (CLOCK_BOOTTIME). NextBatch reads the clock once
// for the whole batch.
//
// Keys under Config.Prefix (default "/mig"):
//
//	/mig/seq/config            section size, group size, uid limit, step, homes
//	/mig/seq/nodes/<name>      registration, bound to the node's lease
//	/mig/seq/arbiter           the arbiter's name, bound to its lease
//	/mig/seq/routing           the routing table (JSON)
//	/mig/seq/routing-written   the version of the table an arbiter last wrote
//	/mig/seq/groups/<8 hex>    a group's max_seqs
//	/mig/seq/born/<8 hex>      written with a group's first max_seqs
//	/mig/seq/released/<8 hex>  the last tenure of the group released, with the group's state
//	/mig/seq/load/<name>       a node's calls a second by group, bound to its lease
package seqfacade
