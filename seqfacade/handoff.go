package seqfacade

import (
	"context"
	"fmt"
	"sync"
)

// Direct handoffs: when a table moves a group from one live node to
// another, both see it through their watches at about the same moment.
// The old owner ends its claim at once and queues the release; the new
// owner asks it for that release over the nodes' own protocol
// (Config.HandOff, answered by Node.HandOff), and the answer is the
// release itself, with the group's state in it: for every section the
// highest value the old owner handed out (for a section dense with uids,
// whose offsets are not tracked so, its persisted max_seq) and the
// max_seq it persisted above. The new owner serves at once, under the
// right its latest confirmation lends (routeState.rightLocked), without
// a read or a write: a round trip between the two nodes after the table
// instead of a quorum write and a watch (docs/seq-failover.md, "A
// release asked for"). The release is held back from etcd meanwhile
// (pullWindow), and written without state once handed over; where the
// new owner cannot ask (a partition, an older version), it goes to etcd
// as before.

// HandOffTenure names one owner incarnation's time with a group: the
// node, its registration's CreateRevision, and the routing version that
// began it.
type HandOffTenure struct {
	Node         string
	Registration int64
	Since        uint64
}

// HandOffGroup asks for the release of one tenure of a group.
type HandOffGroup struct {
	Group  int
	Tenure HandOffTenure
}

// HandedOff answers a HandOffGroup. Released: the tenure has ended, and
// its node will hand out nothing more under it. Floor, Max and Revision,
// when given (the node had the group loaded), are the group as it left
// it: for each section the highest value handed out and the persisted
// max_seq, and the group key's revision then.
type HandedOff struct {
	Group    int
	Tenure   HandOffTenure
	Released bool
	Floor    []uint64
	Max      []uint64
	Revision int64
}

func (t HandOffTenure) tenure() tenure {
	return tenure{Node: t.Node, Reg: t.Registration, Since: t.Since}
}

func handOffTenure(t tenure) HandOffTenure {
	return HandOffTenure{Node: t.Node, Registration: t.Reg, Since: t.Since}
}

// HandOff answers another node that a routing table made the next owner
// of groups this node served: for each tenure asked about that is this
// node's, it waits (within ctx, and at most twice pullWindow) until this
// node has seen the tenure end,
// and answers its release, with the group's state when it had the group
// loaded; a tenure that is not this node's, has not ended in time, or
// whose release went to etcd already is answered not released. It
// returns an error wrapping ErrInvalidHandOff for a request naming no
// group, too many, or a group out of range, and one wrapping
// ErrUnavailable from a node that does not hand off directly (no routing
// table in etcd).
func (n *Node) HandOff(ctx context.Context, groups []HandOffGroup) ([]HandedOff, error) {
	if len(groups) == 0 || len(groups) > n.lay.groups {
		return nil, fmt.Errorf("%w: %d groups named, want 1 to %d", ErrInvalidHandOff, len(groups), n.lay.groups)
	}
	seen := make(map[int]bool, len(groups))
	for _, h := range groups {
		if h.Group < 0 || h.Group >= n.lay.groups {
			return nil, fmt.Errorf("%w: group %d out of range [0, %d)", ErrInvalidHandOff, h.Group, n.lay.groups)
		}
		if seen[h.Group] {
			return nil, fmt.Errorf("%w: group %d named twice", ErrInvalidHandOff, h.Group)
		}
		seen[h.Group] = true
	}
	o, ok := n.own.(*routed)
	if !ok {
		return nil, fmt.Errorf("%w: this node has no routing table to hand groups off by", ErrUnavailable)
	}
	// The asker gives up after pullWindow; a caller with a longer
	// deadline (anyone who can reach the port) holds no goroutine longer.
	ctx, cancel := context.WithTimeout(ctx, 2*pullWindow)
	defer cancel()
	return o.handOff(ctx, groups), nil
}

