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
// cur_seq lives only in memory, 8 bytes a uid, allocated for a whole
// section the first time one of its uids is touched. A [Node] hands out
// cur_seq+1 only if it is at most the section's max_seq known to be
// persisted; a section that runs out first persists max_seq + Step. The
// next extension starts in the background once PrefetchFraction of a step
// is used (double buffering, as Meituan's Leaf does), so a steady stream
// rarely waits, and callers of one section share one write. When a group
// is loaded every cur_seq of its sections starts at the persisted max_seq:
// after a restart, values jump up, never repeat.
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
// unloads the group at once (ErrNotOwner). A write that times out may have
// happened: the in-memory max_seq stays where it was, which is safe since
// the persisted one can only be higher, and the group is re-read before
// its next write.
//
// # Ownership on one node
//
// [Start] without Config.Routed serves every group from one node. It
// registers <prefix>/seq/nodes/<name> and claims <prefix>/seq/owner in one
// transaction, both bound to its etcd lease (package internal/lease, whose
// deadline self-fences before etcd can expire the lease); a second node
// waits until both keys are gone. After registering it waits
// ActivationDelay before loading any group, so an old incarnation that was
// partitioned rather than dead has surely fenced itself. When the lease
// ends every group is unloaded at once and the node registers again. It
// refuses to start serving while a routing table exists.
//
// # Ownership across nodes
//
// [Start] with Config.Routed spreads the groups over every routed node by
// a routing table, after seqsvr's "embedded routing table", under the
// rules of docs/seq-failover.md:
//
//   - Each node registers <prefix>/seq/nodes/<name> under its lease, with
//     its address, datacenter and weight.
//   - One node at a time is the arbiter: it holds <prefix>/seq/arbiter,
//     created if absent under its lease, so the role moves when it dies.
//     It watches the registrations and writes <prefix>/seq/routing (a
//     version, the group ranges with their owners, the owners'
//     addresses) with [Plan]: a node whose registration is gone (its
//     lease expired or was revoked) loses its groups to the live ones at
//     once; a joining node is given groups at most MaxMoves a round,
//     rounds RebalanceInterval apart. Every write compares the arbiter
//     key's CreateRevision (locks are not fencing), the table's previous
//     ModRevision, and the absence of the single-node owner key.
//   - After every acknowledged lease renewal a node reads the table in a
//     linearizable transaction that also checks its registration; the
//     groups the table gives it may be served until the renewal's send
//     time + TTL - margin (rule 1). A watch on the table makes moves seen
//     at once: a group that moved away is unloaded at once, a group newly
//     given is activated only ActivationDelay (at least the TTL) after it
//     was first seen (rule 2). Until then calls answer ErrUnavailable.
//   - Each group's owner carries the version that gave it ("since"): a
//     group that moved away and back between two tables a node read is
//     activated afresh.
//   - max_seq writes compare the routing key's ModRevision with the
//     newest table that still gives the group to the writer, and the
//     writer's registration, besides the group key's ModRevision.
//   - A call for a group that the table gives another node answers a
//     [NotOwnerError] that carries the table ([Routing]: version, ranges,
//     addresses, and the layout that maps a uid to its group), so a
//     client reaches the owner in one more round trip and routes by the
//     table from then on. [Node.Routing] returns it for answers to stale
//     clients.
//
// With the routed defaults (2 s lease, 500 ms margin, 2.5 s activation
// delay), a killed node's groups are served again by the others 4.2 to
// 4.9 s after it stopped (TestRoutedKillUnderLoad, 2 cores, -race): up to
// a TTL after its last renewal (etcd revokes expired leases every 500 ms),
// plus the activation delay.
//
// # Fencing at request time
//
// A value is handed out only if the clock, read after the value was taken
// (after its compare-and-swap), is still before the claim's deadline; a
// read (Current) likewise. A goroutine closing a channel at the deadline
// would not do: it can run late while requests run on time. Because the
// reading follows the take, a call that passes the check took its value
// before the deadline, hence before any next owner can serve, whatever
// pauses the caller afterwards (docs/seq-failover.md). On the host's
// clock the reading is the CPU's time-stamp counter, compared with a
// counter window that closes before the deadline ([clock.Deadline]; the
// monotonic clock where that cannot be shown). Next takes about 17 ns on
// the reference machine, 10 without the reading.
// NextBatch reads the clock once for the whole batch.
//
// Keys under Config.Prefix (default "/mig"):
//
//	/mig/seq/config            section size, group size, uid limit, step
//	/mig/seq/nodes/<name>      registration, bound to the node's lease
//	/mig/seq/owner             the single serving node's name, bound to its lease
//	/mig/seq/arbiter           the routed arbiter's name, bound to its lease
//	/mig/seq/routing           the routing table (JSON), routed only
//	/mig/seq/groups/<8 hex>    a group's max_seqs
package seqfacade
