package seqfacade

import (
	"math"
	"sync/atomic"
	"time"
)

// Stats are a node's counters (since New) and gauges, for metrics.
type Stats struct {
	// Issued counts values handed out.
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
	// StoreTxns counts the etcd transactions the node's group reads and
	// writes took: concurrent ones share one (a failover's tens of
	// groups), so it grows slower than GroupLoads + Writes.
	StoreTxns uint64
	// GroupLoads counts groups read from the store; Handoffs groups
	// loaded from the state their previous owner handed them off in,
	// without a read or a write.
	GroupLoads, Handoffs uint64
	// HandedOffDirectly counts releases this node answered to the next
	// owners that asked for them; PulledReleases releases it took from
	// previous owners so, PullFailures asks that got no answer (it then
	// waited for the releases in etcd).
	HandedOffDirectly, PulledReleases, PullFailures uint64
	// Vouched counts groups this node began to serve before their
	// activation delay because the table vouched that their previous
	// owner had stopped confirming a delay before (a crash failover
	// without the delay: docs/seq-failover.md).
	Vouched uint64
	// GroupsLoaded is the number of groups served now.
	GroupsLoaded int64
	// SectionsLoaded is the number of sections with cur_seq memory.
	SectionsLoaded int64
	// CurSeqBytes estimates the cur_seq memory of those sections: 8 bytes
	// a uid of a dense section, about 24 a uid touched of a sparse one.
	CurSeqBytes int64
	// Registrations and LeaseLosses count the node's registrations in
	// etcd and the registrations it lost; LeaseResumes the times its
	// lease passed its deadline unrenewed and etcd turned out to hold it
	// still (the registration and its groups kept).
	Registrations, LeaseLosses, LeaseResumes uint64
	// Redirects counts calls answered with a *NotOwnerError or a
	// *NotHomeError.
	Redirects uint64

	// RoutingVersion is the version of the newest table the node has
	// seen; GroupsOwned the groups it gives this node, GroupsActivating
	// those of them waiting their activation delay (neither the delay
	// over nor their previous owner's release read).
	RoutingVersion   uint64
	GroupsOwned      int
	GroupsActivating int
	// Moves counts the groups this node moved while it was the arbiter,
	// by reason (MoveFailover, MoveDrain, ...); Arbiter tells whether it
	// is now.
	Moves   map[string]uint64
	Arbiter bool
	// Load is the node's calls a second over its last load report.
	Load float64
	// Draining tells whether the node is handing its groups off.
	Draining bool
	// LeaseTTL is the TTL etcd granted the node's registration lease (0
	// while not registered): how long a dead node's registration lasts.
	LeaseTTL time.Duration
}

type nodeCounters struct {
	writes, writeFailures, waits, unavailable, groupLoads, handoffs, redirects atomic.Uint64
	retired                                                                    atomic.Uint64 // calls of sections unloaded
	groupsLoaded, sectionsLoaded                                               atomic.Int64
}

// groupCalls returns each loaded group's values handed out so far.
func (n *Node) groupCalls() map[int]uint64 {
	out := map[int]uint64{}
	for i := range n.groups {
		if g := n.groups[i].Load(); g != nil {
			out[i], _ = g.calls()
		}
	}
	return out
}

// Stats returns the node's counters and gauges.
func (n *Node) Stats() Stats {
	s := Stats{
		Issued:         n.stats.retired.Load(),
		Writes:         n.stats.writes.Load(),
		WriteFailures:  n.stats.writeFailures.Load(),
		Waits:          n.stats.waits.Load(),
		Unavailable:    n.stats.unavailable.Load(),
		GroupLoads:     n.stats.groupLoads.Load(),
		Handoffs:       n.stats.handoffs.Load(),
		GroupsLoaded:   n.stats.groupsLoaded.Load(),
		SectionsLoaded: n.stats.sectionsLoaded.Load(),
		Redirects:      n.stats.redirects.Load(),
		RoutingVersion: n.Routing().Version,
	}
	if c, ok := n.store.(txnCounter); ok {
		s.StoreTxns = c.txnsSent()
	}
	for i := range n.groups {
		if g := n.groups[i].Load(); g != nil {
			c, b := g.calls()
			s.Issued += c
			s.CurSeqBytes += b
		}
	}
	if o, ok := n.own.(*routed); ok {
		s.Registrations, s.LeaseLosses, s.LeaseResumes = o.registrations.Load(), o.losses.Load(), o.resumes.Load()
		s.GroupsOwned, s.GroupsActivating, _ = o.st.counts()
		s.Vouched = o.st.vouched.Load()
		s.Moves = o.moves.snapshot()
		s.Arbiter = o.arbiter.Load()
		s.Load = math.Float64frombits(o.load.Load())
		s.Draining = o.draining.Load()
		s.HandedOffDirectly, s.PulledReleases, s.PullFailures = o.handedOff.Load(), o.pulledReleases.Load(), o.pullFailures.Load()
		o.mu.Lock()
		if o.mu.lease != nil {
			s.LeaseTTL = o.mu.lease.TTL()
		}
		o.mu.Unlock()
	}
	return s
}