// handOff answers a node that asks for releases (Node.HandOff).
//
// HAZARD: released only for a tenure found among those ended and not yet
// written, which dropLocked queues after ending the claim and only when
// the tenure's activation condition held (rule 3); and the state only
// from the group's last instance, unloaded under that tenure's claim
// (Node.pulledState). The release stays queued (startPull) until the
// state is taken, so that no release written meanwhile raises the group
// under the state handed over.
func (o *routed) handOff(ctx context.Context, groups []HandOffGroup) []HandedOff {
	out := make([]HandedOff, len(groups))
	for i, h := range groups {
		t := h.Tenure.tenure()
		out[i] = HandedOff{Group: h.Group, Tenure: h.Tenure}
		if t.Node != o.cfg.NodeName || !o.waitEnded(ctx, h.Group, t) || !o.st.startPull(h.Group, t) {
			continue
		}
		if st, ok := o.pulledState(h.Group, t); ok {
			out[i].Floor, out[i].Max, out[i].Revision = st.floor, st.max, st.rev
		}
		o.st.pulledDone(h.Group, t)
		out[i].Released = true
		o.handedOff.Add(1)
	}
	return out
}

// waitEnded waits until this node has seen its tenure t of group g end,
// or ctx is done, and reports whether it has.
func (o *routed) waitEnded(ctx context.Context, g int, t tenure) bool {
	for {
		ended, tick := o.st.tenureEnded(g, t)
		if ended {
			return true
		}
		select {
		case <-tick:
		case <-ctx.Done():
			return false
		}
	}
}

// pulls asks, each time it is poked, the previous owners of the groups
// this node waits for to release them directly (toPull), until ctx is
// done.
func (o *routed) pulls(ctx context.Context) {
	for {
		select {
		case <-o.pullNow:
		case <-ctx.Done():
			return
		}
		var wg sync.WaitGroup
		for addr, items := range o.st.toPull() {
			wg.Go(func() { o.pull(ctx, addr, items) })
		}
		wg.Wait()
	}
}

// pull asks the node at addr for the releases of items, within
// pullWindow (past it the node writes them to etcd), and takes in those
// it answers as released, as it would the markers in etcd.
func (o *routed) pull(ctx context.Context, addr string, items []pullItem) {
	req := make([]HandOffGroup, len(items))
	asked := make(map[int]tenure, len(items))
	for i, it := range items {
		req[i] = HandOffGroup{Group: it.group, Tenure: handOffTenure(it.prev)}
		asked[it.group] = it.prev
	}
	cctx, cancel := context.WithTimeout(ctx, pullWindow)
	got, err := o.cfg.HandOff(cctx, addr, req)
	cancel()
	if err != nil {
		o.pullFailures.Add(1)
		o.log.Debug("seq facade: cannot ask for releases directly; waiting for them in etcd", "node", o.cfg.NodeName, "from", addr, "groups", len(items), "err", err)
		return
	}
	markers := map[int]released{}
	for _, h := range got {
		t, ok := asked[h.Group]
		if !ok || !h.Released || h.Tenure.tenure() != t {
			continue // not what was asked: ignored
		}
		rel := released{t: t}
		if st := o.pulledHandoff(h); st != nil {
			rel.state = st
		}
		markers[h.Group] = rel
	}
	o.pulledReleases.Add(uint64(len(markers)))
	o.st.releasedSeen(markers)
}

// pulledHandoff returns the group state in a direct release, or nil when
// it has none or it is unreadable (the new owner then reads the group).
func (o *routed) pulledHandoff(h HandedOff) *handoffState {
	n := o.lay.sectionsIn(h.Group)
	if len(h.Floor) != n || len(h.Max) != n || h.Revision <= 0 {
		return nil
	}
	for i := range n {
		if h.Floor[i] > h.Max[i] || h.Max[i] > MaxSeq {
			return nil
		}
	}
	return &handoffState{floor: h.Floor, max: h.Max, rev: h.Revision}
}
