package seqfacade

import "sync/atomic"

// Stats are a node's counters (since New) and gauges, for metrics.
type Stats struct {
	// Issued counts values taken: handed out, or skipped by a batch that
	// failed after taking some (see NextBatch).
	Issued uint64
	// Writes counts max_seq writes attempted: one per extension round of
	// a group, whatever the number of sections it raises.
	Writes uint64
	// WriteFailures counts writes refused or of unknown outcome.
	WriteFailures uint64
	// Waits counts calls that waited for an extension to be persisted.
	Waits uint64
	// Unavailable counts calls answered with an error wrapping
	// ErrUnavailable.
	Unavailable uint64
	// GroupLoads counts groups read from the store.
	GroupLoads uint64
	// GroupsLoaded is the number of groups served now.
	GroupsLoaded int64
	// SectionsLoaded is the number of sections with cur_seq memory.
	SectionsLoaded int64
	// CurSeqBytes is the cur_seq memory of those sections: 8 bytes a uid.
	CurSeqBytes int64
	// Registrations and LeaseLosses count the node's registrations in
	// etcd and the leases it lost (zero for an Ownership not from Start).
	Registrations, LeaseLosses uint64
	// Redirects counts calls answered with a *NotOwnerError.
	Redirects uint64

	// With a routing table (Config.Routed), otherwise zero:
	// RoutingVersion is the version of the newest table the node has
	// seen; GroupsOwned the groups it gives this node, GroupsActivating
	// those of them not yet served (in their activation delay); Moves
	// counts the groups this node moved while it was the arbiter, and
	// Arbiter tells whether it is now.
	RoutingVersion   uint64
	GroupsOwned      int
	GroupsActivating int
	Moves            uint64
	Arbiter          bool
}

type counters struct {
	issued                                                           sharded
	writes, writeFailures, waits, unavailable, groupLoads, redirects atomic.Uint64
	groupsLoaded, sectionsLoaded, curSeqBytes                        atomic.Int64
}

// shards spreads the issued counter so that calls on different uids do
// not all fight over one cache line.
const shards = 32

// sharded is a counter in cache-line-sized shards, chosen by key.
type sharded struct {
	s [shards]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *sharded) add(key, d uint64) { c.s[key%shards].n.Add(d) }

func (c *sharded) load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].n.Load()
	}
	return t
}

// Stats returns the node's counters and gauges.
func (n *Node) Stats() Stats {
	s := Stats{
		Issued:         n.stats.issued.load(),
		Writes:         n.stats.writes.Load(),
		WriteFailures:  n.stats.writeFailures.Load(),
		Waits:          n.stats.waits.Load(),
		Unavailable:    n.stats.unavailable.Load(),
		GroupLoads:     n.stats.groupLoads.Load(),
		GroupsLoaded:   n.stats.groupsLoaded.Load(),
		SectionsLoaded: n.stats.sectionsLoaded.Load(),
		CurSeqBytes:    n.stats.curSeqBytes.Load(),
		Redirects:      n.stats.redirects.Load(),
		RoutingVersion: n.Routing().Version,
	}
	if c, ok := n.own.(interface{ counts() (uint64, uint64) }); ok {
		s.Registrations, s.LeaseLosses = c.counts()
	}
	if r, ok := n.own.(interface{ routeStats() routeStats }); ok {
		rs := r.routeStats()
		s.GroupsOwned, s.GroupsActivating, s.Moves, s.Arbiter = rs.owned, rs.activating, rs.moves, rs.arbiter
	}
	return s
}
