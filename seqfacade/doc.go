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
// [Start] serves every group from one node. It registers
// <prefix>/seq/nodes/<name> and claims <prefix>/seq/owner in one
// transaction, both bound to its etcd lease (package internal/lease, whose
// deadline self-fences before etcd can expire the lease); a second node
// waits until both keys are gone. After registering it waits
// ActivationDelay before loading any group, so an old incarnation that was
// partitioned rather than dead has surely fenced itself. When the lease
// ends every group is unloaded at once and the node registers again. A
// routing table across nodes will replace this [Ownership] without the
// allocator changing.
//
// # Fencing at request time
//
// A value is handed out only if the clock, read after the value was taken
// (after its compare-and-swap), is still before the claim's deadline; a
// read (Current) likewise. A goroutine closing a channel at the deadline
// would not do: it can run late while requests run on time. Because the
// reading follows the take, a call that passes the check took its value
// before the deadline, hence before any next owner can serve, whatever
// pauses the caller afterwards (docs/seq-failover.md). That reading is
// most of the cost of Next (about 50 of 60-70 ns on the reference
// machine; the allocator itself takes about 10). NextBatch reads the
// clock once for the whole batch.
//
// Keys under Config.Prefix (default "/mig"):
//
//	/mig/seq/config            section size, group size, uid limit, step
//	/mig/seq/nodes/<name>      registration, bound to the node's lease
//	/mig/seq/owner             the serving node's name, bound to its lease
//	/mig/seq/groups/<8 hex>    a group's max_seqs
package seqfacade
